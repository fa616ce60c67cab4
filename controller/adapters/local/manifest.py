"""Check a compiled Argo Workflow manifest against what the local executor supports; build its plan.

Place in the flow: step 4 of a pass. LocalExecutor.submit calls check_manifest() before anything
runs or is written; every field is either supported, accepted and ignored (it only matters on a
cluster: the kinds' IGNORED sets, listed in controller/adapters/local/executor.py's docstring), or refused
with UnsupportedManifest naming its JSON path. The Plan it returns is what run.py executes.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.adapters.local import expr as ex
from controller.adapters.local import tags as tg
from controller.errors import PermanentError

# Per object kind: the fields the local executor uses, and those it accepts and ignores.
SUPPORTED: dict[str, frozenset[str]] = {
    "workflow": frozenset({"apiVersion", "kind", "metadata", "spec"}),
    "metadata": frozenset({"name"}),
    "spec": frozenset({"entrypoint", "arguments", "activeDeadlineSeconds", "templates"}),
    "template": frozenset(
        {"name", "dag", "script", "container", "inputs", "outputs", "retryStrategy", "activeDeadlineSeconds"}
    ),
    "script": frozenset({"command", "args", "env", "source"}),
    "container": frozenset({"command", "args", "env"}),
    "env": frozenset({"name", "value"}),
    "inputs": frozenset({"parameters"}),
    "input": frozenset({"name", "value", "default", "enum", "description"}),
    "outputs": frozenset({"parameters"}),
    "output": frozenset({"name", "valueFrom", "description"}),
    "valueFrom": frozenset({"path", "default"}),
    "dag": frozenset({"tasks"}),
    "task": frozenset({"name", "template", "arguments", "depends", "dependencies", "when"}),
    "arguments": frozenset({"parameters"}),
    "argument": frozenset({"name", "value", "description"}),
    "retryStrategy": frozenset({"limit", "retryPolicy", "expression", "backoff"}),
    "backoff": frozenset({"duration", "factor", "maxDuration", "cap"}),
}
_POD = frozenset(
    {"nodeSelector", "tolerations", "affinity", "securityContext", "serviceAccountName", "schedulerName"}
    | {"automountServiceAccountToken", "podSpecPatch", "hostAliases", "executor", "priorityClassName"}
    | {"podResources", "resourceClaims"}
)
_CONTAINER = frozenset(
    {"image", "imagePullPolicy", "resources", "securityContext", "name", "ports", "livenessProbe"}
    | {"readinessProbe", "startupProbe", "terminationMessagePath", "terminationMessagePolicy"}
    | {"resizePolicy", "restartPolicy", "restartPolicyRules", "tty", "stdin", "stdinOnce"}
)
IGNORED: dict[str, frozenset[str]] = {
    "metadata": frozenset({"labels", "annotations", "namespace"}),
    "spec": _POD
    | {"podGC", "ttlStrategy", "imagePullSecrets", "podMetadata", "workflowMetadata", "priority"}
    | {"podPriorityClassName", "dnsPolicy", "dnsConfig", "hostNetwork", "archiveLogs", "podDisruptionBudget"},
    "template": _POD | {"metadata", "annotations", "archiveLocation", "pendingTimeout"},
    "script": _CONTAINER,
    "container": _CONTAINER,
    "retryStrategy": frozenset({"affinity"}),
}
_OBJECT_KINDS = {"workflow": "Workflow"}
_DNS = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_TASK_NAME = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]{0,127}$")
_PARAM_NAME = re.compile(r"^[-a-zA-Z0-9_]+$")
HERA_OUTPUTS_ENV = "hera__outputs_directory"
HERA_OUTPUTS_DEFAULT = "/tmp/hera-outputs"  # noqa: S108 - the path Hera's runner uses in a pod
POLICIES = ("Always", "OnFailure", "OnError")


class UnsupportedManifest(PermanentError, ValueError):
    """The manifest uses something the local executor does not run, or is invalid; names the path."""


def _fail(path: str, what: str) -> UnsupportedManifest:
    return UnsupportedManifest(f"{path}: {what}")


@dataclass(frozen=True)
class InputParam:
    name: str
    value: str | None
    default: str | None
    enum: tuple[str, ...] | None
    description: str | None


@dataclass(frozen=True)
class OutputParam:
    name: str
    rel_path: str  # relative to the outputs directory
    default: str | None


@dataclass(frozen=True)
class Retry:
    limit: int
    policy: str  # Always | OnFailure | OnError
    expression: ex.Node | None
    backoff_s: float
    factor: float
    max_duration_s: float | None
    cap_s: float | None


@dataclass(frozen=True)
class StepTemplate:
    name: str
    kind: str  # "script" | "container"
    command: tuple[str, ...]
    args: tuple[str, ...]
    source: str | None
    env: tuple[tuple[str, str], ...]
    inputs: tuple[InputParam, ...]
    outputs: tuple[OutputParam, ...]
    retry: Retry | None
    deadline_s: float | None


@dataclass(frozen=True)
class Task:
    name: str
    template: StepTemplate
    arguments: tuple[tuple[str, str], ...]
    depends: ex.Node | None
    deps: frozenset[str]
    ancestors: frozenset[str]
    when: str | None


@dataclass(frozen=True)
class Plan:
    name: str
    digest: str
    parameters: Mapping[str, str]  # workflow.parameters.* and the entrypoint DAG's inputs
    dag_inputs: Mapping[str, str]
    deadline_s: float | None
    tasks: tuple[Task, ...]
    leaves: tuple[str, ...]  # tasks no other task depends on, sorted: Argo's default DAG targets
    children: Mapping[str, tuple[str, ...]]  # task -> tasks that depend on it


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    canon = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canon.encode()).hexdigest()


def _obj(value: Any, path: str, kind: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, "expected an object")
    allowed, ignored = SUPPORTED[kind], IGNORED.get(kind, frozenset())
    for key in value:
        if key not in allowed and key not in ignored:
            if kind == "metadata" and key == "generateName":
                raise _fail(f"{path}.{key}", "not supported by the local executor (names must be deterministic)")
            raise _fail(f"{path}.{key}", "not supported by the local executor")
    return {k: v for k, v in value.items() if k in allowed}


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _fail(path, "expected a string")
    return value


def _strs(value: Any, path: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _fail(path, "expected a list of strings")
    return tuple(_str(v, f"{path}[{i}]") for i, v in enumerate(value))


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(path, "expected a list")
    return value


def _seconds(value: Any, path: str) -> float:
    """An IntOrString count of seconds (Argo's schema types it as a string, Hera emits ints)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _fail(path, "expected a whole number of seconds")
    try:
        seconds = int(value)
    except ValueError:
        raise _fail(path, f"expected a whole number of seconds, got {value!r}") from None
    if seconds <= 0:
        raise _fail(path, "must be positive")
    return float(seconds)


def _count(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise _fail(path, f"expected a whole number, got {value!r}")
    return int(value)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration(value: Any, path: str) -> float:
    """Argo's backoff durations: a number of seconds, or a Go duration such as "1m30s"."""
    text = str(value).strip() if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if re.fullmatch(r"\d+", text):
        return float(text)
    parts = _DURATION.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise _fail(path, f"expected seconds or a duration such as '30s' or '2m', got {value!r}")
    return sum(float(n) * _UNIT[u] for n, u in parts)


def _params(value: Any, path: str, kind: str) -> list[tuple[str, dict[str, Any]]]:
    out, seen = [], set()
    for i, raw in enumerate(_list(value, path)):
        p = _obj(raw, f"{path}[{i}]", kind)
        name = _str(p.get("name"), f"{path}[{i}].name")
        if not _PARAM_NAME.match(name):
            raise _fail(f"{path}[{i}].name", f"{name!r} is not a valid parameter name")
        if name in seen:
            raise _fail(f"{path}[{i}].name", f"duplicate parameter {name!r}")
        seen.add(name)
        for key in ("value", "default", "description"):
            if key in p:
                _str(p[key], f"{path}[{i}].{key}")
        out.append((name, p))
    return out


def _check_tags(text: str, path: str, allowed: Mapping[str, str]) -> None:
    """Every `{{...}}` must name something the local executor can resolve (allowed: name -> why not)."""
    for tag in tg.tags(text):
        if tag.startswith("="):
            raise _fail(path, f"{{{{{tag}}}}}: expression tags are not supported by the local executor")
        if tag not in allowed:
            raise _fail(path, f"{{{{{tag}}}}}: unknown, or not supported by the local executor")
        if allowed[tag]:
            raise _fail(path, f"{{{{{tag}}}}}: {allowed[tag]}")


def _retry(value: Any, path: str) -> Retry:
    r = _obj(value, path, "retryStrategy")
    if "limit" not in r:
        raise _fail(f"{path}.limit", "required by the local executor (Argo retries without end when absent)")
    limit = _count(r["limit"], f"{path}.limit")
    policy = _str(r.get("retryPolicy", "OnFailure"), f"{path}.retryPolicy")
    if policy not in POLICIES:
        raise _fail(f"{path}.retryPolicy", f"{policy!r} is not supported by the local executor ({POLICIES})")
    expression = None
    if "expression" in r:
        text = _str(r["expression"], f"{path}.expression")
        try:
            expression = ex.parse(text, "retry")
        except ex.ExprError as exc:
            raise _fail(f"{path}.expression", f"{exc}") from None
    b = _obj(r.get("backoff", {}), f"{path}.backoff", "backoff")
    factor = float(_count(b["factor"], f"{path}.backoff.factor")) if "factor" in b else 1.0
    return Retry(
        limit=limit,
        policy=policy,
        expression=expression,
        backoff_s=_duration(b["duration"], f"{path}.backoff.duration") if "duration" in b else 0.0,
        factor=factor,
        max_duration_s=_duration(b["maxDuration"], f"{path}.backoff.maxDuration") if "maxDuration" in b else None,
        cap_s=_duration(b["cap"], f"{path}.backoff.cap") if "cap" in b else None,
    )


def _step_template(t: dict[str, Any], path: str, workflow_tags: dict[str, str]) -> StepTemplate:
    kind = "script" if "script" in t else "container"
    body = _obj(t[kind], f"{path}.{kind}", kind)
    if "command" not in body:
        raise _fail(f"{path}.{kind}.command", "required by the local executor (there is no image entrypoint)")
    command = _strs(body["command"], f"{path}.{kind}.command")
    if not command:
        raise _fail(f"{path}.{kind}.command", "must not be empty")
    args = _strs(body.get("args", []), f"{path}.{kind}.args")
    source = _str(body["source"], f"{path}.{kind}.source") if "source" in body else None
    env = []
    for i, raw in enumerate(_list(body.get("env", []), f"{path}.{kind}.env")):
        e = _obj(raw, f"{path}.{kind}.env[{i}]", "env")
        epath = f"{path}.{kind}.env[{i}]"
        env.append((_str(e.get("name"), f"{epath}.name"), _str(e.get("value", ""), f"{epath}.value")))
    inputs_raw = _obj(t.get("inputs", {}), f"{path}.inputs", "inputs")
    inputs = []
    ipath = f"{path}.inputs.parameters"
    for i, (n, p) in enumerate(_params(inputs_raw.get("parameters", []), ipath, "input")):
        enum = _strs(p["enum"], f"{ipath}[{i}].enum") if "enum" in p else None
        inputs.append(InputParam(n, p.get("value"), p.get("default"), enum, p.get("description")))
    out_dir = posixpath.normpath(dict(env).get(HERA_OUTPUTS_ENV, HERA_OUTPUTS_DEFAULT))
    outputs = []
    opath = f"{path}.outputs.parameters"
    outputs_raw = _obj(t.get("outputs", {}), f"{path}.outputs", "outputs")
    for i, (name, p) in enumerate(_params(outputs_raw.get("parameters", []), opath, "output")):
        vf = _obj(p.get("valueFrom"), f"{opath}[{i}].valueFrom", "valueFrom")
        if "path" not in vf:
            raise _fail(f"{opath}[{i}].valueFrom.path", "required by the local executor")
        raw_path = _str(vf["path"], f"{opath}[{i}].valueFrom.path")
        norm = posixpath.normpath(raw_path)
        if not raw_path.startswith("/") or not norm.startswith(out_dir + "/"):
            raise _fail(
                f"{opath}[{i}].valueFrom.path",
                f"{raw_path!r} is outside the outputs directory {out_dir!r} ({HERA_OUTPUTS_ENV}); "
                "not supported by the local executor",
            )
        default = _str(vf["default"], f"{opath}[{i}].valueFrom.default") if "default" in vf else None
        outputs.append(OutputParam(name, norm[len(out_dir) + 1 :], default))
    tag_ok = dict(workflow_tags) | {f"inputs.parameters.{p.name}": "" for p in inputs} | {"inputs.parameters": ""}
    for field, values in (("command", command), ("args", args)):
        for i, v in enumerate(values):
            _check_tags(v, f"{path}.{kind}.{field}[{i}]", tag_ok)
    for i, (_, v) in enumerate(env):
        _check_tags(v, f"{path}.{kind}.env[{i}].value", tag_ok)
    if source is not None:
        _check_tags(source, f"{path}.{kind}.source", tag_ok)
    return StepTemplate(
        name=t["name"],
        kind=kind,
        command=command,
        args=args,
        source=source,
        env=tuple(env),
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        retry=_retry(t["retryStrategy"], f"{path}.retryStrategy") if "retryStrategy" in t else None,
        deadline_s=_seconds(t["activeDeadlineSeconds"], f"{path}.activeDeadlineSeconds")
        if "activeDeadlineSeconds" in t
        else None,
    )
