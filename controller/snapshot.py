"""What the release repo says at a commit: pins, statuses, policy, and what changed since.

Place in the flow: steps 1-2 of a pass (fetch, find candidates), between the git adapter and
the planner. `load` reads a whole head once (the level-triggered start-up scan); `advance`
moves an existing snapshot to a newer head with ONE `git log --raw` over the new commits, so a
poll costs what changed, not the size of the repo. Parsed pins and statuses are memoised by
blob sha.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from controller.gitrepo import GitRepo
from controller.history import CommitRecord
from controller.models import ModelStatus, Phase, PromotionPolicy
from controller.pins import (
    ENV_ROOT,
    POLICY_PATH,
    STATUS_ROOT,
    DesiredPin,
    PinPath,
    PinReader,
    classify,
    parse_policy,
)
from controller.planner import SupersededChange
from controller.schemas import Problem
from controller.trail import artifacts_by_digest, parse_status, parse_trailers, split_status_path

Key = tuple[str, str]
PENDING = frozenset({Phase.BLOCKED, Phase.ERRORED})


@dataclass
class Snapshot:
    head: str
    files: dict[str, str]  # path -> blob sha, under environments/ and status/
    policy: PromotionPolicy | None
    problems: list[Problem]  # the policy's, and files that cannot be pins at all
    desired: dict[Key, DesiredPin] = field(default_factory=dict)
    recorded: dict[Key, ModelStatus] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    reconciled: str | None = None  # the head the newest status commit reconciled
    adopting: bool = False
    superseded: tuple[SupersededChange, ...] = ()
    deletions: dict[Key, str] = field(default_factory=dict)
    candidates: frozenset[Key] | None = None  # None: every key (full scan)

    def pending(self) -> set[Key]:
        return {k for k, s in self.recorded.items() if s.phase in PENDING}

    def models(self) -> set[str]:
        return {k[1] for k in self.desired} | {k[1] for k in self.recorded}


class SnapshotReader:
    """Reads snapshots from one long-lived GitRepo and keeps the parse caches between passes."""

    def __init__(self, repo: GitRepo) -> None:
        self.repo = repo
        self._pins: PinReader | None = None
        self._statuses: dict[str, ModelStatus | None] = {}

    # -- the full scan ----------------------------------------------------------------------------

    def load(self, head: str, *, since: str | None = None) -> Snapshot:
        """Everything at `head`. `since` overrides the last reconciled commit (plan --base)."""
        files = self.repo.ls_tree(head)
        snap = Snapshot(head=head, files=files, policy=None, problems=[])
        policy = parse_policy(self._blob(files.get(POLICY_PATH)))
        if isinstance(policy, list):
            snap.problems = policy
            return snap
        snap.policy = policy
        reader = self._reader(policy)
        # Every blob this scan has not parsed before, in one pipelined read.
        wanted = [
            blob
            for path, blob in files.items()
            if (path.startswith(STATUS_ROOT) and blob not in self._statuses)
            or (isinstance(classify(path, policy.order), PinPath) and not reader.known(path, blob))
        ]
        fresh = self.repo.read_blobs(wanted)
        for path, blob in files.items():
            if path.startswith(STATUS_ROOT):
                self._status_into(snap, path, blob, fresh.get(blob))
        snap.artifacts = artifacts_by_digest(snap.recorded.values())
        snap.adopting = not any(p.startswith(STATUS_ROOT) for p in files)

        newest = self.repo.log(head, (STATUS_ROOT,), reverse=False, max_count=1)
        reconciled = since or (parse_trailers(newest[0].message).get("Reconciled") if newest else None)
        if reconciled and not self.repo.is_ancestor(reconciled, head):
            reconciled = None
        snap.reconciled = reconciled
        records = self.repo.log(head, (ENV_ROOT,), since=reconciled) if reconciled else []
        last_in_range = _last_touch(records)

        unknown: list[str] = []
        for path, blob in files.items():
            where = classify(path, policy.order)
            if isinstance(where, Problem):
                snap.problems.append(where)
            elif isinstance(where, PinPath):
                key = (where.environment, where.model)
                status = snap.recorded.get(key)
                source = last_in_range.get(path) or (status.desired.source_commit if status else None)
                desired = reader.read(path, blob, fresh.get(blob), source or "0" * 40)
                assert isinstance(desired, DesiredPin)
                if source is None or (
                    path not in last_in_range
                    and status is not None
                    and desired.digest not in (None, status.desired.spec_digest)
                ):
                    unknown.append(path)
                snap.desired[key] = desired
        gone = [
            key for key in snap.recorded if key not in snap.desired and snap.recorded[key].phase is not Phase.REMOVED
        ]
        gone_paths = {f"{ENV_ROOT}{env}/{model}.yaml": (env, model) for env, model in gone}
        found = self.repo.last_changes(head, [*unknown, *gone_paths]) if unknown or gone_paths else {}
        for path in unknown:
            where = classify(path, policy.order)
            assert isinstance(where, PinPath)
            key = (where.environment, where.model)
            snap.desired[key] = replace(snap.desired[key], source_commit=found.get(path, head))
        for path, key in gone_paths.items():
            snap.deletions[key] = found.get(path, head)
        snap.superseded = self._superseded(records, snap, self._prefetch(records, policy.order))
        snap.candidates = None
        return snap

    # -- a poll: only what changed ------------------------------------------------------------------

    def advance(self, snap: Snapshot, head: str) -> Snapshot:
        if head == snap.head:
            return replace(snap, candidates=frozenset(snap.pending()), superseded=())
        if snap.policy is None:
            return self.load(head)
        records = self.repo.log(head, (ENV_ROOT, STATUS_ROOT), since=snap.head)
        touched = {c.path for r in records for c in r.changes}
        if POLICY_PATH in touched:
            return self.load(head)
        reader = self._reader(snap.policy)
        new = replace(
            snap,
            head=head,
            files=dict(snap.files),
            desired=dict(snap.desired),
            recorded=dict(snap.recorded),
            artifacts=dict(snap.artifacts),
            deletions={},
            problems=[p for p in snap.problems if p.path not in touched],
            adopting=False,
        )
        last = _last_touch(records)
        models: set[str] = set()
        for record in records:
            for change in record.changes:
                if change.new_blob is None:
                    new.files.pop(change.path, None)
                else:
                    new.files[change.path] = change.new_blob
        fresh = self._prefetch(records, snap.policy.order)
        for path in sorted(touched):
            status_key = split_status_path(path)
            if status_key is not None:
                new.recorded.pop(status_key, None)
                if path in new.files:
                    self._status_into(new, path, new.files[path], fresh.get(new.files[path]))
                    if (s := new.recorded.get(status_key)) is not None:
                        for digest, artifact in artifacts_by_digest([s]).items():
                            new.artifacts.setdefault(digest, artifact)
                models.add(status_key[1])
                continue
            where = classify(path, snap.policy.order)
            if isinstance(where, Problem):
                if path in new.files:
                    new.problems.append(where)
                continue
            if not isinstance(where, PinPath):
                continue
            key = (where.environment, where.model)
            models.add(where.model)
            if path in new.files:
                blob = new.files[path]
                desired = reader.read(path, blob, fresh.get(blob), last[path])
                assert isinstance(desired, DesiredPin)
                new.desired[key] = desired
            else:
                new.desired.pop(key, None)
                new.deletions[key] = last[path]
        keys = {(env, m) for m in models for env in snap.policy.order} | new.pending()
        new.candidates = frozenset(keys)
        new.superseded = self._superseded(records, new, fresh)
        return new

    def _prefetch(self, records: list[CommitRecord], order: Iterable[str]) -> dict[str, bytes]:
        """Every blob of the range not parsed before, in one pipelined read."""
        reader = self._reader_for(order)
        wanted: list[str] = []
        for record in records:
            for change in record.changes:
                blob = change.new_blob
                if blob is None:
                    continue
                if change.path.startswith(STATUS_ROOT):
                    if blob not in self._statuses:
                        wanted.append(blob)
                elif not reader.known(change.path, blob):
                    wanted.append(blob)
        return self.repo.read_blobs(list(dict.fromkeys(wanted)))

    # -- helpers ----------------------------------------------------------------------------------

    def _reader(self, policy: PromotionPolicy) -> PinReader:
        if self._pins is None or self._pins.order != tuple(policy.order):
            self._pins = PinReader(tuple(policy.order))
        return self._pins

    def _blob(self, sha: str | None) -> bytes | None:
        return None if sha is None else self.repo.read_blob(sha)

    def _status_into(self, snap: Snapshot, path: str, blob: str, data: bytes | None = None) -> None:
        key = split_status_path(path)
        if key is None:
            return
        if blob not in self._statuses:
            self._statuses[blob] = parse_status(data if data is not None else self.repo.read_blob(blob))
        status = self._statuses[blob]
        if status is not None and (status.environment, status.model) == key:
            snap.recorded[key] = status

    def _reader_for(self, order: Iterable[str]) -> PinReader:
        assert self._pins is not None and self._pins.order == tuple(order)
        return self._pins

    def _superseded(
        self, records: Iterable[CommitRecord], snap: Snapshot, fresh: dict[str, bytes]
    ) -> tuple[SupersededChange, ...]:
        """Merged changes of a pin that a later commit in the same range replaced."""
        if snap.policy is None:
            return ()
        reader = self._reader(snap.policy)
        touches: dict[str, list[tuple[str, str | None]]] = {}
        for record in records:
            for change in record.changes:
                if change.path.startswith(ENV_ROOT):
                    touches.setdefault(change.path, []).append((record.sha, change.new_blob))
        out: list[SupersededChange] = []
        for path, seq in touches.items():
            for (sha, blob), (next_sha, _) in itertools.pairwise(seq):
                if blob is None:
                    continue
                desired = reader.read(path, blob, fresh.get(blob), sha)
                if isinstance(desired, DesiredPin):
                    out.append(
                        SupersededChange(
                            desired.environment, desired.model, sha, desired.version, desired.digest, next_sha
                        )
                    )
        return tuple(out)


def _last_touch(records: Iterable[CommitRecord]) -> dict[str, str]:
    last: dict[str, str] = {}
    for record in records:  # oldest first
        for change in record.changes:
            last[change.path] = record.sha
    return last
