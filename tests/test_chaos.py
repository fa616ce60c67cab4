"""Chaos: the long-running controller SIGKILLed at random instants, 100 times and more, over 20 merges.

Each controller life is forked from a warm zygote (the local executor's warm worker, preloaded
with tests/chaos_controller.py) so it starts at once, and dies by SIGKILL: from the test at a
random instant, or from itself at a failpoint right after a submit, after its status commits are
written and before the push, or while git pushes (controller/failpoints.py). The runs live in the
local engine, a process of its own that nobody kills. After a last clean pass the trail must equal
a fault-free run's: exactly one outcome per merged pin change, in the same order, and the engine's
submissions log must show no run started twice.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path

from controller.adapters.git import GitRepo
from controller.adapters.local.proc import Launch, WarmClient
from controller.loop.reconciler import Reconciler
from tests.chaos_controller import executor
from tests.fastexec import fast_compiler
from tests.support import ROOT, ReleaseRepo, git, make_release_repo
from tests.test_async import bump, single_env

MERGES = 20
KILLS = 100
MODELS = ("wine-classifier", "digits-classifier", "tumor-classifier")
FAILPOINTS = "after-submit=0.35,before-push=0.25,during-push=0.25,after-push=0.1"


def outcomes(repo: ReleaseRepo) -> list[tuple[str, str, str, str]]:
    """(environment, model, version, phase) of every status commit, oldest first."""
    fmt = (
        "%(trailers:key=Releasectl-Environment,valueonly,separator=)|%(trailers:key=Releasectl-Model,valueonly,separator=)"
        "|%(trailers:key=Releasectl-Version,valueonly,separator=)|%(trailers:key=Releasectl-Phase,valueonly,separator=)"
    )
    lines = git(
        repo.remote, "log", "--reverse", "--first-parent", f"--format={fmt}", "main", "--", "status"
    ).splitlines()
    return [tuple(line.split("|")) for line in lines if line.strip()]  # type: ignore[misc]


def sources(repo: ReleaseRepo) -> Counter[str]:
    out = git(repo.remote, "log", "--format=%(trailers:key=Releasectl-Source-Commit,valueonly,separator=)", "main")
    return Counter(line for line in out.splitlines() if line)


def script(repo: ReleaseRepo) -> list[tuple[str, str]]:
    return [(MODELS[i % len(MODELS)], f"9.{i // len(MODELS)}.{i}") for i in range(MERGES)]


def fault_free(tmp_path: Path) -> list[tuple[str, str, str, str]]:
    repo = make_release_repo(tmp_path, edit=single_env)
    (tmp_path / "behaviour.json").write_text("{}")
    ex = executor(tmp_path / "home")
    rec = Reconciler(
        GitRepo.controller_clone(repo.url, tmp_path / "ctl"), ex, fast_compiler(tmp_path / "behaviour.json")
    )
    rec.settle(full=True)
    user = repo.clone("user")
    for i, (model, version) in enumerate(script(repo)):
        user.merge_pr(f"b{i}", bump(model, version), f"{model} {version}")
        rec.settle()
    ex.close()
    return outcomes(repo)


def test_sigkill_at_random_instants_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    expected = fault_free(tmp_path / "reference")
    assert len(expected) == 3 + MERGES

    repo = make_release_repo(tmp_path / "chaos", edit=single_env)
    home, workdir, behaviour = tmp_path / "home", tmp_path / "ctl", tmp_path / "behaviour.json"
    behaviour.write_text("{}")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "PYTHONPATH": str(ROOT),
        "RELEASECTL_FAILPOINTS": FAILPOINTS,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    zygote = WarmClient(sys.executable, ("tests.chaos_controller",), env, tmp_path, tmp_path / "zygote.log")
    rng = random.Random(7)
    kills = Counter[str]()
    logs = tmp_path / "lives"
    logs.mkdir()

    def life() -> None:
        n = sum(kills.values())
        argv = [sys.executable, "-m", "tests.chaos_controller", repo.url, str(workdir), str(home), str(behaviour)]
        proc = zygote.launch(
            Launch(argv, env, tmp_path, logs / f"{n}.out", logs / f"{n}.err"), "tests.chaos_controller"
        )
        assert proc is not None, (tmp_path / "zygote.log").read_text()
        code = proc.wait(rng.uniform(0.05, 1.2))
        if code is None:
            os.kill(proc.pid, signal.SIGKILL)
            code = proc.wait(10)
            kills["by the test"] += 1
        else:
            assert code == -signal.SIGKILL, (logs / f"{n}.err").read_text()[-2000:]
            kills["at a failpoint"] += 1

    try:
        user = repo.clone("user")
        merges = []
        end = time.monotonic() + 240
        seed = git(repo.remote, "rev-list", "--max-parents=0", "main")
        while sources(repo)[seed] < 3:  # adoption: one outcome per pin, the seed commit their source
            assert time.monotonic() < end, "adoption did not finish"
            life()
        for i, (model, version) in enumerate(script(repo)):
            merges.append(user.merge_pr(f"b{i}", bump(model, version), f"{model} {version}"))
            while merges[-1] not in sources(repo):
                assert time.monotonic() < end, f"no outcome for merge {i} after {sum(kills.values())} kills"
                life()
        while sum(kills.values()) < KILLS:
            life()
    finally:
        zygote.close()

    # a last clean pass (no failpoints), then the trail must equal the fault-free run's
    clean = Reconciler(GitRepo.controller_clone(repo.url, workdir), executor(home), fast_compiler(behaviour))
    clean.settle(full=True)
    clean.executor.close()
    assert sum(kills.values()) >= KILLS and kills["at a failpoint"] > 0 and kills["by the test"] > 0
    assert outcomes(repo) == expected
    counted = sources(repo)
    assert all(counted[sha] == 1 for sha in merges), {sha[:12]: counted[sha] for sha in merges if counted[sha] != 1}

    # zero duplicate submissions at the executor: every run started once, none restarted
    lines = [line.split() for line in (home / "submissions.log").read_text().splitlines()]
    started = Counter(name for _, what, name, _pid in lines if what in ("start", "restart"))
    assert [name for name, n in started.items() if n > 1] == []
    assert not [line for line in lines if line[1] == "restart"]
    assert len(started) == 3 + MERGES  # one workflow per outcome, each started exactly once
