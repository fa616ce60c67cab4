"""The reconciler on the ArgoExecutor against the Argo double: what the trail shows when Argo misbehaves.

Real git (a bare file:// remote, a user's clone, merged PRs), the real compiled manifests, the
reconciler's asynchronous passes; scripted pods. A server that cannot take workflows gives Errored
outcomes in the trail and a later retry deploys (no outcome is lost); a pin that changes while its
run is in flight gets that run stopped with `PUT .../stop` and a Superseded outcome.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from controller.adapters.git import GitRepo
from controller.app.argo_wiring import argo_compiler
from controller.app.runtime import Home
from controller.core.models import Phase
from controller.loop.reconciler import Reconciler
from tests.argo.conftest import NAMESPACE, Factory
from tests.argo.double import ArgoDouble
from tests.argo.pods import ScriptedPods
from tests.support import Clone, ReleaseRepo, git, make_release_repo


def dev_only(seed: Path) -> None:
    """Later environments wait on dev's outcomes; these tests are about Argo, so dev alone."""
    for env in ("staging", "production"):
        for pin in (seed / "environments" / env).glob("*.yaml"):
            pin.unlink()


def _reconciler(tmp_path: Path, double: ArgoDouble, make_executor: Factory, clock: list[datetime]) -> Reconciler:
    args: Any = type("Args", (), {"argo_server": double.url, "namespace": NAMESPACE, "image": None})()
    repo = ReleaseRepo(tmp_path, tmp_path / "remote.git")
    return Reconciler(
        GitRepo.controller_clone(repo.url, tmp_path / "ctl"),
        make_executor(),
        argo_compiler(Home(tmp_path / "home"), args),
        clock=lambda: clock[0],
        max_parallel=3,
    )


def _bump(model: str, version: str) -> Callable[[Clone], None]:
    return lambda c: c.write_pin("dev", model, {**c.read_pin("dev", model), "version": version})


def _phases(repo: ReleaseRepo, count: int) -> list[str]:
    return git(repo.remote, "log", f"-{count}", "--format=%(trailers:key=Releasectl-Phase,valueonly)", "main").split()


def test_unavailable_argo_gives_errored_outcomes_then_a_retry_deploys(
    tmp_path: Path, double: ArgoDouble, make_executor: Factory
) -> None:
    repo = make_release_repo(tmp_path, edit=dev_only)
    double.check_answers = False  # requests and workflows are still checked; answers are in test_argo_contract
    clock = [datetime(2026, 12, 1, 8, 0, tzinfo=UTC)]
    rec = _reconciler(tmp_path, double, make_executor, clock)
    double.unavailable = True
    first = rec.settle(full=True)
    assert {o.phase for o in first.outcomes} == {Phase.ERRORED} and len(first.outcomes) == 3
    reason = first.outcomes[0].reason
    assert reason.startswith(f"could not submit workflow: the Argo Server at {double.url}/ is unavailable while ")
    assert "503" in reason
    assert '"phase": "Errored"' in git(repo.remote, "show", "main:status/dev/tumor-classifier.yaml")

    double.unavailable = False
    clock[0] += timedelta(minutes=5)  # past the Errored backoff
    second = rec.settle()
    assert {o.phase for o in second.outcomes} == {Phase.DEPLOYED} and len(second.outcomes) == 3
    assert {o.workflow.name for o in second.outcomes} == {name for (_, name) in double.workflows}
    assert _phases(repo, 6) == ["Deployed"] * 3 + ["Errored"] * 3  # both outcomes are in the trail


def test_a_pin_changed_while_its_run_is_in_flight_gets_the_run_stopped(
    tmp_path: Path, double: ArgoDouble, pods: ScriptedPods, make_executor: Factory
) -> None:
    repo = make_release_repo(tmp_path, edit=dev_only)
    double.check_answers = False  # requests and workflows are still checked; answers are in test_argo_contract
    clock = [datetime(2026, 12, 1, 8, 0, tzinfo=UTC)]
    rec = _reconciler(tmp_path, double, make_executor, clock)
    pods.hold["train"] = threading.Event()
    first = rec.reconcile(full=True)
    assert first.in_flight == 3 and first.outcomes == []
    old, old_version = next((f.name, f.action.version) for f in first.submitted if f.action.model == "tumor-classifier")
    assert pods.started("train").wait(10)

    user = repo.clone("user")
    merge = user.merge_pr("bump", _bump("tumor-classifier", "1.2.0"), "Bump tumor-classifier")
    clock[0] += timedelta(seconds=10)
    second = rec.reconcile()
    stops = [r for r in double.requests if r.method == "PUT"]
    assert [r.path for r in stops] == [f"/api/v1/workflows/{NAMESPACE}/{old}/stop"]
    assert stops[0].body == {"name": old, "namespace": NAMESPACE, "message": f"superseded by {merge[:12]}"}
    assert old in second.stopped

    pods.hold["train"].set()
    rest = rec.settle()
    everything = second.outcomes + rest.outcomes
    tumor = [(o.action.version, o.phase) for o in everything if o.action.model == "tumor-classifier"]
    assert tumor == [(old_version, Phase.SUPERSEDED), ("1.2.0", Phase.DEPLOYED)]
    stopped = rec.executor.get(old)
    assert stopped is not None and (stopped.phase, stopped.message) == ("Failed", "Stopped with strategy 'Stop'")
