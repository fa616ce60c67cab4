"""LocalExecutor.submit refuses what it cannot run, naming the JSON path, before anything runs.

Place in the flow: tests of step 4 (the executor's manifest check). Each case starts from a valid
Hera-compiled manifest, changes one thing, and checks the exact message; real Argo features are
also checked to pass Argo's own schema, so the refusal is ours and not a malformed manifest.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hera.workflows import DAG, Parameter, Workflow

from controller.adapters.local.executor import IGNORED_FIELDS, LocalExecutor, UnsupportedManifest
from controller.errors import PermanentError
from tests.executor import stepfns as s
from tests.executor.conftest import ROOT, compiled, schema_errors

Edit = Callable[[dict[str, Any]], None]


def base() -> dict[str, Any]:
    args = [Parameter(name="p", value="1")]
    with Workflow(name="base-wf", entrypoint="main", arguments=args) as wf, DAG(name="main"):
        a = s.add(name="a", arguments={"a": "{{workflow.parameters.p}}"})
        b = s.echo(name="b", arguments={"message": a.get_parameter("sum")})
        c = s.echo(name="c", arguments={"message": "c"})
        a >> b
        _ = c
    return compiled(wf)


def template(m: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in m["spec"]["templates"] if t["name"] == name)


def index(m: dict[str, Any], name: str) -> int:
    return next(i for i, t in enumerate(m["spec"]["templates"]) if t["name"] == name)


def task(m: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in template(m, "main")["dag"]["tasks"] if t["name"] == name)


def test_the_base_manifest_is_accepted_and_ignored_fields_are_listed(tmp_path: Path) -> None:
    m = base()
    m["metadata"] |= {"labels": {"a": "b"}, "annotations": {"c": "d"}, "namespace": "ns"}
    m["spec"] |= {"serviceAccountName": "sa", "podGC": {"strategy": "OnPodCompletion"}, "ttlStrategy": {}}
    template(m, "add")["script"].update({"imagePullPolicy": "Always", "resources": {"limits": {"cpu": "1"}}})
    template(m, "add").update({"nodeSelector": {"k": "v"}, "tolerations": [], "securityContext": {}})
    assert schema_errors(m) == []
    from controller.adapters.local.dag import check_manifest

    plan = check_manifest(m)
    assert [t.name for t in plan.tasks] == ["a", "b", "c"]
    for kind, fields in {"spec": {"podGC", "ttlStrategy"}, "script": {"image", "resources"}}.items():
        assert fields <= IGNORED_FIELDS[kind]


def _set(path: str, value: Any) -> Edit:
    def edit(m: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        obj: Any = m
        for p in parents:
            obj = obj[int(p)] if p.isdigit() else obj[p]
        obj[int(last) if last.isdigit() else last] = value

    return edit


ADD = 1  # index of the "add" template in the base manifest (checked below)
CASES: list[tuple[str, Edit, str]] = [
    (
        "volume mounts",
        _set(f"spec/templates/{ADD}/script/volumeMounts", [{"name": "v", "mountPath": "/data"}]),
        f"spec.templates[{ADD}].script.volumeMounts: not supported by the local executor",
    ),
    (
        "workflow volumes",
        _set("spec/volumes", [{"name": "v", "emptyDir": {}}]),
        "spec.volumes: not supported by the local executor",
    ),
    (
        "input artifacts",
        _set(f"spec/templates/{ADD}/inputs/artifacts", [{"name": "data", "path": "/data"}]),
        f"spec.templates[{ADD}].inputs.artifacts: not supported by the local executor",
    ),
    (
        "output artifacts",
        _set(f"spec/templates/{ADD}/outputs/artifacts", [{"name": "model", "path": "/tmp/model"}]),
        f"spec.templates[{ADD}].outputs.artifacts: not supported by the local executor",
    ),
    (
        "steps templates",
        lambda m: m["spec"]["templates"].append({"name": "legacy", "steps": [[{"name": "x", "template": "add"}]]}),
        "spec.templates[3].steps: not supported by the local executor",
    ),
    (
        "withItems",
        _set("spec/templates/0/dag/tasks/2/withItems", ["a", "b"]),
        "spec.templates[0].dag.tasks[2].withItems: not supported by the local executor",
    ),
    (
        "generateName",
        lambda m: m.__setitem__("metadata", {"generateName": "wf-"}),
        "metadata.generateName: not supported by the local executor (names must be deterministic)",
    ),
    (
        "an output path outside the outputs directory",
        _set(f"spec/templates/{ADD}/outputs/parameters/0/valueFrom/path", "/etc/passwd"),
        f"spec.templates[{ADD}].outputs.parameters[0].valueFrom.path: '/etc/passwd' is outside the outputs "
        "directory '/tmp/hera-outputs' (hera__outputs_directory); not supported by the local executor",
    ),
    (
        "an unknown field",
        _set(f"spec/templates/{ADD}/script/comand", ["python"]),
        f"spec.templates[{ADD}].script.comand: not supported by the local executor",
    ),
    (
        "an exit handler",
        _set("spec/onExit", "add"),
        "spec.onExit: not supported by the local executor",
    ),
    (
        "an unsupported variable",
        _set(f"spec/templates/{ADD}/script/args/1", "{{pod.name}}"),
        f"spec.templates[{ADD}].script.args[1]: {{{{pod.name}}}}: unknown, or not supported by the local executor",
    ),
    (
        "a reference to a task that is not an ancestor",
        _set("spec/templates/0/dag/tasks/2/arguments/parameters/0/value", "{{tasks.a.outputs.parameters.sum}}"),
        "spec.templates[0].dag.tasks[2].arguments.parameters[0].value: {{tasks.a.outputs.parameters.sum}}: "
        "task 'a' is not an ancestor of 'c' (add it to depends)",
    ),
    (
        "a depends on an unknown task",
        _set("spec/templates/0/dag/tasks/2/depends", "a && nope"),
        "spec.templates[0].dag.tasks[2].depends: unknown task 'nope'",
    ),
    (
        ".Daemoned",
        _set("spec/templates/0/dag/tasks/2/depends", "a.Daemoned"),
        "spec.templates[0].dag.tasks[2].depends: 'a.Daemoned': .Daemoned is not supported: "
        "daemon templates are not supported by the local executor",
    ),
    (
        ".AnySucceeded",
        _set("spec/templates/0/dag/tasks/2/depends", "a.AnySucceeded"),
        "spec.templates[0].dag.tasks[2].depends: 'a.AnySucceeded': .AnySucceeded is not supported: "
        "it needs withItems/withParam, which the local executor does not support",
    ),
    (
        "a dependency cycle",
        _set("spec/templates/0/dag/tasks/0/depends", "b"),
        "spec.templates[0].dag.tasks[0]: dependency cycle: a -> b -> a",
    ),
    (
        "a retryStrategy without limit",
        _set(f"spec/templates/{ADD}/retryStrategy", {"retryPolicy": "Always"}),
        f"spec.templates[{ADD}].retryStrategy.limit: required by the local executor "
        "(Argo retries without end when absent)",
    ),
    (
        "OnTransientError",
        _set(f"spec/templates/{ADD}/retryStrategy", {"limit": "1", "retryPolicy": "OnTransientError"}),
        f"spec.templates[{ADD}].retryStrategy.retryPolicy: 'OnTransientError' is not supported by the local "
        "executor (('Always', 'OnFailure', 'OnError'))",
    ),
    (
        "a script entrypoint",
        _set("spec/entrypoint", "add"),
        "spec.entrypoint: 'add' is a script or container template; the local executor needs a dag entrypoint",
    ),
    (
        "an argument the template does not declare",
        _set("spec/templates/0/dag/tasks/2/arguments/parameters/0/name", "msg"),
        "spec.templates[0].dag.tasks[2].arguments.parameters[0].name: 'msg' is not an input parameter of "
        "template 'echo'",
    ),
    (
        "a missing argument",
        _set("spec/templates/0/dag/tasks/2/arguments", {}),
        "spec.templates[0].dag.tasks[2].arguments: inputs.parameters.message of 'echo' was not supplied",
    ),
]


@pytest.mark.parametrize(("edit", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_unsupported_manifests_are_refused_with_the_path(tmp_path: Path, edit: Edit, message: str) -> None:
    m = base()
    assert index(m, "add") == ADD
    edit(m)
    assert schema_errors(m) == []  # valid for Argo (its published schema is permissive): the refusal is ours
    with LocalExecutor(tmp_path / "home", warm=False) as ex:
        with pytest.raises(UnsupportedManifest) as caught:
            ex.submit(m)
        assert not (tmp_path / "home" / "runs" / "base-wf").exists()  # refused before anything ran
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, PermanentError)


def test_not_a_workflow(tmp_path: Path) -> None:
    with LocalExecutor(tmp_path, warm=False) as ex, pytest.raises(UnsupportedManifest, match=r"^kind: expected"):
        ex.submit({"apiVersion": "argoproj.io/v1alpha1", "kind": "CronWorkflow", "metadata": {"name": "x"}})


def test_the_golden_builder_manifests_are_all_supported() -> None:
    yaml = pytest.importorskip("yaml")
    from controller.adapters.local.dag import check_manifest

    goldens = sorted((ROOT / "tests" / "golden").glob("*.yaml"))
    if not goldens:
        pytest.skip("no golden workflow manifests under tests/golden")
    for path in goldens:
        plan = check_manifest(copy.deepcopy(yaml.safe_load(path.read_text())))
        assert plan.tasks, path
