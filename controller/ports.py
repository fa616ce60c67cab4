"""Ports: the contracts between the controller and the engines that run its workflows. Plain data.

Place in the flow: step 4 of a pass (git -> pins -> plan -> **executor** -> status commit). The
reconciler compiles an Action into an Argo Workflow manifest (workflows/builders.py) and hands it
to an Executor; a later pass (or an executor event) collects the finished WorkflowRun and folds it
into an Outcome (controller/core/outcomes.py). Adapters implement the Executor:
controller/adapters/local (runs the manifest's DAG on this machine, in a detached engine process
that outlives the controller) and, on a cluster, the Argo Server. Nothing here imports an adapter,
so pure code can name these types.

The rules every Executor keeps:
- `submit` is idempotent by `metadata.name`: a workflow that already exists under that name is
  attached to when it is the same action (its labels and `releasectl.dev/spec-digest`,
  `releasectl.dev/source-commit` annotations match), never started twice; a different workflow
  under the name raises RunConflict.
- `get`, `list` and `finished` never block; `wait_for_finished` blocks at most its timeout and
  returns as soon as one of the named runs has finished (the executor's own events where it has
  them, such as Argo's workflow-events stream, a cheap poll otherwise).
- `stop` ends a run; its phase becomes Failed (Argo's "Stopped with strategy 'Stop'").
- Each step reports its verdict through the output parameter `verdict` (contract.OUT_VERDICT),
  JSON `{"verdict": "Succeeded" | "Failed" | "Errored", "reason": "..."}`, so the same contract
  holds on any engine that keeps output parameters.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

# Argo's phases, as Argo spells them.
PENDING, RUNNING, SUCCEEDED, FAILED, ERROR = "Pending", "Running", "Succeeded", "Failed", "Error"
SKIPPED, OMITTED = "Skipped", "Omitted"
FINISHED = frozenset({SUCCEEDED, FAILED, ERROR})

# The labels and annotations every releasectl workflow carries (workflows/builders.py writes them).
LABEL_PREFIX = "releasectl.dev"
LABEL_ENVIRONMENT = f"{LABEL_PREFIX}/environment"
LABEL_MODEL = f"{LABEL_PREFIX}/model"
LABEL_VERSION = f"{LABEL_PREFIX}/version"
LABEL_ACTION = f"{LABEL_PREFIX}/action"
LABEL_MANAGED = f"{LABEL_PREFIX}/managed-by"  # value "releasectl": what `list` selects on
ANNOTATION_SOURCE = f"{LABEL_PREFIX}/source-commit"
ANNOTATION_SPEC = f"{LABEL_PREFIX}/spec-digest"
ANNOTATION_ATTEMPT = f"{LABEL_PREFIX}/attempt"
IDENTITY_KEYS = (LABEL_ENVIRONMENT, LABEL_MODEL, LABEL_ACTION, ANNOTATION_SOURCE, ANNOTATION_SPEC)


@dataclass(frozen=True)
class NodeResult:
    """One DAG task of a run (Argo's node): its phase, outputs and why it ended."""

    name: str  # the DAG task name, e.g. "train"
    template: str
    phase: str  # Succeeded | Failed | Error | Skipped | Omitted | Running | Pending
    message: str = ""  # the engine's node message (locally: the step's last stderr line)
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
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def finished_ok(self) -> bool:
        return self.phase == SUCCEEDED

    @property
    def done(self) -> bool:
        return self.phase in FINISHED


def identity(metadata: Mapping[str, Any]) -> dict[str, str]:
    """What makes two workflows the same action: labels and annotations named by IDENTITY_KEYS."""
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    both = {**labels, **annotations}
    return {k: str(both[k]) for k in IDENTITY_KEYS if k in both}


class RunConflict(Exception):
    """A different workflow already holds the deterministic name (a hash clash or a foreign run)."""


@runtime_checkable
class Executor(Protocol):
    name: str

    def submit(self, manifest: dict[str, Any]) -> str:
        """Start the workflow, or attach to the run of the same name and action; its name."""
        ...

    def get(self, name: str) -> WorkflowRun | None:
        """The run's state now (None: no such run); does not block."""
        ...

    def list(self, labels: Mapping[str, str]) -> list[WorkflowRun]:
        """Every run whose labels include `labels`; does not block."""
        ...

    def finished(self, names: Collection[str]) -> dict[str, WorkflowRun]:
        """Those of `names` that have finished (or vanished: then an Error run saying so)."""
        ...

    def wait_for_finished(self, names: Collection[str], timeout_s: float) -> bool:
        """Block until one of `names` has finished or the timeout passed; whether one has."""
        ...

    def stop(self, name: str, message: str = "") -> None:
        """End a running workflow (Argo's stop: it ends Failed); nothing when it has finished."""
        ...

    def close(self) -> None:
        """Let go of connections and threads; runs in flight go on and are attached to later."""
        ...


@runtime_checkable
class Leadership(Protocol):
    """Leader election (a coordination.k8s.io Lease on a cluster): only the leader runs passes.

    The long-running loop asks `is_leader()` before a pass and again before it publishes; it must be
    False as soon as the holder can no longer be sure that its lease is still valid (fencing: a
    leader that cannot renew stops acting before its lease can expire for the others).
    """

    identity: str

    def start(self) -> None:
        """Begin campaigning and renewing in the background; returns at once."""
        ...

    def is_leader(self) -> bool:
        """Whether this process holds the lease now and may act."""
        ...

    def wait_until_leader(self, timeout_s: float) -> bool:
        """Block until this process leads or the timeout passed; whether it leads."""
        ...

    def release(self) -> None:
        """Stop renewing and give the lease up (so a follower takes over at once); idempotent."""
        ...
