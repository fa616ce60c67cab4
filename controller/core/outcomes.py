"""A finished workflow run -> the Outcome of an action (Deployed, Failed, Errored, Removed).

Place in the flow: after the executor, before the status commit. Also the contract between the
workflow builders (workflows/builders.py), the step functions (workflows/steps/) and the
controller: the DAG task names, the output parameters each step writes, and the exit code that
means "a check said no". Pure.

Failed means a gate or a step's check said no (the user must act): the failing step's `verdict`
output parameter says Failed and why. Errored means anything else went wrong (a verdict of
Errored, no verdict at all because the step crashed, was killed at a deadline or never started,
or the executor failed): the controller retries with backoff. Only output parameters and node
messages are read, so the same fold holds for the local executor and for Argo.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from controller.core.contract import (
    DEPLOY,
    EVALUATE,
    GATES_FAILED,
    OUT_ARTIFACT,
    OUT_GATES,
    OUT_METRICS,
    OUT_REPORT,
    OUT_VERDICT,
    TASK_ORDER,
    TRAIN,
    UNDEPLOY,
    VALIDATE_DATA,
    VERDICT_FAILED,
    VERDICTS,
)
from controller.core.models import Action, ActionKind, GateResult, Outcome, Phase, WorkflowRef
from controller.ports import ERROR, FAILED, SUCCEEDED, WorkflowRun


def _json(text: str | None, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def fold(action: Action, run: WorkflowRun, executor: str) -> Outcome:
    """What a finished run means for the release."""
    ref = WorkflowRef(name=run.name, executor=executor, started=_second(run.started), finished=_second(run.finished))
    nodes = run.nodes
    evaluate = nodes.get(EVALUATE)
    metrics: dict[str, float] = {}
    gates: tuple[GateResult, ...] = ()
    if evaluate is not None and evaluate.phase == SUCCEEDED:
        metrics = {k: float(v) for k, v in _json(evaluate.outputs.get(OUT_METRICS), {}).items()}
        gates = tuple(GateResult.model_validate(g) for g in _json(evaluate.outputs.get(OUT_GATES), []))
    artifact = action.artifact
    for task in (TRAIN, EVALUATE, DEPLOY):
        node = nodes.get(task)
        if node is not None and node.phase == SUCCEEDED and node.outputs.get(OUT_ARTIFACT):
            artifact = node.outputs[OUT_ARTIFACT]
    details: dict[str, Any] = {}
    for task in (VALIDATE_DATA, TRAIN, DEPLOY, UNDEPLOY):
        node = nodes.get(task)
        if node is None or not node.outputs.get(OUT_REPORT):
            continue
        # A deploy that said no still reports what it measured (canary steps, shadow figures).
        if node.phase == SUCCEEDED or (task == DEPLOY and node.phase == FAILED):
            details[task] = _json(node.outputs[OUT_REPORT], {})
    common: dict[str, Any] = {
        "action": action,
        "artifact": artifact,
        "metrics": metrics,
        "gates": gates,
        "workflow": ref,
        "details": details,
    }

    if run.phase == SUCCEEDED:
        if action.kind is ActionKind.REMOVE:
            return Outcome(phase=Phase.REMOVED, reason=action.reason, **common)
        deploy = nodes.get(DEPLOY)
        if deploy is not None and deploy.phase == SUCCEEDED:
            return Outcome(phase=Phase.DEPLOYED, reason=action.reason, **common)
        failed = [g for g in gates if not g.passed]
        if failed:
            return Outcome(phase=Phase.FAILED, reason=gate_reason(failed), **common)
        return Outcome(phase=Phase.ERRORED, reason=f"workflow {run.name} succeeded without deploying", **common)

    if run.phase in (FAILED, ERROR):
        for task in TASK_ORDER:
            node = nodes.get(task)
            if node is None or node.phase not in (FAILED, ERROR):
                continue
            said = verdict(node.outputs.get(OUT_VERDICT))
            if said is not None and said[0] == VERDICT_FAILED:
                if task == GATES_FAILED:
                    failed = [g for g in gates if not g.passed]
                    return Outcome(phase=Phase.FAILED, reason=gate_reason(failed) or said[1], **common)
                return Outcome(phase=Phase.FAILED, reason=f"{task}: {said[1]}", **common)
            why = said[1] if said is not None and said[1] else (node.message or run.message or node.phase)
            return Outcome(phase=Phase.ERRORED, reason=f"{task} errored: {why}", **common)
        return Outcome(phase=Phase.ERRORED, reason=f"workflow {run.name}: {run.message or run.phase}", **common)

    return Outcome(phase=Phase.ERRORED, reason=f"workflow {run.name} did not finish ({run.phase})", **common)


def verdict(text: str | None) -> tuple[str, str] | None:
    """A step's `verdict` output parameter -> (verdict, reason); None when it said nothing valid."""
    said = _json(text, None)
    if not isinstance(said, dict) or said.get("verdict") not in VERDICTS:
        return None
    return str(said["verdict"]), " ".join(str(said.get("reason") or "").split())


def _second(when: datetime | None) -> datetime | None:
    return when.replace(microsecond=0) if when is not None else None


_NEGATED = {">=": "<", "<=": ">", ">": "<=", "<": ">=", "==": "!="}


def gate_reason(failed: list[GateResult] | tuple[GateResult, ...]) -> str:
    parts = []
    for g in failed:
        value = "missing" if g.value is None else f"{g.value:.4g}"
        if g.kind == "slice_gap":  # workflows/slices.py says the same in the gates-failed step
            parts.append(f"slice gap {g.slice}: {g.metric} {value} > {g.threshold:g}")
            continue
        if g.kind == "slice":
            parts.append(f"slice {g.slice}: {g.metric} {value} {_NEGATED.get(g.op, 'fails ' + g.op)} {g.threshold:g}")
            continue
        what = "regression check" if g.kind == "regression" else "gate"
        parts.append(f"{what} {g.metric} {g.op} {g.threshold:g} failed with {value}")
    return "; ".join(parts)


def record_only(action: Action, phase: Phase, now: datetime) -> Outcome:
    """An outcome that needs no workflow: Blocked, Rejected, Superseded, or removing what never ran."""
    return Outcome(
        action=action,
        phase=phase,
        reason=action.reason,
        workflow=WorkflowRef(name=action.workflow_name, executor="none", started=now, finished=now),
    )
