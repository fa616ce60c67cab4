"""What each outcome records as evidence (trail.build_evidence): figures and digests, never local paths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controller.core.models import (
    Action,
    ActionKind,
    ApprovalRef,
    ModelPin,
    Outcome,
    Phase,
    UpstreamRef,
    WorkflowRef,
)
from controller.core.trail import build_evidence, next_status, render_status

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
PIN = ModelPin.model_validate(
    {
        "apiVersion": "releasectl/v1",
        "kind": "ModelPin",
        "model": "m",
        "version": "1.1.0",
        "owner": "ml@example.com",
        "training": {
            "recipe": "gradient-boosting",
            "dataset": {"name": "breast-cancer", "sha256": "c" * 64},
            "params": {"seed": 7},
        },
    }
)


def test_evidence_keeps_figures_and_digests_and_drops_local_paths() -> None:
    action = Action(
        kind=ActionKind.DEPLOY,
        environment="production",
        model="m",
        version="1.1.0",
        source_commit="1" * 40,
        spec_digest=PIN.spec_digest(),
        pin=PIN,
        approvals=(ApprovalRef(identity="rui@example.com", commit="2" * 40, key="SHA256:abc"),),
        upstream=UpstreamRef(environment="staging", since=NOW - timedelta(hours=2)),
    )
    outcome = Outcome(
        action=action,
        phase=Phase.DEPLOYED,
        artifact="sha256:" + "a" * 64,
        workflow=WorkflowRef(name="rc-x", executor="local", started=NOW, finished=NOW),
        details={
            "validate-data": {
                "dataset": "breast-cancer",
                "psi_max": 0.031,
                "psi_feature": "mean radius",
                "reference": "d" * 64,
                "catalog": "/home/controller/.local/share/releasectl/data/breast-cancer.csv",
            },
            "deploy": {
                "steps": [
                    {"weight": 10, "requests": 200, "candidate_requests": 21, "errors": 0, "error_rate": 0.0},
                    {"weight": 100, "requests": 200, "candidate_requests": 200, "errors": 1, "error_rate": 0.005},
                ],
                "serving_dir": "/home/controller/.local/share/releasectl/serving",
            },
        },
    )
    evidence = build_evidence(
        outcome, policy_digest="sha256:" + "e" * 64, merged_at=NOW - timedelta(minutes=30), upstream_commit="3" * 40
    )
    assert evidence.action == "deploy" and evidence.adopted is False
    assert [(a.identity, a.key) for a in evidence.approvals] == [("rui@example.com", "SHA256:abc")]
    assert evidence.upstream is not None and evidence.upstream.outcome_commit == "3" * 40
    assert evidence.dataset_sha256 == "c" * 64
    assert evidence.drift is not None and (evidence.drift.psi_max, evidence.drift.feature) == (0.031, "mean radius")
    assert [(s.weight, s.candidate_requests, s.errors) for s in evidence.canary] == [(10, 21, 0), (100, 200, 1)]
    assert evidence.lead_time_s == 1800.0
    text = render_status(next_status(outcome.model_copy(update={"evidence": evidence}), None, NOW)).decode()
    assert "/home/" not in text and "serving_dir" not in text and "catalog" not in text
    assert '"psi_max": 0.031' in text and '"outcome_commit": "' + "3" * 40 + '"' in text


def test_a_rollback_marks_the_version_it_leaves_and_a_full_deploy_clears_the_mark() -> None:
    old = PIN.model_copy(update={"version": "1.0.0"})
    art_old, art_new = "sha256:" + "0" * 64, "sha256:" + "1" * 64

    def deployed(kind: ActionKind, pin: ModelPin, artifact: str, at: datetime) -> Outcome:
        action = Action(
            kind=kind, environment="production", model="m", version=pin.version, source_commit="1" * 40,
            spec_digest=pin.spec_digest(), pin=pin,
        )  # fmt: skip
        workflow = WorkflowRef(name="rc-x", executor="local", started=at, finished=at)
        return Outcome(action=action, phase=Phase.DEPLOYED, artifact=artifact, workflow=workflow)

    status = next_status(deployed(ActionKind.DEPLOY, old, art_old, NOW), None, NOW)
    status = next_status(deployed(ActionKind.DEPLOY, PIN, art_new, NOW + timedelta(hours=1)), status, NOW)
    back = next_status(deployed(ActionKind.ROLLBACK, old, art_old, NOW + timedelta(hours=2)), status, NOW)
    assert [(d.version, d.rolled_back_at) for d in back.deployed] == [
        ("1.0.0", None),
        ("1.1.0", NOW + timedelta(hours=2)),
    ]
    again = next_status(deployed(ActionKind.DEPLOY, PIN, art_new, NOW + timedelta(hours=3)), back, NOW)
    assert [(d.version, d.rolled_back_at) for d in again.deployed] == [("1.1.0", None), ("1.0.0", None)]
