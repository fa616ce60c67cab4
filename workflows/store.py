"""The content-addressed artifact store: trained models as skops files named by their sha256.

Place in the flow: the train step puts the fitted estimator here and returns its digest
("sha256:<hex>"), which the controller records as the version's artifact; evaluate, deploy and
the serving endpoint (local, or the KServe predictor) get it back by that digest. Layout:
`<store>/sha256/<hex>.skops` plus `<hex>.json` metadata, in a folder or under an `s3://` prefix
(workflows/objects.py). Never pickle: skops loads only types on an allow-list, and `get`
re-hashes the bytes, so what runs is exactly what was evaluated. A missing artifact is
ArtifactMissing (infrastructure: the step ends Errored and is retried), never Failed.
"""

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from workflows.objects import Location, ObjectMissing, open_location
from workflows.steps.common import CheckFailed, short, utc_now

StoreLike = Path | str | Location

ARTIFACT_RE = re.compile(r"^sha256:([0-9a-f]{64})$")
# Types whose module starts with one of these may be loaded; anything else is refused.
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.")


class ArtifactMissing(LookupError):
    """The status trail names an artifact this store does not hold: infrastructure, not the user's pin.

    Not a CheckFailed: the step's verdict is Errored (retried with backoff), never Failed. It happens
    when another controller, with a store of its own, built the artifact, or when the store lost it.
    """


def _hex(artifact: str) -> str:
    match = ARTIFACT_RE.match(artifact or "")
    if not match:
        raise CheckFailed(f"artifact {artifact!r} is not a digest of the form sha256:<64 hex>")
    return match.group(1)


def keys(artifact: str) -> tuple[str, str]:
    """(model key, metadata key) of an artifact inside a store."""
    hexdigest = _hex(artifact)
    return f"sha256/{hexdigest}.skops", f"sha256/{hexdigest}.json"


def paths(store_dir: Path | str, artifact: str) -> tuple[Path, Path]:
    """(model file, metadata file) of an artifact in a local store."""
    model_key, meta_key = keys(artifact)
    return Path(store_dir) / model_key, Path(store_dir) / meta_key


def exists(store: StoreLike, artifact: str) -> bool:
    return open_location(store).exists(keys(artifact)[0])


def has_meta(store: StoreLike, artifact: str) -> bool:
    return open_location(store).exists(keys(artifact)[1])


def put(store: StoreLike, estimator: Any, meta: dict[str, Any]) -> str:
    """Store a fitted estimator in skops format; "sha256:<hex>" of its bytes.

    The bytes are canonical (workflows/provenance.py): the same fitted state has the same digest.
    """
    from workflows.provenance import canonical_dumps

    where = open_location(store)
    data = canonical_dumps(estimator)
    artifact = "sha256:" + hashlib.sha256(data).hexdigest()
    model_key, meta_key = keys(artifact)
    if not where.exists(model_key):
        where.put(model_key, data)
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
    if not where.exists(meta_key):
        where.put(meta_key, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return artifact


def read_bytes(store: StoreLike, artifact: str) -> bytes:
    """The artifact's bytes, after checking that they still hash to its name."""
    where = open_location(store)
    model_key, _ = keys(artifact)
    try:
        data = where.get(model_key)
    except ObjectMissing:
        raise ArtifactMissing(
            f"artifact {artifact} is not in the artifact store {where.uri}: the status trail names it, so another "
            "controller with its own store built it, or this store lost it (run one controller per release repo, "
            "or share its store)"
        ) from None
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


def get(store: StoreLike, artifact: str) -> Any:
    """The estimator stored under `artifact`, verified and loaded without pickle."""
    import skops.io

    data = read_bytes(store, artifact)
    allowed, refused = untrusted_types(data)
    if refused:
        raise CheckFailed(f"artifact {artifact}: refusing to load types outside the allow-list: {', '.join(refused)}")
    return skops.io.loads(data, trusted=allowed)


def meta(store: StoreLike, artifact: str) -> dict[str, Any]:
    """The metadata written next to the artifact by `put`."""
    where = open_location(store)
    _, meta_key = keys(artifact)
    try:
        value = json.loads(where.get(meta_key))
    except ObjectMissing:
        raise ArtifactMissing(f"artifact {artifact} has no metadata in the artifact store {where.uri}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{where.uri}/{meta_key}: metadata is not a JSON object")
    return value
