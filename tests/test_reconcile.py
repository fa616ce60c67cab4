"""The controller against real git: a bare file:// remote, clones, merges, reverts and races.

Workflows run on the real LocalExecutor with the real compiled manifests and fast step functions
(tests/fastexec.py), so that these tests check the git side exactly and fast and still fail when a
manifest's depends/when are wrong; tests/test_e2e.py runs the same story with real training.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from controller.adapters.git import GitRepo
from controller.adapters.local.executor import LocalExecutor
from controller.app import queries
from controller.core.models import Phase
from controller.loop.reconciler import PolicyInvalid, Reconciler
from tests.fastexec import Behaviour, FastExecutor
from tests.support import Clone, ReleaseRepo, git, make_release_repo, trailers

TRAILER_KEYS = [
    "Environment",
    "Model",
    "Version",
    "Phase",
    "Source-Commit",
    "Spec-Digest",
    "Workflow",
    "Artifact",
    "Reconciled",
]


def controller(
    repo: ReleaseRepo, executor: FastExecutor, name: str = "ctl", clock: Callable[[], datetime] | None = None
) -> Reconciler:
    lines: list[str] = []
    rec = Reconciler(
        GitRepo.controller_clone(repo.url, repo.root / name),
        executor,
        executor.compiler(),
        log=lambda line, **_fields: lines.append(line),
        **({"clock": clock} if clock else {}),
    )
    rec.lines = lines  # type: ignore[attr-defined]
    return rec


@pytest.fixture
def adopted(tmp_path: Path, fast: FastExecutor) -> tuple[ReleaseRepo, FastExecutor, Reconciler]:
    repo = make_release_repo(tmp_path)
    executor = fast
    rec = controller(repo, executor)
    result = rec.settle(full=True)
    assert [(o.action.key, o.reason) for o in result.outcomes if o.phase is not Phase.DEPLOYED] == []
    return repo, executor, rec


def status_file(repo: ReleaseRepo, env: str, model: str) -> dict[str, object]:
    return yaml.safe_load(git(repo.remote, "show", f"main:status/{env}/{model}.yaml"))


def promote_in_pr(user: Clone, model: str, source: str, target: str) -> str:
    def edit(clone: Clone) -> None:
        doc = clone.read_pin(target, model)
        upstream = clone.read_pin(source, model)
        doc["version"], doc["training"] = upstream["version"], upstream["training"]
        clone.write_pin(target, model, doc)

    return user.merge_pr(f"promote-{model}-{target}", edit, f"Promote {model} to {target}")


def test_first_pass_adopts_every_pin_with_one_trailered_commit_each(
    tmp_path: Path, fast: FastExecutor, fast_engine: LocalExecutor
) -> None:
    repo = make_release_repo(tmp_path)
    initial = git(repo.remote, "rev-parse", "main")
    executor = fast
    result = controller(repo, executor).settle(full=True)

    assert [(o.phase, o.reason) for o in result.outcomes if o.phase is not Phase.DEPLOYED] == []
    assert [o.phase for o in result.outcomes] == [Phase.DEPLOYED] * 9
    subjects = repo.log("%s")
    assert len(subjects) == 10 and subjects[-1] == "Initial release set"
    assert sorted(subjects[:-1]) == sorted(
        f"status({env}): {model} {version} Deployed"
        for env, model, version in [
            ("dev", "digits-classifier", "0.3.0"),
            ("dev", "tumor-classifier", "1.1.0"),
            ("dev", "wine-classifier", "2.1.0"),
            ("staging", "digits-classifier", "0.2.0"),
            ("staging", "tumor-classifier", "1.0.0"),
            ("staging", "wine-classifier", "2.1.0"),
            ("production", "digits-classifier", "0.2.0"),
            ("production", "tumor-classifier", "1.0.0"),
            ("production", "wine-classifier", "2.0.0"),
        ]
    )
    # every status commit changes exactly its status file and carries every trailer
    for sha in repo.log("%H", "status"):
        files = git(repo.remote, "diff-tree", "--no-commit-id", "-r", "--name-only", sha).split()
        assert len(files) == 1 and files[0].startswith("status/")
        keys = git(repo.remote, "log", "-1", "--format=%(trailers:only,unfold)", sha).splitlines()
        names = [k.split(":")[0] for k in keys]
        # commits written while adoption is still going on say so, for a controller restarted meanwhile
        assert names in (
            [f"Releasectl-{k}" for k in TRAILER_KEYS],
            [f"Releasectl-{k}" for k in TRAILER_KEYS] + ["Releasectl-Adopting"],
        )
    assert "Releasectl-Adopting" not in git(repo.remote, "log", "-1", "--format=%B", "main")
    assert trailers(repo, "Releasectl-Source-Commit") == [initial] * 9
    # each names the head its pass reconciled: the seed, then heads that hold only status commits since
    reconciled = trailers(repo, "Releasectl-Reconciled")
    assert reconciled[-1] == initial and set(reconciled) <= set(repo.log("%H"))
    assert trailers(repo, "Releasectl-Phase") == ["Deployed"] * 9
    assert all(a.startswith("sha256:") for a in trailers(repo, "Releasectl-Artifact"))
    assert "Adopted: the first pass" in git(repo.remote, "log", "-1", "--format=%B", "main")
    assert set(repo.log("%ae", "status")) == {"releasectl@noreply.invalid"}

    # build once: 1.0.0 of tumor (staging+production) and 2.1.0 of wine (dev+staging) train once
    trained = [n for n in executor.manifests if "train" in executor.tasks(n)]
    assert len(trained) == 6
    staging = status_file(repo, "staging", "tumor-classifier")
    production = status_file(repo, "production", "tumor-classifier")
    assert staging["live"]["artifact"] == production["live"]["artifact"]  # type: ignore[index]

    # a second controller process finds nothing to do, and so does the first one's next poll
    head = git(repo.remote, "rev-parse", "main")
    again = controller(repo, FastExecutor(fast_engine, tmp_path / "ctl2-exec"), name="ctl2").settle(full=True)
    assert again.outcomes == [] and again.published is None
    assert git(repo.remote, "rev-parse", "main") == head


def test_idle_poll_is_a_no_op(adopted: tuple[ReleaseRepo, FastExecutor, Reconciler]) -> None:
    repo, executor, rec = adopted
    head = git(repo.remote, "rev-parse", "main")
    before = len(executor.submitted)
    assert rec.settle().outcomes == []
    assert rec.settle().outcomes == []
    assert git(repo.remote, "rev-parse", "main") == head and len(executor.submitted) == before


def test_promotion_blocked_bump_rejection_and_revert(adopted: tuple[ReleaseRepo, FastExecutor, Reconciler]) -> None:
    repo, executor, rec = adopted
    user = repo.clone("user")
    dev_artifact = status_file(repo, "dev", "tumor-classifier")["live"]["artifact"]  # type: ignore[index]
    old_artifact = status_file(repo, "staging", "tumor-classifier")["live"]["artifact"]  # type: ignore[index]

    # 1. promote dev's tumor-classifier 1.1.0 to staging: Deployed, citing the merge, reusing dev's artifact
    merge = promote_in_pr(user, "tumor-classifier", "dev", "staging")
    result = rec.settle()
    assert [(o.action.key, o.phase) for o in result.outcomes] == [(("staging", "tumor-classifier"), Phase.DEPLOYED)]
    assert trailers(repo, "Releasectl-Source-Commit")[0] == merge
    assert trailers(repo, "Releasectl-Artifact")[0] == dev_artifact
    assert executor.tasks(executor.submitted[-1]) == ["validate-data", "evaluate", "deploy", "gates-failed"]

    # 2. production bump to a version staging has not Deployed: Blocked, reason in body and file
    def bump(clone: Clone) -> None:
        doc = clone.read_pin("dev", "digits-classifier")
        clone.write_pin(
            "production",
            "digits-classifier",
            {
                **clone.read_pin("production", "digits-classifier"),
                "version": doc["version"],
                "training": doc["training"],
            },
        )

    bump_merge = user.merge_pr("bump-digits-prod", bump, "Bump digits in production")
    result = rec.settle()
    assert [(o.action.key, o.phase) for o in result.outcomes] == [(("production", "digits-classifier"), Phase.BLOCKED)]
    blocked = status_file(repo, "production", "digits-classifier")
    assert blocked["phase"] == "Blocked"
    assert str(blocked["reason"]).startswith("staging has not Deployed spec sha256:")
    assert str(blocked["reason"]).endswith("(version 0.3.0); promote it there first")
    assert blocked["live"]["version"] == "0.2.0"  # type: ignore[index]
    assert blocked["desired"]["source_commit"] == bump_merge  # type: ignore[index]
    body = git(repo.remote, "log", "-1", "--format=%B", "main")
    assert f"Reason: {blocked['reason']}" in body and "Live: 0.2.0" in body
    assert rec.settle().outcomes == []  # still blocked for the same reason: nothing new to say

    # 3. an invalid pin is Rejected with file, field and rule; another change in the same merge still deploys
    def break_wine_and_bump_digits(clone: Clone) -> None:
        clone.write_pin("dev", "wine-classifier", {**clone.read_pin("dev", "wine-classifier"), "version": "2.x"})
        clone.write_pin("dev", "digits-classifier", {**clone.read_pin("dev", "digits-classifier"), "version": "0.4.0"})

    user.merge_pr("mixed", break_wine_and_bump_digits, "Two changes")
    result = rec.settle()
    assert {o.action.key: o.phase for o in result.outcomes} == {
        ("dev", "wine-classifier"): Phase.REJECTED,
        ("dev", "digits-classifier"): Phase.DEPLOYED,
    }
    rejected = status_file(repo, "dev", "wine-classifier")
    assert rejected["reason"] == (
        "environments/dev/wine-classifier.yaml: version: '2.x' is not a semantic version "
        "(MAJOR.MINOR.PATCH, e.g. 1.4.0) [pattern]"
    )
    assert rejected["live"]["version"] == "2.1.0"  # type: ignore[index]

    # 4. git revert of the promotion: the next pass rolls back without training
    user.pull()
    user.run("revert", "--no-edit", "-m", "1", merge)
    user.push()
    revert = user.head()
    result = rec.settle()
    (outcome,) = result.outcomes
    assert (outcome.action.key, outcome.phase, outcome.action.kind.value) == (
        ("staging", "tumor-classifier"),
        Phase.DEPLOYED,
        "rollback",
    )
    assert executor.tasks(executor.submitted[-1]) == ["deploy"]
    assert outcome.artifact == old_artifact
    assert trailers(repo, "Releasectl-Source-Commit")[0] == revert
    assert "rolled back to a version this environment ran before, without training" in git(
        repo.remote, "log", "-1", "--format=%B", "main"
    )

    # 5. history shows bump, outcome, revert, outcome in order
    user.run("fetch", "-q")
    rows = queries.history(GitRepo(user.path), "tumor-classifier", "staging", rev="origin/main")
    assert [(r.kind, r.version, r.phase) for r in rows] == [
        ("change", "1.0.0", ""),
        ("outcome", "1.0.0", "Deployed"),
        ("change", "1.1.0", ""),
        ("outcome", "1.1.0", "Deployed"),
        ("revert", "1.0.0", ""),
        ("outcome", "1.0.0", "Deployed"),
    ]
    assert rows[2].commit == merge and rows[3].source_commit == merge
    assert rows[4].commit == revert and rows[5].source_commit == revert


def test_a_rejected_push_is_rebased_and_retried(adopted: tuple[ReleaseRepo, FastExecutor, Reconciler]) -> None:
    repo, executor, rec = adopted
    user, other = repo.clone("user"), repo.clone("other", ("Oli Other", "oli@example.com"))
    promote_in_pr(user, "wine-classifier", "staging", "production")

    def someone_pushes(_name: str) -> None:
        other.pull()
        other.write("README.md", "the release repo\n")
        other.commit("Add a README", "README.md")
        other.push()

    executor.on_finished = someone_pushes
    result = rec.settle()
    assert result.push_retries == 1
    assert [o.phase for o in result.outcomes] == [Phase.DEPLOYED]
    subjects = repo.log("%s")
    assert subjects[:2] == ["status(production): wine-classifier 2.1.0 Deployed", "Add a README"]
    assert "Merge pull request from promote-wine-classifier-production" in subjects[2]
    assert git(repo.remote, "show", "main:README.md") == "the release repo"
    assert any("push rejected" in line for line in rec.lines)  # type: ignore[attr-defined]
    assert rec.settle().outcomes == []  # the README commit is not a candidate


def test_superseded_changes_get_their_own_outcome(adopted: tuple[ReleaseRepo, FastExecutor, Reconciler]) -> None:
    repo, _executor, rec = adopted
    user = repo.clone("user")

    def version(v: str) -> Callable[[Clone], None]:
        return lambda c: c.write_pin(
            "dev", "digits-classifier", {**c.read_pin("dev", "digits-classifier"), "version": v}
        )

    first = user.merge_pr("b1", version("0.5.0"), "0.5.0")
    second = user.merge_pr("b2", version("0.6.0"), "0.6.0")
    result = rec.settle()
    assert [(o.action.version, o.phase) for o in result.outcomes] == [
        ("0.5.0", Phase.SUPERSEDED),
        ("0.6.0", Phase.DEPLOYED),
    ]
    assert result.outcomes[0].action.source_commit == first
    assert result.outcomes[0].reason == f"superseded by {second} before it ran"
    assert trailers(repo, "Releasectl-Phase")[:2] == ["Deployed", "Superseded"]


def test_failed_gates_keep_the_live_version(adopted: tuple[ReleaseRepo, FastExecutor, Reconciler]) -> None:
    repo, executor, rec = adopted
    user = repo.clone("user")
    executor.behaviour[("dev", "tumor-classifier")] = Behaviour(metrics={"roc_auc": 0.8}, gates_pass=False)
    user.merge_pr(
        "b",
        lambda c: c.write_pin("dev", "tumor-classifier", {**c.read_pin("dev", "tumor-classifier"), "version": "1.2.0"}),
        "bump",
    )
    (outcome,) = rec.settle().outcomes
    assert outcome.phase is Phase.FAILED
    assert outcome.reason == "gate roc_auc >= 0.9 failed with 0.8"
    status = status_file(repo, "dev", "tumor-classifier")
    assert status["live"]["version"] == "1.1.0"  # type: ignore[index]
    assert status["gates"] == [
        {"metric": "roc_auc", "op": ">=", "threshold": 0.9, "value": 0.8, "passed": False, "kind": "gate"}
    ]
    assert "  gate roc_auc: 0.8 >= 0.9 FAILED" in git(repo.remote, "log", "-1", "--format=%B", "main")
    assert rec.settle().outcomes == []  # Failed waits for the user


def test_check_failure_is_failed_and_crash_is_errored_then_retried(tmp_path: Path, fast: FastExecutor) -> None:
    repo = make_release_repo(tmp_path)
    executor = fast
    executor.behaviour[("dev", "wine-classifier")] = Behaviour(
        fail_task="validate-data", fail_message="dataset wine: digest mismatch"
    )
    executor.behaviour[("dev", "digits-classifier")] = Behaviour(crash_task="train")
    now = [datetime.now(UTC).replace(microsecond=0)]  # backoff counts from the run's real finish
    rec = controller(repo, executor, clock=lambda: now[0])
    outcomes = {o.action.key: o for o in rec.settle(full=True).outcomes}
    assert outcomes[("dev", "wine-classifier")].phase is Phase.FAILED
    assert outcomes[("dev", "wine-classifier")].reason == "validate-data: dataset wine: digest mismatch"
    assert outcomes[("dev", "digits-classifier")].phase is Phase.ERRORED
    assert outcomes[("dev", "digits-classifier")].reason == "train errored: RuntimeError: boom"
    assert status_file(repo, "dev", "digits-classifier")["attempts"] == 1

    executor.behaviour.pop(("dev", "digits-classifier"))
    errored = outcomes[("dev", "digits-classifier")].workflow
    assert rec.settle(full=True).outcomes == []  # backing off (30 s)
    now[0] += timedelta(seconds=90)
    retried = rec.settle(full=True).outcomes
    assert [(o.action.key, o.phase) for o in retried] == [(("dev", "digits-classifier"), Phase.DEPLOYED)]
    assert errored is not None and retried[0].workflow is not None
    assert retried[0].workflow.name != errored.name  # a retry is a new run; the Errored one stays as it ended
    old = executor.get(errored.name)
    assert old is not None and old.phase == "Failed"


def test_deleting_a_pin_removes_the_model(adopted: tuple[ReleaseRepo, FastExecutor, Reconciler]) -> None:
    repo, executor, rec = adopted
    user = repo.clone("user")
    user.run("rm", "-q", "environments/dev/wine-classifier.yaml")
    deletion = user.commit("Retire wine in dev")
    user.push()
    (outcome,) = rec.settle().outcomes
    assert (outcome.phase, outcome.action.source_commit) == (Phase.REMOVED, deletion)
    assert executor.tasks(executor.submitted[-1]) == ["undeploy"]
    status = status_file(repo, "dev", "wine-classifier")
    assert status["phase"] == "Removed" and "live" not in status
    assert rec.settle(full=True).outcomes == []


def test_a_crash_before_the_push_attaches_to_the_finished_run(tmp_path: Path, fast: FastExecutor) -> None:
    repo = make_release_repo(tmp_path)
    executor = fast
    rec = controller(repo, executor)
    moved = repo.root / "moved.git"
    original_publish = rec.repo.publish

    def unreachable(*args: object, **kwargs: object) -> str:
        repo.remote.rename(moved)
        try:
            return original_publish(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            moved.rename(repo.remote)

    rec.repo.publish = unreachable  # type: ignore[method-assign]
    from controller.errors import GitError

    with pytest.raises(GitError, match="push to origin failed"):
        rec.settle(full=True)

    def started(name: str) -> object:
        run = executor.get(name)
        return run.started if run is not None else None

    before = {name: started(name) for name in executor.submitted}
    assert len(before) >= 2 and None not in before.values()
    again = controller(repo, executor, name="ctl-restarted").settle(full=True)
    assert len(again.outcomes) == 9
    # every run submitted before the crash was attached to, not started again
    assert {name: started(name) for name in before} == before
    assert len(set(executor.submitted)) == 9  # one workflow per pin, each submitted under one name


def test_an_invalid_policy_stops_the_pass_and_records_nothing(tmp_path: Path, fast: FastExecutor) -> None:
    def edit(seed: Path) -> None:
        (seed / "environments/policy.yaml").write_text("apiVersion: releasectl/v1\nkind: PromotionPolicy\n")

    repo = make_release_repo(tmp_path, edit=edit)
    with pytest.raises(PolicyInvalid, match=r"environments/policy.yaml: order: is required \[required\]"):
        controller(repo, fast).settle(full=True)
    assert repo.log("%s") == ["Initial release set"]


def test_a_file_that_cannot_be_a_pin_is_reported_and_the_rest_reconciles(tmp_path: Path, fast: FastExecutor) -> None:
    def edit(seed: Path) -> None:
        (seed / "environments/dev/Bad_Name.yaml").write_text("x: 1\n")

    repo = make_release_repo(tmp_path, edit=edit)
    rec = controller(repo, fast)
    result = rec.settle(full=True)
    assert len(result.outcomes) == 9
    assert [p.line() for p in result.problems] == [
        "environments/dev/Bad_Name.yaml: file stem 'Bad_Name' is not a DNS label (a-z, 0-9, '-') [dns-label]"
    ]
    assert "error: environments/dev/Bad_Name.yaml: file stem 'Bad_Name'" in rec.lines[0]  # type: ignore[attr-defined]
    assert not any("Bad_Name" in s for s in repo.log("%s"))
