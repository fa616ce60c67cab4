"""Push races: three people merge pull requests while the controller reconciles and pushes its
status commits to the same branch. Never a force-push, by anyone; every human commit and exactly
one outcome per merged change end up on main.

Real git throughout (a bare file:// remote with its reflog on, three clones, the controller's own
bare clone); workflows are the real compiled manifests on the LocalExecutor with fast steps
(tests/fastexec.py), so the rounds are fast and bounded. The people
behave like a merge button: when their push is rejected they merge their PR branch again on top of
the new main and push again (their branch commit is kept; nothing is ever forced).
"""

from __future__ import annotations

import itertools
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from controller.adapters.git import GitRepo
from controller.core.trail import parse_trailers
from controller.errors import TransientError
from controller.loop.reconciler import Reconciler
from tests.fastexec import FastExecutor
from tests.support import Clone, ReleaseRepo, git, make_release_repo

PEOPLE = {"ana": "digits-classifier", "ben": "tumor-classifier", "cy": "wine-classifier"}
MERGES_EACH = 3
MAX_PASSES = 400


def land(clone: Clone, branch: str, attempts: int = 50) -> str:
    """Merge `branch` into main with --no-ff and push; on rejection merge again on the new main."""
    for _ in range(attempts):
        clone.run("fetch", "-q", "origin")
        clone.run("checkout", "-q", "-B", "main", "origin/main")
        clone.run("merge", "-q", "--no-ff", branch, "-m", f"Merge pull request from {branch}")
        try:
            clone.push()
        except subprocess.CalledProcessError:
            continue  # someone pushed first: not forced, merged again on top
        return clone.head()
    raise AssertionError(f"{branch} did not land in {attempts} attempts")


def person(clone: Clone, model: str, landed: list[tuple[str, str]], branch_commits: list[str]) -> None:
    for i in range(1, MERGES_EACH + 1):
        clone.run("fetch", "-q", "origin")
        branch = f"{model}-bump-{i}"
        clone.run("checkout", "-q", "-B", branch, "origin/main")
        pin = clone.read_pin("dev", model)
        pin["version"] = f"9.{i}.0"
        clone.write_pin("dev", model, pin)
        branch_commits.append(clone.commit(f"Bump {model} in dev to 9.{i}.0"))
        landed.append((land(clone, branch), model))


def test_three_clones_merge_while_the_controller_pushes(tmp_path: Path, fast: FastExecutor) -> None:
    repo: ReleaseRepo = make_release_repo(tmp_path)
    git(repo.remote, "config", "core.logAllRefUpdates", "true")
    lines: list[str] = []
    rec = Reconciler(
        GitRepo.controller_clone(repo.url, tmp_path / "ctl"),
        fast,
        fast.compiler(),
        log=lambda line, **_fields: lines.append(line),
        max_parallel=len(PEOPLE) * 3,  # no run waits in the queue (a queued change replaced before it ran is
    )  # not yet recorded as Superseded by the asynchronous reconciler: reported, not this test's subject)
    rec.settle(full=True)  # adoption

    clones = {name: repo.clone(name, (name.title(), f"{name}@example.com")) for name in PEOPLE}
    landed: list[tuple[str, str]] = []
    branch_commits: list[str] = []
    threads = [
        threading.Thread(target=person, args=(clones[name], model, landed, branch_commits))
        for name, model in PEOPLE.items()
    ]
    for thread in threads:
        thread.start()
    passes = retries = failed_pushes = 0
    while any(t.is_alive() for t in threads) and passes < MAX_PASSES:
        passes += 1
        try:
            retries += rec.reconcile().push_retries
        except TransientError:  # the push kept losing races for all its attempts: the next pass records
            failed_pushes += 1
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads) and passes < MAX_PASSES
    rec.settle()  # the last merges' runs finish and are recorded
    assert rec.settle().outcomes == []

    main = git(repo.remote, "rev-parse", "main")
    # every human commit is on main: each PR's own commit and the merge that landed it
    assert len(landed) == len(branch_commits) == len(PEOPLE) * MERGES_EACH
    for sha in [m for m, _ in landed] + branch_commits:
        git(repo.remote, "merge-base", "--is-ancestor", sha, main)  # raises when it is not

    # exactly one outcome per merged change (Deployed, or Superseded by a later merge before it ran)
    outcomes: dict[str, list[str]] = {}
    for sha in repo.log("%H", "status"):
        trailers = parse_trailers(git(repo.remote, "log", "-1", "--format=%B", sha))
        outcomes.setdefault(trailers["Source-Commit"], []).append(trailers["Phase"])
    for merge, model in landed:
        assert outcomes.get(merge) in (["Deployed"], ["Superseded"]), (merge, model, outcomes.get(merge), lines[-30:])
    last = {model: merge for merge, model in landed}  # each person's last merge is live
    for model, merge in last.items():
        assert outcomes[merge] == ["Deployed"]
        status = git(repo.remote, "show", f"main:status/dev/{model}.yaml")
        assert f'"source_commit": "{merge}"' in status and '"version": "9.3.0"' in status

    # the remote's reflog: every update of main moved it forward (no forced update, ever)
    entries = git(repo.remote, "reflog", "show", "--format=%H %gs", "refs/heads/main").splitlines()
    assert len(entries) >= len(landed) + 1
    shas = [e.split(" ", 1)[0] for e in entries]  # newest first
    for newer, older in itertools.pairwise(shas):
        git(repo.remote, "merge-base", "--is-ancestor", older, newer)
    assert all("forced-update" not in e for e in entries)
    assert retries + failed_pushes > 0  # the race was real: the controller lost some pushes and recovered


def test_what_a_pass_could_not_push_is_recorded_by_the_next_one(tmp_path: Path, fast: FastExecutor) -> None:
    repo = make_release_repo(tmp_path)
    rec = Reconciler(GitRepo.controller_clone(repo.url, tmp_path / "ctl"), fast, fast.compiler())
    rec.settle(full=True)
    user = repo.clone("user")

    def version(v: str) -> str:
        return user.merge_pr(
            f"wine-{v}",
            lambda c: c.write_pin("dev", "wine-classifier", {**c.read_pin("dev", "wine-classifier"), "version": v}),
            f"wine {v}",
        )

    first = version("9.1.0")
    assert rec.reconcile().in_flight == 1  # its run is submitted
    second = version("9.2.0")
    moved = repo.root / "moved.git"
    publish = rec.repo.publish

    def unreachable(*args: Any, **kwargs: Any) -> str:
        repo.remote.rename(moved)  # the remote is gone for this push and its retries
        try:
            return publish(*args, **kwargs)
        finally:
            moved.rename(repo.remote)

    rec.repo.publish = unreachable  # type: ignore[method-assign]
    with pytest.raises(TransientError):
        rec.reconcile()  # the first change's outcome (Superseded, or Deployed if its run finished first), the
        # second's run submitted; nothing lands
    rec.repo.publish = publish  # type: ignore[method-assign]
    rec.settle()
    phases = {}
    for sha in repo.log("%H", "status"):
        trailers = parse_trailers(git(repo.remote, "log", "-1", "--format=%B", sha))
        phases.setdefault(trailers["Source-Commit"], []).append(trailers["Phase"])
    assert phases.get(first) in (["Superseded"], ["Deployed"]) and phases.get(second) == ["Deployed"]
