"""The Executor protocol: how the reconciler runs a compiled workflow and reads what happened.

Place in the flow: step 4 of a pass. The reconciler compiles an Action into an Argo Workflow
manifest (workflows/builders.py), hands the manifest to an Executor, polls it, and folds the
finished WorkflowRun into an Outcome (controller/core/outcomes.py). Implementations: LocalExecutor
(runs the manifest's DAG on this machine) and, on a cluster, the Argo Server. Submission is
idempotent by workflow name: submitting a manifest whose metadata.name already ran or runs
attaches to that run instead of starting a second one (crash safety).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

# Argo's phases, as Argo spells them.
PENDING, RUNNING, SUCCEEDED, FAILED, ERROR = "Pending", "Running", "Succeeded", "Failed", "Error"
SKIPPED, OMITTED = "Skipped", "Omitted"
FINISHED = frozenset({SUCCEEDED, FAILED, ERROR})


@dataclass(frozen=True)
class NodeResult:
    """One DAG task of a run (Argo's node): its phase, outputs and why it ended."""

    name: str  # the DAG task name, e.g. "train"
    template: str
    phase: str  # Succeeded | Failed | Error | Skipped | Omitted | Running | Pending
    message: str = ""  # why it failed: the step's last stderr line locally, Argo's node message on a cluster
    exit_code: int | None = None
    outputs: dict[str, str] = field(default_factory=dict)  # output parameter name -> value
    started: datetime | None = None
    finished: datetime | None = None
    attempts: int = 1


@dataclass(frozen=True)
class WorkflowRun:
    name: str
    phase: str  # Pending | Running | Succeeded | Failed | Error
    message: str = ""
    started: datetime | None = None
    finished: datetime | None = None
    nodes: dict[str, NodeResult] = field(default_factory=dict)  # task name -> result

    @property
    def finished_ok(self) -> bool:
        return self.phase == SUCCEEDED


@runtime_checkable
class Executor(Protocol):
    name: str

    def submit(self, manifest: dict[str, Any]) -> str:
        """Start the workflow (or attach to the run with the same metadata.name); its name."""
        ...

    def poll(self, name: str) -> WorkflowRun:
        """The run's state now; does not block."""
        ...

    def wait(self, name: str, timeout_s: float | None = None) -> WorkflowRun:
        """Block until the run has finished (or the timeout passes); the run as it stands then."""
        ...

    def stop(self, name: str) -> None:
        """Stop a running workflow (its outcome becomes Superseded or Errored, by the caller's choice)."""
        ...
