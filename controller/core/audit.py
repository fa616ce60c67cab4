"""The audit: the first-parent history of a release repo -> every change, outcome and break. Pure.

Place in the flow: controller/app/audit.py reads the history with the git adapter (first-parent
commits with their pin and status changes, ssh signature verdicts, approval commits, the policy
in force at each commit) into an AuditInput; `fold` turns it into an AuditReport per environment
and model (who authored and merged each change, the approvals that counted, gates with values
and thresholds, workflow, artifact, upstream evidence, times to deploy and restore, and the
summary figures), and with `verify` the breaks in the chain, one per rule and commit.
audit_render.py prints it as Markdown or one self-contained HTML page.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controller.core.approvals import Approval, count_approvals
from controller.core.audit_report import (
    AuditReport,
    Break,
    ChangeRow,
    EnvironmentReport,
    ModelReport,
    OutcomeRow,
    Summary,
    schema_text,
)
from controller.core.models import ModelStatus, Phase, PromotionPolicy
from controller.core.trail import parse_trailers

__all__ = ["AuditInput", "AuditReport", "ChangeRow", "OutcomeRow", "SignedCommit", "fold", "schema_text"]

Key = tuple[str, str]


@dataclass(frozen=True)
class SignedCommit:
    """A commit with its signature verdict, as `git log` with allowed signers reports it."""

    sha: str
    parents: tuple[str, ...]
    author_email: str
    author_name: str
    committer_email: str
    committed_at: datetime
    message: str
    signed: bool = False  # carries a signature at all
    signer: str | None = None  # the principal allowed_signers maps the verifying key to (good signatures only)
    key: str | None = None  # the verifying key's fingerprint


@dataclass(frozen=True)
class PinChange:
    environment: str
    model: str
    kind: str  # change | revert | delete
    version: str
    spec_digest: str | None


@dataclass(frozen=True)
class StatusChange:
    environment: str
    model: str
    status: ModelStatus | None  # None: deleted, or not a status file


@dataclass(frozen=True)
class TrailCommit:
    """One first-parent commit that touched pins or statuses, with what the audit needs about it."""

    commit: SignedCommit
    pins: tuple[PinChange, ...] = ()
    statuses: tuple[StatusChange, ...] = ()
    authors: tuple[str, ...] = ()  # of the change: a merge's include the commits it brought in
    policy: PromotionPolicy | None = None  # in force at this commit
    controller_signs: bool = False  # environments/allowed_signers names the controller at this commit


@dataclass(frozen=True)
class AuditInput:
    head: str
    order: tuple[str, ...]
    commits: tuple[TrailCommit, ...]  # first-parent, oldest first
    approvals: tuple[Approval, ...] = ()  # every approval commit in the history
    approval_position: Mapping[str, int] = field(default_factory=dict)  # approval -> first-parent index it joined
    position: Mapping[str, int] = field(default_factory=dict)  # first-parent sha -> index on the whole line
    controller: str = "releasectl@noreply.invalid"


# -- the fold -------------------------------------------------------------------------------------------


@dataclass
class _Pin:
    row: dict[str, Any]
    position: int


@dataclass
class _State:
    changes: dict[Key, dict[str, _Pin]] = field(default_factory=dict)  # key -> source sha -> change
    deployed: dict[Key, list[tuple[int, str, str]]] = field(default_factory=dict)  # (position, digest, commit)
    live_change: dict[Key, _Pin] = field(default_factory=dict)  # the change whose version is live
    failed: set[str] = field(default_factory=set)  # changes that failed or were rolled back from
    breaks: list[Break] = field(default_factory=list)
    unapproved: list[tuple[Break, _Pin, bool]] = field(default_factory=list)  # (break, change, rollbacks need it)


def fold(
    data: AuditInput,
    *,
    environment: str | None = None,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    verify: bool = False,
) -> AuditReport:
    state = _State()
    adopted_until = next((i for i, c in enumerate(data.commits) if c.statuses), len(data.commits))
    by_source: dict[str, list[Approval]] = {}
    for approval in data.approvals:
        by_source.setdefault(approval.source_commit, []).append(approval)
    for position, trail in enumerate(data.commits):
        for pin in trail.pins:
            _pin_change(state, data, trail, pin, position, position < adopted_until, by_source)
        for change in trail.statuses:
            _status_change(state, data, trail, change, position, by_source)
    if verify:
        _live_without_outcome(state, data)
        # a change that turned out to be a rollback needs no approval (unless the policy says so)
        state.breaks += [b for b, pin, strict in state.unapproved if strict or not pin.row.get("rollback")]

    def wanted(key: Key, row: dict[str, Any]) -> bool:
        at: datetime = row["at"]
        return (
            (environment is None or key[0] == environment)
            and (model is None or key[1] == model)
            and (since is None or at >= since)
            and (until is None or at <= until)
        )

    envs: list[EnvironmentReport] = []
    picked: list[dict[str, Any]] = []
    for env in data.order:
        models = []
        for name in sorted({m for e, m in state.changes if e == env}):
            rows = [p.row for p in state.changes[(env, name)].values() if wanted((env, name), p.row)]
            if rows:
                picked += rows
                models.append(ModelReport(model=name, changes=[ChangeRow.model_validate(r) for r in rows]))
        if models:
            envs.append(EnvironmentReport(environment=env, models=models))
    return AuditReport(
        head=data.head,
        since=since,
        until=until,
        summary=_summary(picked, state),
        environments=envs,
        breaks=sorted(state.breaks, key=lambda b: (data.position.get(b.commit, -1), b.rule)) if verify else None,
    )


def _pin_change(
    state: _State,
    data: AuditInput,
    trail: TrailCommit,
    pin: PinChange,
    position: int,
    adopted: bool,
    by_source: Mapping[str, list[Approval]],
) -> None:
    c = trail.commit
    key = (pin.environment, pin.model)
    authors = list(trail.authors or (c.author_email,))
    row: dict[str, Any] = {
        "commit": c.sha,
        "kind": pin.kind,
        "version": pin.version,
        "spec_digest": pin.spec_digest,
        "authors": authors,
        "merger": c.committer_email,
        "at": c.committed_at,
        "subject": c.message.split("\n", 1)[0],
        "outcomes": [],
    }
    state.changes.setdefault(key, {})[c.sha] = _Pin(row, position)
    policy = trail.policy
    if adopted or pin.kind == "delete" or policy is None:
        return
    rule = policy.for_env(pin.environment)
    if rule.approvals.min == 0:
        return
    counted, _ = count_approvals(rule, pin.environment, pin.model, c.sha, authors, by_source.get(c.sha, ()))
    if len(counted) < rule.approvals.min:
        found = Break(
            commit=c.sha,
            rule="pin-without-approvals",
            message=(
                f"{pin.environment}/{pin.model} {pin.version} was pushed to {pin.environment}'s pin without the "
                f"approvals {pin.environment} requires ({len(counted)} of {rule.approvals.min} that count)"
            ),
        )
        state.unapproved.append((found, state.changes[key][c.sha], policy.rollback_requires_approval))


def _status_change(
    state: _State,
    data: AuditInput,
    trail: TrailCommit,
    change: StatusChange,
    position: int,
    by_source: Mapping[str, list[Approval]],
) -> None:
    c = trail.commit
    key = (change.environment, change.model)
    path = f"status/{change.environment}/{change.model}.yaml"
    if c.author_email.lower() != data.controller.lower():
        state.breaks.append(
            Break(
                commit=c.sha,
                rule="status-by-someone-else",
                message=f"{path} was changed by {c.author_email}, not by the controller ({data.controller})",
            )
        )
        return
    if trail.controller_signs and (c.signer or "").lower() != data.controller.lower():
        how = "is not signed" if not c.signed else f"is signed by {c.signer or 'a key allowed_signers does not list'}"
        state.breaks.append(
            Break(
                commit=c.sha,
                rule="status-not-signed",
                message=f"status commit for {path} {how}, not by the controller's key ({data.controller})",
            )
        )
    trailers = parse_trailers(c.message)
    status = change.status
    if status is None or not trailers.get("Phase"):
        return
    source = trailers.get("Source-Commit", "")
    digest = trailers.get("Spec-Digest")
    ev = status.evidence
    outcome = {
        "commit": c.sha,
        "phase": trailers["Phase"],
        "at": c.committed_at,
        "reason": status.reason,
        "action": ev.action if ev else None,
        "adopted": bool(ev and ev.adopted),
        "workflow": trailers.get("Workflow"),
        "artifact": trailers.get("Artifact"),
        "gates": [g.model_dump() for g in status.gates],
        "metrics": dict(status.metrics),
        "approvals": [a.model_dump() for a in ev.approvals] if ev else [],
        "upstream_environment": ev.upstream.environment if ev and ev.upstream else None,
        "upstream_commit": ev.upstream.outcome_commit if ev and ev.upstream else None,
        "policy_digest": ev.policy_digest if ev else None,
        "dataset_sha256": ev.dataset_sha256 if ev else None,
        "drift_psi_max": ev.drift.psi_max if ev and ev.drift else None,
        "canary_steps": [s.weight for s in ev.canary] if ev else [],
        "lead_time_s": ev.lead_time_s if ev else None,
        "signed_by": c.signer,
        "provenance": ev.provenance.model_dump() if ev and ev.provenance else None,
    }
    pin = state.changes.get(key, {}).get(source)
    if pin is None:
        pin = _Pin(
            {
                "commit": source or c.sha,
                "kind": "unknown",
                "version": trailers.get("Version", "unknown"),
                "spec_digest": digest,
                "authors": [],
                "merger": "",
                "at": c.committed_at,
                "subject": "(no pin change in the first-parent history)",
                "outcomes": [],
            },
            position,
        )
        state.changes.setdefault(key, {})[source or c.sha] = pin
    pin.row["outcomes"].append(outcome)
    pin.row["final_phase"] = outcome["phase"]
    if outcome["phase"] == Phase.FAILED.value:
        state.failed.add(pin.row["commit"])
    if outcome["phase"] != Phase.DEPLOYED.value:
        return
    rollback = outcome["action"] == "rollback"
    lead = (c.committed_at - pin.row["at"]).total_seconds() if pin.row["kind"] != "unknown" else None
    if pin.row.get("time_to_deploy_s") is None:
        pin.row["time_to_deploy_s"] = lead
    if rollback:
        pin.row["rollback"] = True
        pin.row["time_to_restore_s"] = lead
        left = state.live_change.get(key)
        if left is not None and left is not pin:
            state.failed.add(left.row["commit"])
    previous = state.deployed.get(key, [])
    was_live = bool(previous) and previous[-1][1] == digest
    state.deployed.setdefault(key, []).append((position, digest or "", c.sha))
    state.live_change[key] = pin
    if pin.row["kind"] == "unknown" or (pin.row["spec_digest"] and digest != pin.row["spec_digest"]):
        state.breaks.append(
            Break(
                commit=c.sha,
                rule="outcome-without-its-change",
                message=(
                    f"Deployed outcome for {change.environment}/{change.model} names source commit {source[:12]}, "
                    f"which did not set that pin to {(digest or '?')[:19]}…"
                ),
            )
        )
    if outcome["adopted"] or was_live:
        return
    _check_policy(state, data, trail, key, outcome, source, pin, rollback, position, by_source, digest or "")


def _check_policy(
    state: _State,
    data: AuditInput,
    trail: TrailCommit,
    key: Key,
    outcome: dict[str, Any],
    source: str,
    pin: _Pin,
    rollback: bool,
    position: int,
    by_source: Mapping[str, list[Approval]],
    digest: str,
) -> None:
    policy = trail.policy
    if policy is None:
        return
    env, name = key
    rule = policy.for_env(env)
    if rule.approvals.min > 0 and (not rollback or policy.rollback_requires_approval):
        here = data.position.get(trail.commit.sha, len(data.position))
        given = [a for a in by_source.get(source, ()) if data.approval_position.get(a.commit, here + 1) <= here]
        counted, _ = count_approvals(rule, env, name, source, pin.row["authors"], given)
        ok = {a.commit for a in counted}
        claimed = [a["commit"] for a in outcome["approvals"]]
        if len(counted) < rule.approvals.min or any(x not in ok for x in claimed):
            state.breaks.append(
                Break(
                    commit=trail.commit.sha,
                    rule="outcome-without-approvals",
                    message=(
                        f"{env}/{name} Deployed without the approvals its policy required then "
                        f"({len(counted)} of {rule.approvals.min} count; the trail claims {len(claimed)})"
                    ),
                )
            )
    if rule.requires is not None and not rollback:
        upstream = [d for d in state.deployed.get((rule.requires, name), []) if d[1] == digest and d[0] < position]
        recorded = outcome["upstream_commit"]
        if not upstream or (recorded is not None and recorded not in {d[2] for d in upstream}):
            state.breaks.append(
                Break(
                    commit=trail.commit.sha,
                    rule="deploy-without-upstream",
                    message=(
                        f"{env}/{name} Deployed {digest[:19]}… without a Deployed outcome of it in {rule.requires} "
                        "before it"
                    ),
                )
            )


def _live_without_outcome(state: _State, data: AuditInput) -> None:
    last: dict[Key, tuple[str, ModelStatus | None]] = {}
    for trail in data.commits:
        for change in trail.statuses:
            last[(change.environment, change.model)] = (trail.commit.sha, change.status)
    for key, (sha, status) in sorted(last.items()):
        if status is None or status.live is None:
            continue
        if not any(d[1] == status.live.spec_digest for d in state.deployed.get(key, [])):
            state.breaks.append(
                Break(
                    commit=sha,
                    rule="live-without-outcome",
                    message=(
                        f"{key[0]}/{key[1]} {status.live.version} is live in the trail without a Deployed outcome "
                        "for it"
                    ),
                )
            )


def _summary(rows: Sequence[dict[str, Any]], state: _State) -> Summary:
    deploys = rollbacks = 0
    leads: list[float] = []
    attempts = failed = 0
    for row in rows:
        outcomes = row["outcomes"]
        deployed = [o for o in outcomes if o["phase"] == Phase.DEPLOYED.value and not o["adopted"]]
        deploys += len(deployed)
        if row.get("rollback"):
            rollbacks += 1
            continue
        if deployed and row.get("time_to_deploy_s") is not None:
            leads.append(float(row["time_to_deploy_s"]))
        if deployed or row.get("final_phase") == Phase.FAILED.value:
            attempts += 1
            failed += row["commit"] in state.failed
    return Summary(
        changes=len(rows),
        deploys=deploys,
        rollbacks=rollbacks,
        failed=failed,
        change_failure_rate=round(failed / attempts, 4) if attempts else None,
        median_lead_time_s=statistics.median(leads) if leads else None,
    )
