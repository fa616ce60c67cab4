"""What the release repo says at a commit: pins, statuses, policy, and what changed since.

Place in the flow: steps 1-2 of a pass (fetch, find candidates), between the git adapter and
the planner. `load` reads a whole head once (the level-triggered start-up scan); `advance`
moves an existing snapshot to a newer head with ONE `git log --raw` over the new commits, so a
poll costs what changed, not the size of the repo. Blobs are read with one pipelined cat-file
and parsed as they arrive; parsed pins and statuses are memoised by blob sha.
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from controller.adapters.git import EMPTY_TREE, BlobFeed, GitRepo, TreeDiff
from controller.core.history import CommitRecord
from controller.core.models import ModelStatus, Phase, PromotionPolicy
from controller.core.paths import (
    ENV_ROOT,
    POLICY_PATH,
    STATUS_ROOT,
    FileChange,
    pin_path,
    split_pin_path,
    split_status_path,
)
from controller.core.pins import (
    GITLINK,
    SYMLINK,
    DesiredPin,
    PinPath,
    PinReader,
    classify,
    parse_policy,
)
from controller.core.planner import SupersededChange
from controller.core.schemas import Problem
from controller.core.trail import artifacts_by_digest, parse_status, parse_trailers
from controller.core.yamlio import MAX_DOCUMENT_BYTES, TooLarge, load_yaml
from controller.errors import GitError
from controller.loop.forking import ChildFailed, Forked

Key = tuple[str, str]
NO_COMMIT = "0" * 40
PARALLEL_FROM = 1000  # blobs to parse before a second core is worth a fork
STREAM_FROM = 32  # blobs in a range before a cat-file of its own beats the warm object database


def is_pending(status: ModelStatus) -> bool:
    """Blocked and Errored pins are looked at on every pass (compared by identity: cheap)."""
    return status.phase is Phase.BLOCKED or status.phase is Phase.ERRORED


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
    waiting: set[Key] = field(default_factory=set)  # Blocked or Errored: kept up to date, never recomputed
    trail: str | None = None  # with a status branch: its head, where status files are read
    special: dict[str, str] = field(default_factory=dict)  # path -> mode: symlinks, submodules (never read)

    def record(self, key: Key, status: ModelStatus | None) -> None:
        if status is None:
            self.recorded.pop(key, None)
            self.waiting.discard(key)
            return
        self.recorded[key] = status
        if is_pending(status):
            self.waiting.add(key)
        else:
            self.waiting.discard(key)


class SnapshotReader:
    """Reads snapshots from one long-lived GitRepo and keeps the parse caches between passes."""

    def __init__(self, repo: GitRepo) -> None:
        self.repo = repo
        self._pins: PinReader | None = None
        self._statuses: dict[str, ModelStatus | None] = {}

    # -- the full scan ----------------------------------------------------------------------------

    def load(self, head: str, *, since: str | None = None) -> Snapshot:
        """Everything at `head`. `since` overrides the last reconciled commit (plan --base)."""
        with _quiet_gc():
            snap = self._load(head, since)
        # What a full scan builds lives until the next one: move it out of the collector's sight,
        # or the first collections after start-up rescan all of it (a tenth of a second at 3,000 pins).
        gc.freeze()
        return snap

    def _load(self, head: str, since: str | None) -> Snapshot:
        trail = self.repo.trail_head()
        newest_call = (
            self.repo.log_async(trail or head, (STATUS_ROOT,), reverse=False, max_count=1)
            if trail or not self.repo.status_branch
            else None
        )
        tree = self.repo.tree(head)
        if self.repo.status_branch:  # pins from the people's branch, statuses from the trail's
            for path in [p for p in tree.files if p.startswith(STATUS_ROOT)]:
                del tree.files[path]
            if trail:
                trailing = self.repo.tree(trail, (STATUS_ROOT,))
                tree.files.update(trailing.files)
                tree.sizes.update(trailing.sizes)
                tree.special.update(trailing.special)
        files = tree.files
        snap = Snapshot(head=head, files=files, policy=None, problems=[], special=tree.special, trail=trail)
        refused = classify(POLICY_PATH, (), tree.special.get(POLICY_PATH, ""))
        policy = [refused] if isinstance(refused, Problem) else parse_policy(self._blob(files.get(POLICY_PATH)))
        if isinstance(policy, list):
            snap.problems = policy
            return snap
        snap.policy = policy
        reader = self._reader(policy)
        pins: dict[str, PinPath] = {}
        statuses: list[tuple[str, str]] = []
        for path, blob in files.items():
            if path.startswith(STATUS_ROOT):
                statuses.append((path, blob))
                continue
            where = classify(path, reader.envs)
            if isinstance(where, Problem):
                snap.problems.append(where)
            elif where is not None:
                pins[path] = where
        for path, mode in tree.special.items():  # symlinks and submodules: refused, never followed
            where = classify(path, reader.envs, mode)
            if isinstance(where, Problem):
                snap.problems.append(where)
            elif where is not None:
                pins[path] = where
        for blob, size in tree.sizes.items():  # refused before a byte of them is read
            if size > MAX_DOCUMENT_BYTES:
                self._statuses.setdefault(blob, None)
        for path, where in pins.items():
            if where.problem is None and tree.sizes.get(files[path], 0) > MAX_DOCUMENT_BYTES:
                reader.prime(path, files[path], TooLarge(tree.sizes[files[path]]))
        newest = newest_call.result() if newest_call is not None else []
        newest_trailers = parse_trailers(newest[0].message) if newest else {}
        reconciled = since or newest_trailers.get("Reconciled")
        range_call = self.repo.log_async(head, (ENV_ROOT,), since=reconciled) if reconciled else None
        self._parse(  # while git walks the range since the last reconciled commit
            [(p, files[p]) for p, w in pins.items() if w.problem is None and not reader.known(p, files[p])]
            + [(p, b) for p, b in statuses if b not in self._statuses]
        )
        for path, blob in statuses:
            self._status_into(snap, path, blob)
        snap.artifacts = artifacts_by_digest(snap.recorded.values())
        snap.adopting = not statuses or "Adopting" in newest_trailers  # an adoption cut short goes on

        records: list[CommitRecord] = []
        if range_call is not None:
            try:  # a reconciled commit that is not an ancestor (rewritten history) only widens the range
                records = range_call.result()
            except GitError:  # ... and one that no longer exists means: no range, walk for sources
                reconciled = None
        snap.reconciled = reconciled
        last_in_range = _last_touch(records)

        unknown: list[str] = []
        for path, where in pins.items():
            key = (where.environment, where.model)
            status = snap.recorded.get(key)
            source = last_in_range.get(path) or (status.desired.source_commit if status else None)
            desired = reader.read(path, files.get(path, ""), None, source or NO_COMMIT, where)
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
        gone_paths = {pin_path(env, model): (env, model) for env, model in gone}
        found = self.repo.last_changes(head, [*unknown, *gone_paths]) if unknown or gone_paths else {}
        for path in unknown:
            where = pins[path]
            key = (where.environment, where.model)
            snap.desired[key] = replace(snap.desired[key], source_commit=found.get(path, head))
        for path, key in gone_paths.items():
            snap.deletions[key] = found.get(path, head)
        snap.superseded = self._superseded(records, snap) + self._unrecorded_at_base(records, snap, reconciled)
        snap.candidates = None
        self._prune(snap)
        return snap

    # -- a poll: only what changed ------------------------------------------------------------------

    def advance(self, snap: Snapshot, head: str) -> Snapshot:
        if head == snap.head and self.repo.trail_head() == snap.trail:
            return replace(snap, candidates=frozenset(snap.waiting), superseded=())
        with _quiet_gc():
            return self._advance(snap, head)

    def _advance(self, snap: Snapshot, head: str) -> Snapshot:
        if snap.policy is None:
            return self.load(head)
        trail = self.repo.trail_head()
        ranged = self._read_range(snap.head, head, self._reader(snap.policy), (snap.trail, trail))
        if ranged is None:  # the policy changed: everything may mean something else now
            return self.load(head)
        records, status_changes = ranged
        touched = {c.path for r in records for c in r.changes} | {c.path for c in status_changes}
        reader = self._reader(snap.policy)
        new = replace(
            snap,
            head=head,
            files=dict(snap.files),
            desired=dict(snap.desired),
            recorded=dict(snap.recorded),
            waiting=set(snap.waiting),
            artifacts=dict(snap.artifacts),
            deletions={},
            problems=[p for p in snap.problems if p.path not in touched],
            adopting=False,
            trail=trail,
        )
        last = _last_touch(records)
        new.special = dict(snap.special)
        for change in [c for r in records for c in r.changes] + status_changes:
            new.files.pop(change.path, None)
            new.special.pop(change.path, None)
            if change.new_blob is not None and change.mode in (SYMLINK, GITLINK):
                new.special[change.path] = change.mode
            elif change.new_blob is not None:
                new.files[change.path] = change.new_blob
        unlisted: set[Key] = set()
        models: set[str] = set()
        for path in touched:
            status_key = split_status_path(path)
            if status_key is not None:
                new.record(status_key, None)
                if path in new.files:
                    self._status_into(new, path, new.files[path])
                    if (s := new.recorded.get(status_key)) is not None:
                        for digest, artifact in artifacts_by_digest([s]).items():
                            new.artifacts.setdefault(digest, artifact)
                models.add(status_key[1])
                continue
            where = classify(path, reader.envs, new.special.get(path, ""))
            if isinstance(where, Problem):
                if path in new.files or path in new.special:
                    new.problems.append(where)
                continue
            if where is None:
                continue
            key = (where.environment, where.model)
            models.add(where.model)
            if where.environment not in reader.envs:
                unlisted.add(key)
            if path in new.files or path in new.special:
                desired = reader.read(path, new.files.get(path, ""), None, last[path], where)
                assert isinstance(desired, DesiredPin)
                new.desired[key] = desired
            else:
                new.desired.pop(key, None)
                new.deletions[key] = last[path]
        new.candidates = frozenset({(env, m) for m in models for env in snap.policy.order} | new.waiting | unlisted)
        new.superseded = self._superseded(records, new) + _replaced_before_recorded(records, snap, new)
        self._prune(new)
        return new

    def _read_range(
        self, old: str, head: str, reader: PinReader, trail: tuple[str | None, str | None] = (None, None)
    ) -> tuple[list[CommitRecord], list[FileChange]] | None:
        """The commits old..head that touch pins (oldest first) and the end state of status files,
        with every new blob in them parsed.

        Pins need every commit (source commits, superseded changes): the log streams, and once a
        range needs more than a few blobs a cat-file fetches them while git still walks, parsed
        as they arrive. Statuses need only where the range ends: one tree diff, running beside
        the log. None: the range changes policy.yaml.
        """
        records: list[CommitRecord] = []
        asked: dict[str, str] = {}  # blob -> a path that holds it
        feed: BlobFeed | None = None
        one = self.repo.commit_record(head)
        commits: Iterable[CommitRecord]
        statuses: TreeDiff | list[FileChange]
        if self.repo.status_branch:  # pins from the people's branch; statuses: where the trail moved
            moved = trail[1] is not None and trail[0] != trail[1]
            statuses = self.repo.tree_diff(trail[0] or EMPTY_TREE, trail[1] or "", (STATUS_ROOT,)) if moved else []
            commits = self.repo.stream_log(head, old, (ENV_ROOT,)) if old != head else []
        elif one.parents[:1] == (old,):  # the usual poll: one new commit, one tree diff, no log
            changes = self.repo.tree_diff(old, head, (ENV_ROOT, STATUS_ROOT)).result()
            pins = tuple(c for c in changes if c.path.startswith(ENV_ROOT))
            commits = [replace(one, changes=pins)] if pins else []
            statuses = [c for c in changes if c.path.startswith(STATUS_ROOT)]
        else:
            statuses = self.repo.tree_diff(old, head, (STATUS_ROOT,))
            commits = self.repo.stream_log(head, old, (ENV_ROOT,))
        try:
            for record in commits:
                records.append(record)
                fresh: list[str] = []
                for change in record.changes:
                    blob, path = change.new_blob, change.path
                    if path == POLICY_PATH:
                        return None
                    if blob is None or blob in asked or reader.known(path, blob) or change.mode in (SYMLINK, GITLINK):
                        continue
                    asked[blob] = path
                    fresh.append(blob)
                if feed is None and len(asked) >= STREAM_FROM:
                    feed = self.repo.blob_feed(MAX_DOCUMENT_BYTES)
                    fresh = list(asked)
                if feed is not None:
                    feed.want(fresh)
                    for blob, data in feed.ready():
                        self._ingest(asked[blob], blob, data)
            status_changes = statuses if isinstance(statuses, list) else statuses.result()
            more = [
                c
                for c in status_changes
                if c.new_blob and c.new_blob not in self._statuses and c.mode not in (SYMLINK, GITLINK)
            ]
            for change in more:
                asked.setdefault(change.new_blob or "", change.path)
            if feed is not None:
                feed.want([c.new_blob for c in more if c.new_blob])
                for blob, data in feed.rest():
                    self._ingest(asked[blob], blob, data)
            else:
                for blob, path in asked.items():
                    self._ingest(path, blob, self.repo.read_blob_within(blob, MAX_DOCUMENT_BYTES))
        finally:
            if feed is not None:
                feed.close()
        for record in records:  # an invalid pin's messages name its file: one parse per path
            for change in record.changes:
                path, blob = change.path, change.new_blob
                if blob and not reader.known(path, blob) and change.mode not in (SYMLINK, GITLINK):
                    reader.prime(path, blob, self.repo.read_blob_within(blob, MAX_DOCUMENT_BYTES))
        records.reverse()
        return records, status_changes

    def _ingest(self, path: str, blob: str, data: bytes | TooLarge) -> None:
        if path.startswith(STATUS_ROOT):
            self._statuses[blob] = parse_status(data)
        elif self._pins is not None:
            self._pins.prime(path, blob, data)

    # -- helpers ----------------------------------------------------------------------------------

    def _reader(self, policy: PromotionPolicy) -> PinReader:
        if self._pins is None or self._pins.order != tuple(policy.order):
            self._pins = PinReader(tuple(policy.order))
        return self._pins

    def _blob(self, sha: str | None) -> bytes | TooLarge | None:
        return None if sha is None else self.repo.read_blob_within(sha, MAX_DOCUMENT_BYTES)

    def _parse(self, wanted: Sequence[tuple[str, str]]) -> None:
        """Parse every (path, blob) not parsed before: pipelined reads, parsing as blobs arrive.

        A start-up scan has thousands. Then a forked child loads the pins' YAML (the costly part;
        plain values come back cheaply) while this process validates the statuses, and the pins'
        schema check runs here on the child's documents.
        """
        assert self._pins is not None
        reader = self._pins
        blobs: dict[str, str] = {}
        for path, blob in wanted:
            blobs.setdefault(blob, path)
        pins = [(b, p) for b, p in blobs.items() if not p.startswith(STATUS_ROOT)]
        statuses = [b for b, p in blobs.items() if p.startswith(STATUS_ROOT)]
        if len(pins) + len(statuses) >= PARALLEL_FROM:
            # Loading a pin's YAML costs about 2.5x validating a JSON status: balance the two cores.
            cut = max(0, min(len(pins), round((len(pins) * 2.5 + len(statuses)) / 5)))
            share = pins[:cut]
            child = Forked(lambda: self._documents([b for b, _ in share]))
            self._parse_statuses(statuses)
            own = pins[len(share) :]
            self._prime(own, self._documents([b for b, _ in own]))  # while the child still works
            try:
                docs = child.result()
            except ChildFailed:  # the fork died (out of memory, a signal): parse its share here instead
                docs = self._documents([b for b, _ in share])
            self._prime(share, docs)
        else:
            self._parse_statuses(statuses)
            for blob, data in self.repo.iter_blobs([b for b, _ in pins], limit=MAX_DOCUMENT_BYTES):
                reader.prime(blobs[blob], blob, data)
        for path, blob in wanted:  # an invalid pin's messages name its file: one parse per path
            if not path.startswith(STATUS_ROOT) and not reader.known(path, blob):
                reader.prime(path, blob, self.repo.read_blob_within(blob, MAX_DOCUMENT_BYTES))

    def _prime(self, pins: Sequence[tuple[str, str]], docs: dict[str, Any]) -> None:
        assert self._pins is not None
        for blob, path in pins:
            if blob in docs:
                self._pins.prime_document(path, blob, docs[blob])
            else:  # not YAML: the normal path says what is wrong, naming the file
                self._pins.prime(path, blob, self.repo.read_blob_within(blob, MAX_DOCUMENT_BYTES))

    def _parse_statuses(self, blobs: Sequence[str]) -> None:
        for blob, data in self.repo.iter_blobs(blobs, limit=MAX_DOCUMENT_BYTES):
            self._statuses[blob] = parse_status(data)

    def _documents(self, blobs: Sequence[str]) -> dict[str, Any]:
        """Blob -> its YAML as plain values (blobs that are not YAML are left out).

        Safe to run in a forked child: it reads through a cat-file of its own.
        """
        docs: dict[str, Any] = {}
        for blob, data in self.repo.iter_blobs(blobs, pipelined=True, limit=MAX_DOCUMENT_BYTES):
            try:
                docs[blob] = load_yaml(data)
            except (yaml.YAMLError, UnicodeDecodeError):
                continue
        return docs

    def _status_into(self, snap: Snapshot, path: str, blob: str) -> None:
        key = split_status_path(path)
        if key is None:
            return
        if blob not in self._statuses:
            self._statuses[blob] = parse_status(self.repo.read_blob_within(blob, MAX_DOCUMENT_BYTES))
        status = self._statuses[blob]
        if status is not None and (status.environment, status.model) == key:
            snap.record(key, status)

    def _prune(self, snap: Snapshot) -> None:
        """Keep the caches to about the size of the head: memory follows the repo, not its history."""
        if self._pins is None or len(self._statuses) + self._pins.size() <= 2 * len(snap.files) + 1000:
            return
        current = set(snap.files.values())
        self._pins.keep_only(current)
        self._statuses = {b: s for b, s in self._statuses.items() if b in current}

    def _superseded(self, records: Iterable[CommitRecord], snap: Snapshot) -> tuple[SupersededChange, ...]:
        """Merged changes of a pin that a later commit in the same range replaced."""
        if snap.policy is None:
            return ()
        reader = self._reader(snap.policy)
        touches: dict[str, list[tuple[str, str | None]]] = {}
        for record in records:
            for change in record.changes:
                if change.path.startswith(ENV_ROOT):
                    special = change.mode in (SYMLINK, GITLINK)  # its own Rejected outcome says why
                    touches.setdefault(change.path, []).append((record.sha, None if special else change.new_blob))
        out: list[SupersededChange] = []
        for path, seq in touches.items():
            for (sha, blob), (next_sha, _) in itertools.pairwise(seq):
                if blob is None:
                    continue
                data = None if reader.known(path, blob) else self.repo.read_blob_within(blob, MAX_DOCUMENT_BYTES)
                desired = reader.read(path, blob, data, sha)
                if isinstance(desired, DesiredPin):
                    out.append(
                        SupersededChange(
                            desired.environment, desired.model, sha, desired.version, desired.digest, next_sha
                        )
                    )
        return tuple(out)

    def _unrecorded_at_base(
        self, records: Sequence[CommitRecord], snap: Snapshot, base: str | None
    ) -> tuple[SupersededChange, ...]:
        """At start-up: pins changed in base..head whose state at `base` never got an outcome.

        The base is the trail's watermark, so this finds only changes a controller had planned
        and not recorded when it died (an adoption cut short, a queued change). Rare: one walk for
        the few paths whose recorded status does not match their content at the base.
        """
        if base is None or snap.policy is None or not records:
            return ()
        reader = self._reader(snap.policy)
        first: dict[str, tuple[str, str]] = {}  # path -> (the first commit in range, its old blob)
        for record in records:
            for change in record.changes:
                if change.path not in first and change.old_blob is not None and change.path.startswith(ENV_ROOT):
                    first[change.path] = (record.sha, change.old_blob)
        suspects: dict[str, tuple[DesiredPin, str]] = {}
        for path, (sha, blob) in first.items():
            where = classify(path, reader.envs)
            if not isinstance(where, PinPath):
                continue
            data = None if reader.known(path, blob) else self.repo.read_blob(blob)
            before = reader.read(path, blob, data, NO_COMMIT, where)
            if not isinstance(before, DesiredPin) or before.pin is None:
                continue
            status = snap.recorded.get((where.environment, where.model))
            if status is not None and (status.desired.spec_digest, status.desired.version) == (
                before.digest,
                before.version,
            ):
                continue  # recorded
            suspects[path] = (before, sha)
        if not suspects:
            return ()
        sources = self.repo.last_changes(base, list(suspects))
        out = []
        for path, (before, sha) in suspects.items():
            source = sources.get(path)
            status = snap.recorded.get(before.key)
            if source is None or (status is not None and status.desired.source_commit == source):
                continue
            out.append(SupersededChange(before.environment, before.model, source, before.version, before.digest, sha))
        return tuple(out)


def _replaced_before_recorded(
    records: Sequence[CommitRecord], old: Snapshot, new: Snapshot
) -> tuple[SupersededChange, ...]:
    """A poll: pins whose change at the previous head had no outcome yet (queued, held back or in
    flight) and that a commit in this range replaced. The reconciler records those in flight
    itself, when it stops their runs."""
    seen: set[str] = set()
    out: list[SupersededChange] = []
    for record in records:
        for change in record.changes:
            if change.path in seen or not change.path.startswith(ENV_ROOT):
                continue
            seen.add(change.path)
            key = split_pin_path(change.path)
            before = old.desired.get(key) if key is not None else None
            if before is None or before.pin is None:
                continue
            status = new.recorded.get(before.key)  # outcomes published since the old head count
            if status is not None and status.desired.source_commit == before.source_commit:
                continue
            out.append(
                SupersededChange(
                    before.environment, before.model, before.source_commit, before.version, before.digest, record.sha
                )
            )
    return tuple(out)


@contextmanager
def _quiet_gc() -> Iterator[None]:
    """No cyclic GC while thousands of long-lived objects are built: it rescans them again and
    again (2x the cost of the parse) and finds nothing; pins and statuses hold no cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _last_touch(records: Iterable[CommitRecord]) -> dict[str, str]:
    last: dict[str, str] = {}
    for record in records:  # oldest first
        for change in record.changes:
            last[change.path] = record.sha
    return last
