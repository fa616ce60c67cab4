"""`releasectl drift`: compare what an environment served with its live models' training data; propose a retraining.

Place in the flow: a person's or a scheduled job's command, beside the controller. For each model
live in `--env` it reads the serving endpoint's input sample (workflows/sampling.py, under the
home's serving folder), keeps the rows served in the window (`--since`), and compares them per
feature (controller/core/drift.py: PSI and KS) with the training split of the snapshot the live
version was trained on (status live.dataset_sha256; the pin's otherwise). When the pin's
`monitoring.drift` thresholds are crossed it opens a change and pushes it: a branch
`releasectl/drift/<model>-<yyyymmddHHMM>` off the remote's main whose one commit bumps the
FIRST environment's pin (policy order, e.g. dev) to the next minor version on a refreshed dataset
snapshot, with the evidence in the commit body. Nothing retrains until a person merges it.

The refreshed snapshot: `--dataset-sha256` when given (it must load); else, for a pin with a
`uri`, the sha256 of the file's bytes there now (a dataset refreshed in place); else the newest
snapshot (by modification time) of that dataset name in the home's data catalog. When that is the
snapshot already pinned, the commit says so (the person merging decides).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from controller.adapters.git import GitRepo
from controller.app.runtime import Home
from controller.core import drift
from controller.core.models import SEMVER_RE, ModelPin, duration_seconds
from controller.core.paths import ENV_ROOT, POLICY_PATH, pin_path, status_path
from controller.core.pins import parse_pin, parse_policy
from controller.core.schemas import dump_yaml, load_yaml
from controller.core.trail import parse_status
from controller.errors import ReleasectlError, UsageError

HEADER = "# yaml-language-server: $schema=https://releasectl.dev/schemas/v1/ModelPin.json\n"
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class DriftError(ReleasectlError):
    """The comparison could not be made (exit 3): an unreadable pin, status, sample or dataset."""


@dataclass
class ModelDrift:
    """One model's result: what was compared, the decision, and the branch opened (if any)."""

    model: str
    live_version: str | None
    note: str = ""
    decision: drift.Decision | None = None
    branch: str | None = None
    commit: str | None = None
    pin_change: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "live_version": self.live_version,
            "note": self.note,
            "decision": self.decision.as_dict() if self.decision else None,
            "branch": self.branch,
            "commit": self.commit,
            "pin_change": self.pin_change,
        }


def parse_since(text: str | None, now: datetime) -> datetime | None:
    """`--since`: a duration back from now (30m, 6h, 7d) or an ISO 8601 time (UTC when no zone)."""
    if text is None:
        return None
    if re.fullmatch(r"[0-9]+[smhd]", text):
        return datetime.fromtimestamp(now.timestamp() - duration_seconds(text), UTC)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--since {text!r}: not a duration (30m, 6h, 7d) or an ISO 8601 time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def next_minor(version: str) -> str:
    """1.2.3 -> 1.3.0 (new training data, same recipe: a minor change)."""
    match = SEMVER_RE.match(version)
    if not match:
        raise DriftError(f"version {version!r} is not semver")
    return f"{match.group(1)}.{int(match.group(2)) + 1}.0"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _pin(repo: GitRepo, head: str, environment: str, model: str) -> ModelPin:
    path = pin_path(environment, model)
    data = repo.read_file(head, path)
    if data is None:
        raise DriftError(f"{path} does not exist at {head[:12]}")
    parsed = parse_pin(path, data, model)
    if isinstance(parsed, list):
        raise DriftError("; ".join(p.line() for p in parsed))
    return parsed


def refreshed_snapshot(pin: ModelPin, data_dir: Path, given: str | None) -> str:
    """The snapshot the retraining is proposed on (see the module docstring)."""
    from workflows import datasets

    ds = pin.training.dataset
    if given is not None:
        if not SHA256_RE.match(given):
            raise UsageError(f"--dataset-sha256 {given!r}: not 64 lower-case hex digits")
        try:
            datasets.load_pinned(data_dir, ds.name, given, ds.uri or "", ds.format or "", ds.target or "")
        except Exception as exc:
            raise DriftError(f"--dataset-sha256 {given[:12]}…: {exc}") from None
        return given
    if ds.uri:
        return hashlib.sha256(datasets.fetch_uri(ds.uri)).hexdigest()
    snapshots = sorted((data_dir / ds.name).glob("*.csv"), key=lambda p: (p.stat().st_mtime_ns, p.stem))
    names = [p.stem for p in snapshots if SHA256_RE.match(p.stem)]
    return names[-1] if names else ds.sha256


def check(
    repo: GitRepo,
    home: Home,
    environment: str,
    *,
    model: str | None = None,
    since: str | None = None,
    dataset_sha256: str | None = None,
    now: datetime | None = None,
    open_branch: bool = True,
) -> list[ModelDrift]:
    """Compare, per model live in `environment`; open one branch per model that drifted."""
    now = now or datetime.now(UTC)
    start = parse_since(since, now)
    head = repo.fetch()
    policy = parse_policy(repo.read_file(head, POLICY_PATH))
    if isinstance(policy, list):
        raise DriftError("; ".join(p.line() for p in policy))
    if environment not in policy.order:
        raise UsageError(f"unknown environment {environment!r} (environments: {', '.join(policy.order)})")
    trail = repo.trail_head() or head
    folder = f"{ENV_ROOT}{environment}/"
    models = sorted(
        p[len(folder) : -len(".yaml")]
        for p in repo.ls_tree(head, (folder,))
        if p.endswith(".yaml") and "/" not in p[len(folder) :]
    )
    if model is not None:
        if model not in models:
            raise UsageError(f"{pin_path(environment, model)} does not exist at {head[:12]}")
        models = [model]
    return [
        _one(repo, home, head, trail, policy.order[0], environment, name, start, now, dataset_sha256, open_branch)
        for name in models
    ]


def _one(
    repo: GitRepo,
    home: Home,
    head: str,
    trail: str,
    first: str,
    environment: str,
    model: str,
    start: datetime | None,
    now: datetime,
    dataset_sha256: str | None,
    open_branch: bool,
) -> ModelDrift:
    from workflows import datasets, sampling, store

    pin = _pin(repo, head, environment, model)
    status = parse_status(repo.read_file(trail, status_path(environment, model)) or b"")
    live = status.live if status else None
    if live is None:
        return ModelDrift(model, None, note=f"nothing live in {environment}: nothing to compare")
    try:
        sample = sampling.read_sample(home.serving, environment, model)
    except (ValueError, OSError) as exc:
        raise DriftError(str(exc)) from None
    if sample is None:
        return ModelDrift(model, live.version, note=f"no input sample for {model} in {environment} yet")
    cutoff = start.timestamp() if start else float("-inf")
    rows = [r["x"] for r in sample["rows"] if isinstance(r, dict) and float(r.get("t", 0)) >= cutoff]
    ds = pin.training.dataset
    reference_sha = live.dataset_sha256 or ds.sha256
    try:
        data = datasets.load_pinned(home.data, ds.name, reference_sha, ds.uri or "", ds.format or "", ds.target or "")
        # the live artifact's own seed (its metadata), so the split is the one it was trained on
        info = store.meta(home.store, live.artifact) if store.has_meta(home.store, live.artifact) else {}
        X_train, _, _, _ = datasets.split(data, int(info.get("seed", pin.training.params.get("seed", 0))))
    except Exception as exc:
        raise DriftError(f"{model}: the training data {ds.name} {reference_sha[:12]}…: {exc}") from None
    current = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1) if rows else np.empty((0, X_train.shape[1]))
    try:
        decision = drift.compare(
            np.asarray(X_train, dtype=np.float64), current, data.feature_names, pin.monitoring.drift
        )
    except ValueError as exc:
        raise DriftError(f"{model}: {exc}") from None
    result = ModelDrift(model, live.version, decision=decision)
    times = [float(r["t"]) for r in sample["rows"] if isinstance(r, dict) and float(r.get("t", 0)) >= cutoff]
    window = f"{_iso(min(times))} .. {_iso(max(times))}" if times else "empty"
    window += f" (--since {_iso(start.timestamp())})" if start else " (the whole sample)"
    if not decision.enough:
        result.note = (
            f"{decision.samples} sampled rows in the window, fewer than min_samples {decision.thresholds.min_samples}"
        )
        return result
    if not decision.drifted:
        result.note = "no feature crossed the thresholds"
        return result
    if open_branch:
        described = f"{ds.name} sha256 {reference_sha} (training split of {model} {live.version}, {len(X_train)} rows)"
        body = drift.evidence(
            decision, environment=environment, window=window, served=int(sample.get("seen") or 0), reference=described
        )
        _propose(repo, home, head, first, environment, model, now, dataset_sha256, body, result)
    return result


def _propose(
    repo: GitRepo,
    home: Home,
    head: str,
    first: str,
    environment: str,
    model: str,
    now: datetime,
    dataset_sha256: str | None,
    evidence: str,
    result: ModelDrift,
) -> None:
    path = pin_path(first, model)
    dev = _pin(repo, head, first, model)
    new_sha = refreshed_snapshot(dev, home.data, dataset_sha256)
    version = next_minor(dev.version)
    doc = load_yaml(repo.read_file(head, path) or b"")
    if not isinstance(doc, dict):
        raise DriftError(f"{path} is not a mapping")
    doc["version"] = version
    doc["training"]["dataset"]["sha256"] = new_sha
    text = (HEADER + dump_yaml(doc)).encode()
    checked = parse_pin(path, text, model)
    if isinstance(checked, list):
        raise DriftError("; ".join(p.line() for p in checked))
    old_sha = dev.training.dataset.sha256
    result.pin_change = {"version": [dev.version, version], "training.dataset.sha256": [old_sha, new_sha]}
    unchanged = (
        f"\nThe dataset snapshot is unchanged (no newer snapshot of {dev.training.dataset.name} was found):\n"
        "register a refreshed one and amend this branch, or merge to retrain on the same data.\n"
        if new_sha == old_sha
        else ""
    )
    message = (
        f"drift({first}): retrain {model} {version} on {dev.training.dataset.name} {new_sha[:12]}\n\n"
        f"releasectl drift found that the inputs {environment} served differ from the training data\n"
        f"of {model} {result.live_version}. Nothing retrains until a person merges this change.\n\n"
        f"{evidence}\n\n"
        f"Pin change ({path}):\n"
        f"  version: {dev.version} -> {version}\n"
        f"  training.dataset.sha256: {old_sha} -> {new_sha}\n"
        f"{unchanged}"
    )
    name = f"releasectl/drift/{model}-{now.astimezone(UTC):%Y%m%d%H%M}"
    ref = f"refs/heads/{name}"
    if repo.ref_exists(ref):
        raise UsageError(f"branch {name} exists already (one drift proposal per model and minute)")
    sha = repo.commit_on(ref, head, {path: text}, message)
    repo.push_branch(name, sha)
    result.branch, result.commit = name, sha
