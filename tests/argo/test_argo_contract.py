"""The ArgoExecutor against the loopback Argo Server double, every exchange checked against the swagger.

What the issue asks of the executor: submit, watch over SSE to Succeeded, fold -> Deployed; a
stream dropped mid-run and resumed from its resourceVersion; after a restart a 409 on
resubmission attaches and creates nothing; a failed node gives Failed with its reason; a server
that is down gives a TransientError and a later retry succeeds; a 401 gives one line naming the
token's source; stop calls PUT stop. Plus the ways it must not cheat: one stream, never a GET per
workflow per wait.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from controller.adapters.argo import ArgoAuthError, ArgoUnavailable
from controller.core.models import Phase
from controller.core.outcomes import fold
from controller.errors import PermanentError, TransientError
from controller.ports import ERROR, FAILED, SKIPPED, SUCCEEDED, Executor, RunConflict
from tests.argo.conftest import NAMESPACE, Factory, action, compiled
from tests.argo.double import ArgoDouble
from tests.argo.pods import ScriptedPods

WORKFLOWS = f"/api/v1/workflows/{NAMESPACE}"
EVENTS = f"/api/v1/workflow-events/{NAMESPACE}"


def until(condition: Callable[[], bool], what: str, timeout_s: float = 20) -> None:
    end = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.01)


def _wait(executor: Executor, name: str, timeout_s: float = 20) -> None:
    assert executor.wait_for_finished([name], timeout_s), f"{name} did not finish"


def test_submit_watch_to_succeeded_and_fold_deployed(
    tmp_path: Path, double: ArgoDouble, make_executor: Factory
) -> None:
    executor = make_executor()
    assert isinstance(executor, Executor)
    manifest = compiled(tmp_path)
    name = executor.submit(manifest)
    assert name == manifest["metadata"]["name"]
    _wait(executor, name)
    run = executor.get(name)
    assert run is not None and run.phase == SUCCEEDED
    assert {t: n.phase for t, n in run.nodes.items()} == {
        "validate-data": SUCCEEDED,
        "train": SUCCEEDED,
        "evaluate": SUCCEEDED,
        "deploy": SUCCEEDED,
        "gates-failed": SKIPPED,
    }
    evaluate = run.nodes["evaluate"]
    assert evaluate.template == "evaluate" and evaluate.exit_code == 0 and evaluate.attempts == 1
    assert json.loads(evaluate.outputs["verdict"]) == {"verdict": "Succeeded", "reason": ""}
    assert run.labels["releasectl.dev/model"] == "tumor-classifier"
    assert run.annotations["releasectl.dev/source-commit"] == action().source_commit
    outcome = fold(action(), run, executor.name)
    assert outcome.phase is Phase.DEPLOYED
    assert outcome.metrics == {"roc_auc": 0.99, "accuracy": 0.97}
    assert outcome.workflow.executor == "argo" and outcome.workflow.name == name

    # what reached the server: the manifest exactly, as the create body's workflow
    creates = [r for r in double.requests if r.method == "POST"]
    assert len(creates) == 1 and creates[0].path == WORKFLOWS
    assert creates[0].body == {"namespace": NAMESPACE, "workflow": manifest}
    # progress came from ONE event stream filtered by label, never a GET of the workflow
    assert double.count("GET", EVENTS) == 1
    stream = next(r for r in double.requests if r.path == EVENTS)
    assert stream.query["listOptions.labelSelector"] == ["releasectl.dev/managed-by=releasectl"]
    assert double.count("GET", f"{WORKFLOWS}/") == 0


def test_one_stream_tracks_many_runs(tmp_path: Path, double: ArgoDouble, make_executor: Factory) -> None:
    executor = make_executor()
    names = [executor.submit(compiled(tmp_path, action(source=f"{i:040x}"))) for i in range(5)]
    assert len(set(names)) == 5
    pending = set(names)
    while pending:
        assert executor.wait_for_finished(pending, 20)
        pending -= set(executor.finished(pending))
    assert all(run.phase == SUCCEEDED for run in executor.finished(names).values())
    assert double.count("GET", EVENTS) == 1
    assert double.count("GET", f"{WORKFLOWS}/") == 0


def test_stream_dropped_mid_run_resumes_from_resource_version(
    tmp_path: Path, double: ArgoDouble, pods: ScriptedPods, make_executor: Factory
) -> None:
    pods.hold["evaluate"] = threading.Event()
    executor = make_executor()
    name = executor.submit(compiled(tmp_path))
    assert pods.started("evaluate").wait(10)
    assert not executor.wait_for_finished([name], 0.3)

    def train_done() -> bool:
        seen = executor.cache.get(name)
        return seen is not None and "train" in seen.nodes and seen.nodes["train"].phase == SUCCEEDED

    until(train_done, "the stream to bring train's Succeeded")
    first_stream = next(r for r in double.requests if r.path == EVENTS)
    assert "listOptions.resourceVersion" in first_stream.query  # list, then watch from the list's version
    last_version = executor.cache._versions[name]

    double.drop_streams()
    pods.hold["evaluate"].set()  # the run goes on while no stream is open
    _wait(executor, name)
    run = executor.get(name)
    assert run is not None and run.phase == SUCCEEDED and run.nodes["deploy"].phase == SUCCEEDED
    streams = [r for r in double.requests if r.path == EVENTS]
    assert len(streams) == 2
    assert int(streams[1].query["listOptions.resourceVersion"][0]) >= int(last_version)
    assert double.count("GET", f"{WORKFLOWS}/") == 0


def test_too_old_resource_version_lists_again(tmp_path: Path, double: ArgoDouble, make_executor: Factory) -> None:
    executor = make_executor()
    name = executor.submit(compiled(tmp_path))
    _wait(executor, name)
    lists = executor.watcher.lists
    with double.lock:
        double.compacted_before = double.version + 1  # every version the executor holds is gone
    double.drop_streams()
    second = executor.submit(compiled(tmp_path, action(source="f" * 40)))
    _wait(executor, second)
    assert executor.watcher.lists > lists  # the 410 made it list again, then watch from there


def test_restart_resubmission_attaches_and_creates_nothing(
    tmp_path: Path, double: ArgoDouble, make_executor: Factory
) -> None:
    manifest = compiled(tmp_path)
    first = make_executor()
    name = first.submit(manifest)
    _wait(first, name)
    first.close()
    before = double.get(NAMESPACE, name)

    again = make_executor()  # the controller restarted
    assert again.submit(manifest) == name
    creates = [r for r in double.requests if r.method == "POST"]
    assert [r.status for r in creates] == [200, 409]
    assert double.get(NAMESPACE, name) == before  # nothing new was created or changed
    assert len(double.workflows) == 1
    assert again.finished([name])[name].phase == SUCCEEDED


def test_a_different_action_under_the_name_is_a_conflict(
    tmp_path: Path, double: ArgoDouble, make_executor: Factory
) -> None:
    manifest = compiled(tmp_path)
    executor = make_executor()
    executor.submit(manifest)
    other = json.loads(json.dumps(manifest))
    other["metadata"]["annotations"]["releasectl.dev/spec-digest"] = "sha256:" + "e" * 64
    with pytest.raises(RunConflict) as caught:
        executor.submit(other)
    assert "releasectl.dev/spec-digest" in str(caught.value)
    assert str(caught.value).startswith(f"workflow {manifest['metadata']['name']} in namespace {NAMESPACE}")


def test_failed_node_gives_failed_with_its_reason(
    tmp_path: Path, double: ArgoDouble, pods: ScriptedPods, make_executor: Factory
) -> None:
    pods.fail["validate-data"] = (2, "Failed", "dataset digest mismatch: got 1234, the pin says 75a1")
    executor = make_executor()
    name = executor.submit(compiled(tmp_path))
    _wait(executor, name)
    run = executor.get(name)
    assert run is not None and run.phase == FAILED
    node = run.nodes["validate-data"]
    assert (node.phase, node.exit_code, node.message) == (FAILED, 2, "Error (exit code 2)")
    assert json.loads(node.outputs["verdict"])["reason"] == "dataset digest mismatch: got 1234, the pin says 75a1"
    assert node.attempts == 1  # retryPolicy OnError: a Failed pod is not retried
    assert set(run.nodes) == {"validate-data", "train", "evaluate", "deploy", "gates-failed"}
    assert {run.nodes[t].phase for t in ("train", "evaluate", "deploy", "gates-failed")} == {"Omitted"}
    outcome = fold(action(), run, executor.name)
    assert outcome.phase is Phase.FAILED
    assert outcome.reason == "validate-data: dataset digest mismatch: got 1234, the pin says 75a1"


def test_errored_pod_is_retried_and_its_attempts_counted(
    tmp_path: Path, double: ArgoDouble, pods: ScriptedPods, make_executor: Factory
) -> None:
    real = pods.__call__

    def flaky(pod):  # type: ignore[no-untyped-def]
        if pod.task == "train" and pod.attempt < 2:
            from tests.argo.engine import PodResult

            return PodResult("Error", None, "pod deleted")
        return real(pod)

    double.runner = __import__("tests.argo.engine", fromlist=["runner"]).runner(flaky)
    executor = make_executor()
    name = executor.submit(compiled(tmp_path))
    _wait(executor, name)
    run = executor.get(name)
    assert run is not None and run.phase == SUCCEEDED
    assert run.nodes["train"].attempts == 3 and run.nodes["train"].phase == SUCCEEDED


def test_server_down_is_transient_and_a_later_retry_succeeds(
    tmp_path: Path, double: ArgoDouble, make_executor: Factory
) -> None:
    lines: list[str] = []
    executor = make_executor(log=lines.append)
    manifest = compiled(tmp_path)
    double.down()
    with pytest.raises(TransientError) as caught:
        executor.submit(manifest)
    assert isinstance(caught.value, ArgoUnavailable)
    message = str(caught.value)
    assert message.startswith(f"the Argo Server at {double.url}/ is unavailable while creating workflow ")
    assert "\n" not in message and "Connection refused" in message
    assert len(double.workflows) == 0

    double.up()
    name = executor.submit(manifest)
    _wait(executor, name)
    run = executor.get(name)
    assert run is not None and run.phase == SUCCEEDED


def test_server_down_mid_run_falls_back_then_streams_again(
    tmp_path: Path, double: ArgoDouble, pods: ScriptedPods, make_executor: Factory
) -> None:
    pods.hold["deploy"] = threading.Event()
    executor = make_executor()
    name = executor.submit(compiled(tmp_path))
    assert pods.started("deploy").wait(10)
    double.down()
    pods.hold["deploy"].set()
    assert not executor.wait_for_finished([name], 0.5)  # nothing to hear from while it is down
    assert isinstance(executor.watcher.error, ArgoUnavailable)
    double.up()
    _wait(executor, name)
    run = executor.get(name)
    assert run is not None and run.phase == SUCCEEDED


@pytest.mark.parametrize(
    ("token", "source"),
    [("wrong-token", "ARGO_TOKEN"), (None, "no token")],
    ids=["wrong-token-from-env", "no-token"],
)
def test_401_is_one_clear_line_naming_the_token_source(
    tmp_path: Path, double: ArgoDouble, make_executor: Factory, token: str | None, source: str
) -> None:
    executor = make_executor(token=token)
    with pytest.raises(ArgoAuthError) as caught:
        executor.submit(compiled(tmp_path))
    assert isinstance(caught.value, PermanentError)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        f"the Argo Server at {double.url}/ refused the token from {source} (401 Unauthorized) while creating workflow"
    )
    later = r"while (watching workflow events|listing workflows|getting workflow rc-anything)"  # whichever asks first
    with pytest.raises(ArgoAuthError, match=later):
        executor.wait_for_finished(["rc-anything"], 5)
    if token is None:  # the swagger requires the header: the double noted each request without one
        executor.close()  # its watcher would otherwise ask once more, after the clear below
        unauthenticated = [v for v in double.violations if "no 'Authorization: Bearer' header" in v]
        assert unauthenticated and len(unauthenticated) == len(double.violations)
        double.violations.clear()


def test_stop_calls_put_stop_and_the_run_ends_failed(
    tmp_path: Path, double: ArgoDouble, pods: ScriptedPods, make_executor: Factory
) -> None:
    pods.hold["train"] = threading.Event()
    executor = make_executor()
    name = executor.submit(compiled(tmp_path))
    assert pods.started("train").wait(10)
    executor.stop(name, "superseded by 89ab")
    stops = [r for r in double.requests if r.method == "PUT"]
    assert [(r.path, r.body) for r in stops] == [
        (f"{WORKFLOWS}/{name}/stop", {"name": name, "namespace": NAMESPACE, "message": "superseded by 89ab"})
    ]
    _wait(executor, name)
    run = executor.get(name)
    assert run is not None and (run.phase, run.message) == (FAILED, "Stopped with strategy 'Stop'")
    assert run.nodes["train"].phase == FAILED
    executor.stop(name)  # finished: nothing more
    assert len([r for r in double.requests if r.method == "PUT"]) == 1


def test_vanished_and_listed_runs(tmp_path: Path, double: ArgoDouble, make_executor: Factory) -> None:
    executor = make_executor()
    name = executor.submit(compiled(tmp_path))
    other = executor.submit(compiled(tmp_path, action(environment="staging")))
    _wait(executor, name)
    _wait(executor, other)
    assert executor.get("rc-no-such-run") is None
    gone = executor.finished(["rc-no-such-run"])["rc-no-such-run"]
    assert gone.phase == ERROR and "vanished" in gone.message
    found = executor.list({"releasectl.dev/environment": "staging"})
    assert [r.name for r in found] == [other]
    listing = [r for r in double.requests if r.path == WORKFLOWS and r.method == "GET"][-1]
    assert listing.query["listOptions.labelSelector"] == [
        "releasectl.dev/managed-by=releasectl,releasectl.dev/environment=staging"
    ]


def test_without_the_event_stream_it_polls_the_list(tmp_path: Path, double: ArgoDouble, make_executor: Factory) -> None:
    double.serve_events = False
    lines: list[str] = []
    executor = make_executor(log=lines.append)
    names = [executor.submit(compiled(tmp_path, action(source=f"{i:040x}"))) for i in range(3)]
    pending = set(names)
    while pending:
        assert executor.wait_for_finished(pending, 20)
        pending -= set(executor.finished(pending))
    assert double.count("GET", EVENTS) == 1  # asked once, then never again
    assert executor.watcher.lists >= 2 and double.count("GET", f"{WORKFLOWS}/") == 0  # polls of one list each
    assert lines == ["argo: the workflow-events stream is not served (404 Not Found); polling every 0.2s instead"]


def test_a_manifest_argo_cannot_take_is_rejected_before_anything_is_sent(
    double: ArgoDouble, make_executor: Factory
) -> None:
    from controller.adapters.argo import ArgoRejected

    executor = make_executor()
    with pytest.raises(ArgoRejected) as caught:
        executor.submit({"metadata": {"name": "rc-x"}, "spec": {"templates": "not-a-list"}})
    assert str(caught.value) == (
        "workflow rc-x does not fit Argo's Workflow model at spec.templates: Input should be a valid list"
    )
    with pytest.raises(ArgoRejected, match=r"needs metadata\.name"):
        executor.submit({"metadata": {"generateName": "rc-"}, "spec": {}})
    assert not [r for r in double.requests if r.method == "POST"]


def test_a_base_path_in_the_server_url_is_kept(tmp_path: Path, double: ArgoDouble, make_executor: Factory) -> None:
    double.base_path = "/argo"
    executor = make_executor(url=f"{double.url}/argo")  # no trailing slash: urljoin would drop "argo"
    name = executor.submit(compiled(tmp_path))
    _wait(executor, name)
    # The run can finish (seen through the list) before the stream's request is made: wait for it,
    # whichever comes first on a busy machine.
    deadline = time.monotonic() + 20
    while len(double.requests) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert double.prefixed == len(double.requests) >= 3  # create, list, the stream: all under /argo/
