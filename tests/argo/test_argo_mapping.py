"""The Argo adapter's pure parts: Argo Workflow objects -> WorkflowRun, the SSE reader, the run cache."""

from __future__ import annotations

from typing import Any

import pytest

from controller.adapters.argo.events import Event, RunCache, StreamError, parse_sse
from controller.adapters.argo.mapping import task_name, workflow_run
from controller.ports import ERROR, PENDING

WF = "rc-dev-m-0123456789"


def _wf(nodes: dict[str, Any] | None = None, **status: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"metadata": {"name": WF, "resourceVersion": "7", "labels": {"a": "b"}}, "spec": {}}
    if nodes is not None or status:
        doc["status"] = {**status, **({"nodes": nodes} if nodes is not None else {})}
    return doc


POD = {
    "id": "n1", "name": f"{WF}.train", "displayName": "train", "type": "Pod", "templateName": "train",
    "phase": "Failed", "message": "Error (exit code 2)", "startedAt": "2026-12-01T08:00:00Z",
    "finishedAt": "2026-12-01T08:00:05Z",
    "outputs": {"exitCode": "2", "parameters": [{"name": "verdict", "value": '{"verdict":"Failed"}'}, {"name": "x"}]},
}  # fmt: skip
RETRY = {
    "id": "r1", "name": f"{WF}.train", "displayName": "train", "type": "Retry", "templateName": "train",
    "phase": "Succeeded", "children": ["p0", "p1"],
    "outputs": {"parameters": [{"name": "artifact", "value": "sha256:a"}]},
}  # fmt: skip
ATTEMPTS = {
    "p0": {"id": "p0", "name": f"{WF}.train(0)", "type": "Pod", "phase": "Error", "message": "pod deleted",
           "startedAt": "2026-12-01T08:00:00Z"},
    "p1": {"id": "p1", "name": f"{WF}.train(1)", "type": "Pod", "phase": "Succeeded", "message": "",
           "startedAt": "2026-12-01T08:01:00Z", "outputs": {"exitCode": "0"}},
}  # fmt: skip


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ({"name": WF, "displayName": WF, "type": "DAG"}, None),
        ({"name": f"{WF}.train", "displayName": "train"}, "train"),
        ({"name": f"{WF}.train"}, "train"),
        ({"name": f"{WF}.train(1)", "displayName": "train(1)"}, None),
        ({"name": f"{WF}.inner.step", "displayName": "step"}, None),
        ({"name": "other-workflow.train", "displayName": "train"}, None),
    ],
    ids=["root-dag", "task", "task-without-displayname", "retry-attempt", "nested", "another-workflow"],
)
def test_task_name(node: dict[str, Any], expected: str | None) -> None:
    assert task_name(WF, node) == expected


def test_pod_node_is_mapped_faithfully() -> None:
    run = workflow_run(_wf({"n1": POD}, phase="Failed", message="child 'n1' failed", startedAt="2026-12-01T08:00:00Z"))
    node = run.nodes["train"]
    assert (run.name, run.phase, run.message, run.labels) == (WF, "Failed", "child 'n1' failed", {"a": "b"})
    assert (node.phase, node.message, node.exit_code, node.template, node.attempts) == (
        "Failed", "Error (exit code 2)", 2, "train", 1,
    )  # fmt: skip
    assert node.outputs == {"verdict": '{"verdict":"Failed"}', "x": ""}
    assert node.started is not None and node.finished is not None
    assert (node.finished - node.started).total_seconds() == 5


def test_retry_node_counts_attempts_and_takes_the_last_pods_exit_code() -> None:
    run = workflow_run(_wf({"r1": RETRY, **ATTEMPTS}, phase="Succeeded"))
    assert set(run.nodes) == {"train"}
    node = run.nodes["train"]
    assert (node.phase, node.attempts, node.exit_code, node.message) == ("Succeeded", 2, 0, "")
    assert node.outputs == {"artifact": "sha256:a"}


@pytest.mark.parametrize(
    ("doc", "phase"),
    [(_wf(), PENDING), (_wf({}, phase=""), PENDING), (_wf({}, phase="Running"), "Running")],
    ids=["no-status", "empty-phase", "running"],
)
def test_workflow_phase(doc: dict[str, Any], phase: str) -> None:
    assert workflow_run(doc).phase == phase


@pytest.mark.parametrize(
    ("lines", "types"),
    [
        ([b": keep-alive\n", b"\n", b'data: {"result": {"type": "ADDED", "object": {"a": 1}}}\n', b"\n"], ["ADDED"]),
        ([b'data: {"result":\r\n', b'data: {"type": "MODIFIED", "object": {}}}\r\n', b"\r\n"], ["MODIFIED"]),
        ([b'{"result": {"type": "DELETED", "object": {}}}\n'], ["DELETED"]),
        ([b'data: {"result": {"type": "ADDED", "object": {}}} \n', b" \n"], ["ADDED"]),
        ([b'data: {"result": {"type": "ADDED", "obj'], []),
        ([b"event: message\n", b"id: 4\n", b'data: {"result": {"type": "ADDED", "object": {}}}\n'], ["ADDED"]),
    ],
    ids=["keepalive-then-event", "multi-line-crlf", "ndjson", "trailing-space", "torn-at-end", "other-fields"],
)
def test_parse_sse(lines: list[bytes], types: list[str]) -> None:
    assert [e.type for e in parse_sse(lines)] == types
    assert all(isinstance(e, Event) for e in parse_sse(lines))


def test_an_error_message_in_the_stream_raises_with_its_http_code() -> None:
    lines = [b'data: {"error": {"grpc_code": 11, "http_code": 410, "message": "too old resource version"}}\n', b"\n"]
    with pytest.raises(StreamError) as caught:
        list(parse_sse(lines))
    assert (caught.value.http_code, caught.value.message) == (410, "too old resource version")


def test_cache_keeps_the_newest_version_and_marks_unfinished_deletions() -> None:
    cache = RunCache()
    cache.put(_wf({}, phase="Running") | {"metadata": {"name": WF, "resourceVersion": "9"}})
    cache.put(_wf({}, phase="Pending") | {"metadata": {"name": WF, "resourceVersion": "8"}})  # an older answer
    assert cache.get(WF).phase == "Running"  # type: ignore[union-attr]
    cache.put({"metadata": {"name": WF, "resourceVersion": "10"}, "status": {"phase": "Running"}}, deleted=True)
    gone = cache.get(WF)
    assert gone is not None and gone.phase == ERROR and gone.message == "the workflow was deleted before it finished"


def test_cache_forgets_the_oldest_finished_runs_past_its_limit() -> None:
    cache = RunCache(limit=10)
    cache.put({"metadata": {"name": "running"}, "status": {"phase": "Running"}})
    for i in range(12):
        cache.put({"metadata": {"name": f"done-{i}"}, "status": {"phase": "Succeeded"}})
    assert len(cache) <= 10
    assert cache.get("running") is not None and cache.get("done-11") is not None
    assert cache.get("done-0") is None
