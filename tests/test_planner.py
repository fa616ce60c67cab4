"""The decision as a table: plan(desired, recorded, policy, evidence) -> Plan, one row per rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from controller.core.models import ActionKind, DesiredRef, LiveRef, ModelPin, ModelStatus, Phase, PromotionPolicy
from controller.core.pins import DesiredPin
from controller.core.planner import Approval, CommitInfo, Evidence, SupersededChange, backoff_seconds, plan
from controller.core.schemas import Problem

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
C1, C2, C3 = "1" * 40, "2" * 40, "3" * 40
ART_A, ART_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
MODEL = "tumor-classifier"


def pin(version: str = "1.0.0", estimators: int = 30, model: str = MODEL) -> ModelPin:
    return ModelPin.model_validate(
        {
            "apiVersion": "releasectl/v1",
            "kind": "ModelPin",
            "model": model,
            "version": version,
            "owner": "ml@example.com",
            "training": {
                "recipe": "gradient-boosting",
                "dataset": {"name": "breast-cancer", "sha256": "c" * 64},
                "params": {"n_estimators": estimators, "seed": 7},
            },
        }
    )


def desired(env: str, p: ModelPin | None, commit: str = C1, problems: tuple[Problem, ...] = ()) -> DesiredPin:
    path = f"environments/{env}/{MODEL}.yaml"
    return DesiredPin(env, MODEL, path, commit, p, problems, p.spec_digest() if p else None)


def live(p: ModelPin, artifact: str = ART_A, since: datetime = NOW - timedelta(days=1)) -> LiveRef:
    return LiveRef(version=p.version, spec_digest=p.spec_digest(), artifact=artifact, since=since)


def status(
    env: str,
    phase: Phase,
    p: ModelPin | None,
    commit: str = C1,
    *,
    live_ref: LiveRef | None = None,
    deployed: tuple[LiveRef, ...] = (),
    reason: str = "",
    attempts: int = 0,
    finished: datetime | None = None,
) -> ModelStatus:
    from controller.core.models import WorkflowRef

    return ModelStatus(
        model=MODEL,
        environment=env,
        phase=phase,
        reason=reason,
        desired=DesiredRef(
            version=p.version if p else "unknown", spec_digest=p.spec_digest() if p else None, source_commit=commit
        ),
        live=live_ref,
        deployed=list(deployed),
        attempts=attempts,
        workflow=WorkflowRef(name="rc-x", executor="local", finished=finished) if finished else None,
    )


POLICY = PromotionPolicy.model_validate(
    {
        "apiVersion": "releasectl/v1",
        "kind": "PromotionPolicy",
        "order": ["dev", "staging", "production"],
        "environments": {"staging": {"requires": "dev"}, "production": {"requires": "staging"}},
    }
)
GUARDED = PromotionPolicy.model_validate(
    {
        "apiVersion": "releasectl/v1",
        "kind": "PromotionPolicy",
        "order": ["dev", "staging", "production"],
        "environments": {
            "staging": {"requires": "dev", "min_soak": "1h"},
            "production": {
                "requires": "staging",
                "approvals": {"min": 1, "from": ["rui@example.com", "kim@example.com"]},
            },
        },
        "rollback_requires_approval": False,
    }
)

SIGNED = GUARDED.model_copy(
    update={
        "environments": {
            **GUARDED.environments,
            "production": GUARDED.environments["production"].model_copy(update={"require_signed": True}),
        }
    }
)
A1, A2 = "a1" * 20, "a2" * 20  # approving commits


def approval(
    who: str, source: str = "2" * 40, commit: str = A1, signer: str | None = None, env: str = "production"
) -> Approval:
    return Approval(who, commit, source, env, MODEL, signer, "SHA256:k" if signer else None)


def by(author: str, *approvals: Approval, signed: bool = False) -> dict[str, CommitInfo]:
    return {C2: CommitInfo(C2, author, approvals, signed)}


V1, V2, V2_OTHER = pin("1.0.0"), pin("2.0.0", 60), pin("2.0.0", 90)
BAD = Problem(f"environments/dev/{MODEL}.yaml", "version", "'1.x' does not match", "pattern")


@dataclass
class Row:
    desired: list[DesiredPin]
    recorded: list[ModelStatus] = field(default_factory=list)
    policy: PromotionPolicy = POLICY
    adopting: bool = False
    commits: dict[str, CommitInfo] = field(default_factory=dict)
    superseded: tuple[SupersededChange, ...] = ()
    artifacts: dict[str, str] = field(default_factory=dict)
    now: datetime = NOW
    # expectations: (kind, env, reason fragment, artifact) for actions; keys in sync; waiting envs
    actions: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    in_sync: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    approvals: list[str] = field(default_factory=list)  # identities counted on the runnable action


ROWS = {
    "adopt-every-valid-pin-with-training": Row(
        desired=[desired("dev", V2), desired("production", V1)],
        adopting=True,
        actions=[("deploy", "dev", "adopted", None), ("deploy", "production", "adopted", None)],
    ),
    "adopt-reuses-a-known-artifact": Row(
        desired=[desired("staging", V1)],
        adopting=True,
        artifacts={V1.spec_digest(): ART_A},
        actions=[("deploy", "staging", "adopted", ART_A)],
    ),
    "new-pin-in-first-environment-deploys": Row(
        desired=[desired("dev", V2, C2)],
        recorded=[status("dev", Phase.DEPLOYED, V1, C1, live_ref=live(V1), deployed=(live(V1),))],
        actions=[("deploy", "dev", "", None)],
    ),
    "deployed-and-unchanged-is-in-sync": Row(
        desired=[desired("dev", V1, C1)],
        recorded=[status("dev", Phase.DEPLOYED, V1, C1, live_ref=live(V1), deployed=(live(V1),))],
        in_sync=["dev"],
    ),
    "failed-and-unchanged-waits-for-the-user": Row(
        desired=[desired("dev", V2, C2)],
        recorded=[status("dev", Phase.FAILED, V2, C2, live_ref=live(V1), deployed=(live(V1),))],
        in_sync=["dev"],
    ),
    "promotion-reuses-upstream-artifact": Row(
        desired=[desired("dev", V2, C1), desired("staging", V2, C2)],
        recorded=[
            status("dev", Phase.DEPLOYED, V2, C1, live_ref=live(V2, ART_B), deployed=(live(V2, ART_B),)),
            status("staging", Phase.DEPLOYED, V1, C1, live_ref=live(V1), deployed=(live(V1),)),
        ],
        artifacts={V2.spec_digest(): ART_B},
        actions=[("deploy", "staging", "", ART_B)],
        in_sync=["dev"],
    ),
    "block-when-upstream-has-not-deployed": Row(
        desired=[desired("staging", V1, C1), desired("production", V2, C2)],
        recorded=[
            status("staging", Phase.DEPLOYED, V1, C1, live_ref=live(V1), deployed=(live(V1),)),
            status("production", Phase.DEPLOYED, V1, C1, live_ref=live(V1), deployed=(live(V1),)),
        ],
        actions=[("block", "production", "staging has not Deployed spec", None)],
        in_sync=["staging"],
    ),
    "blocked-with-the-same-reason-is-not-recorded-again": Row(
        desired=[desired("production", V2, C2)],
        recorded=[
            status(
                "production",
                Phase.BLOCKED,
                V2,
                C2,
                live_ref=live(V1),
                deployed=(live(V1),),
                reason=(
                    f"staging has not Deployed spec {V2.spec_digest()[:19]}… (version 2.0.0); promote it there first"
                ),
            )
        ],
        waiting=["production"],
    ),
    "blocked-unblocks-once-upstream-deploys": Row(
        desired=[desired("staging", V2, C1), desired("production", V2, C2)],
        recorded=[
            status("staging", Phase.DEPLOYED, V2, C1, live_ref=live(V2, ART_B), deployed=(live(V2, ART_B),)),
            status("production", Phase.BLOCKED, V2, C2, live_ref=live(V1), deployed=(live(V1),), reason="old"),
        ],
        artifacts={V2.spec_digest(): ART_B},
        actions=[("deploy", "production", "", ART_B)],
        in_sync=["staging"],
    ),
    "requires-counts-a-spec-deployed-upstream-earlier": Row(
        desired=[desired("dev", pin("3.0.0"), C1), desired("staging", V2, C2)],
        recorded=[
            status(
                "dev",
                Phase.DEPLOYED,
                pin("3.0.0"),
                C1,
                live_ref=live(pin("3.0.0")),
                deployed=(live(pin("3.0.0")), live(V2, ART_B)),
            )
        ],
        actions=[("deploy", "staging", "", None)],
        in_sync=["dev"],
    ),
    "min-soak-not-reached-blocks": Row(
        policy=GUARDED,
        desired=[desired("dev", V2, C1), desired("staging", V2, C2)],
        recorded=[
            status(
                "dev",
                Phase.DEPLOYED,
                V2,
                C1,
                live_ref=live(V2, ART_B, NOW - timedelta(minutes=10)),
                deployed=(live(V2, ART_B, NOW - timedelta(minutes=10)),),
            )
        ],
        actions=[("block", "staging", "min_soak 1h is reached at 2026-11-24T12:50:00Z", None)],
        in_sync=["dev"],
    ),
    "min-soak-reached-deploys": Row(
        policy=GUARDED,
        desired=[desired("dev", V2, C1), desired("staging", V2, C2)],
        recorded=[
            status(
                "dev",
                Phase.DEPLOYED,
                V2,
                C1,
                live_ref=live(V2, ART_B, NOW - timedelta(hours=2)),
                deployed=(live(V2, ART_B, NOW - timedelta(hours=2)),),
            )
        ],
        actions=[("deploy", "staging", "", None)],
        in_sync=["dev"],
    ),
    "approvals-missing-blocks-naming-who-and-the-command": Row(
        policy=GUARDED,
        desired=[desired("staging", V2, C1), desired("production", V2, C2)],
        recorded=[status("staging", Phase.DEPLOYED, V2, C1, live_ref=live(V2), deployed=(live(V2),))],
        commits=by("dana@example.com"),
        actions=[
            (
                "block",
                "production",
                "awaiting approval: production needs 1 approval(s) from kim@example.com, rui@example.com, not the "
                "change's author(s) (dana@example.com); has 0 (none). To approve: releasectl approve "
                f"{MODEL} --env production --source {C2}",
                None,
            )
        ],
        in_sync=["staging"],
    ),
    "self-approval-does-not-count": Row(
        policy=GUARDED,
        desired=[desired("staging", V2, C1), desired("production", V2, C2)],
        recorded=[status("staging", Phase.DEPLOYED, V2, C1, live_ref=live(V2), deployed=(live(V2),))],
        commits={C2: CommitInfo(C2, "dana@example.com", (approval("rui@example.com"),), authors=("rui@example.com",))},
        actions=[("block", "production", f"rui@example.com's approval {A1[:12]} is by an author of the change", None)],
        in_sync=["staging"],
    ),
    "approval-from-outside-from-does-not-count": Row(
        policy=GUARDED,
        desired=[desired("staging", V2, C1), desired("production", V2, C2)],
        recorded=[status("staging", Phase.DEPLOYED, V2, C1, live_ref=live(V2), deployed=(live(V2),))],
        commits=by("dana@example.com", approval("eve@example.com")),
        actions=[("block", "production", f"eve@example.com's approval {A1[:12]} is from outside approvals.from", None)],
        in_sync=["staging"],
    ),
    "approval-naming-another-source-commit-does-not-count": Row(
        policy=GUARDED,
        desired=[desired("staging", V2, C1), desired("production", V2, C2)],
        recorded=[status("staging", Phase.DEPLOYED, V2, C1, live_ref=live(V2), deployed=(live(V2),))],
        commits=by("dana@example.com", approval("rui@example.com", source=C1)),
        actions=[("block", "production", f"approval {A1[:12]} names {C1[:12]}, not this change", None)],
        in_sync=["staging"],
    ),
    "approval-for-another-environment-is-ignored": Row(
        policy=GUARDED,
        desired=[desired("staging", V2, C1), desired("production", V2, C2)],
        recorded=[status("staging", Phase.DEPLOYED, V2, C1, live_ref=live(V2), deployed=(live(V2),))],
        commits=by("dana@example.com", approval("rui@example.com", env="staging")),
        actions=[("block", "production", "has 0 (none). To approve", None)],
        in_sync=["staging"],
    ),
    "unsigned-approval-does-not-count-where-signatures-are-required": Row(
        policy=SIGNED,
        desired=[desired("staging", V2, C1), desired("production", V2, C2)],
        recorded=[status("staging", Phase.DEPLOYED, V2, C1, live_ref=live(V2), deployed=(live(V2),))],
        commits=by("dana@example.com", approval("rui@example.com"), signed=True),
        actions=[("block", "production", "is not signed by a key in environments/allowed_signers", None)],
        in_sync=["staging"],
    ),
    "approval-signed-by-someone-elses-key-does-not-count": Row(
        policy=SIGNED,
        desired=[desired("staging", V2, C1), desired("production", V2, C2)],
        recorded=[status("staging", Phase.DEPLOYED, V2, C1, live_ref=live(V2), deployed=(live(V2),))],
        commits=by("dana@example.com", approval("rui@example.com", signer="kim@example.com"), signed=True),
        actions=[("block", "production", "signed by a key that environments/allowed_signers maps to kim@", None)],
        in_sync=["staging"],
    ),
    "signed-approval-from-an-allowed-reviewer-deploys": Row(
        policy=SIGNED,
        desired=[desired("staging", V2, C1), desired("production", V2, C2)],
        recorded=[status("staging", Phase.DEPLOYED, V2, C1, live_ref=live(V2, ART_B), deployed=(live(V2, ART_B),))],
        commits=by("dana@example.com", approval("rui@example.com", signer="rui@example.com"), signed=True),
        artifacts={V2.spec_digest(): ART_B},
        actions=[("deploy", "production", "", ART_B)],
        in_sync=["staging"],
        approvals=["rui@example.com"],
    ),
    "approved-by-an-allowed-reviewer-deploys": Row(
        policy=GUARDED,
        desired=[desired("staging", V2, C1), desired("production", V2, C2)],
        recorded=[status("staging", Phase.DEPLOYED, V2, C1, live_ref=live(V2, ART_B), deployed=(live(V2, ART_B),))],
        commits=by("dana@example.com", approval("rui@example.com"), approval("eve@example.com", commit=A2)),
        artifacts={V2.spec_digest(): ART_B},
        actions=[("deploy", "production", "", ART_B)],
        in_sync=["staging"],
        approvals=["rui@example.com"],
    ),
    "revert-to-a-spec-deployed-before-is-a-rollback": Row(
        desired=[desired("production", V1, C3)],
        recorded=[
            status(
                "production",
                Phase.DEPLOYED,
                V2,
                C2,
                live_ref=live(V2, ART_B),
                deployed=(live(V2, ART_B), live(V1, ART_A)),
            )
        ],
        actions=[("rollback", "production", "production ran this spec before", ART_A)],
    ),
    "rollback-needs-no-approval-nor-upstream": Row(
        policy=GUARDED,
        desired=[desired("production", V1, C3)],
        recorded=[
            status(
                "production",
                Phase.DEPLOYED,
                V2,
                C2,
                live_ref=live(V2, ART_B),
                deployed=(live(V2, ART_B), live(V1, ART_A)),
            )
        ],
        actions=[("rollback", "production", "", ART_A)],
    ),
    "rollback-requires-approval-when-the-policy-says-so": Row(
        policy=GUARDED.model_copy(update={"rollback_requires_approval": True}),
        desired=[desired("production", V1, C3)],
        recorded=[
            status(
                "production",
                Phase.DEPLOYED,
                V2,
                C2,
                live_ref=live(V2, ART_B),
                deployed=(live(V2, ART_B), live(V1, ART_A)),
            )
        ],
        commits={C3: CommitInfo(C3, "dana@example.com")},
        actions=[("block", "production", "needs 1 approval(s)", None)],
    ),
    "returning-to-a-version-rolled-back-from-needs-the-whole-policy": Row(
        policy=GUARDED,
        desired=[desired("staging", V2, C1), desired("production", V2, C2)],
        recorded=[
            status("staging", Phase.DEPLOYED, V2, C1, live_ref=live(V2, ART_B), deployed=(live(V2, ART_B),)),
            status(
                "production",
                Phase.DEPLOYED,
                V1,
                C3,
                live_ref=live(V1),
                deployed=(live(V1), live(V2, ART_B).model_copy(update={"rolled_back_at": NOW})),
            ),
        ],
        commits=by("dana@example.com"),
        actions=[("block", "production", "awaiting approval", None)],
        in_sync=["staging"],
    ),
    "a-version-left-by-a-deploy-not-a-rollback-is-still-a-rollback-target": Row(
        policy=GUARDED,
        desired=[desired("production", V1, C3)],
        recorded=[
            status(
                "production",
                Phase.DEPLOYED,
                pin("3.0.0"),
                C2,
                live_ref=live(pin("3.0.0"), ART_B),
                deployed=(
                    live(pin("3.0.0"), ART_B),
                    live(V2, ART_B).model_copy(update={"rolled_back_at": NOW}),
                    live(V1, ART_A),
                ),
            )
        ],
        actions=[("rollback", "production", "production ran this spec before", ART_A)],
    ),
    "revert-of-a-failed-bump-returns-to-the-live-spec": Row(
        desired=[desired("dev", V1, C3)],
        recorded=[status("dev", Phase.FAILED, V2, C2, live_ref=live(V1), deployed=(live(V1),))],
        actions=[("rollback", "dev", "returns to the live spec", ART_A)],
    ),
    "gates-only-change-re-evaluates-the-live-artifact": Row(
        desired=[desired("dev", V1, C2)],
        recorded=[status("dev", Phase.DEPLOYED, V1, C1, live_ref=live(V1), deployed=(live(V1),))],
        actions=[("deploy", "dev", "evaluate it against the new gates", ART_A)],
    ),
    "deleted-pin-is-removed": Row(
        desired=[],
        recorded=[status("dev", Phase.DEPLOYED, V1, C1, live_ref=live(V1), deployed=(live(V1),))],
        actions=[("remove", "dev", "deleted", None)],
    ),
    "removed-stays-removed": Row(
        desired=[],
        recorded=[status("dev", Phase.REMOVED, V1, C1, deployed=(live(V1),))],
        in_sync=["dev"],
    ),
    "invalid-pin-is-rejected": Row(
        desired=[desired("dev", None, C2, (BAD,))],
        recorded=[status("dev", Phase.DEPLOYED, V1, C1, live_ref=live(V1), deployed=(live(V1),))],
        actions=[("reject", "dev", "version: '1.x' does not match [pattern]", None)],
    ),
    "rejected-with-the-same-reason-is-not-recorded-again": Row(
        desired=[desired("dev", None, C2, (BAD,))],
        recorded=[status("dev", Phase.REJECTED, None, C2, reason=BAD.line())],
        in_sync=["dev"],
    ),
    "same-version-with-another-spec-is-rejected-downstream": Row(
        desired=[desired("dev", V2, C1), desired("staging", V2_OTHER, C2)],
        recorded=[status("dev", Phase.DEPLOYED, V2, C1, live_ref=live(V2), deployed=(live(V2),))],
        actions=[("reject", "staging", "the same version must have the same training spec", None)],
        in_sync=["dev"],
    ),
    "a-deployed-version-cannot-change-its-spec": Row(
        desired=[desired("dev", V2_OTHER, C2)],
        recorded=[status("dev", Phase.DEPLOYED, V2, C1, live_ref=live(V2), deployed=(live(V2),))],
        actions=[("reject", "dev", "a released version cannot change its training spec", None)],
    ),
    "errored-retries-after-backoff": Row(
        desired=[desired("dev", V2, C2)],
        recorded=[status("dev", Phase.ERRORED, V2, C2, attempts=2, finished=NOW - timedelta(seconds=61))],
        actions=[("deploy", "dev", "", None)],
    ),
    "errored-waits-during-backoff": Row(
        desired=[desired("dev", V2, C2)],
        recorded=[status("dev", Phase.ERRORED, V2, C2, attempts=2, finished=NOW - timedelta(seconds=59))],
        waiting=["dev"],
    ),
    "superseded-change-gets-its-own-outcome": Row(
        desired=[desired("dev", V2, C3)],
        recorded=[status("dev", Phase.DEPLOYED, V1, C1, live_ref=live(V1), deployed=(live(V1),))],
        superseded=(SupersededChange("dev", MODEL, C2, "1.5.0", None, C3),),
        actions=[("supersede", "dev", f"superseded by {C3}", None), ("deploy", "dev", "", None)],
    ),
}


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
def test_plan(row: Row) -> None:
    evidence = Evidence(
        now=row.now,
        adopting=row.adopting,
        commits=row.commits,
        superseded=row.superseded,
        artifacts=row.artifacts,
        head=C3,
    )
    result = plan(
        {(d.environment, d.model): d for d in row.desired},
        {(s.environment, s.model): s for s in row.recorded},
        row.policy,
        evidence,
    )
    got = [(a.kind.value, a.environment, a.artifact) for a in result.actions]
    assert got == [(kind, env, art) for kind, env, _, art in row.actions]
    for action, (_, _, fragment, _) in zip(result.actions, row.actions, strict=True):
        assert fragment in action.reason, action.reason
    assert [env for env, _ in result.in_sync] == row.in_sync
    assert [env for env, _, _ in result.waiting] == row.waiting
    assert [a.identity for action in result.runnable() for a in action.approvals] == row.approvals


def test_runnable_actions_carry_their_pin_and_a_deterministic_workflow_name() -> None:
    result = plan({("dev", MODEL): desired("dev", V2, C2)}, {}, POLICY, Evidence(now=NOW, adopting=True))
    (action,) = result.actions
    assert action.kind is ActionKind.DEPLOY and action.pin == V2 and action.trains
    again = plan({("dev", MODEL): desired("dev", V2, C2)}, {}, POLICY, Evidence(now=NOW, adopting=True))
    assert action.workflow_name == again.actions[0].workflow_name
    assert action.workflow_name.startswith("rc-dev-tumor-classifier-") and len(action.workflow_name) == 34


def test_only_candidates_are_considered() -> None:
    pins = {("dev", MODEL): desired("dev", V2, C2), ("staging", MODEL): desired("staging", V1, C1)}
    result = plan(pins, {}, POLICY, Evidence(now=NOW, candidates=frozenset({("staging", MODEL)})))
    assert [(a.kind.value, a.environment) for a in result.actions] == [("block", "staging")]


@pytest.mark.parametrize(
    ("attempts", "seconds"),
    [(1, 30), (2, 60), (3, 120), (7, 1800), (20, 1800)],
    ids=["first", "second", "third", "capped", "long-capped"],
)
def test_backoff(attempts: int, seconds: int) -> None:
    assert backoff_seconds(attempts) == seconds
