"""The status trail: status files and commit trailers <-> what the controller recorded.

Place in the flow: the reconciler reads recorded state from status/<env>/<model>.yaml at the
head (through the git adapter) with parse_status, and turns each Outcome into the next status
file and its commit message (subject, human body, machine trailers) with record(). Pure: the
clock arrives as an argument.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import yaml
from pydantic import ValidationError

from controller.core.models import (
    DEPLOYED_HISTORY,
    ActionKind,
    CanaryStepRef,
    DesiredRef,
    DriftRef,
    LiveRef,
    ModelStatus,
    Outcome,
    OutcomeEvidence,
    Phase,
    ProvenanceRef,
    ShadowRef,
)
from controller.core.schemas import load_yaml
from controller.core.yamlio import MAX_DOCUMENT_BYTES, TooLarge
from controller.errors import redact

TRAILER_PREFIX = "Releasectl-"
TRAILERS = (
    "Environment",
    "Model",
    "Version",
    "Phase",
    "Source-Commit",
    "Spec-Digest",
    "Workflow",
    "Artifact",
    "Reconciled",
)
# Status files are named .yaml and hold JSON, which is YAML; the first line says so to people and editors.
STATUS_HEADER = b"# ModelStatus, written by releasectl as JSON (valid YAML); do not edit: the controller rewrites it\n"
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9:._+@-]+$")
_TRAILER_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]*):\s*(.*)$")


def parse_status(data: bytes | TooLarge) -> ModelStatus | None:
    """A status file -> ModelStatus; None when it is not one (it is then treated as absent).

    The controller writes status files as JSON, which is YAML too: people, yq and editors read
    them as YAML, and the controller parses thousands of them at start-up ~40x faster than YAML.
    A file someone rewrote as block YAML still reads.
    """
    if isinstance(data, TooLarge) or len(data) > MAX_DOCUMENT_BYTES:
        return None
    if data.startswith(STATUS_HEADER):
        data = data[len(STATUS_HEADER) :]
    try:
        if data.lstrip()[:1] == b"{":
            return ModelStatus.model_validate_json(data)
        doc = load_yaml(data)
        return ModelStatus.model_validate(doc) if isinstance(doc, dict) else None
    except (ValidationError, ValueError, yaml.YAMLError):
        return None


def render_status(status: ModelStatus) -> bytes:
    """A YAML comment that says what the file is, then indented JSON (YAML's flow style)."""
    body = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    return STATUS_HEADER + (json.dumps(body, indent=2, ensure_ascii=False) + "\n").encode()


def next_status(outcome: Outcome, previous: ModelStatus | None, now: datetime) -> ModelStatus:
    """The status file after an outcome: `live` moves only on a successful deploy."""
    action = outcome.action
    live = previous.live if previous else None
    deployed = list(previous.deployed) if previous else []
    if outcome.phase is Phase.DEPLOYED and action.spec_digest and outcome.artifact:
        same = live is not None and live.spec_digest == action.spec_digest and live.artifact == outcome.artifact
        finished = outcome.workflow.finished if outcome.workflow and outcome.workflow.finished else now
        live = (
            live
            if same and live is not None
            else LiveRef(
                version=action.version,
                spec_digest=action.spec_digest,
                artifact=outcome.artifact,
                since=finished,
                dataset_sha256=action.pin.training.dataset.sha256 if action.pin else None,
            )
        )
        left = previous.live if previous else None
        if action.kind is ActionKind.ROLLBACK and left is not None and left.spec_digest != live.spec_digest:
            # a rollback moved away from `left`: returning to it later needs the whole policy again
            deployed = [
                d.model_copy(update={"rolled_back_at": finished}) if d.spec_digest == left.spec_digest else d
                for d in deployed
            ]
        deployed = [live] + [d for d in deployed if d.spec_digest != live.spec_digest]
    elif outcome.phase is Phase.REMOVED:
        live = None
    attempts = 0
    if outcome.phase is Phase.ERRORED:
        same_change = previous is not None and previous.desired.source_commit == action.source_commit
        attempts = (previous.attempts if previous and same_change else 0) + 1
    return ModelStatus(
        model=action.model,
        environment=action.environment,
        phase=outcome.phase,
        reason=redact(outcome.reason),
        desired=DesiredRef(version=action.version, spec_digest=action.spec_digest, source_commit=action.source_commit),
        live=live,
        artifact=outcome.artifact or (previous.artifact if previous and outcome.phase is Phase.BLOCKED else None),
        workflow=outcome.workflow,
        metrics=dict(outcome.metrics),
        gates=list(outcome.gates),
        attempts=attempts,
        deployed=deployed[:DEPLOYED_HISTORY],
        evidence=outcome.evidence or build_evidence(outcome),
    )


def build_evidence(
    outcome: Outcome,
    *,
    policy_digest: str | None = None,
    merged_at: datetime | None = None,
    upstream_commit: str | None = None,
) -> OutcomeEvidence:
    """What an auditor needs from an outcome: approvals, policy, upstream, data, drift, canary, timing.

    Only digests, identities, commits, figures and times: nothing from the controller's own disk
    (the step reports' other fields are dropped here).
    """
    action = outcome.action
    validate = outcome.details.get("validate-data") or {}
    deploy = outcome.details.get("deploy") or {}
    drift = None
    if isinstance(validate, dict) and validate.get("reference"):
        drift = DriftRef(
            psi_max=validate.get("psi_max"), feature=validate.get("psi_feature"), reference=validate.get("reference")
        )
    steps = deploy.get("steps") if isinstance(deploy, dict) else None
    canary = [
        CanaryStepRef(**{k: s[k] for k in CanaryStepRef.model_fields if k in s})
        for s in (steps if isinstance(steps, list) else [])
        if isinstance(s, dict) and "weight" in s and "requests" in s
    ]
    provenance = _provenance(outcome.details.get("train"))
    figures = deploy.get("shadow") if isinstance(deploy, dict) else None
    shadow = (
        ShadowRef(**{k: figures[k] for k in ShadowRef.model_fields if k in figures})
        if isinstance(figures, dict) and isinstance(figures.get("requests"), int)
        else None
    )
    upstream = action.upstream
    if upstream is not None and upstream_commit is not None:
        upstream = upstream.model_copy(update={"outcome_commit": upstream_commit})
    finished = outcome.workflow.finished if outcome.workflow else None
    lead = (finished - merged_at).total_seconds() if finished and merged_at else None
    return OutcomeEvidence(
        action=action.kind.value,
        adopted=action.adopted,
        approvals=list(action.approvals),
        policy_digest=policy_digest,
        upstream=upstream,
        dataset_sha256=action.pin.training.dataset.sha256 if action.pin else None,
        drift=drift,
        canary=canary,
        shadow=shadow,
        merged_at=merged_at,
        lead_time_s=lead,
        provenance=provenance,
    )


def _provenance(report: object) -> ProvenanceRef | None:
    """The train step's digests of its dependencies, code and data (workflows/provenance.py)."""
    found = report.get("provenance") if isinstance(report, dict) else None
    if not isinstance(found, dict):
        return None
    try:
        return ProvenanceRef.model_validate(found)
    except ValidationError:
        return None


@dataclass(frozen=True)
class Message:
    subject: str
    body: str
    trailers: tuple[tuple[str, str], ...]

    def text(self) -> str:
        trailer_block = "\n".join(f"{TRAILER_PREFIX}{k}: {v}" for k, v in self.trailers)
        return f"{self.subject}\n\n{self.body.rstrip()}\n\n{trailer_block}\n"


def _safe(value: str) -> str:
    """Trailer values are single tokens; anything else is a bug upstream, not something to write."""
    if not _SAFE_VALUE.match(value):
        raise ValueError(f"refusing to write trailer value {value!r}")
    return value


def message(outcome: Outcome, status: ModelStatus, reconciled: str, adopting: str | None = None) -> Message:
    """The status commit's message. `reconciled` is the controller's watermark: every pin change in
    commits up to it has its outcome in the trail by this commit (or is superseded in the range after
    it), so a restarted controller diffs from there."""
    action = outcome.action
    version = action.version if _SAFE_VALUE.match(action.version) else "unknown"
    subject = f"status({action.environment}): {action.model} {version} {outcome.phase.value}"
    trailers: list[tuple[str, str]] = [
        ("Environment", action.environment),
        ("Model", action.model),
        ("Version", version),
        ("Phase", outcome.phase.value),
        ("Source-Commit", action.source_commit),
    ]
    if action.spec_digest:
        trailers.append(("Spec-Digest", action.spec_digest))
    trailers.append(("Workflow", outcome.workflow.name if outcome.workflow else action.workflow_name))
    if outcome.artifact:
        trailers.append(("Artifact", outcome.artifact))
    trailers.append(("Reconciled", reconciled))
    if adopting:  # adoption is not complete yet: a restarted controller goes on adopting
        trailers.append(("Adopting", adopting))
    return Message(subject, summary(outcome, status), tuple((k, _safe(v)) for k, v in trailers))


def summary(outcome: Outcome, status: ModelStatus) -> str:
    """The human part of a status commit: what happened, the gates with values, why."""
    a = outcome.action
    lines: list[str] = []
    verb = {
        Phase.DEPLOYED: f"Deployed {a.model} {a.version} to {a.environment}",
        Phase.BLOCKED: f"Blocked {a.model} {a.version} in {a.environment}",
        Phase.REJECTED: f"Rejected the pin of {a.model} in {a.environment}",
        Phase.FAILED: f"{a.model} {a.version} failed in {a.environment}; nothing was deployed",
        Phase.ERRORED: f"{a.model} {a.version} errored in {a.environment} (attempt {status.attempts}); will retry",
        Phase.SUPERSEDED: f"{a.model} {a.version} in {a.environment} was superseded before it ran",
        Phase.REMOVED: f"Removed {a.model} from {a.environment}",
    }[outcome.phase]
    lines.append(verb + ".")
    if a.adopted:
        lines.append("Adopted: the first pass over this repository deploys every valid pin as it stands.")
    if outcome.phase is Phase.DEPLOYED:
        how = (
            "rolled back to a version this environment ran before, without training"
            if (a.kind.value == "rollback")
            else ("trained" if a.trains else "reused the artifact built for this spec")
        )
        lines.append(f"How: {how}; artifact {outcome.artifact}.")
    if outcome.reason:
        lines.append(f"Reason: {redact(outcome.reason)}")
    for gate in outcome.gates:
        value = "n/a" if gate.value is None else f"{gate.value:.4g}"
        verdict = "passed" if gate.passed else "FAILED"
        where = f" [{gate.slice}]" if gate.slice else ""
        lines.append(f"  {gate.kind} {gate.metric}{where}: {value} {gate.op} {gate.threshold:g} {verdict}")
    if status.live is not None and outcome.phase is not Phase.DEPLOYED:
        lines.append(f"Live: {status.live.version} ({status.live.artifact}) keeps serving.")
    lines.append(f"Pin changed by {a.source_commit}.")
    return "\n".join(lines)


def parse_trailers(text: str) -> dict[str, str]:
    """The Releasectl-* trailers of a commit message (last paragraph), without the prefix."""
    paragraphs = [p for p in text.strip().split("\n\n") if p.strip()]
    if not paragraphs:
        return {}
    found: dict[str, str] = {}
    for line in paragraphs[-1].splitlines():
        match = _TRAILER_LINE.match(line.strip())
        if match and match.group(1).startswith(TRAILER_PREFIX):
            found[match.group(1)[len(TRAILER_PREFIX) :]] = match.group(2).strip()
    return found


def artifacts_by_digest(statuses: Iterable[ModelStatus]) -> dict[str, str]:
    """Build once, promote the same artifact: spec digest -> an artifact built for it, from the trail."""
    index: dict[str, str] = {}
    for status in statuses:
        for ref in status.deployed:
            index.setdefault(ref.spec_digest, ref.artifact)
        if status.live is not None:
            index.setdefault(status.live.spec_digest, status.live.artifact)
        if status.artifact and status.desired.spec_digest:
            index.setdefault(status.desired.spec_digest, status.artifact)
    return index
