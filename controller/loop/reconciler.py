"""One reconciliation pass: fetch -> snapshot -> plan -> execute -> record, and the loop around it.

Place in the flow: the conductor. It asks the git adapter for the head, the snapshot reader for
pins and statuses, the planner for a Plan, the workflow builders for manifests, the executor for
runs; it folds runs into Outcomes, collects one status commit per outcome and publishes them
once (push; a rejected push is rebased and retried by the git adapter). Runnable actions go in
rounds so that one pass converges: a deploy to dev can unblock staging in the same pass, and a
version is trained once even when several environments need it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from controller.adapters.git import CONTROLLER, GitRepo, Identity, PendingCommit
from controller.core.models import Action, ActionKind, ModelStatus, Outcome, Phase
from controller.core.outcomes import fold, record_only
from controller.core.paths import status_path
from controller.core.planner import CommitInfo, Evidence, plan
from controller.core.schemas import Problem
from controller.core.trail import artifacts_by_digest, message, next_status, render_status
from controller.errors import PermanentError, ReleasectlError
from controller.loop.approvals import commit_infos, with_trail_evidence
from controller.loop.snapshot import Snapshot, SnapshotReader
from controller.ports import Executor

Clock = Callable[[], datetime]
Log = Callable[[str], None]


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class PassResult:
    head: str
    outcomes: list[Outcome] = field(default_factory=list)
    published: str | None = None
    problems: list[Problem] = field(default_factory=list)
    push_retries: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.outcomes)


class Reconciler:
    def __init__(
        self,
        repo: GitRepo,
        executor: Executor,
        compile_action: Callable[[Action], dict[str, Any]],
        *,
        identity: Identity = CONTROLLER,
        clock: Clock = utcnow,
        log: Log = lambda _line: None,
        workflow_timeout_s: float = 3600,
    ) -> None:
        self.repo = repo
        self.executor = executor
        self.compile_action = compile_action
        self.identity = identity
        self.clock = clock
        self.log = log
        self.workflow_timeout_s = workflow_timeout_s
        self.reader = SnapshotReader(repo)
        self.snapshot: Snapshot | None = None
        self._infos: dict[str, CommitInfo] = {}

    # -- the loop ---------------------------------------------------------------------------------

    def run(self, interval_s: float, *, resync_every: int = 10, passes: int | None = None) -> None:
        """Poll forever (or `passes` times): an idle poll is one `ls-remote`."""
        count = 0
        while passes is None or count < passes:
            count += 1
            full = resync_every > 0 and count % resync_every == 0
            try:
                result = self.reconcile(full=full)
                if result.changed:
                    self.log(f"pass {count}: {len(result.outcomes)} outcome(s) recorded at {result.published}")
            except ReleasectlError as exc:
                if isinstance(exc, PermanentError):
                    raise
                self.log(f"pass {count}: {exc}; retrying in {interval_s:g}s")
            time.sleep(interval_s)

    def reconcile(self, *, full: bool = False) -> PassResult:
        """One pass. The first pass (or `full`) is a level-triggered scan of every pin."""
        if self.snapshot is not None and not full and self.repo.remote_head() == self.snapshot.head:
            snap = self.reader.advance(self.snapshot, self.snapshot.head)
            if not snap.candidates:
                return PassResult(head=snap.head)
            return self.reconcile_snapshot(snap)  # nothing new: only re-check Blocked and Errored pins
        head = self.repo.fetch()
        snap = self.reader.load(head) if self.snapshot is None or full else self.reader.advance(self.snapshot, head)
        return self.reconcile_snapshot(snap)

    # -- one pass over a snapshot -----------------------------------------------------------------

    def reconcile_snapshot(self, snap: Snapshot) -> PassResult:
        result = PassResult(head=snap.head, problems=list(snap.problems))
        for problem in snap.problems:
            self.log(f"error: {problem.line()}")
        if snap.policy is None:
            self.snapshot = snap
            raise PolicyInvalid(snap.problems)
        recorded = dict(snap.recorded)
        artifacts = dict(snap.artifacts)
        now = self.clock()
        first: list[Action] = []
        final_records: list[Action] = []
        done: list[Outcome] = []
        acted: set[tuple[str, str]] = set()  # one outcome per pin and pass; later rounds only unblock others
        candidates = snap.candidates
        for round_no in range(len(snap.policy.order) + 2):
            evidence = self._evidence(snap, candidates, first=round_no == 0, now=now, artifacts=artifacts)
            p = plan(snap.desired, recorded, snap.policy, evidence)
            if round_no == 0:
                first = [a for a in p.records_only() if a.kind in (ActionKind.SUPERSEDE, ActionKind.REJECT)]
            runnable = self._build_once(tuple(a for a in p.runnable() if a.key not in acted))
            final_records = [a for a in p.records_only() if a.kind is ActionKind.BLOCK]
            if not runnable:
                break
            acted.update(a.key for a in runnable)
            for outcome in self._execute(runnable):
                done.append(outcome)
                key = outcome.action.key
                recorded[key] = next_status(outcome, recorded.get(key), self.clock())
                artifacts.update(artifacts_by_digest([recorded[key]]))
            candidates = (
                None
                if candidates is None
                else frozenset(candidates | {(e, a.model) for a in runnable for e in snap.policy.order})
            )
        ordered = [record_only(a, _RECORD_PHASE[a.kind], now) for a in first]
        ordered += done
        ordered += [record_only(a, Phase.BLOCKED, now) for a in final_records]
        result.outcomes = ordered
        result.published = self._publish(snap, ordered, result)
        self.snapshot = snap
        return result

    def _evidence(
        self,
        snap: Snapshot,
        candidates: frozenset[tuple[str, str]] | None,
        *,
        first: bool,
        now: datetime | None = None,
        artifacts: dict[str, str] | None = None,
    ) -> Evidence:
        return gather_evidence(
            self.repo,
            snap,
            candidates,
            now=now or self.clock(),
            first=first,
            artifacts=artifacts,
            cache=self._infos,
        )

    @staticmethod
    def _build_once(actions: tuple[Action, ...]) -> list[Action]:
        """Train a digest once per round; later environments reuse the artifact next round."""
        training: set[str] = set()
        out = []
        for action in actions:
            if action.trains and action.spec_digest is not None:
                if action.spec_digest in training:
                    continue
                training.add(action.spec_digest)
            out.append(action)
        return out

    def _execute(self, actions: list[Action]) -> list[Outcome]:
        submitted: list[tuple[Action, str]] = []
        outcomes: list[Outcome] = []
        for action in actions:
            if action.kind is ActionKind.REMOVE and action.live is None:
                outcomes.append(record_only(action, Phase.REMOVED, self.clock()))
                continue
            how = (
                "train" if action.trains else ("rollback" if action.kind is ActionKind.ROLLBACK else action.kind.value)
            )
            self.log(f"{action.environment}/{action.model} {action.version}: {how} ({action.workflow_name})")
            try:
                name = self.executor.submit(self.compile_action(action))
            except Exception as exc:
                outcomes.append(_errored(action, f"could not submit workflow: {exc}", self.clock()))
                continue
            submitted.append((action, name))
        for action, name in submitted:
            try:
                self.executor.wait_for_finished([name], self.workflow_timeout_s)
                run = self.executor.get(name)
                if run is None:
                    raise LookupError(f"the executor has no run named {name!r}")
            except Exception as exc:
                outcomes.append(_errored(action, f"lost track of workflow {name}: {exc}", self.clock()))
                continue
            outcome = fold(action, run, self.executor.name)
            detail = f": {outcome.reason}" if outcome.phase is not Phase.DEPLOYED and outcome.reason else ""
            self.log(f"{action.environment}/{action.model} {action.version}: {outcome.phase.value}{detail}")
            outcomes.append(outcome)
        return outcomes

    def _publish(self, snap: Snapshot, outcomes: list[Outcome], result: PassResult) -> str | None:
        """One status commit per outcome, all pushed at once; nothing to say means no commit."""
        if not outcomes:
            return None
        statuses: dict[tuple[str, str], ModelStatus] = dict(snap.recorded)
        pending: list[PendingCommit] = []
        for outcome in outcomes:
            key = outcome.action.key
            outcome = with_trail_evidence(self.repo, snap, outcome)  # noqa: PLW2901 - the evidence it records
            status = next_status(outcome, statuses.get(key), self.clock())
            statuses[key] = status
            text = message(outcome, status, snap.head).text()
            pending.append(PendingCommit(((status_path(*key), render_status(status)),), text))

        def retried(attempt: int) -> None:
            result.push_retries = attempt
            self.log(
                f"push rejected (someone pushed meanwhile); rebasing {len(pending)} status commit(s), "
                f"attempt {attempt + 1}"
            )

        head = self.repo.publish(snap.head, pending, self.identity, on_retry=retried)
        self.log(f"recorded {len(pending)} outcome(s); pushed {head[:12]}")
        return head


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


_RECORD_PHASE = {
    ActionKind.SUPERSEDE: Phase.SUPERSEDED,
    ActionKind.REJECT: Phase.REJECTED,
    ActionKind.BLOCK: Phase.BLOCKED,
}


def _errored(action: Action, reason: str, now: datetime) -> Outcome:
    base = record_only(action, Phase.ERRORED, now)
    return base.model_copy(update={"reason": reason})
