"""Asynchronous passes on real git and the real LocalExecutor: a pass never waits for a workflow.

Runs in flight are collected by later passes; a pin that changes while its run is in flight stops
that run (Superseded); a run past its deadline is stopped and Errored, then retried after its
backoff; a Failed outcome runs again only when `releasectl retry` asks for it in git.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from controller.adapters.git import GitRepo
from controller.app import queries
from controller.app.cli import main
from controller.app.inflight import overlay
from controller.core.models import Phase
from controller.loop.reconciler import Reconciler
from controller.ports import LABEL_MANAGED
from tests.fastexec import Behaviour, FastExecutor
from tests.support import Clone, ReleaseRepo, git, make_release_repo, trailers


def single_env(seed: Path) -> None:
    """dev only, no staging or production: the tests below are about one environment's runs."""
    for env in ("staging", "production"):
        for pin in (seed / "environments" / env).iterdir():
            pin.unlink()
        (seed / "environments" / env).rmdir()
    (seed / "environments/policy.yaml").write_text(
        "apiVersion: releasectl/v1\nkind: PromotionPolicy\norder: [dev]\nenvironments:\n  dev: {}\n"
    )


def controller(repo: ReleaseRepo, fast: FastExecutor, **options: object) -> Reconciler:
    lines: list[str] = []
    rec = Reconciler(
        GitRepo.controller_clone(repo.url, repo.root / "ctl"),
        fast,
        fast.compiler(),
        log=lambda line, **_fields: lines.append(line),
        **options,  # type: ignore[arg-type]
    )
    rec.lines = lines  # type: ignore[attr-defined]
    return rec


def bump(model: str, version: str) -> Callable[[Clone], None]:
    return lambda c: c.write_pin("dev", model, {**c.read_pin("dev", model), "version": version})


def until(condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    end = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_pass_returns_at_once_and_a_later_one_records_another_model_while_the_first_runs(
    tmp_path: Path, fast: FastExecutor
) -> None:
    repo = make_release_repo(tmp_path, edit=single_env)
    rec = controller(repo, fast)
    assert [o.phase for o in rec.settle(full=True).outcomes] == [Phase.DEPLOYED] * 3
    user = repo.clone("user")
    fast.behaviour[("dev", "digits-classifier")] = Behaviour(sleep={"train": 30})

    def both(c: Clone) -> None:
        bump("digits-classifier", "0.4.0")(c)
        bump("wine-classifier", "2.2.0")(c)

    merge = user.merge_pr("two", both, "Bump digits and wine")
    first = rec.reconcile()
    # the pass submitted both and returned: nothing finished, nothing recorded
    assert (first.outcomes, first.published, first.in_flight) == ([], None, 2)
    assert sorted(f.action.model for f in first.submitted) == ["digits-classifier", "wine-classifier"]
    slow = next(f.name for f in first.submitted if f.action.model == "digits-classifier")
    fast_run = next(f.name for f in first.submitted if f.action.model == "wine-classifier")
    assert fast.wait_for_finished([fast_run], 60)

    second = rec.reconcile()
    assert [(o.action.key, o.phase) for o in second.outcomes] == [(("dev", "wine-classifier"), Phase.DEPLOYED)]
    assert second.in_flight == 1
    running = fast.get(slow)
    assert running is not None and running.phase == "Running"

    # status from git shows digits as it was recorded; with the executor's view it is Progressing
    rows = queries.status(GitRepo(repo.remote), "main", "dev")
    progressing = overlay(rows, fast.list({LABEL_MANAGED: "releasectl"}))
    digits = next(r for r in progressing if r["model"] == "digits-classifier")
    assert (digits["phase"], digits["workflow"], digits["source_commit"]) == ("Progressing", slow, merge)
    assert digits["started"] == running.started.isoformat().replace("+00:00", "Z")  # type: ignore[union-attr]
    assert next(r for r in progressing if r["model"] == "wine-classifier")["phase"] == "Deployed"

    # the pin changes again while the slow run is in flight: the run is stopped and Superseded
    fast.behaviour.clear()
    again = user.merge_pr("again", bump("digits-classifier", "0.5.0"), "Bump digits again")
    result = rec.settle()
    assert [(o.action.version, o.phase) for o in result.outcomes] == [
        ("0.4.0", Phase.SUPERSEDED),
        ("0.5.0", Phase.DEPLOYED),
    ]
    assert result.outcomes[0].action.source_commit == merge
    assert result.outcomes[0].reason == f"superseded by {again} while workflow {slow} ran; the run was stopped"
    assert fast.stopped == [slow]
    stopped = fast.get(slow)
    assert stopped is not None and stopped.phase == "Failed" and "Stopped with strategy 'Stop'" in stopped.message
    assert trailers(repo, "Releasectl-Phase")[:3] == ["Deployed", "Superseded", "Deployed"]


def test_a_run_past_its_deadline_is_errored_then_retried_after_its_backoff(tmp_path: Path, fast: FastExecutor) -> None:
    repo = make_release_repo(tmp_path, edit=single_env)
    offset = [timedelta(0)]
    rec = controller(repo, fast, workflow_timeout_s=1.0, clock=lambda: datetime.now(UTC) + offset[0])
    rec.settle(full=True)
    user = repo.clone("user")
    fast.behaviour[("dev", "wine-classifier")] = Behaviour(overrun_once={"deploy": 20})
    merge = user.merge_pr("b", bump("wine-classifier", "2.2.0"), "Bump wine")

    submitted = rec.reconcile().submitted
    (flight,) = submitted
    time.sleep(1.2)
    (errored,) = rec.reconcile().outcomes
    assert errored.phase is Phase.ERRORED
    assert errored.reason == f"workflow {flight.name} ran past its deadline of 1s and was stopped"
    assert fast.stopped == [flight.name]
    status = yaml.safe_load(git(repo.remote, "show", "main:status/dev/wine-classifier.yaml"))
    assert (status["phase"], status["attempts"]) == ("Errored", 1)
    assert status["workflow"]["finished"] is not None  # the backoff counts from here, never from now

    assert rec.reconcile().outcomes == []  # backing off: 30 s from the recorded finish
    offset[0] = timedelta(seconds=31)
    retried = rec.settle()
    assert [(o.phase, o.action.source_commit) for o in retried.outcomes] == [(Phase.DEPLOYED, merge)]
    assert retried.outcomes[0].workflow is not None and retried.outcomes[0].workflow.name != flight.name
    assert trailers(repo, "Releasectl-Phase")[:2] == ["Deployed", "Errored"]


def test_a_failed_outcome_runs_again_only_when_retry_asks_in_git(tmp_path: Path, fast: FastExecutor) -> None:
    repo = make_release_repo(tmp_path, edit=single_env)
    rec = controller(repo, fast)
    rec.settle(full=True)
    user = repo.clone("user")
    fast.behaviour[("dev", "wine-classifier")] = Behaviour(fail_task="validate-data", fail_message="upstream down")
    merge = user.merge_pr("b", bump("wine-classifier", "2.2.0"), "Bump wine")
    (failed,) = rec.settle().outcomes
    assert (failed.phase, failed.reason) == (Phase.FAILED, "validate-data: upstream down")
    assert rec.settle(full=True).outcomes == []  # Failed waits for the user

    fast.behaviour.clear()
    user.pull()
    assert main(["retry", "wine-classifier", "--env", "dev", "--repo", str(user.path)]) == 0
    retry_commit = user.head()
    message = user.run("log", "-1", "--format=%B")
    assert f"Releasectl-Retry: {merge}" in message and "Releasectl-Environment: dev" in message
    assert user.run("show", "HEAD:environments/dev/wine-classifier.yaml").endswith(f"# releasectl retry 1: {merge}")
    assert user.read_pin("dev", "wine-classifier")["version"] == "2.2.0"  # the spec is the same
    user.push()
    (deployed,) = rec.settle().outcomes
    assert (deployed.phase, deployed.action.source_commit, deployed.action.version) == (
        Phase.DEPLOYED,
        retry_commit,
        "2.2.0",
    )
    # Deployed is not retryable: one clear line, exit 1
    user.pull()
    assert main(["retry", "wine-classifier", "--env", "dev", "--repo", str(user.path)]) == 1


def test_a_queued_change_replaced_before_it_ran_gets_its_own_outcome(tmp_path: Path, fast: FastExecutor) -> None:
    repo = make_release_repo(tmp_path, edit=single_env)
    rec = controller(repo, fast, max_parallel=1)
    rec.settle(full=True)
    user = repo.clone("user")
    fast.behaviour[("dev", "digits-classifier")] = Behaviour(sleep={"validate-data": 1})

    def both(c: Clone) -> None:
        bump("digits-classifier", "0.4.0")(c)
        bump("wine-classifier", "2.2.0")(c)

    merge = user.merge_pr("two", both, "Bump digits and wine")
    first = rec.reconcile()
    assert (len(first.submitted), first.queued) == (1, 1)  # --max-parallel 1: one runs, one waits
    queued_model = "wine-classifier" if first.submitted[0].action.model == "digits-classifier" else "digits-classifier"
    fast.behaviour.clear()
    again = user.merge_pr("again", bump(queued_model, "9.9.9"), "Bump the queued one again")
    result = rec.settle()
    phases = [(o.action.model, o.action.version, o.phase) for o in result.outcomes]
    old_version = "2.2.0" if queued_model == "wine-classifier" else "0.4.0"
    assert (queued_model, old_version, Phase.SUPERSEDED) in phases
    superseded = next(o for o in result.outcomes if o.phase is Phase.SUPERSEDED)
    assert (superseded.action.source_commit, superseded.reason) == (merge, f"superseded by {again} before it ran")
    assert (queued_model, "9.9.9", Phase.DEPLOYED) in phases
    assert len(result.outcomes) == 3  # the running one, the superseded one, the new one


def test_an_adoption_cut_short_by_a_crash_goes_on_and_records_what_was_replaced(
    tmp_path: Path, fast: FastExecutor
) -> None:
    repo = make_release_repo(tmp_path, edit=single_env)
    seed = git(repo.remote, "rev-parse", "main")
    rec = controller(repo, fast, max_parallel=1)
    first = rec.reconcile(full=True)
    assert len(first.submitted) == 1 and first.queued == 2
    assert fast.wait_for_finished([first.submitted[0].name], 60)
    second = rec.reconcile()  # records one adoption, submits the next; then the controller "dies"
    assert len(second.outcomes) == 1 and len(second.submitted) == 1
    body = git(repo.remote, "log", "-1", "--format=%B", "main")
    assert f"Releasectl-Adopting: {seed}" in body
    remaining = {"digits-classifier", "tumor-classifier", "wine-classifier"} - {
        second.outcomes[0].action.model,
        second.submitted[0].action.model,
    }
    (never_ran,) = remaining
    user = repo.clone("user")
    replaced = user.merge_pr("b", bump(never_ran, "9.9.9"), "Bump the pin adoption had not reached")

    (tmp_path / "ctl").rename(tmp_path / "ctl-old")
    restarted = controller(repo, fast)  # a new process, a new clone: everything from git and the executor
    result = restarted.settle(full=True)
    got = sorted((o.action.model, o.action.version, o.phase.value, o.action.source_commit) for o in result.outcomes)
    models = {o.action.model for o in result.outcomes}
    assert models == {second.submitted[0].action.model, never_ran}
    assert any(o.phase is Phase.SUPERSEDED and o.action.source_commit == seed for o in result.outcomes), got
    assert any(o.phase is Phase.DEPLOYED and o.action.source_commit == replaced for o in result.outcomes), got
    # one outcome per change: three adoptions (one superseded) and the bump
    counted = git(repo.remote, "log", "--format=%(trailers:key=Releasectl-Source-Commit,valueonly)", "main").split()
    assert sorted(counted) == sorted([seed, seed, seed, replaced])
    assert "Releasectl-Adopting" not in git(repo.remote, "log", "-1", "--format=%B", "main")
