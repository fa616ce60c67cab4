"""The content-addressed artifact store: trained models as skops files named by their sha256.

Place in the flow: the train step puts the fitted estimator here and returns its digest
("sha256:<hex>"), which the controller records as the version's artifact; evaluate, deploy and
the serving endpoint get it back by that digest. Layout: `<store>/sha256/<hex>.skops` plus
`<hex>.json` metadata. Never pickle: skops loads only types on an allow-list, and `get`
re-hashes the bytes, so what runs is exactly what was evaluated.
"""

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from workflows.steps.common import CheckFailed, short, utc_now, write_atomic, write_json_atomic

ARTIFACT_RE = re.compile(r"^sha256:([0-9a-f]{64})$")
# Types whose module starts with one of these may be loaded; anything else is refused.
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.")


class ArtifactMissing(Exception):
    """The status trail names an artifact this store does not hold: infrastructure, not the user's pin.

    Not a CheckFailed: the step's verdict is Errored (retried with backoff), never Failed. It happens
    when another controller, with a store of its own, built the artifact, or when the store lost it.
    """


def _hex(artifact: str) -> str:
    match = ARTIFACT_RE.match(artifact or "")
    if not match:
        raise CheckFailed(f"artifact {artifact!r} is not a digest of the form sha256:<64 hex>")
    return match.group(1)


def paths(store_dir: Path | str, artifact: str) -> tuple[Path, Path]:
    """(model file, metadata file) of an artifact."""
    hexdigest = _hex(artifact)
    base = Path(store_dir) / "sha256"
    return base / f"{hexdigest}.skops", base / f"{hexdigest}.json"


def exists(store_dir: Path | str, artifact: str) -> bool:
    return paths(store_dir, artifact)[0].is_file()


def put(store_dir: Path | str, estimator: Any, meta: dict[str, Any]) -> str:
    """Store a fitted estimator in skops format; "sha256:<hex>" of its bytes."""
    import skops.io

    data = skops.io.dumps(estimator)
    artifact = "sha256:" + hashlib.sha256(data).hexdigest()
    model_path, meta_path = paths(store_dir, artifact)
    if not model_path.is_file():
        write_atomic(model_path, data)
    classes = getattr(estimator, "classes_", None)
    record = {
        "artifact": artifact,
        "n_features": int(getattr(estimator, "n_features_in_", 0)),
        "classes": [c.item() if hasattr(c, "item") else c for c in classes] if classes is not None else [],
        "created": utc_now(),
        "format": "skops",
        "size": len(data),
        **meta,
    }
    if not meta_path.is_file():
        write_json_atomic(meta_path, record)
    return artifact


def read_bytes(store_dir: Path | str, artifact: str) -> bytes:
    """The artifact's bytes, after checking that they still hash to its name."""
    model_path, _ = paths(store_dir, artifact)
    if not model_path.is_file():
        raise ArtifactMissing(
            f"artifact {artifact} is not in the artifact store {store_dir}: the status trail names it, so another "
            "controller with its own store built it, or this store lost it (run one controller per release repo, "
            "or share its store)"
        )
    data = model_path.read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if got != _hex(artifact):
        raise CheckFailed(f"artifact {artifact}: stored bytes hash to sha256 {short(got)}; the store is corrupt")
    return data


def untrusted_types(data: bytes) -> tuple[list[str], list[str]]:
    """(types skops needs us to trust that the allow-list covers, types it does not cover)."""
    import skops.io

    needed = skops.io.get_untrusted_types(data=data)
    allowed = [t for t in needed if t.startswith(TRUSTED_PREFIXES)]
    refused = [t for t in needed if not t.startswith(TRUSTED_PREFIXES)]
    return allowed, refused


def get(store_dir: Path | str, artifact: str) -> Any:
    """The estimator stored under `artifact`, verified and loaded without pickle."""
    import skops.io

    data = read_bytes(store_dir, artifact)
    allowed, refused = untrusted_types(data)
    if refused:
        raise CheckFailed(f"artifact {artifact}: refusing to load types outside the allow-list: {', '.join(refused)}")
    return skops.io.loads(data, trusted=allowed)


def meta(store_dir: Path | str, artifact: str) -> dict[str, Any]:
    """The metadata written next to the artifact by `put`."""
    _, meta_path = paths(store_dir, artifact)
    if not meta_path.is_file():
        raise ArtifactMissing(f"artifact {artifact} has no metadata in the artifact store {store_dir}")
    value = json.loads(meta_path.read_text())
    if not isinstance(value, dict):
        raise ValueError(f"{meta_path}: metadata is not a JSON object")
    return value
