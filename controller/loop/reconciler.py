"""One reconciliation pass: fetch -> snapshot -> collect -> plan -> submit -> record. It never waits.

Place in the flow: the conductor, called by the long-running loop (controller/loop/service.py) on
every trigger. It asks the git adapter for the head, the snapshot reader for pins and statuses,
the executor which of its runs in flight have finished, the planner for a Plan, the workflow
builders for manifests; it folds finished runs into Outcomes, submits what is runnable, collects
one status commit per outcome and publishes them once (push; a rejected push is rebased and
retried by the git adapter). A pass returns as soon as it has submitted: runs in flight are
tracked under their deterministic names and collected by a later pass.

What it keeps between passes is only a cache of what git and the executor say: the snapshot, and
the runs in flight (re-derived at start from the executor's list and the planner's decisions, so a
controller killed at any instant never submits a run twice and never loses an outcome).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from controller import failpoints
from controller.adapters.git import CONTROLLER, GitRepo, Identity, PendingCommit
from controller.core.models import Action, ActionKind, ModelStatus, Outcome, Phase, WorkflowRef
from controller.core.outcomes import fold, record_only
from controller.core.paths import status_path
from controller.core.planner import SETTLED, CommitInfo, Evidence, plan
from controller.core.schemas import Problem
from controller.core.trail import artifacts_by_digest, message, next_status, render_status
from controller.errors import PermanentError, TransientError
from controller.loop.approvals import commit_infos, with_trail_evidence
from controller.loop.snapshot import Snapshot, SnapshotReader
from controller.ports import (
    ANNOTATION_SOURCE,
    LABEL_ENVIRONMENT,
    LABEL_MANAGED,
    LABEL_MODEL,
    PENDING,
    Executor,
    WorkflowRun,
)

Clock = Callable[[], datetime]
Key = tuple[str, str]


class Log(Protocol):
    def __call__(self, line: str, **fields: Any) -> None: ...


def _quiet(line: str, **fields: Any) -> None:
    return None


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def default_parallel() -> int:
    """Runs in flight at once, sized for the machine: one per core, at least two."""
    return max(2, os.cpu_count() or 2)


@dataclass(frozen=True)
class InFlight:
    """A submitted run the controller waits for: what it was for, and when it went out."""

    action: Action
    name: str
    submitted: datetime


@dataclass
class PassResult:
    head: str
    outcomes: list[Outcome] = field(default_factory=list)
    published: str | None = None
    problems: list[Problem] = field(default_factory=list)
    push_retries: int = 0
    submitted: list[InFlight] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)  # workflows stopped: superseded or past deadline
    in_flight: int = 0  # runs still in flight when the pass ended
    queued: int = 0  # runnable actions left for a later pass by --max-parallel

    @property
    def changed(self) -> bool:
        return bool(self.outcomes)

    @property
    def settled(self) -> bool:
        """Nothing in flight and nothing queued: another pass now would find nothing to run."""
        return self.in_flight == 0 and self.queued == 0 and not self.submitted


class Reconciler:
    def __init__(
        self,
        repo: GitRepo,
        executor: Executor,
        compile_action: Callable[[Action], dict[str, Any]],
        *,
        identity: Identity = CONTROLLER,
        clock: Clock = utcnow,
        log: Log = _quiet,
        workflow_timeout_s: float = 3600,
        max_parallel: int | None = None,
        may_publish: Callable[[], bool] = lambda: True,
    ) -> None:
        self.repo = repo
        self.executor = executor
        self.compile_action = compile_action
        self.identity = identity
        self.clock = clock
        self.log = log
        self.workflow_timeout_s = workflow_timeout_s
        self.max_parallel = max_parallel or default_parallel()
        self.may_publish = may_publish
        self.reader = SnapshotReader(repo)
        self.snapshot: Snapshot | None = None
        self.in_flight: dict[Key, InFlight] = {}
        self._found: dict[str, WorkflowRun] | None = None  # runs found at the executor at start
        self._deferred: set[Key] = set()  # queued by --max-parallel or build-once, or a block held back
        self._adopting = False  # adoption spans passes when --max-parallel queues some of it
        self._finished: dict[str, WorkflowRun] | None = None  # what _something_landed found, for _collect
        # The trail's watermark (Releasectl-Reconciled): every pin change up to it has its outcome.
        self._watermark: str | None = None
        self._adoption_base: str | None = None  # while adopting: written as Releasectl-Adopting
        self._infos: dict[str, CommitInfo] = {}
        self._unpublished: list[Outcome] = []  # a pass whose push failed after its retries

    # -- entry points -----------------------------------------------------------------------------

    def reconcile(self, *, full: bool = False) -> PassResult:
        """One pass. The first pass (or `full`) is a level-triggered scan of every pin."""
        if (
            self.snapshot is not None
            and not full
            and self.repo.remote_head() == self.snapshot.head
            and self.repo.trail_head() == self.snapshot.trail  # with --status-branch: the trail moved too
        ):
            if self.snapshot.policy is None:  # still the head whose policy cannot be read: still stalled
                raise PolicyInvalid(self.snapshot.problems)
            snap = self.reader.advance(self.snapshot, self.snapshot.head)
            if not snap.candidates and not self._something_landed():
                return PassResult(head=snap.head, in_flight=len(self.in_flight))  # idle: cost follows the change
            return self.reconcile_snapshot(snap)  # nothing new: collect runs, re-check Blocked and Errored
        head = self.repo.fetch()
        snap = self.reader.load(head) if self.snapshot is None or full else self.reader.advance(self.snapshot, head)
        return self.reconcile_snapshot(snap)

    def settle(self, *, full: bool = False, timeout_s: float | None = None) -> PassResult:
        """Passes until nothing is in flight or queued (`reconcile --once`): the outcomes of all."""
        end = None if timeout_s is None else time.monotonic() + timeout_s
        total = self.reconcile(full=full)
        while not total.settled:
            if end is not None and time.monotonic() >= end:
                break
            if self.in_flight:
                wait = 5.0 if end is None else max(0.0, min(5.0, end - time.monotonic()))
                self.executor.wait_for_finished([f.name for f in self.in_flight.values()], wait)
            step = self.reconcile()
            total = PassResult(
                head=step.head,
                outcomes=total.outcomes + step.outcomes,
                published=step.published or total.published,
                problems=step.problems,
                push_retries=total.push_retries + step.push_retries,
                submitted=step.submitted,
                stopped=total.stopped + step.stopped,
                in_flight=step.in_flight,
                queued=step.queued,
            )
        return total

    # -- one pass over a snapshot -----------------------------------------------------------------

    def reconcile_snapshot(self, snap: Snapshot) -> PassResult:
        result = PassResult(head=snap.head, problems=list(snap.problems))
        for problem in snap.problems:
            self.log(f"error: {problem.line()}", path=problem.path)
        if snap.policy is None:
            self.snapshot = snap
            raise PolicyInvalid(snap.problems)
        if snap.adopting:
            self._adopting = True
        now = self.clock()
        recorded = dict(snap.recorded)
        artifacts = dict(snap.artifacts)
        if self._found is None:
            self._found = {run.name: run for run in self.executor.list({LABEL_MANAGED: "releasectl"})}
        carried, self._unpublished = self._unpublished, []
        done = [o for o in carried + self._collect(now, result) if not self._settled_by_another(o, snap)]
        for outcome in done:
            key = outcome.action.key
            recorded[key] = next_status(outcome, recorded.get(key), now)
            artifacts.update(artifacts_by_digest([recorded[key]]))
        candidates = snap.candidates
        if candidates is not None:
            touched = {o.action.model for o in done} | {f.action.model for f in self.in_flight.values()}
            candidates = frozenset(candidates | self._deferred | {(e, m) for m in touched for e in snap.policy.order})
        self._deferred = set()
        evidence = gather_evidence(
            self.repo, snap, candidates, now=now, first=True, artifacts=artifacts, cache=self._infos
        )
        if self._adopting and not snap.adopting:
            evidence = replace(evidence, adopting=True)
        p = plan(snap.desired, recorded, snap.policy, evidence)
        records: list[Outcome] = []
        blocks: list[Action] = []
        for action in p.records_only():
            if action.kind is ActionKind.BLOCK:
                blocks.append(action)
            elif action.kind is ActionKind.SUPERSEDE and self._in_flight_for(action):
                continue  # its run is stopped and recorded by _supersede below
            else:
                records.append(record_only(action, _RECORD_PHASE[action.kind], now))
        wanted = {a.key: a for a in p.actions if a.kind is not ActionKind.SUPERSEDE}
        records += self._supersede(wanted, now, result)
        self._adopt_or_stop_found(wanted, result)
        started = self._submit(p.runnable(), now, result)
        busy = {f.action.model for f in self.in_flight.values()}
        # A block whose model has a run in flight may be lifted when that run lands: say it then.
        blocks_now = [record_only(a, Phase.BLOCKED, now) for a in blocks if a.model not in busy]
        self._deferred |= {a.key for a in blocks if a.model in busy}
        result.outcomes = records + done + started + blocks_now
        result.in_flight = len(self.in_flight)
        if snap.adopting and self._adoption_base is None:
            self._adoption_base = snap.reconciled or snap.head
        pending = bool(self.in_flight or self._deferred or result.queued)
        if not pending:
            self._watermark = snap.head  # every change up to this head has its outcome
            self._adopting = False
        elif self._watermark is None:
            self._watermark = snap.reconciled or snap.head
        try:
            result.published = self._publish(snap, result.outcomes, result)
        except TransientError:  # nothing landed: the next pass says these again, before its own
            self._unpublished, self.snapshot = list(result.outcomes), snap
            raise
        if not self._adopting:
            self._adoption_base = None
        self.snapshot = snap
        return result

    def _settled_by_another(self, outcome: Outcome, snap: Snapshot) -> bool:
        """Exactly one outcome per change: another writer (a second controller) settled it meanwhile."""
        r = snap.recorded.get(outcome.action.key)
        if r is None or r.desired.source_commit != outcome.action.source_commit or r.phase not in SETTLED:
            return False
        self.log(f"{outcome.action.environment}/{outcome.action.model}: this change already has an outcome; dropped")
        return True

    def _in_flight_for(self, action: Action) -> bool:
        flight = self.in_flight.get(action.key)
        return flight is not None and flight.action.source_commit == action.source_commit

    def _something_landed(self) -> bool:
        """Whether a run in flight finished or ran past its deadline (one cheap executor call)."""
        if not self.in_flight:
            return False
        self._finished = self.executor.finished([f.name for f in self.in_flight.values()])
        if self._finished:
            return True
        oldest = min(f.submitted for f in self.in_flight.values())
        return self.clock() - oldest > timedelta(seconds=self.workflow_timeout_s)

    def _collect(self, now: datetime, result: PassResult) -> list[Outcome]:
        """Finished runs become outcomes; runs past the deadline are stopped and Errored."""
        if not self.in_flight:
            return []
        finished, self._finished = self._finished, None
        if finished is None:
            finished = self.executor.finished([f.name for f in self.in_flight.values()])
        outcomes: list[Outcome] = []
        for key, flight in list(self.in_flight.items()):
            run = finished.get(flight.name)
            if run is not None:
                outcome = fold(flight.action, run, self.executor.name)
            elif now - flight.submitted > timedelta(seconds=self.workflow_timeout_s):
                self._stop(flight.name, f"past its deadline of {self.workflow_timeout_s:g}s", result)
                outcome = _errored(
                    flight.action,
                    f"workflow {flight.name} ran past its deadline of {self.workflow_timeout_s:g}s and was stopped",
                    now,
                    started=flight.submitted,
                    executor=self.executor.name,
                )
            else:
                continue
            del self.in_flight[key]
            self._say_outcome(outcome)
            outcomes.append(outcome)
        return outcomes

    def _supersede(self, wanted: dict[Key, Action], now: datetime, result: PassResult) -> list[Outcome]:
        """A pin that changed while its run was in flight: stop the run, record Superseded."""
        outcomes = []
        for key, flight in list(self.in_flight.items()):
            action = wanted.get(key)
            if action is None or action.workflow_name == flight.name:
                continue
            del self.in_flight[key]
            self._stop(flight.name, f"superseded by {action.source_commit[:12]}", result)
            reason = (
                f"superseded by {action.source_commit} while workflow {flight.name} ran; the run was stopped"
                if action.source_commit != flight.action.source_commit
                else f"superseded while workflow {flight.name} ran ({action.kind.value} now); the run was stopped"
            )
            outcome = Outcome(
                action=flight.action,
                phase=Phase.SUPERSEDED,
                reason=reason,
                workflow=WorkflowRef(
                    name=flight.name, executor=self.executor.name, started=flight.submitted, finished=now
                ),
            )
            self._say_outcome(outcome)
            outcomes.append(outcome)
        return outcomes

    def _adopt_or_stop_found(self, wanted: dict[Key, Action], result: PassResult) -> None:
        """Once, at start: runs left in flight by an earlier controller process."""
        if not self._found:
            self._found = {}
            return
        found, self._found = self._found, {}
        names = {a.workflow_name for a in wanted.values()}
        for run in found.values():
            if run.done or run.name in names:
                continue  # a wanted run is attached by submit below; a finished one is history
            key = (run.labels.get(LABEL_ENVIRONMENT, ""), run.labels.get(LABEL_MODEL, ""))
            action = wanted.get(key)
            source = run.annotations.get(ANNOTATION_SOURCE, "")
            if action is not None and action.source_commit != source:
                self._stop(run.name, f"superseded by {action.source_commit[:12]} while the controller was away", result)

    def _submit(self, runnable: Iterable[Action], now: datetime, result: PassResult) -> list[Outcome]:
        """Submit up to --max-parallel; each digest is trained by one run at a time (build once)."""
        outcomes: list[Outcome] = []
        training = {f.action.spec_digest for f in self.in_flight.values() if f.action.trains}
        for action in runnable:
            flight = self.in_flight.get(action.key)
            if flight is not None and flight.name == action.workflow_name:
                continue  # still running
            if action.kind is ActionKind.REMOVE and action.live is None:
                outcomes.append(record_only(action, Phase.REMOVED, now))
                continue
            if action.trains and action.spec_digest in training:
                result.queued += 1  # another environment builds this digest now; reuse it next pass
                self._deferred.add(action.key)
                continue
            if len(self.in_flight) >= self.max_parallel:
                result.queued += 1
                self._deferred.add(action.key)
                continue
            how = (
                "train" if action.trains else ("rollback" if action.kind is ActionKind.ROLLBACK else action.kind.value)
            )
            try:
                name = self._submit_one(action)
            except PermanentError as exc:
                outcome = _errored(action, f"could not submit workflow: {exc}", now, executor=self.executor.name)
                self._say_outcome(outcome)
                outcomes.append(outcome)
                continue
            except Exception as exc:  # the executor is down: Errored, retried after the backoff
                outcome = _errored(action, f"could not submit workflow: {exc}", now, executor=self.executor.name)
                self._say_outcome(outcome)
                outcomes.append(outcome)
                continue
            flight = InFlight(action, name, now)
            self.in_flight[action.key] = flight
            result.submitted.append(flight)
            if action.trains and action.spec_digest is not None:
                training.add(action.spec_digest)
            self.log(
                f"{action.environment}/{action.model} {action.version}: submitted {how} ({name})",
                **_fields(action),
                workflow=name,
            )
        return outcomes

    def _submit_one(self, action: Action) -> str:
        """Attach when the executor already has the run (a restart: no manifest to build), else submit."""
        name = action.workflow_name
        existing = self.executor.get(name)
        if existing is None or existing.phase == PENDING:  # submit is idempotent: a Pending run is re-queued
            name = self.executor.submit(self.compile_action(action))
            failpoints.hit("after-submit")
        return name

    def _stop(self, name: str, why: str, result: PassResult) -> None:
        try:
            self.executor.stop(name, why)
        except Exception as exc:  # the run is not ours to track any more; say so and go on
            self.log(f"could not stop workflow {name}: {exc}", workflow=name)
        result.stopped.append(name)
        self.log(f"stopped workflow {name}: {why}", workflow=name)

    def _say_outcome(self, outcome: Outcome) -> None:
        action = outcome.action
        detail = f": {outcome.reason}" if outcome.phase is not Phase.DEPLOYED and outcome.reason else ""
        self.log(
            f"{action.environment}/{action.model} {action.version}: {outcome.phase.value}{detail}",
            **_fields(action),
            workflow=outcome.workflow.name if outcome.workflow else action.workflow_name,
            phase=outcome.phase.value,
        )

    def _publish(self, snap: Snapshot, outcomes: list[Outcome], result: PassResult) -> str | None:
        """One status commit per outcome, all pushed at once; nothing to say means no commit."""
        if not outcomes:
            return None
        if not self.may_publish():
            raise NotLeader("this controller lost its leadership before publishing; the next leader records these")
        statuses: dict[tuple[str, str], ModelStatus] = dict(snap.recorded)
        pending: list[PendingCommit] = []
        for outcome in outcomes:
            key = outcome.action.key
            outcome = with_trail_evidence(self.repo, snap, outcome)  # noqa: PLW2901 - the evidence it records
            status = next_status(outcome, statuses.get(key), self.clock())
            statuses[key] = status
            reconciled = self._watermark or snap.head
            adopting = self._adoption_base if self._adopting else None
            text = message(outcome, status, reconciled, adopting).text()
            pending.append(PendingCommit(((status_path(*key), render_status(status)),), text))

        def retried(attempt: int) -> None:
            result.push_retries = attempt
            self.log(
                f"push rejected (someone pushed meanwhile); rebasing {len(pending)} status commit(s), "
                f"attempt {attempt + 1}"
            )

        dropped: list[PendingCommit] = []  # another writer recorded the same change meanwhile

        def drop(commit: PendingCommit) -> None:
            dropped.append(commit)
            self.log(f"{commit.message.splitlines()[0]}: this change already has an outcome on the new head; dropped")

        head = self.repo.publish(snap.head, pending, self.identity, on_retry=retried, on_drop=drop)
        self.log(f"recorded {len(pending) - len(dropped)} outcome(s); pushed {head[:12]}", commit=head)
        return head


def _fields(action: Action) -> dict[str, str]:
    return {
        "environment": action.environment,
        "model": action.model,
        "version": action.version,
        "commit": action.source_commit,
    }


def gather_evidence(
    repo: GitRepo,
    snap: Snapshot,
    candidates: frozenset[tuple[str, str]] | None,
    *,
    now: datetime,
    first: bool = True,
    artifacts: dict[str, str] | None = None,
    cache: dict[str, CommitInfo] | None = None,
) -> Evidence:
    """What the planner needs besides pins and statuses; commit reads only where policy asks."""
    return Evidence(
        now=now,
        adopting=snap.adopting,
        candidates=candidates,
        commits=commit_infos(repo, snap, candidates, {} if cache is None else cache),
        superseded=snap.superseded if first else (),
        deletions=snap.deletions,
        artifacts=artifacts if artifacts is not None else snap.artifacts,
        head=snap.head,
    )


class PolicyInvalid(PermanentError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(p.line() for p in problems) or "environments/policy.yaml is invalid")


class NotLeader(PermanentError):
    """Leadership was lost during a pass: nothing is published; the runs go on for the next leader."""


_RECORD_PHASE = {
    ActionKind.SUPERSEDE: Phase.SUPERSEDED,
    ActionKind.REJECT: Phase.REJECTED,
    ActionKind.BLOCK: Phase.BLOCKED,
}


def _errored(
    action: Action, reason: str, now: datetime, *, started: datetime | None = None, executor: str = "none"
) -> Outcome:
    return Outcome(
        action=action,
        phase=Phase.ERRORED,
        reason=reason,
        workflow=WorkflowRef(name=action.workflow_name, executor=executor, started=started or now, finished=now),
    )
