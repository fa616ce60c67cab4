"""`releasectl reproduce MODEL --env ENV`: retrain the live version and compare with what is running.

Place in the flow: a user command beside `audit`, reading the release repo and the artifact store,
writing neither. From the status trail at the head it takes the environment's live version
(artifact and spec digest) and the status commit that made it live, whose `desired.source_commit`
is the change that set the pin; the pin is read from that commit's tree (not the head's, which
may have moved on), so what is retrained is what was trained. The artifact's metadata in the
store (workflows/store.py's `<hex>.json`) holds the recorded inputs (params, and the provenance
block of workflows/provenance.py: dependencies, code and data digests).

The retrain runs in this process, in a temporary folder (the dataset snapshot is copied there
from the home's catalog, or fetched from the pin's URI, and checked against its sha256); nothing
is written to the repo, the store or the catalog. The verdict: `match` when the retrained bytes
have the live artifact's digest and every recorded input is the same now; otherwise `mismatch`
with each input that differs (a dependency with both versions, a code part, the data digest,
the params). Exit 0 on a match, 1 on a mismatch.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

from controller.core.models import ModelPin, Phase
from controller.core.paths import pin_path, status_path
from controller.core.pins import parse_document
from controller.core.trail import parse_status
from controller.errors import PermanentError, ReleasectlError, UsageError


class StoreProblem(ReleasectlError):
    """The store does not hold the live artifact or its metadata: infrastructure (exit 3)."""


def live_source(repo: Any, model: str, environment: str, rev: str = "HEAD") -> tuple[dict[str, str], ModelPin]:
    """The live version's facts and its pin as of the change that made it live."""
    head = repo.trail_head() or repo.rev(rev)  # with --status-branch, the trail is on its own branch
    path = status_path(environment, model)
    status = parse_status(repo.read_file(head, path) or b"")
    if status is None or status.live is None:
        raise UsageError(f"{path}: nothing is live for {model} in {environment} at {head[:12]}")
    live = status.live
    source = None
    for record in reversed(repo.log(head, [path])):  # newest first: the outcome that made it live
        then = parse_status(repo.read_file(record.sha, path) or b"")
        if then is None or then.phase is not Phase.DEPLOYED or then.live is None:
            continue
        if then.live.artifact == live.artifact and then.desired.spec_digest == live.spec_digest:
            source = then.desired.source_commit
            break
    if source is None:
        raise PermanentError(f"{path}: no Deployed outcome in the trail made {live.artifact} live")
    data = repo.read_file(source, pin_path(environment, model))
    parsed = parse_document(pin_path(environment, model), data) if data is not None else None
    if not isinstance(parsed, ModelPin):
        raise PermanentError(f"{pin_path(environment, model)} at {source[:12]}: not a valid pin")
    if parsed.spec_digest() != live.spec_digest:
        raise PermanentError(
            f"{pin_path(environment, model)} at {source[:12]}: spec digest {parsed.spec_digest()} is not the live "
            f"{live.spec_digest}"
        )
    facts = {"version": live.version, "artifact": live.artifact, "spec_digest": live.spec_digest, "source": source}
    return facts, parsed


def retrain(pin: ModelPin, catalog: Path | None) -> tuple[str, dict[str, Any]]:
    """(artifact digest, metadata) of the pin's training, done again in a temporary folder."""
    from workflows import datasets, provenance

    ref = pin.training.dataset
    with tempfile.TemporaryDirectory(prefix="releasectl-reproduce-") as tmp:
        scratch = Path(tmp) / "data"
        scratch.mkdir()
        if catalog is not None and (catalog / ref.name).is_dir():
            shutil.copytree(catalog / ref.name, scratch / ref.name)
        data = datasets.load_pinned(
            scratch.as_uri(), ref.name, ref.sha256, ref.uri or "", ref.format or "", ref.target or ""
        )
        settings = dict(pin.training.params)
        fitted = provenance.fit(pin.training.recipe, settings, data)
    digest = "sha256:" + hashlib.sha256(fitted.data).hexdigest()
    return digest, {"params": settings, "provenance": fitted.provenance}


def reproduce(repo: Any, model: str, environment: str, store: Any, catalog: Path | None) -> dict[str, Any]:
    """The report `releasectl reproduce` prints; `match` says whether everything is the same."""
    from workflows import provenance
    from workflows import store as artifacts
    from workflows.steps.common import CheckFailed

    facts, pin = live_source(repo, model, environment)
    try:
        recorded = artifacts.meta(store, facts["artifact"])
    except artifacts.ArtifactMissing as exc:
        raise StoreProblem(str(exc)) from None
    try:
        artifact, now = retrain(pin, catalog)
    except CheckFailed as exc:
        raise PermanentError(f"retraining {model} {facts['version']}: {exc}") from None
    differs = provenance.differences(recorded, now)
    same = artifact == facts["artifact"]
    return {
        "model": model,
        "environment": environment,
        "version": facts["version"],
        "source_commit": facts["source"],
        "recipe": pin.training.recipe,
        "artifact": facts["artifact"],
        "retrained": artifact,
        "artifact_matches": same,
        "match": same and not differs,
        "differences": differs,
    }


def table(report: dict[str, Any]) -> str:
    """For people: the verdict, the two digests, and one line per input that differs."""
    lines = [
        f"{report['model']} {report['version']} in {report['environment']} (pin of {report['source_commit'][:12]}, "
        f"recipe {report['recipe']})",
        f"  live artifact   {report['artifact']}",
        f"  retrained       {report['retrained']}  {'same' if report['artifact_matches'] else 'DIFFERENT'}",
    ]
    differs = report["differences"]
    if differs:
        width = max(len(d["name"]) for d in differs)
        lines.append("  inputs that differ (recorded -> now):")
        for d in differs:
            lines.append(f"    {d['input']:<10} {d['name']:<{width}}  {d['recorded']} -> {d['now']}")
    else:
        lines.append("  inputs: dependencies, code, data and params as recorded")
    lines.append("match: reproducible" if report["match"] else "MISMATCH: not reproduced as recorded")
    return "\n".join(lines)
