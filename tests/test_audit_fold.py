"""The audit's fold as a table: a first-parent history -> breaks and figures, one row per rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from controller.core.approvals import Approval
from controller.core.audit import AuditInput, PinChange, SignedCommit, StatusChange, TrailCommit, fold
from controller.core.models import (
    ApprovalRef,
    DesiredRef,
    LiveRef,
    ModelStatus,
    OutcomeEvidence,
    Phase,
    PromotionPolicy,
    UpstreamRef,
)

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
CTL = "releasectl@noreply.invalid"
MODEL = "m"
D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
ART = "sha256:" + "a" * 64
POLICY = PromotionPolicy.model_validate(
    {
        "apiVersion": "releasectl/v1",
        "kind": "PromotionPolicy",
        "order": ["staging", "production"],
        "environments": {"production": {"requires": "staging", "approvals": {"min": 1, "from": ["rui@example.com"]}}},
    }
)


def sha(n: int) -> str:
    return f"{n:040x}"


def commit(
    n: int, author: str = "dana@example.com", message: str = "change", signer: str | None = None
) -> SignedCommit:
    return SignedCommit(
        sha(n), (sha(n - 1),), author, "", author, T0 + timedelta(minutes=n), message, signer is not None, signer
    )


def pin_change(n: int, env: str, version: str, digest: str) -> TrailCommit:
    return TrailCommit(commit(n), pins=(PinChange(env, MODEL, "change", version, digest),), policy=POLICY)


def outcome(
    n: int,
    env: str,
    source: int,
    digest: str,
    version: str,
    *,
    phase: Phase = Phase.DEPLOYED,
    action: str = "deploy",
    adopted: bool = False,
    approvals: tuple[int, ...] = (),
    upstream: int | None = None,
    author: str = CTL,
) -> TrailCommit:
    live = LiveRef(version=version, spec_digest=digest, artifact=ART, since=T0) if phase is Phase.DEPLOYED else None
    status = ModelStatus(
        model=MODEL,
        environment=env,
        phase=phase,
        desired=DesiredRef(version=version, spec_digest=digest, source_commit=sha(source)),
        live=live,
        evidence=OutcomeEvidence(
            action=action,
            adopted=adopted,
            approvals=[ApprovalRef(identity="rui@example.com", commit=sha(a)) for a in approvals],
            upstream=UpstreamRef(environment="staging", since=T0, outcome_commit=sha(upstream)) if upstream else None,
        ),
    )
    text = (
        f"status({env}): {MODEL} {version} {phase.value}\n\nbody\n\nReleasectl-Environment: {env}\n"
        f"Releasectl-Model: {MODEL}\nReleasectl-Version: {version}\nReleasectl-Phase: {phase.value}\n"
        f"Releasectl-Source-Commit: {sha(source)}\nReleasectl-Spec-Digest: {digest}\n"
    )
    return TrailCommit(commit(n, author, text), statuses=(StatusChange(env, MODEL, status),), policy=POLICY)


def approval(n: int, source: int, who: str = "rui@example.com") -> Approval:
    return Approval(who, sha(n), sha(source), "production", MODEL)


ADOPTED = [
    pin_change(1, "staging", "1.0.0", D1),
    pin_change(1, "production", "1.0.0", D1),
    outcome(2, "staging", 1, D1, "1.0.0", adopted=True),
    outcome(3, "production", 1, D1, "1.0.0", adopted=True),
]
TO_STAGING = [pin_change(4, "staging", "2.0.0", D2), outcome(5, "staging", 4, D2, "2.0.0")]


@dataclass
class Row:
    commits: list[TrailCommit]
    approvals: list[Approval] = field(default_factory=list)
    joined: dict[int, int] = field(default_factory=dict)  # approval commit -> first-parent position it joined
    breaks: list[tuple[int, str]] = field(default_factory=list)


ROWS = {
    "a-clean-chain-has-no-breaks": Row(
        [
            *ADOPTED,
            *TO_STAGING,
            pin_change(6, "production", "2.0.0", D2),
            outcome(8, "production", 6, D2, "2.0.0", approvals=(7,), upstream=5),
        ],
        approvals=[approval(7, 6)],
        joined={7: 7},
    ),
    "a-deploy-without-upstream": Row(
        [*ADOPTED, pin_change(6, "production", "2.0.0", D2), outcome(8, "production", 6, D2, "2.0.0", approvals=(7,))],
        approvals=[approval(7, 6)],
        joined={7: 7},
        breaks=[(8, "deploy-without-upstream")],
    ),
    "an-outcome-and-a-pin-without-approvals": Row(
        [*ADOPTED, *TO_STAGING, pin_change(6, "production", "2.0.0", D2), outcome(8, "production", 6, D2, "2.0.0")],
        breaks=[(6, "pin-without-approvals"), (8, "outcome-without-approvals")],
    ),
    "an-approval-that-joined-after-the-outcome-does-not-count-for-it": Row(
        [
            *ADOPTED,
            *TO_STAGING,
            pin_change(6, "production", "2.0.0", D2),
            outcome(8, "production", 6, D2, "2.0.0", approvals=(9,)),
        ],
        approvals=[approval(9, 6)],
        joined={9: 9},
        breaks=[(8, "outcome-without-approvals")],
    ),
    "a-self-approval-does-not-count": Row(
        [
            *ADOPTED,
            *TO_STAGING,
            pin_change(6, "production", "2.0.0", D2),
            outcome(8, "production", 6, D2, "2.0.0", approvals=(7,)),
        ],
        approvals=[approval(7, 6, who="dana@example.com")],
        joined={7: 7},
        breaks=[(6, "pin-without-approvals"), (8, "outcome-without-approvals")],
    ),
    "a-deployed-outcome-whose-source-did-not-set-the-pin": Row(
        [*ADOPTED, *TO_STAGING, outcome(6, "staging", 4, D1, "1.0.0")],
        breaks=[(6, "outcome-without-its-change")],
    ),
    "a-status-edited-by-a-person": Row(
        [*ADOPTED, outcome(4, "staging", 1, D1, "1.0.0", phase=Phase.BLOCKED, author="dana@example.com")],
        breaks=[(4, "status-by-someone-else")],
    ),
    "a-rollback-needs-no-approval-nor-upstream": Row(
        [
            *ADOPTED,
            *TO_STAGING,
            pin_change(6, "production", "2.0.0", D2),
            outcome(8, "production", 6, D2, "2.0.0", approvals=(7,), upstream=5),
            pin_change(9, "production", "1.0.0", D1),
            outcome(10, "production", 9, D1, "1.0.0", action="rollback"),
        ],
        approvals=[approval(7, 6)],
        joined={7: 7},
    ),
}


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
def test_verify(row: Row) -> None:
    data = AuditInput(
        head=sha(99),
        order=("staging", "production"),
        commits=tuple(row.commits),
        approvals=tuple(row.approvals),
        approval_position={sha(a): p for a, p in row.joined.items()},
        position={sha(n): n for n in range(100)},
        controller=CTL,
    )
    report = fold(data, verify=True)
    assert [(b.commit, b.rule) for b in report.breaks or []] == [(sha(n), rule) for n, rule in row.breaks]


def test_a_live_version_in_a_forged_status_has_no_outcome() -> None:
    forged = outcome(4, "staging", 1, D2, "9.9.9", phase=Phase.DEPLOYED)
    status = forged.statuses[0].status
    assert status is not None
    blocked_but_live = TrailCommit(
        commit(4, CTL, forged.commit.message.replace("Deployed", "Blocked")),
        statuses=(StatusChange("staging", MODEL, status.model_copy(update={"phase": Phase.BLOCKED})),),
        policy=POLICY,
    )
    data = AuditInput(head=sha(99), order=("staging", "production"), commits=(*ADOPTED, blocked_but_live))
    report = fold(data, verify=True)
    assert [(b.commit, b.rule) for b in report.breaks or []] == [(sha(4), "live-without-outcome")]


def test_summary_figures() -> None:
    commits = [
        *ADOPTED,
        *TO_STAGING,  # deployed 1 minute after its change
        pin_change(6, "staging", "3.0.0", "sha256:" + "3" * 64),
        outcome(9, "staging", 6, "sha256:" + "3" * 64, "3.0.0", phase=Phase.FAILED),  # a failed attempt
        pin_change(10, "staging", "1.0.0", D1),
        outcome(12, "staging", 10, D1, "1.0.0", action="rollback"),  # rolls back from 2.0.0: that one failed too
    ]
    data = AuditInput(head=sha(99), order=("staging", "production"), commits=tuple(commits))
    s = fold(data).summary
    assert (s.changes, s.deploys, s.rollbacks, s.failed) == (5, 2, 1, 2)
    assert s.change_failure_rate == 1.0  # 2 of 2 attempts: 2.0.0 (rolled back from) and 3.0.0 (Failed)
    assert s.median_lead_time_s == 60.0
    staging = fold(data, environment="staging", since=T0 + timedelta(minutes=5)).environments
    assert [c.version for e in staging for m in e.models for c in m.changes] == ["3.0.0", "1.0.0"]
