"""Argo's Workflow objects (as JSON dicts) -> the ports' WorkflowRun and NodeResult. Pure.

Place in the flow: step 4 of a pass, inside the ArgoExecutor. Every Workflow the Argo Server
returns (create, get, list, a workflow-events message) is mapped here, faithfully: the DAG task
name (a node's displayName, or its name after `<workflow>.`), Argo's phase and message, the exit
code and every output parameter, times, and how many pods a retried task took. No verdict is
interpreted here: controller/core/outcomes.py reads the `verdict` output parameter.

Argo's shapes (swagger io.argoproj.workflow.v1alpha1.NodeStatus): `status.nodes` maps a node id to
`{id, name, displayName, type, templateName, phase, message, boundaryID, children, outputs
{parameters [{name, value}], result, exitCode (a string)}, startedAt, finishedAt}`. A DAG task
is the node named `<workflow>.<task>`: a Pod, or with a retryStrategy a Retry node whose
children are the pods `<workflow>.<task>(0)`, `(1)`, ...; a task whose `when` was false is a
Skipped node, one that never ran after a failure is Omitted.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controller.ports import PENDING, NodeResult, WorkflowRun

_TASK_NODE_TYPES = frozenset({"Pod", "Retry", "Skipped", "Suspend", "Container", "Plugin", "HTTP", "DAG", "Steps"})


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time as Kubernetes writes it (`2026-12-01T07:16:43Z`); None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _exit_code(outputs: Mapping[str, Any]) -> int | None:
    raw = outputs.get("exitCode")
    if raw is None or raw == "":
        return None
    try:
        return int(str(raw))
    except ValueError:
        return None


def _parameters(outputs: Mapping[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for parameter in outputs.get("parameters") or []:
        if isinstance(parameter, Mapping) and isinstance(parameter.get("name"), str):
            value = parameter.get("value")
            found[parameter["name"]] = "" if value is None else str(value)
    return found


def task_name(workflow: str, node: Mapping[str, Any]) -> str | None:
    """The DAG task a node stands for, or None for the workflow's root and for retry attempts."""
    name = str(node.get("name") or "")
    prefix = f"{workflow}."
    if not name.startswith(prefix):
        return None  # the root DAG node (named after the workflow) or another boundary's node
    rest = name[len(prefix) :]
    if not rest or "." in rest or "(" in rest:
        return None  # a pod of a retried task (`task(1)`) or a node inside a nested template
    display = node.get("displayName")
    return display if isinstance(display, str) and display == rest else rest


def node_result(task: str, node: Mapping[str, Any], nodes: Mapping[str, Mapping[str, Any]]) -> NodeResult:
    """One DAG task's node; a Retry node takes its exit code and message from its last attempt."""
    outputs: Mapping[str, Any] = node.get("outputs") or {}
    attempts = 1
    last: Mapping[str, Any] = node
    if node.get("type") == "Retry":
        pods = [nodes[c] for c in node.get("children") or [] if c in nodes]
        attempts = max(1, len(pods))
        if pods:
            last = max(pods, key=lambda p: (str(p.get("startedAt") or ""), str(p.get("name") or "")))
    last_outputs: Mapping[str, Any] = last.get("outputs") or {}
    parameters = _parameters(outputs) or _parameters(last_outputs)
    exit_code = _exit_code(outputs)
    if exit_code is None:
        exit_code = _exit_code(last_outputs)
    message = str(node.get("message") or "")
    if last is not node and last.get("message"):
        message = str(last["message"])
    return NodeResult(
        name=task,
        template=str(node.get("templateName") or ""),
        phase=str(node.get("phase") or PENDING),
        message=message,
        exit_code=exit_code,
        outputs=parameters,
        started=parse_time(node.get("startedAt")),
        finished=parse_time(node.get("finishedAt")),
        attempts=attempts,
    )


def workflow_run(workflow: Mapping[str, Any]) -> WorkflowRun:
    """A Workflow object as the Argo Server returns it -> WorkflowRun (a missing status is Pending)."""
    metadata: Mapping[str, Any] = workflow.get("metadata") or {}
    status: Mapping[str, Any] = workflow.get("status") or {}
    name = str(metadata.get("name") or "")
    raw_nodes: Mapping[str, Mapping[str, Any]] = status.get("nodes") or {}
    results: dict[str, NodeResult] = {}
    for node in raw_nodes.values():
        if node.get("type") not in _TASK_NODE_TYPES:
            continue
        task = task_name(name, node)
        if task is None:
            continue
        results[task] = node_result(task, node, raw_nodes)
    return WorkflowRun(
        name=name,
        phase=str(status.get("phase") or PENDING),
        message=str(status.get("message") or ""),
        started=parse_time(status.get("startedAt")),
        finished=parse_time(status.get("finishedAt")),
        nodes=results,
        labels={str(k): str(v) for k, v in (metadata.get("labels") or {}).items()},
        annotations={str(k): str(v) for k, v in (metadata.get("annotations") or {}).items()},
    )


def resource_version(workflow: Mapping[str, Any]) -> str:
    """The object's metadata.resourceVersion ("" when absent)."""
    return str((workflow.get("metadata") or {}).get("resourceVersion") or "")
