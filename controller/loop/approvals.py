"""Approval and trail evidence from git, for the planner and for the status commits.

Place in the flow: beside the reconciler's evidence gathering (before the planner) and its
recording (before each status commit). The planner stays pure: this module reads, through the
git adapter, what it needs to decide on approvals (the authors of the change, the commits after
it that carry `Releasectl-Approves: <source commit>` with their verified ssh signers, the
change's own signature) and what each outcome records as evidence (the digest of the policy in
force, the Deployed outcome upstream, the time from the change to its outcome).
"""

from __future__ import annotations

import hashlib

from controller.adapters.git import GitRepo
from controller.core.audit import SignedCommit
from controller.core.models import Outcome, Phase
from controller.core.paths import ALLOWED_SIGNERS, POLICY_PATH, status_path
from controller.core.planner import SETTLED, Approval, CommitInfo
from controller.core.trail import build_evidence, parse_trailers
from controller.loop.snapshot import Snapshot

Key = tuple[str, str]
CACHE_LIMIT = 50_000
APPROVES = "Approves"


def approvals_in(commits: list[SignedCommit]) -> tuple[Approval, ...]:
    """The approvals that commits carry (Releasectl-Approves, -Environment, -Model trailers)."""
    found = []
    for commit in commits:
        trailers = parse_trailers(commit.message)
        source, env, model = trailers.get(APPROVES), trailers.get("Environment"), trailers.get("Model")
        if source and env and model and "Phase" not in trailers:
            found.append(Approval(commit.author_email, commit.sha, source, env, model, commit.signer, commit.key))
    return tuple(found)


def commit_infos(
    repo: GitRepo, snap: Snapshot, candidates: frozenset[Key] | None, cache: dict[str, CommitInfo]
) -> dict[str, CommitInfo]:
    """Authors, approvals and signatures of the changes the policy must judge, only where it asks.

    A pin whose status already settled its source commit needs nothing (the planner does not look).
    Results are cached by (source commit, head, allowed signers): commits are immutable.
    """
    policy = snap.policy
    if policy is None:
        return {}
    wanted = {
        env for env in policy.order if policy.for_env(env).approvals.min > 0 or policy.for_env(env).require_signed
    }
    if not wanted and not policy.rollback_requires_approval:
        return {}
    signers_blob = snap.files.get(ALLOWED_SIGNERS)
    signed_envs = any(policy.for_env(env).require_signed for env in policy.order)
    signers = repo.read_blob(signers_blob) if signers_blob and signed_envs else None
    if len(cache) > CACHE_LIMIT:
        cache.clear()
    infos: dict[str, CommitInfo] = {}
    for key, desired in snap.desired.items():
        sha = desired.source_commit
        if (candidates is not None and key not in candidates) or sha in infos:
            continue
        if key[0] not in wanted and not policy.rollback_requires_approval:
            continue
        status = snap.recorded.get(key)
        if status is not None and status.desired.source_commit == sha and status.phase in SETTLED:
            continue
        cache_key = f"{sha}:{snap.head}:{signers_blob or ''}"
        if cache_key not in cache:
            base_key = f"{sha}::{signers_blob or ''}"
            if base_key not in cache:
                author, _ = repo.commit_message(sha)
                verified = repo.verify_commit(sha, signers) if signers else False
                cache[base_key] = CommitInfo(sha, author, (), verified, repo.change_authors(sha))
            base = cache[base_key]
            found = approvals_in(repo.approval_commits(sha, snap.head, signers))
            cache[cache_key] = CommitInfo(sha, base.author_email, found, base.signature_verified, base.authors)
        infos[sha] = cache[cache_key]
    return infos


_POLICY_DIGESTS: dict[str, str] = {}  # policy blob -> sha256 of its bytes (a blob never changes)


def policy_digest(repo: GitRepo, snap: Snapshot) -> str | None:
    blob = snap.files.get(POLICY_PATH)
    if blob is None:
        return None
    if blob not in _POLICY_DIGESTS:
        if len(_POLICY_DIGESTS) > 1000:
            _POLICY_DIGESTS.clear()
        _POLICY_DIGESTS[blob] = "sha256:" + hashlib.sha256(repo.read_blob(blob)).hexdigest()
    return _POLICY_DIGESTS[blob]


def upstream_outcome(repo: GitRepo, head: str, environment: str, model: str, spec_digest: str) -> str | None:
    """The newest status commit at `head` that recorded `spec_digest` Deployed in `environment`."""
    found = repo.signed_log(
        ["--max-count=1", head],
        None,
        grep=(f"^Releasectl-Phase: {Phase.DEPLOYED.value}$", f"^Releasectl-Spec-Digest: {spec_digest}$"),
        paths=(status_path(environment, model),),
        first_parent=True,
    )
    for commit in found:
        trailers = parse_trailers(commit.message)
        if trailers.get("Phase") == Phase.DEPLOYED.value and trailers.get("Spec-Digest") == spec_digest:
            return commit.sha
    return None


def with_trail_evidence(repo: GitRepo, snap: Snapshot, outcome: Outcome) -> Outcome:
    """The outcome with its evidence filled in: policy digest, upstream outcome commit, merge time.

    An upstream outcome recorded in the same pass has no commit yet: `outcome_commit` stays empty
    and `audit --verify` finds it in the trail instead.
    """
    action = outcome.action
    merged_at = repo.commit_record(action.source_commit).committed_at
    upstream_commit = None
    if action.upstream is not None and action.spec_digest:
        upstream_commit = upstream_outcome(
            repo, snap.head, action.upstream.environment, action.model, action.spec_digest
        )
    evidence = build_evidence(
        outcome,
        policy_digest=policy_digest(repo, snap),
        merged_at=merged_at,
        upstream_commit=upstream_commit,
    )
    return outcome.model_copy(update={"evidence": evidence})
