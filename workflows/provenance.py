"""Reproducibility: what a training depended on, and skops bytes that depend on nothing else.

Place in the flow: the train step (workflows/steps/train.py) serializes the fitted estimator
with `canonical_dumps` and writes `record(...)` into the artifact's metadata (workflows/store.py,
`<hex>.json`); the controller copies the digests into the trail (evidence on the Deployed
outcome); `releasectl reproduce` (controller/app/reproduce.py) retrains with `fit` and compares
with `differences`.

Three inputs, each a digest (and the parts that let a mismatch name its cause):
- dependencies: every installed distribution visible on sys.path, `name==version` with the name
  canonicalized (PEP 503), sorted, the first one on sys.path winning as it does for imports;
- code: the source of the recipe's build function and of its module, and of the step code that
  decides the bytes (train step, datasets' split, recipes, this module, the store), plus the
  releasectl version;
- data: the dataset's sha256 (the pin already names it; the step checked the bytes against it).

skops is not deterministic by itself: its zip carries the write time, names array files by the
id() of the array and byte files by a random uuid, and records id()s as `__id__` in schema.json.
`canonical` rewrites the archive: ids renumbered in order of first appearance in schema.json
(the same id keeps the same number, so shared references load as before), files renamed to
match, entries sorted with a fixed 1980-01-01 time. The result loads with skops as before.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import re
import sys
import zipfile
from collections.abc import Iterable
from importlib import metadata
from typing import Any, NamedTuple

SCHEMA = "schema.json"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_NAME_RE = re.compile(r"[-_.]+")
# The step code whose change can change an artifact's bytes for the same recipe, data and params.
STEP_MODULES = ("workflows.steps.train", "workflows.datasets", "workflows.recipes", "workflows.provenance")


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# Deterministic skops bytes


def canonical(data: bytes) -> bytes:
    """The same skops archive with ids, file names, order and times made deterministic."""
    with zipfile.ZipFile(io.BytesIO(data)) as src:
        files = {name: src.read(name) for name in src.namelist()}
    state = json.loads(files.pop(SCHEMA))
    ids: dict[int, int] = {}
    names: dict[str, str] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "__id__" and isinstance(value, int) and not isinstance(value, bool):
                out[key] = ids.setdefault(value, len(ids) + 1)
            elif key == "file" and isinstance(value, str) and value in files:
                suffix = value.rsplit(".", 1)[-1] if "." in value else "bin"
                out[key] = names.setdefault(value, f"{len(names) + 1}.{suffix}")
            else:
                out[key] = walk(value)
        return out

    state = walk(state)
    unreferenced = sorted(set(files) - set(names))
    if unreferenced:  # a skops version that stores files we do not know how to reference: keep them
        for name in unreferenced:
            names[name] = name
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as dst:
        entries = {names[old]: content for old, content in files.items()}
        entries[SCHEMA] = json.dumps(state, indent=2).encode()
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            dst.writestr(info, entries[name])
    return out.getvalue()


def canonical_dumps(estimator: Any) -> bytes:
    """skops bytes of a fitted estimator, the same for the same fitted state."""
    import skops.io

    return canonical(skops.io.dumps(estimator))


# ---------------------------------------------------------------------------------------------
# The inputs of a training


def canonical_name(name: str) -> str:
    return _NAME_RE.sub("-", name).lower()


def dependencies(paths: Iterable[str] | None = None) -> list[str]:
    """`name==version` of every distribution on sys.path (or `paths`), sorted; first on the path wins."""
    found: dict[str, str] = {}
    for dist in metadata.distributions(path=list(paths) if paths is not None else list(sys.path)):
        name = dist.name  # None for a broken dist-info without metadata
        if not name:
            continue
        found.setdefault(canonical_name(str(name)), str(dist.version))
    return sorted(f"{name}=={version}" for name, version in found.items())


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):  # no source on disk (a frozen or compiled recipe): its qualified name
        return f"<no source: {getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}>"


def code_parts(build: Any) -> dict[str, str]:
    """Digest of the recipe's build function, of its module, and of the step code; the releasectl version."""
    module = sys.modules.get(getattr(build, "__module__", "") or "")
    steps = "".join(_source(sys.modules[name]) for name in STEP_MODULES if name in sys.modules)
    try:
        version = metadata.version("releasectl")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {
        "recipe_function": _sha(_source(build).encode()),
        "recipe_module": _sha(_source(module).encode()) if module is not None else "none",
        "steps": _sha(steps.encode()),
        "releasectl": version,
    }


def record(build: Any, data_sha256: str) -> dict[str, Any]:
    """The `provenance` block of an artifact's metadata (params are recorded next to it already)."""
    import workflows.datasets
    import workflows.recipes
    import workflows.steps.train  # noqa: F401  (their sources are part of the code digest)

    deps = dependencies()
    code = code_parts(build)
    return {
        "dependencies": deps,
        "dependencies_digest": _sha("\n".join(deps).encode()),
        "code": code,
        "code_digest": _sha(json.dumps(code, sort_keys=True).encode()),
        "data_digest": "sha256:" + data_sha256.removeprefix("sha256:"),
    }


class Fitted(NamedTuple):
    estimator: Any
    data: bytes  # canonical skops bytes
    provenance: dict[str, Any]
    seconds: float
    rows: int


def fit(recipe: str, settings: dict[str, Any], data: Any) -> Fitted:
    """Build and fit the recipe on the training split (the one evaluate holds out the other side of)."""
    import time

    from workflows import datasets, recipes
    from workflows.steps.common import CheckFailed

    estimator = recipes.build(recipe, settings)
    X_train, _, y_train, _ = datasets.split(data, int(settings["seed"]))
    started = time.perf_counter()
    try:
        estimator.fit(X_train, y_train)
    except ValueError as exc:  # scikit-learn checks parameter values at fit: a value the pin gave is the user's
        if type(exc).__name__ != "InvalidParameterError":
            raise
        raise CheckFailed(f"recipe {recipe}: {' '.join(str(exc).split())}") from None
    elapsed = time.perf_counter() - started
    inputs = record(recipes.registry()[recipe].build, data.sha256)
    return Fitted(estimator, canonical_dumps(estimator), inputs, elapsed, int(X_train.shape[0]))


# ---------------------------------------------------------------------------------------------
# What differs between two trainings


def _versions(deps: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in deps:
        name, _, version = str(item).partition("==")
        out[name] = version
    return out


def differences(recorded: dict[str, Any], now: dict[str, Any]) -> list[dict[str, str]]:
    """Each input that differs: {"input", "name", "recorded", "now"}; empty when all match.

    `recorded` and `now` are artifact metadata (params next to a `provenance` block). A recorded
    artifact without provenance (trained before it existed) differs in `provenance` itself.
    """
    found: list[dict[str, str]] = []
    if recorded.get("params") != now.get("params"):
        found.append({"input": "params", "name": "params", "recorded": _j(recorded.get("params")),
                      "now": _j(now.get("params"))})  # fmt: skip
    old, new = recorded.get("provenance"), now.get("provenance") or {}
    if not isinstance(old, dict):
        found.append({"input": "provenance", "name": "provenance", "recorded": "not recorded", "now": "recorded"})
        return found
    if old.get("data_digest") != new.get("data_digest"):
        found.append(
            {
                "input": "data",
                "name": "dataset",
                "recorded": str(old.get("data_digest")),
                "now": str(new.get("data_digest")),
            }
        )
    if old.get("code_digest") != new.get("code_digest"):
        parts_old, parts_new = old.get("code") or {}, new.get("code") or {}
        changed = sorted(k for k in set(parts_old) | set(parts_new) if parts_old.get(k) != parts_new.get(k))
        for key in changed or ["code"]:
            found.append({"input": "code", "name": key, "recorded": str(parts_old.get(key, "absent")),
                          "now": str(parts_new.get(key, "absent"))})  # fmt: skip
    if old.get("dependencies_digest") != new.get("dependencies_digest"):
        was, is_ = _versions(old.get("dependencies") or []), _versions(new.get("dependencies") or [])
        for name in sorted(set(was) | set(is_)):
            if was.get(name) != is_.get(name):
                found.append({"input": "dependency", "name": name, "recorded": was.get(name, "not installed"),
                              "now": is_.get(name, "not installed")})  # fmt: skip
    return found


def _j(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
