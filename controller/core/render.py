"""Tables for people, JSON for machines: how plan, status and history are shown.

Place in the flow: the last step of a read command. The CLI hands over plain values (actions,
statuses, history rows) and prints what these functions return. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.core.history import HistoryRow
from controller.core.models import Action, ActionKind, ModelStatus, Plan
from controller.core.pins import DesiredPin


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    rows = [[_cell(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return text.replace("\n", " ")


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False, default=str)


def short(text: str | None, n: int = 12) -> str:
    if not text:
        return "-"
    return text.removeprefix("sha256:")[:n]


# -- plan -----------------------------------------------------------------------------------------


def action_dict(action: Action) -> dict[str, Any]:
    return {
        "kind": action.kind.value,
        "environment": action.environment,
        "model": action.model,
        "version": action.version,
        "spec_digest": action.spec_digest,
        "source_commit": action.source_commit,
        "trains": action.trains,
        "artifact": action.artifact,
        "workflow": action.workflow_name
        if action.kind in (ActionKind.DEPLOY, ActionKind.ROLLBACK, ActionKind.REMOVE)
        else None,
        "reason": action.reason,
    }


@dataclass(frozen=True)
class PlanView:
    """A plan as people read it: what runs, what waits, what needs attention, what is in sync."""

    head: str
    plan: Plan
    in_sync: int  # pins live as desired (deleted pins and settled failures are not counted)
    attention: list[tuple[str, str, str, str]]  # (environment, model, phase, why): settled, but not live
    versions: dict[tuple[str, str], str]  # the version a rejected pin's file says, when it can be read
    problems: list[str]


def why(action: Action) -> str:
    """The WHY column: the planner's reason, or what an ordinary deploy replaces."""
    if action.reason:
        return action.reason
    if action.kind is ActionKind.DEPLOY:
        build = "train it" if action.trains else "reuse the artifact built for this spec"
        if action.live is None:
            return f"new in {action.environment} (nothing live yet): {build}"
        return f"the pin changed: {action.live.version} live -> {action.version}; {build}"
    return ""


def plan_dict(view: PlanView) -> dict[str, Any]:
    actions = []
    for a in view.plan.actions:
        row = action_dict(a)
        row["version"] = view.versions.get(a.key, a.version)
        row["reason"] = why(a)
        actions.append(row)
    return {
        "head": view.head,
        "actions": actions,
        "waiting": [{"environment": e, "model": m, "reason": r} for e, m, r in view.plan.waiting],
        "attention": [{"environment": e, "model": m, "phase": ph, "reason": r} for e, m, ph, r in view.attention],
        "in_sync": view.in_sync,
        "problems": view.problems,
    }


def plan_text(view: PlanView) -> str:
    actions, waiting, attention = view.plan.actions, view.plan.waiting, view.attention
    if not actions and not waiting and not attention:
        return f"Nothing to do: {view.in_sync} pin(s) in sync."
    rows = []
    for a in actions:
        what = a.kind.value + (" (train)" if a.trains else "")
        version = view.versions.get(a.key, a.version)
        rows.append([what, f"{a.environment}/{a.model}", version, short(a.source_commit), why(a)])
    for env, model, reason in waiting:
        rows.append(["wait", f"{env}/{model}", "", "", reason])
    for env, model, phase, reason in attention:
        rows.append([phase.lower(), f"{env}/{model}", "", "", reason])
    return table(["ACTION", "PIN", "VERSION", "COMMIT", "WHY"], rows) + f"\n{view.in_sync} pin(s) in sync."


# -- status ---------------------------------------------------------------------------------------


def status_rows(
    desired: Mapping[tuple[str, str], DesiredPin],
    recorded: Mapping[tuple[str, str], ModelStatus],
    order: Sequence[str],
    environment: str | None = None,
) -> list[dict[str, Any]]:
    index = {env: i for i, env in enumerate(order)}
    keys = sorted(set(desired) | set(recorded), key=lambda k: (k[1], index.get(k[0], len(index)), k[0]))
    rows = []
    for key in keys:
        if environment is not None and key[0] != environment:
            continue
        d, r = desired.get(key), recorded.get(key)
        in_sync = (
            d is not None
            and r is not None
            and r.live is not None
            and r.desired.source_commit == d.source_commit
            and r.live.spec_digest == d.digest
        )
        rows.append(
            {
                "environment": key[0],
                "model": key[1],
                "desired": d.version if d is not None else None,
                "desired_digest": d.digest if d is not None else None,
                "source_commit": d.source_commit if d is not None else None,
                "live": r.live.version if r is not None and r.live is not None else None,
                "live_artifact": r.live.artifact if r is not None and r.live is not None else None,
                "live_since": r.live.since.isoformat().replace("+00:00", "Z") if r and r.live else None,
                "phase": r.phase.value if r is not None else "Pending",
                "in_sync": in_sync,
                "recorded_for": r.desired.source_commit if r is not None else None,
                "reason": r.reason if r is not None else "",
                "metrics": dict(r.metrics) if r is not None else {},
                # the latest outcome's figures are that version's, which is not the live one after a Failed candidate
                "metrics_version": r.desired.version if r is not None and r.metrics else None,
            }
        )
    return rows


def status_table(rows: Sequence[Mapping[str, Any]]) -> str:
    body = []
    for row in rows:
        # a newer pin change than the one recorded waits for the controller; a deleted pin does not
        stale = row["source_commit"] is not None and row["recorded_for"] not in (None, row["source_commit"])
        phase = "Pending" if stale else row["phase"]
        metric = ", ".join(f"{k}={v:.3f}" for k, v in sorted(row["metrics"].items()) if k in ("roc_auc", "accuracy"))
        if metric and row["metrics_version"] != row["live"]:  # a Failed candidate's figures, said as such
            metric = f"{row['metrics_version']}: {metric}"
        body.append(
            [
                row["model"],
                row["environment"],
                row["desired"] or "-",
                row["live"] or "-",
                phase,
                row["live_since"] or "-",
                metric or "-",
                _truncate(row["reason"], 70),
            ]
        )
    return table(["MODEL", "ENV", "DESIRED", "LIVE", "PHASE", "LIVE SINCE", "METRICS", "REASON"], body)


def _truncate(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


# -- history --------------------------------------------------------------------------------------


def history_table(rows: Sequence[HistoryRow]) -> str:
    body = [
        [
            r.when,
            r.environment,
            r.kind,
            r.version,
            r.phase or "-",
            short(r.commit),
            short(r.source_commit) if r.kind == "outcome" else "",
            r.author,
            _truncate(r.subject, 60),
        ]
        for r in rows
    ]
    return table(["WHEN", "ENV", "KIND", "VERSION", "PHASE", "COMMIT", "FOR", "BY", "SUBJECT"], body)
