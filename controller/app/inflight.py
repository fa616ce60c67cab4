"""Runs in flight, for `status`: the trail holds outcomes, the executor knows what runs now.

Place in the flow: beside queries (app layer). The controller records one status commit per
outcome and none when a run starts (docs/design.md, "Asynchronous passes"), so `status` asks the
executor which runs are in flight and shows those pins as `Progressing`, with the workflow and its
start time. Locally that is the engine's state under --home; nothing is read when it is absent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from controller.ports import ANNOTATION_SOURCE, FINISHED, LABEL_ENVIRONMENT, LABEL_MANAGED, LABEL_MODEL, WorkflowRun

PROGRESSING = "Progressing"


def local_runs(runs_home: Path) -> list[WorkflowRun]:
    """Unfinished runs of the local engine whose state lives in `runs_home` (none if it has none)."""
    if not (runs_home / "runs").is_dir():
        return []
    from controller.adapters.local.detached import DetachedExecutor

    executor = DetachedExecutor(runs_home)
    return [r for r in executor.list({LABEL_MANAGED: "releasectl"}) if r.phase not in FINISHED]


def overlay(rows: Sequence[dict[str, Any]], runs: Iterable[WorkflowRun]) -> list[dict[str, Any]]:
    """Rows whose desired pin has an unfinished run become Progressing, naming the workflow and its start."""
    by_key: dict[tuple[str, str], WorkflowRun] = {}
    for one in runs:
        if one.phase in FINISHED:
            continue
        by_key[(one.labels.get(LABEL_ENVIRONMENT, ""), one.labels.get(LABEL_MODEL, ""))] = one
    out = []
    for row in rows:
        run = by_key.get((row["environment"], row["model"]))
        if run is None or run.annotations.get(ANNOTATION_SOURCE) != row.get("source_commit"):
            out.append(row)
            continue
        started = run.started.isoformat().replace("+00:00", "Z") if run.started else None
        reason = f"workflow {run.name} {run.phase.lower()} since {started or 'submission'}"
        out.append(
            {**row, "phase": PROGRESSING, "workflow": run.name, "started": started, "in_sync": False}
            | {"reason": reason}
        )
    return out
