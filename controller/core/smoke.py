"""The smoke tier's decisions: a finished smoke run -> one pin's verdict, gates at risk, the report.

Place in the flow: `releasectl check --smoke` (controller/app/smoke.py) runs each touched pin's
smoke workflow (workflows/builders.smoke_manifest: validate-data -> train -> evaluate on a sample,
with the recipe's cheap settings) and hands every finished WorkflowRun here. Pure: no git, no
clock, no I/O. Only the contract's task names, output parameters and verdicts are read, as
controller/core/outcomes.py reads them for the full workflow.

A pin's result:
- `failed` (exit 1): the pin cannot be read (step `pin`), or a step's verdict said Failed or
  Errored (a check said no, or the training code crashed: both are the change's to fix). The
  first step that did not succeed, in DAG order, is named with its reason, in one bounded line.
- `error` (exit 3): a step ended with no verdict (the executor could not run it, or it was killed
  at its deadline), or the run did not finish in time: the check could not answer.
- `passed`: every step succeeded. Its gates are then judged on the sample (`gate_risk`): `fails`
  (the gate fails on the sample), `near` (it passes by less than the margin below) or `ok`.
  Gates at risk (fails or near) are reported, not failed on, since a few percent of the rows and
  capped settings are not the full model; `--fail-at-risk` makes them count (exit 1).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from controller.core.contract import EVALUATE, OUT_GATES, OUT_METRICS, OUT_REPORT, OUT_VERDICT, TRAIN, VALIDATE_DATA
from controller.core.models import METRICS
from controller.core.render import table
from controller.core.schemas import MAX_MESSAGE, printable
from controller.ports import FINISHED, SUCCEEDED, WorkflowRun

STEPS = (VALIDATE_DATA, TRAIN, EVALUATE)
PIN_STEP = "pin"  # the pin file itself could not be read or broke a rule

# "Within a margin": how close to its threshold a passing gate may be on the sample before it counts
# as at risk. Metrics bounded in [0, 1] (accuracy, balanced_accuracy, f1_macro, roc_auc): 0.05 or
# what one held-out row of the sample is worth (1 / held-out rows), whichever is larger, since on a
# sample a single row moves accuracy that much. The others (log_loss and the latencies,
# unbounded): 25 % of the threshold. The held-out rows are the sample's test split:
# ceil(HELD_OUT * sample rows), as workflows/datasets.split makes it.
BOUNDED_METRICS = frozenset({"accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "recall"})
ABSOLUTE_MARGIN = 0.05
RELATIVE_MARGIN = 0.25
HELD_OUT = 0.25

Risk = Literal["ok", "near", "fails"]
Result = Literal["passed", "failed", "error"]


def margin(metric: str, threshold: float, sample_rows: int | None = None) -> float:
    if metric not in BOUNDED_METRICS:
        return RELATIVE_MARGIN * abs(threshold)
    held_out = math.ceil(HELD_OUT * sample_rows) if sample_rows else 0
    return max(ABSOLUTE_MARGIN, 1 / held_out) if held_out else ABSOLUTE_MARGIN


def gate_risk(metric: str, op: str, threshold: float, value: float | None, sample_rows: int | None = None) -> Risk:
    """A gate on the sample: fails, passes within the margin (near), or passes clearly (ok)."""
    if value is None or math.isnan(value):
        return "fails"
    checks = {">=": value >= threshold, ">": value > threshold, "<=": value <= threshold, "<": value < threshold}
    if op == "==":
        return "ok" if value == threshold else "fails"
    if op not in checks:
        return "fails"
    if not checks[op]:
        return "fails"
    if metric in BOUNDED_METRICS and op in (">=", ">") and value >= 1.0:
        return "ok"  # a perfect score has no more room to give: nothing on the sample says "at risk"
    room = value - threshold if op in (">=", ">") else threshold - value
    # near: closer than the margin (rounded, so that 1.0 against ">= 0.9" is exactly 0.1 of room)
    return "near" if round(room, 9) < round(margin(metric, threshold, sample_rows), 9) else "ok"


@dataclass(frozen=True)
class GateOnSample:
    metric: str
    op: str
    threshold: float
    value: float | None
    risk: Risk

    def text(self) -> str:
        shown = "missing" if self.value is None else f"{self.value:.4g}"
        return f"{self.metric} {self.op} {self.threshold:g}: {shown} ({self.risk})"


@dataclass(frozen=True)
class PinCheck:
    """One touched pin's smoke result."""

    path: str
    environment: str
    model: str
    version: str
    result: Result
    step: str | None = None  # the failing step (validate-data, train, evaluate, or pin)
    reason: str = ""
    steps: dict[str, str] = field(default_factory=dict)  # task -> its phase
    params: dict[str, Any] = field(default_factory=dict)  # the cheap params trained with
    sample: dict[str, Any] = field(default_factory=dict)  # rows, of, fraction, seed (validate-data's report)
    metrics: dict[str, float] = field(default_factory=dict)  # on the sample's held-out rows
    gates: tuple[GateOnSample, ...] = ()
    unchecked: tuple[str, ...] = ()  # what the smoke tier cannot judge (regression against live)
    reference: str | None = None  # the dataset digest drift was checked against, when there was one
    seconds: float | None = None
    workflow: str | None = None

    @property
    def at_risk(self) -> tuple[GateOnSample, ...]:
        return tuple(g for g in self.gates if g.risk != "ok")

    def line(self) -> str:
        """One bounded line: the pin file, the failing step and why."""
        what = "error" if self.result == "error" else "failed"
        return one_line(f"{self.path}: {self.step or '-'} {what}: {self.reason}")

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["gates"] = [asdict(g) for g in self.gates]
        out["unchecked"] = list(self.unchecked)
        out["at_risk"] = [g.metric for g in self.at_risk]
        return out


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    return printable(" ".join(str(text).split()), limit)


def _json(text: str | None, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def _verdict(outputs: Mapping[str, str]) -> tuple[str, str] | None:
    found = _json(outputs.get(OUT_VERDICT), None)
    if not isinstance(found, dict) or not isinstance(found.get("verdict"), str):
        return None
    return found["verdict"], str(found.get("reason", ""))


def fold(
    base: PinCheck,
    run: WorkflowRun,
    gates: Sequence[str],
    max_regression: Sequence[str],
) -> PinCheck:
    """What a smoke run says about one pin (`base` carries its identity, params and reference).

    `gates` and `max_regression` are the metrics the pin gates on and bounds against live, in its order.
    """
    steps = {task: run.nodes[task].phase for task in STEPS if task in run.nodes}
    seconds = (run.finished - run.started).total_seconds() if run.started and run.finished else None
    common: dict[str, Any] = {"steps": steps, "seconds": seconds, "workflow": run.name}
    unchecked = tuple(f"max_regression.{m} (no live version in the smoke tier)" for m in sorted(max_regression))
    validated = run.nodes.get(VALIDATE_DATA)
    if validated is not None and validated.phase == SUCCEEDED:
        common["sample"] = dict(_json(validated.outputs.get(OUT_REPORT), {}).get("sample") or {})
    if run.phase not in FINISHED:
        return _with(
            base, result="error", step=_running(run), reason="did not finish within the smoke timeout", **common
        )
    for task in STEPS:
        node = run.nodes.get(task)
        if node is None or node.phase == SUCCEEDED:
            continue
        said = _verdict(node.outputs)
        if said is not None and said[0] != "Succeeded":
            return _with(base, result="failed", step=task, reason=said[1] or node.message or said[0], **common)
        why = node.message or f"ended {node.phase} without a verdict"
        return _with(base, result="error", step=task, reason=why, **common)
    evaluate = run.nodes.get(EVALUATE)
    if evaluate is None or run.phase != SUCCEEDED:
        return _with(base, result="error", step=EVALUATE, reason=run.message or f"run ended {run.phase}", **common)
    metrics = {k: float(v) for k, v in _json(evaluate.outputs.get(OUT_METRICS), {}).items()}
    judged = []
    rows = common.get("sample", {}).get("rows")
    for g in _json(evaluate.outputs.get(OUT_GATES), []):
        if isinstance(g, dict) and g.get("kind", "gate") == "gate":
            value = None if g.get("value") is None else float(g["value"])
            threshold = float(g["threshold"])
            judged.append(
                GateOnSample(
                    g["metric"], g["op"], threshold, value, gate_risk(g["metric"], g["op"], threshold, value, rows)
                )
            )
    order = {m: i for i, m in enumerate(gates)}
    judged.sort(key=lambda g: order.get(g.metric, len(order)))
    return _with(base, result="passed", metrics=metrics, gates=tuple(judged), unchecked=unchecked, **common)


def _running(run: WorkflowRun) -> str:
    for task in STEPS:
        node = run.nodes.get(task)
        if node is None or node.phase != SUCCEEDED:
            return task
    return EVALUATE


def _with(base: PinCheck, **changes: Any) -> PinCheck:
    return PinCheck(**{**asdict(base), "gates": base.gates, **changes})


def invalid(path: str, environment: str, model: str, version: str, problems: Sequence[str]) -> PinCheck:
    """A touched pin that cannot be run: the first problem, and how many more there are."""
    more = f" (and {len(problems) - 1} more; run releasectl validate)" if len(problems) > 1 else ""
    first = (problems[0] if problems else "not a valid pin").removeprefix(f"{path}: ")
    return PinCheck(path, environment, model, version, "failed", PIN_STEP, one_line(first, 300) + more)


@dataclass(frozen=True)
class SmokeReport:
    base: str  # the commit compared against (the merge-base of --base and HEAD)
    base_ref: str  # what it was derived from (e.g. origin/main)
    head: str
    checks: tuple[PinCheck, ...] = ()
    removed: tuple[str, ...] = ()  # pin files the change deletes: nothing to run
    seconds: float = 0.0

    def exit_code(self, fail_at_risk: bool = False) -> int:
        """1 when a pin failed (or, with fail_at_risk, has a gate at risk); else 3 on an error; else 0."""
        if any(c.result == "failed" for c in self.checks):
            return 1
        if fail_at_risk and any(c.at_risk for c in self.checks):
            return 1
        if any(c.result == "error" for c in self.checks):
            return 3
        return 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "base_ref": self.base_ref,
            "head": self.head,
            "seconds": round(self.seconds, 3),
            "pins": [c.as_dict() for c in self.checks],
            "removed": list(self.removed),
            "margin": {
                "bounded_metrics": f"max({ABSOLUTE_MARGIN}, 1 / held-out rows of the sample)",
                "other_metrics": f"{RELATIVE_MARGIN} x threshold",
            },
        }

    def summary(self) -> str:
        counts = {r: sum(1 for c in self.checks if c.result == r) for r in ("passed", "failed", "error")}
        risky = sum(len(c.at_risk) for c in self.checks)
        removed = f", {len(self.removed)} removed" if self.removed else ""
        return (
            f"smoke: {len(self.checks)} pin(s) changed between {self.base[:12]} (merge-base with {self.base_ref}) "
            f"and {self.head[:12]}{removed}: {counts['passed']} passed, {counts['failed']} failed, "
            f"{counts['error']} error(s); {risky} gate(s) at risk on the sample; {self.seconds:.1f} s"
        )


def _cell_steps(check: PinCheck) -> list[str]:
    cells = []
    for task in STEPS:
        phase = check.steps.get(task)
        if check.step == task:
            cells.append("FAIL" if check.result == "failed" else "ERROR")
        elif phase == SUCCEEDED:
            cells.append("ok")
        else:
            cells.append("-")
    return cells


def _metrics_cell(check: PinCheck) -> str:
    gated = [g.metric for g in check.gates] or [m for m in ("accuracy", "roc_auc") if m in check.metrics]
    return ", ".join(f"{m} {check.metrics[m]:.3g}" for m in gated if m in check.metrics and m in METRICS) or "-"


def render_table(report: SmokeReport) -> str:
    """The table for people, then one line per failure and per gate at risk."""
    if not report.checks:
        return "no pin changed: nothing to smoke-check"
    rows = []
    for c in report.checks:
        sample = f"{c.sample['rows']}/{c.sample['of']}" if c.sample.get("rows") else "-"
        risk = "; ".join(g.text() for g in c.at_risk) or ("-" if c.result == "passed" else "")
        rows.append([c.path, c.version, *_cell_steps(c), sample, _metrics_cell(c), risk])
    lines = [table(["PIN", "VERSION", "DATA", "TRAIN", "EVALUATE", "SAMPLE", "METRICS (sample)", "AT RISK"], rows)]
    for c in report.checks:
        if c.result != "passed":
            lines.append(c.line())
    return "\n".join(lines)
