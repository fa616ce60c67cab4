"""The DAG of a manifest for the local executor: its tasks checked into a plan, and its phase assessed.

Place in the flow: step 4 of a pass, inside LocalExecutor. check_manifest() (here) calls
build_plan() for the entrypoint DAG (at submit, before anything runs); run.py calls
assess() when every task has settled, to decide the workflow's phase as Argo's assessDAGPhase
does: each leaf task's branch takes the phase of the last task that completed on its way (a
Skipped or Omitted task inherits it), Failed/Error win over Succeeded, and the first failed leaf
in name order decides (Argo's default failFast).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from controller.adapters.local import expr as ex
from controller.adapters.local.manifest import (
    _DNS,
    _TASK_NAME,
    Plan,
    StepTemplate,
    Task,
    _check_tags,
    _fail,
    _list,
    _obj,
    _params,
    _seconds,
    _step_template,
    _str,
    _strs,
    manifest_digest,
)
from controller.ports import ERROR, FAILED, OMITTED, SKIPPED, SUCCEEDED

_SETTLED = frozenset({SUCCEEDED, FAILED, ERROR, SKIPPED, OMITTED})
_COMPLETED = frozenset({SUCCEEDED, FAILED, ERROR})


def _dag_inputs(dag_t: dict[str, Any], path: str, params: Mapping[str, str]) -> dict[str, str]:
    """The entrypoint's inputs, filled from the workflow's arguments by name (as Argo does)."""
    out = {}
    inputs = _obj(dag_t.get("inputs", {}), f"{path}.inputs", "inputs")
    for name, p in _params(inputs.get("parameters", []), f"{path}.inputs.parameters", "input"):
        value = params.get(name, p.get("value", p.get("default")))
        if value is None:
            raise _fail(f"{path}.inputs.parameters.{name}", "was not supplied by spec.arguments")
        out[name] = value
    return out


def build_plan(
    name: str,
    digest: str,
    params: dict[str, str],
    deadline: float | None,
    path: str,
    dag_t: dict[str, Any],
    steps: Mapping[str, StepTemplate],
    workflow_tags: Mapping[str, str],
) -> Plan:
    dag_inputs = _dag_inputs(dag_t, path, params)
    dag = _obj(dag_t["dag"], f"{path}.dag", "dag")
    raw_tasks = _list(dag.get("tasks"), f"{path}.dag.tasks")
    if not raw_tasks:
        raise _fail(f"{path}.dag.tasks", "must not be empty")
    bodies: dict[str, tuple[str, dict[str, Any]]] = {}
    for i, raw in enumerate(raw_tasks):
        tpath = f"{path}.dag.tasks[{i}]"
        t = _obj(raw, tpath, "task")
        tname = _str(t.get("name"), f"{tpath}.name")
        if not _TASK_NAME.match(tname):
            raise _fail(f"{tpath}.name", f"{tname!r} is not a valid task name")
        if tname in bodies:
            raise _fail(f"{tpath}.name", f"duplicate task {tname!r}")
        template = _str(t.get("template"), f"{tpath}.template")
        if template not in steps:
            what = "a dag template (nested DAGs are not supported)" if template == dag_t["name"] else "unknown"
            raise _fail(f"{tpath}.template", f"template {template!r} is {what}")
        bodies[tname] = (tpath, t)

    # dependencies: `depends` or `dependencies`, never both
    logic: dict[str, tuple[ex.Node | None, frozenset[str]]] = {}
    for tname, (tpath, t) in bodies.items():
        if "depends" in t and "dependencies" in t:
            raise _fail(tpath, "cannot use both 'depends' and 'dependencies'")
        node: ex.Node | None = None
        deps: frozenset[str] = frozenset()
        try:
            if "depends" in t:
                node, deps = ex.parse_depends(_str(t["depends"], f"{tpath}.depends"))
            elif "dependencies" in t:
                names = list(_strs(t["dependencies"], f"{tpath}.dependencies"))
                node, deps = (ex.dependencies_node(names), frozenset(names)) if names else (None, frozenset())
        except ex.ExprError as exc:
            key = "depends" if "depends" in t else "dependencies"
            raise _fail(f"{tpath}.{key}", str(exc)) from None
        for dep in sorted(deps):
            if dep not in bodies:
                raise _fail(f"{tpath}.depends", f"unknown task {dep!r}")
            if dep == tname:
                raise _fail(f"{tpath}.depends", f"task {tname!r} depends on itself")
        logic[tname] = (node, deps)

    ancestors: dict[str, frozenset[str]] = {}

    def ancestry(tname: str, trail: tuple[str, ...]) -> frozenset[str]:
        if tname in trail:
            raise _fail(bodies[tname][0], "dependency cycle: " + " -> ".join((*trail, tname)))
        if tname not in ancestors:
            found: set[str] = set()
            for dep in logic[tname][1]:
                found |= {dep} | ancestry(dep, (*trail, tname))
            ancestors[tname] = frozenset(found)
        return ancestors[tname]

    tasks = []
    for tname, (tpath, t) in bodies.items():
        tmpl = steps[t["template"]]
        mine = ancestry(tname, ())
        allowed = dict(workflow_tags) | {f"inputs.parameters.{n}": "" for n in dag_inputs}
        for other in bodies:
            out_names = [o.name for o in steps[bodies[other][1]["template"]].outputs]
            why = "" if other in mine else f"task {other!r} is not an ancestor of {tname!r} (add it to depends)"
            allowed |= {f"tasks.{other}.outputs.parameters.{o}": why for o in out_names}
            allowed[f"tasks.{other}.outputs.result"] = why
        args = []
        declared = {ip.name for ip in tmpl.inputs}
        arguments = _obj(t.get("arguments", {}), f"{tpath}.arguments", "arguments")
        apath = f"{tpath}.arguments.parameters"
        for j, (pname, p) in enumerate(_params(arguments.get("parameters", []), apath, "argument")):
            ppath = f"{apath}[{j}]"
            if pname not in declared:
                raise _fail(f"{ppath}.name", f"{pname!r} is not an input parameter of template {tmpl.name!r}")
            if "value" not in p:
                raise _fail(f"{ppath}.value", "required by the local executor")
            _check_tags(p["value"], f"{ppath}.value", allowed)
            args.append((pname, p["value"]))
        given = {a for a, _ in args}
        for ip in tmpl.inputs:
            if ip.name not in given and ip.value is None and ip.default is None:
                raise _fail(f"{tpath}.arguments", f"inputs.parameters.{ip.name} of {tmpl.name!r} was not supplied")
        when = None
        if "when" in t:
            when = _str(t["when"], f"{tpath}.when")
            _check_tags(when, f"{tpath}.when", allowed)
        dep_node, deps = logic[tname]
        tasks.append(Task(tname, tmpl, tuple(args), dep_node, deps, mine, when))

    children: dict[str, list[str]] = {task.name: [] for task in tasks}
    for task in tasks:
        for dep in sorted(task.deps):
            children[dep].append(task.name)
    leaves = tuple(sorted(n for n, c in children.items() if not c))
    return Plan(
        name=name,
        digest=digest,
        parameters=params,
        dag_inputs=dag_inputs,
        deadline_s=deadline,
        tasks=tuple(tasks),
        leaves=leaves,
        children={k: tuple(v) for k, v in children.items()},
    )


def assess(plan: Plan, phases: Mapping[str, str]) -> tuple[str, str | None]:
    """The DAG's phase once its tasks have settled, and the task whose phase decided a failure."""
    roots = [t.name for t in plan.tasks if not t.deps]
    queue: deque[tuple[str, str, str | None]] = deque((r, SUCCEEDED, None) for r in roots)
    seen: set[tuple[str, str, str | None]] = set()
    branch: dict[str, tuple[str, str | None]] = {}
    while queue:
        item = queue.popleft()
        if item in seen:
            continue
        seen.add(item)
        task, phase, source = item
        if phases.get(task) not in _SETTLED:
            return "Running", None
        if phases[task] in _COMPLETED:
            phase, source = phases[task], task
        if task in plan.leaves:
            previous = branch.get(task)
            if previous is None or previous[0] not in (FAILED, ERROR):
                branch[task] = (phase, source)
        queue.extend((child, phase, source) for child in plan.children[task])
    for leaf in plan.leaves:
        if leaf not in branch:
            return "Running", None
        if branch[leaf][0] in (FAILED, ERROR):
            return branch[leaf]
    return SUCCEEDED, None


def check_manifest(manifest: Any) -> Plan:
    """The plan of a manifest the local executor can run; UnsupportedManifest names what it cannot."""
    wf = _obj(manifest, "$", "workflow")
    if wf.get("apiVersion") != "argoproj.io/v1alpha1" or wf.get("kind") != "Workflow":
        raise _fail("kind", "expected apiVersion argoproj.io/v1alpha1 and kind Workflow")
    meta = _obj(wf.get("metadata"), "metadata", "metadata")
    name = _str(meta.get("name"), "metadata.name")
    if not _DNS.match(name):
        raise _fail("metadata.name", f"{name!r} is not a valid workflow name (lowercase RFC 1123)")
    spec = _obj(wf.get("spec"), "spec", "spec")
    params: dict[str, str] = {}
    arguments = _obj(spec.get("arguments", {}), "spec.arguments", "arguments")
    for pname, p in _params(arguments.get("parameters", []), "spec.arguments.parameters", "argument"):
        if "value" not in p:
            raise _fail(f"spec.arguments.parameters.{pname}", "needs a value")
        _check_tags(p["value"], f"spec.arguments.parameters.{pname}.value", {})
        params[pname] = p["value"]
    deadline = (
        _seconds(spec["activeDeadlineSeconds"], "spec.activeDeadlineSeconds")
        if "activeDeadlineSeconds" in spec
        else None
    )
    workflow_tags = {"workflow.name": ""} | {f"workflow.parameters.{p}": "" for p in params}
    steps: dict[str, StepTemplate] = {}
    dags: dict[str, tuple[str, dict[str, Any]]] = {}
    for i, raw in enumerate(_list(spec.get("templates"), "spec.templates")):
        path = f"spec.templates[{i}]"
        t = _obj(raw, path, "template")
        tname = _str(t.get("name"), f"{path}.name")
        if tname in steps or tname in dags:
            raise _fail(f"{path}.name", f"duplicate template name {tname!r}")
        kinds = [k for k in ("dag", "script", "container") if k in t]
        if len(kinds) != 1:
            raise _fail(path, "needs exactly one of dag, script, container (the kinds the local executor runs)")
        if kinds[0] == "dag":
            for key in ("outputs", "retryStrategy", "activeDeadlineSeconds"):
                if key in t:
                    raise _fail(f"{path}.{key}", "not supported by the local executor on a dag template")
            dags[tname] = (path, t)
        else:
            steps[tname] = _step_template(t, path, workflow_tags)
    entry = _str(spec.get("entrypoint"), "spec.entrypoint")
    if entry not in dags:
        what = "a script or container template" if entry in steps else "no such template"
        raise _fail("spec.entrypoint", f"{entry!r} is {what}; the local executor needs a dag entrypoint")
    for tname, (path, _) in dags.items():
        if tname != entry:
            raise _fail(path, f"dag template {tname!r} is not the entrypoint; nested DAGs are not supported")
    path, dag_t = dags[entry]
    return build_plan(name, manifest_digest(manifest), params, deadline, path, dag_t, steps, workflow_tags)
