"""The double's workflow controller: walks a stored Workflow's DAG as Argo's controller would.

Place in the flow: test support, behind tests/argo/double.py. For each DAG task in dependency
order it decides as Argo does (`depends` / `dependencies`: a task whose dependencies failed is
Omitted; `when` false: Skipped), substitutes `{{tasks.T.outputs.parameters.P}}`, `{{tasks.T.outputs
.result}}` and `{{workflow.*}}` into the task's arguments, runs the pod with a PodRunner (retrying
per `retryStrategy`: limit and retryPolicy), and writes every change into `status.nodes` (a Pod
node per task, or a Retry node with `task(N)` pods) through the double, so each change is one
MODIFIED event. The expression languages come from controller/adapters/local/expr.py (tests only:
the Argo adapter never evaluates a DAG). A `spec.shutdown: Stop` (the stop call) fails running
pods and starts nothing more: the workflow ends Failed, "Stopped with strategy 'Stop'".
"""

from __future__ import annotations

import re
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controller.adapters.local.expr import dependencies_node, depends_env, evaluate_bool, evaluate_when, parse_depends
from tests.argo.double import ArgoDouble, now

_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


@dataclass(frozen=True)
class Pod:
    workflow: str
    namespace: str
    task: str
    template: dict[str, Any]
    inputs: dict[str, str]  # input parameter name -> value (arguments over defaults)
    attempt: int
    stopped: threading.Event


@dataclass(frozen=True)
class PodResult:
    phase: str  # Succeeded | Failed | Error
    exit_code: int | None = 0
    message: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    result: str | None = None


PodRunner = Callable[[Pod], PodResult]


def render(text: str, values: dict[str, str]) -> str:
    """Substitute the `{{...}}` tags Argo resolves; an unknown tag is left as it is (Argo would fail)."""
    return _TAG.sub(lambda m: values.get(m.group(1).strip(), m.group(0)), text)


def node_id(workflow: str, node_name: str) -> str:
    return f"{workflow}-{zlib.crc32(node_name.encode()):010d}"


def inputs_of(template: dict[str, Any], arguments: dict[str, str]) -> dict[str, str]:
    values = {}
    for param in (template.get("inputs") or {}).get("parameters") or []:
        name = param["name"]
        if name in arguments:
            values[name] = arguments[name]
        elif "value" in param:
            values[name] = str(param["value"])
        elif "default" in param:
            values[name] = str(param["default"])
        else:
            raise KeyError(f"input parameter {name} of {template['name']} has no value")
    return values


def _order(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_name = {t["name"]: t for t in tasks}
    done: list[dict[str, Any]] = []
    seen: set[str] = set()

    def visit(task: dict[str, Any]) -> None:
        if task["name"] in seen:
            return
        seen.add(task["name"])
        for dep in _deps(task)[1]:
            visit(by_name[dep])
        done.append(task)

    for task in tasks:
        visit(task)
    return done


def _deps(task: dict[str, Any]) -> tuple[Any, frozenset[str]]:
    if task.get("depends"):
        return parse_depends(task["depends"])
    names = list(task.get("dependencies") or [])
    return (dependencies_node(names) if names else None), frozenset(names)


class WorkflowRun:
    """One workflow's life in the double (a thread runs `__call__`)."""

    def __init__(self, double: ArgoDouble, ns: str, name: str, pods: PodRunner) -> None:
        self.double, self.ns, self.name, self.pods = double, ns, name, pods
        self.workflow = double.get(ns, name)
        self.root = node_id(name, name)
        self.stopped = double.stopped[(ns, name)]

    def _set(self, change: Callable[[dict[str, Any]], None]) -> None:
        def apply(w: dict[str, Any]) -> None:
            change(w.setdefault("status", {}))

        self.double.update(self.ns, self.name, apply)

    def _node(self, node: dict[str, Any], parent: str | None = None) -> None:
        def change(status: dict[str, Any]) -> None:
            nodes = status.setdefault("nodes", {})
            nodes[node["id"]] = {**nodes.get(node["id"], {}), **node}
            if parent is not None:
                children = nodes[parent].setdefault("children", [])
                if node["id"] not in children:
                    children.append(node["id"])

        self._set(change)

    def __call__(self) -> None:
        spec = self.workflow["spec"]
        templates = {t["name"]: t for t in spec["templates"]}
        entry = templates[spec["entrypoint"]]
        started = now()
        self._set(lambda s: s.update(phase="Running", startedAt=started))
        self._node(
            {"id": self.root, "name": self.name, "displayName": self.name, "type": "DAG",
             "templateName": entry["name"], "phase": "Running", "startedAt": started}
        )  # fmt: skip
        phases: dict[str, str] = {}
        outputs: dict[str, dict[str, str]] = {}
        values = {"workflow.name": self.name, "workflow.namespace": self.ns}
        for task in _order(entry["dag"]["tasks"]):
            tname = task["name"]
            node_name = f"{self.name}.{tname}"
            base = {"id": node_id(self.name, node_name), "name": node_name, "displayName": tname,
                    "templateName": task["template"], "boundaryID": self.root}  # fmt: skip
            expr, names = _deps(task)
            ready = expr is None or evaluate_bool(expr, depends_env({n: phases[n] for n in names}), "depends")
            if not ready or self.stopped.is_set():
                phases[tname] = "Omitted"
                self._node(
                    {**base, "type": "Skipped", "phase": "Omitted", "message": "omitted: depends condition not met"},
                    self.root,
                )
                continue
            args = {
                p["name"]: render(str(p.get("value", "")), values)
                for p in (task.get("arguments") or {}).get("parameters") or []
            }
            if "when" in task and not evaluate_when(render(task["when"], values)):
                phases[tname] = "Skipped"
                self._node(
                    {
                        **base,
                        "type": "Skipped",
                        "phase": "Skipped",
                        "message": f"when '{render(task['when'], values)}' evaluated false",
                        "startedAt": now(),
                        "finishedAt": now(),
                    },
                    self.root,
                )
                continue
            template = templates[task["template"]]
            result = self._run_task(base, template, inputs_of(template, args), tname)
            phases[tname] = result.phase
            outputs[tname] = result.outputs
            for key, value in result.outputs.items():
                values[f"tasks.{tname}.outputs.parameters.{key}"] = value
            if result.result is not None:
                values[f"tasks.{tname}.outputs.result"] = result.result
        failed = [t for t, p in phases.items() if p in ("Failed", "Error")]
        phase = "Failed" if failed else "Succeeded"
        if self.stopped.is_set():
            message = "Stopped with strategy 'Stop'"
        else:
            message = f"child '{node_id(self.name, f'{self.name}.{failed[0]}')}' failed" if failed else ""
        done = now()
        self._node({"id": self.root, "phase": phase, "finishedAt": done, "message": message})
        self._set(lambda s: s.update(phase=phase, finishedAt=done, **({"message": message} if message else {})))

    def _run_task(
        self, base: dict[str, Any], template: dict[str, Any], inputs: dict[str, str], tname: str
    ) -> PodResult:
        retry = template.get("retryStrategy")
        limit = int(retry.get("limit", 0)) if retry else 0
        policy = (retry or {}).get("retryPolicy", "OnFailure")
        input_params = {"parameters": [{"name": k, "value": v} for k, v in inputs.items()]}
        if retry is None:
            return self._pod({**base, "type": "Pod", "inputs": input_params}, template, inputs, tname, 0, self.root)
        self._node({**base, "type": "Retry", "phase": "Running", "startedAt": now(), "inputs": input_params}, self.root)
        attempt = 0
        while True:
            pod_name = f"{base['name']}({attempt})"
            pod_base = {
                **base,
                "id": node_id(self.name, pod_name),
                "name": pod_name,
                "displayName": f"{tname}({attempt})",
                "type": "Pod",
                "inputs": input_params,
            }
            result = self._pod(pod_base, template, inputs, tname, attempt, base["id"])
            again = {"Always": ("Failed", "Error"), "OnFailure": ("Failed",), "OnError": ("Error",)}.get(policy, ())
            if result.phase == "Succeeded" or result.phase not in again or attempt >= limit or self.stopped.is_set():
                break
            attempt += 1
        self._node({"id": base["id"], "phase": result.phase, "finishedAt": now(), "message": result.message,
                    "outputs": _outputs(result)})  # fmt: skip
        return result

    def _pod(
        self,
        node: dict[str, Any],
        template: dict[str, Any],
        inputs: dict[str, str],
        tname: str,
        attempt: int,
        parent: str,
    ) -> PodResult:
        self._node({**node, "phase": "Running", "startedAt": now()}, parent)
        pod = Pod(self.name, self.ns, tname, template, inputs, attempt, self.stopped)
        result = self.pods(pod)
        if self.stopped.is_set() and result.phase == "Succeeded" and not result.outputs:
            result = PodResult("Failed", None, "workflow shutdown with strategy:  Stop")
        self._node({"id": node["id"], "phase": result.phase, "finishedAt": now(), "message": result.message,
                    "outputs": _outputs(result)})  # fmt: skip
        return result


def _outputs(result: PodResult) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if result.outputs:
        out["parameters"] = [{"name": k, "value": v} for k, v in result.outputs.items()]
    if result.exit_code is not None:
        out["exitCode"] = str(result.exit_code)
    if result.result is not None:
        out["result"] = result.result
    return out


def runner(pods: PodRunner) -> Callable[[ArgoDouble, str, str], None]:
    """What ArgoDouble.runner takes: run each created workflow with these pods."""

    def run(double: ArgoDouble, ns: str, name: str) -> None:
        WorkflowRun(double, ns, name, pods)()

    return run
