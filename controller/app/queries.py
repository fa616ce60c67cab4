"""Read-only questions about a release repo: validate, plan, status, history.

Place in the flow: the library behind `releasectl validate|plan|status|history`. Each reads one
local repository (a working clone, a PR checkout or the controller's bare clone) at a revision,
through the git adapter and the snapshot reader, and returns plain values for render.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.adapters.git import GitRepo
from controller.core.history import CommitRecord, HistoryRow, fold
from controller.core.models import Plan
from controller.core.paths import ENV_ROOT, POLICY_PATH, pin_path, status_path
from controller.core.pins import parse_policy
from controller.core.planner import checked, plan
from controller.core.render import status_rows
from controller.core.schemas import Problem, load_yaml
from controller.core.trail import parse_trailers
from controller.errors import UsageError
from controller.loop.reconciler import gather_evidence, utcnow
from controller.loop.snapshot import Snapshot, SnapshotReader


@dataclass(frozen=True)
class Validation:
    problems: list[Problem]
    pins: int
    environments: int


def snapshot(repo: GitRepo, rev: str = "HEAD", since: str | None = None) -> Snapshot:
    return SnapshotReader(repo).load(repo.rev(rev), since=repo.rev(since) if since else None)


def validate(repo: GitRepo, rev: str = "HEAD", base: str | None = None) -> Validation:
    """Every problem at `rev`; with `base`, only those in files the change touched (and the policy's)."""
    snap = snapshot(repo, rev)
    problems = list(snap.problems)
    if snap.policy is not None:
        for desired in checked(snap.desired, snap.recorded, snap.policy).values():
            problems.extend(desired.problems)
    if base is not None:
        touched = set(repo.changed_paths(repo.rev(base), snap.head))
        problems = [p for p in problems if p.path in touched or p.path == POLICY_PATH]
    envs = len(snap.policy.order) if snap.policy else 0
    return Validation(sorted(problems, key=lambda p: (p.path, p.field)), len(snap.desired), envs)


def plan_at(repo: GitRepo, rev: str = "HEAD", base: str | None = None) -> tuple[Snapshot, Plan]:
    snap = snapshot(repo, rev, since=base)
    if snap.policy is None:
        return snap, Plan()
    evidence = gather_evidence(repo, snap, None, now=utcnow())
    return snap, plan(snap.desired, snap.recorded, snap.policy, evidence)


def status(repo: GitRepo, rev: str = "HEAD", environment: str | None = None) -> list[dict[str, object]]:
    snap = snapshot(repo, rev)
    order = snap.policy.order if snap.policy else sorted({k[0] for k in snap.recorded})
    if environment is not None and environment not in order:
        raise UsageError(f"unknown environment {environment!r} (environments: {', '.join(order)})")
    return status_rows(snap.desired, snap.recorded, order, environment)


def history(repo: GitRepo, model: str, environment: str | None = None, rev: str = "HEAD") -> list[HistoryRow]:
    """Every change of the pin and every outcome, oldest first, from git alone."""
    head = repo.rev(rev)
    policy_envs = _environments(repo, head)
    envs = [environment] if environment else policy_envs
    if environment is not None and environment not in policy_envs:
        raise UsageError(f"unknown environment {environment!r} (environments: {', '.join(policy_envs)})")
    paths = [p for env in envs for p in (pin_path(env, model), status_path(env, model))]
    trail = repo.trail_head()
    if trail is None:
        records = repo.log(head, paths)
    else:  # --status-branch: pin changes from the people's branch, outcomes from the trail
        records = interleave(repo, head, repo.log(head, paths[0::2]), repo.log(trail, paths[1::2]))
    versions: dict[str, str] = {}
    for record in records:
        for change in record.changes:
            for blob in (change.old_blob, change.new_blob):
                if blob and blob not in versions and change.path.startswith(ENV_ROOT):
                    versions[blob] = _version(repo.read_blob(blob))
    return fold(records, model, versions, environment)


def interleave(
    repo: GitRepo, head: str, changes: list[CommitRecord], outcomes: list[CommitRecord]
) -> list[CommitRecord]:
    """Pin changes (the people's branch) and outcomes (the trail's) in one order: each outcome
    right after the head it reconciled (its Releasectl-Reconciled trailer)."""
    index = repo.first_parent_index(head)
    keyed = [((index.get(r.sha, -1), 0, n), r) for n, r in enumerate(changes)]
    for n, record in enumerate(outcomes):
        reconciled = parse_trailers(record.message).get("Reconciled", "")
        keyed.append(((index.get(reconciled, len(index)), 1, n), record))
    return [r for _, r in sorted(keyed, key=lambda kr: kr[0])]


def _environments(repo: GitRepo, head: str) -> list[str]:
    policy = parse_policy(repo.read_file(head, POLICY_PATH))
    if isinstance(policy, list):
        raise UsageError("; ".join(p.line() for p in policy))
    return list(policy.order)


def _version(data: bytes) -> str:
    try:
        doc = load_yaml(data)
    except Exception:
        return "unknown"
    version = doc.get("version") if isinstance(doc, dict) else None
    return str(version) if version is not None else "unknown"
