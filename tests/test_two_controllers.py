"""Two controllers on one release repo, by mistake: exactly one outcome per change whoever writes.

Without --leader-elect nothing stops two controllers with separate state folders from acting on
the same merge. Both may run the workflow; the first push lands, and the other, replaying its
status commits on the new head, finds that change's outcome there and drops its own. The artifact
the trail names is in the store of the controller whose outcome landed: a promotion reconciled by
that controller deploys it; one reconciled by the other is Errored (infrastructure, retried),
never Failed. Two local controllers cannot share one state folder at all (a lock, exit code 3).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from controller.adapters.git import GitRepo, Identity, PendingCommit
from controller.adapters.local.executor import LocalExecutor
from controller.app import statelock
from controller.core.models import Phase
from controller.core.trail import parse_status, parse_trailers
from controller.loop.reconciler import Reconciler
from tests.fastexec import FastExecutor
from tests.support import Clone, ReleaseRepo, git, make_release_repo

OTHER = Identity("releasectl-b", "releasectl-b@noreply.invalid")


def outcomes_of(repo: ReleaseRepo, source: str) -> list[str]:
    """The phases of every status commit on main recorded for the change `source`, oldest first."""
    found = []
    for sha in reversed(repo.log("%H", "status")):
        trailers = parse_trailers(git(repo.remote, "log", "-1", "--format=%B", sha))
        if trailers["Source-Commit"] == source:
            found.append(trailers["Phase"])
    return found


def bump(user: Clone, env: str, model: str, **changes: object) -> str:
    def edit(clone: Clone) -> None:
        pin = clone.read_pin(env, model)
        pin.update(changes)
        clone.write_pin(env, model, pin)

    return user.merge_pr(f"{env}-{model}-{changes.get('version', 'x')}", edit, f"Change {model} in {env}")


def test_a_run_whose_change_another_controller_recorded_meanwhile_records_nothing(
    tmp_path: Path, fast: FastExecutor, request: pytest.FixtureRequest
) -> None:
    repo = make_release_repo(tmp_path)
    one = Reconciler(GitRepo.controller_clone(repo.url, tmp_path / "one"), fast, fast.compiler())
    lines: list[str] = []
    engine = LocalExecutor(tmp_path / "other-engine", max_parallel=2, preload=("tests.faststeps",))  # its own runs
    request.addfinalizer(engine.close)
    theirs = FastExecutor(engine, tmp_path / "other-fast")
    other = Reconciler(
        GitRepo.controller_clone(repo.url, tmp_path / "other"),
        theirs,
        theirs.compiler(),
        log=lambda line, **_fields: lines.append(line),
        identity=OTHER,
    )
    one.settle(full=True)
    assert other.settle(full=True).outcomes == []  # the adoption is recorded: nothing to say twice
    merge = bump(repo.clone("user"), "dev", "wine-classifier", version="2.2.0")

    started = other.reconcile()  # `other` starts its run for the merge...
    assert [o.action.key for o in started.outcomes] == [] and started.in_flight == 1
    recorded = one.settle().outcomes
    assert [o.phase for o in recorded] == [Phase.DEPLOYED], recorded[0].reason  # ... `one` records the merge first
    landed = git(repo.remote, "rev-parse", "main")
    assert other.settle().outcomes == []  # its run finished, but the change has its outcome: dropped
    assert git(repo.remote, "rev-parse", "main") == landed
    assert outcomes_of(repo, merge) == ["Deployed"]
    assert "dev/wine-classifier: this change already has an outcome; dropped" in lines


def pending(env: str, model: str, source: str, text: str) -> PendingCommit:
    message = (
        f"status({env}): {model} 1.0.0 Deployed\n\n{text}\n\nReleasectl-Environment: {env}\n"
        f"Releasectl-Model: {model}\nReleasectl-Source-Commit: {source}\n"
    )
    return PendingCommit(((f"status/{env}/{model}.yaml", f"{text}\n".encode()),), message)


def test_only_outcomes_of_changes_that_landed_meanwhile_are_dropped(tmp_path: Path) -> None:
    repo = make_release_repo(tmp_path)
    one, other = (GitRepo.controller_clone(repo.url, tmp_path / name) for name in ("one", "other"))
    base = other.fetch()
    s1, s2 = "1" * 40, "2" * 40
    one.publish(base, [pending("dev", "x", s1, "x for s1, by one")])
    dropped: list[PendingCommit] = []
    retried: list[int] = []
    mine = [
        pending("dev", "x", s1, "x for s1, by other"),  # landed meanwhile: dropped
        pending("dev", "y", s1, "y for s1, by other"),  # another model: replayed
        pending("dev", "x", s2, "x for s2, by other"),  # another change of x: replayed
    ]
    head = other.publish(base, mine, OTHER, on_retry=retried.append, on_drop=dropped.append)
    assert retried == [1] and dropped == [mine[0]]
    assert head == git(repo.remote, "rev-parse", "main")
    assert repo.log("%s")[:4] == [
        "status(dev): x 1.0.0 Deployed",
        "status(dev): y 1.0.0 Deployed",
        "status(dev): x 1.0.0 Deployed",
        "Initial release set",
    ]
    assert repo.log("%an")[:3] == ["releasectl-b", "releasectl-b", "releasectl"]
    assert git(repo.remote, "show", "main:status/dev/x.yaml") == "x for s2, by other"
    assert git(repo.remote, "show", "main~1:status/dev/y.yaml") == "y for s1, by other"
    assert git(repo.remote, "show", "main~2:status/dev/x.yaml") == "x for s1, by one"
    # all of them landed meanwhile: nothing is pushed, the new head is returned as it is
    assert other.publish(base, mine[:1], OTHER, on_drop=dropped.append) == head and dropped == mine[:1] * 2


def releasectl(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "controller", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def reconcile_once(repo: ReleaseRepo, home: Path) -> subprocess.Popen[str]:
    return releasectl("reconcile", "--repo", repo.url, "--once", "--home", str(home), "--format", "json")


def finished(proc: subprocess.Popen[str]) -> tuple[int, dict[str, object], str]:
    out, err = proc.communicate(timeout=300)
    assert "Traceback" not in err, err
    return proc.returncode, json.loads(out) if out.strip() else {}, err


def only_wine_in_dev(seed: Path) -> None:
    for pin in seed.glob("environments/*/*.yaml"):
        if pin.relative_to(seed).as_posix() != "environments/dev/wine-classifier.yaml":
            pin.unlink()
    no_latency_gate(seed / "environments/dev/wine-classifier.yaml")


def no_latency_gate(path: Path) -> None:
    """Real training on a busy shared machine: gate on accuracy only, never on wall-clock latency."""
    doc = yaml.safe_load(path.read_text())
    doc["evaluation"]["gates"] = {"accuracy": ">= 0.80"}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def in_store(home: Path, artifact: str) -> bool:
    return (home / "store" / "sha256" / f"{artifact.removeprefix('sha256:')}.skops").is_file()


def test_two_controllers_one_merge_one_outcome_then_the_artifact_holder_deploys_a_promotion(tmp_path: Path) -> None:
    repo = make_release_repo(tmp_path, edit=only_wine_in_dev)
    homes = {"a": tmp_path / "home-a", "b": tmp_path / "home-b"}
    code, _, err = finished(reconcile_once(repo, homes["a"]))
    assert code == 0, err
    user = repo.clone("user")
    params = {**user.read_pin("dev", "wine-classifier")["training"]["params"], "seed": 11}
    training = {**user.read_pin("dev", "wine-classifier")["training"], "params": params}
    # (no regression check: a controller that did not build the live version lacks its artifact; see below)
    evaluation = {"gates": {"accuracy": ">= 0.5"}}  # (and no latency gate: this machine may be busy)
    merge = bump(user, "dev", "wine-classifier", version="2.2.0", training=training, evaluation=evaluation)

    # both controllers act on the merge at once, each with its own state folder
    runs = {name: reconcile_once(repo, home) for name, home in homes.items()}
    results = {name: finished(proc) for name, proc in runs.items()}
    assert all(code == 0 for code, _, _ in results.values()), results
    assert outcomes_of(repo, merge) == ["Deployed"]
    status = parse_status(git(repo.remote, "show", "main:status/dev/wine-classifier.yaml").encode())
    assert status is not None and status.live is not None
    artifact = status.live.artifact
    holders = [name for name, home in homes.items() if in_store(home, artifact)]
    # one of them landed; the other trained and lost the push, or started after it and had nothing to do
    dropped = [
        n for n, (_, _, err) in results.items() if "this change already has an outcome on the new head; dropped" in err
    ]
    idle = [n for n, (_, result, _) in results.items() if result["outcomes"] == []]
    assert len(dropped) + len(idle) == 1, results
    # each store holds what its own controller trained, and training is deterministic (workflows/provenance.py):
    # the one whose outcome landed holds it, and one that also trained (then lost the push, or found the
    # outcome recorded when it came to write) holds the very same bytes, under the same digest
    assert holders and set(holders) >= {n for n in homes if n not in dropped + idle}
    winner = holders[0]

    # a promotion of that version, reconciled by the controller whose store holds the artifact, deploys it
    staging = user.merge_pr(
        "promote-staging",
        lambda c: c.write_pin("staging", "wine-classifier", c.read_pin("dev", "wine-classifier")),
        "Promote wine-classifier 2.2.0 to staging",
    )
    code, result, err = finished(reconcile_once(repo, homes[winner]))
    assert code == 0, err
    assert [(o["environment"], o["phase"], o["artifact"]) for o in result["outcomes"]] == [  # type: ignore[index]
        ("staging", "Deployed", artifact)
    ]
    assert outcomes_of(repo, staging) == ["Deployed"]

    # a controller whose store lacks the artifact cannot deploy it: Errored (retried), not Failed
    production = user.merge_pr(
        "promote-production",
        lambda c: c.write_pin("production", "wine-classifier", c.read_pin("staging", "wine-classifier")),
        "Promote wine-classifier 2.2.0 to production",
    )
    stranger = tmp_path / "home-c"  # a controller with a store of its own that never trained this version
    code, result, err = finished(reconcile_once(repo, stranger))
    assert code == 0, err
    (outcome,) = result["outcomes"]  # type: ignore[misc]
    assert (outcome["environment"], outcome["phase"]) == ("production", "Errored")
    assert outcome["reason"].startswith(
        f"evaluate errored: ArtifactMissing: artifact {artifact} is not in the artifact store {stranger}"
    )
    assert "another controller with its own store built it" in outcome["reason"]
    assert outcomes_of(repo, production) == ["Errored"]


def test_two_local_controllers_cannot_share_a_state_folder(tmp_path: Path) -> None:
    repo = make_release_repo(tmp_path, edit=only_wine_in_dev)
    home = tmp_path / "home"
    with statelock.hold(home):
        code, _, err = finished(reconcile_once(repo, home))
    assert code == 3
    assert err.startswith(f"error: the state folder {home} is in use by another releasectl controller (pid ")
    assert err.endswith("give each controller its own --home (and run several on one repo only with --leader-elect)\n")
    assert len(err.splitlines()) == 1
    assert repo.log("%s") == ["Initial release set"]  # nothing was recorded
    code, result, err = finished(reconcile_once(repo, home))  # released: the next controller runs
    assert code == 0 and len(result["outcomes"]) == 1  # type: ignore[arg-type]
