"""The decision: plan(desired, recorded, policy, evidence) -> Plan.

Place in the flow: between reading the release repo (pins.py, trail.py) and acting on it
(reconciler.py, executors). Level-triggered: for each (environment, model) under consideration
it compares what the pin at the head asks for with what the status trail recorded, and says
what to do and why. No I/O and no clock inside (the time is evidence), so every rule is a row
in a table test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from controller.core.approvals import Approval, count_approvals
from controller.core.models import (
    Action,
    ActionKind,
    ApprovalRef,
    ModelStatus,
    Phase,
    Plan,
    PromotionPolicy,
    UpstreamRef,
    duration_seconds,
)
from controller.core.pins import DesiredPin, check_versions, with_problem
from controller.core.schemas import Problem

__all__ = ["Approval", "CommitInfo", "Evidence", "SupersededChange", "checked", "plan"]

Key = tuple[str, str]
SETTLED = frozenset({Phase.DEPLOYED, Phase.FAILED, Phase.REMOVED})
BACKOFF_BASE_S = 30
BACKOFF_MAX_S = 1800


@dataclass(frozen=True)
class CommitInfo:
    """What the policy needs to know about the commit that set a pin, and the approvals given for it."""

    sha: str
    author_email: str
    approvals: tuple[Approval, ...] = ()
    signature_verified: bool = False
    authors: tuple[str, ...] = ()  # every author of the change (a merge: also the commits it brought in)


@dataclass(frozen=True)
class SupersededChange:
    """A merged pin change that a later merge replaced before the controller acted on it."""

    environment: str
    model: str
    source_commit: str
    version: str
    spec_digest: str | None
    replaced_by: str


@dataclass(frozen=True)
class Evidence:
    """Everything the decision needs besides pins, statuses and policy; gathered by adapters."""

    now: datetime
    adopting: bool = False
    candidates: frozenset[Key] | None = None  # None: every key (the level-triggered full scan)
    commits: Mapping[str, CommitInfo] = field(default_factory=dict)
    superseded: tuple[SupersededChange, ...] = ()
    deletions: Mapping[Key, str] = field(default_factory=dict)  # key -> the commit that deleted the pin
    artifacts: Mapping[str, str] = field(default_factory=dict)  # spec digest -> an artifact built for it
    head: str = ""


def backoff_seconds(attempts: int) -> int:
    return int(min(BACKOFF_BASE_S * 2 ** max(attempts - 1, 0), BACKOFF_MAX_S))


def plan(
    desired: Mapping[Key, DesiredPin],
    recorded: Mapping[Key, ModelStatus],
    policy: PromotionPolicy,
    evidence: Evidence,
) -> Plan:
    order = {env: i for i, env in enumerate(policy.order)}
    keys = set(desired) | set(recorded) if evidence.candidates is None else set(evidence.candidates)
    # Outside the policy's order only pins refused as a whole (an environment folder the policy does
    # not list) are looked at: they get their Rejected outcome, and a Removed one once deleted.
    keys = {
        k
        for k in keys
        if k[0] in order or k in desired or ((r := recorded.get(k)) is not None and r.phase is Phase.REJECTED)
    }
    actions: list[Action] = []
    in_sync: list[Key] = []
    waiting: list[tuple[str, str, str]] = []

    for change in evidence.superseded:
        key = (change.environment, change.model)
        head = desired.get(key)
        done = recorded.get(key)
        if head is not None and head.source_commit == change.source_commit:
            continue
        if done is not None and done.desired.source_commit == change.source_commit:
            continue
        actions.append(
            Action(
                kind=ActionKind.SUPERSEDE,
                environment=change.environment,
                model=change.model,
                version=change.version,
                source_commit=change.source_commit,
                spec_digest=change.spec_digest,
                reason=f"superseded by {change.replaced_by} before it ran",
            )
        )

    checked_pins = checked(desired, recorded, policy, {model for _, model in keys})
    for key in sorted(keys, key=lambda k: (order.get(k[0], len(order)), k)):
        env, model = key
        d = checked_pins.get(key)
        r = recorded.get(key)
        decision = _decide(key, d, r, recorded, policy, evidence)
        if isinstance(decision, Action):
            actions.append(decision)
        elif decision is None:
            in_sync.append(key)
        else:
            waiting.append((env, model, decision))
    return Plan(actions=tuple(actions), in_sync=tuple(in_sync), waiting=tuple(waiting))


def checked(
    desired: Mapping[Key, DesiredPin],
    recorded: Mapping[Key, ModelStatus],
    policy: PromotionPolicy,
    models: set[str] | None = None,
) -> dict[Key, DesiredPin]:
    """Pins of `models` (all when None) with the rules that span files applied.

    The same version must mean the same training spec in every environment, and a version that
    was deployed once cannot later change its spec (like a moved release tag).
    """
    wanted = models if models is not None else {m for _, m in desired}
    out: dict[Key, DesiredPin] = {}
    for model in wanted:
        pins = {env: p for env in policy.order if (p := desired.get((env, model))) is not None}
        across = check_versions(pins, policy.order)
        released: dict[str, tuple[str, str]] | None = None  # version -> (digest, env), built when needed
        for env, d in pins.items():
            problem = across.get(env)
            if problem is None and d.valid and d.pin is not None:
                if released is None:
                    released = _released(model, recorded, policy)
                problem = _reused_version(d, d.pin.version, released)
            out[(env, model)] = with_problem(d, problem) if problem is not None else d
    listed = set(policy.order)
    out.update({k: d for k, d in desired.items() if k[0] not in listed and k[1] in wanted})
    return out


def _released(model: str, recorded: Mapping[Key, ModelStatus], policy: PromotionPolicy) -> dict[str, tuple[str, str]]:
    """Every version of a model some environment has deployed, with its spec digest."""
    found: dict[str, tuple[str, str]] = {}
    for env in policy.order:
        status = recorded.get((env, model))
        if status is not None:
            for ref in status.deployed:
                found.setdefault(ref.version, (ref.spec_digest, env))
    return found


def _reused_version(d: DesiredPin, version: str, released: Mapping[str, tuple[str, str]]) -> Problem | None:
    if version not in released:
        return None
    digest, env = released[version]
    if digest == d.digest:
        return None
    return Problem(
        d.path,
        "training",
        f"version {version} was already deployed in {env} as {digest[:19]}…; "
        "a released version cannot change its training spec (bump the version)",
        "immutable-version",
    )


def _decide(
    key: Key,
    d: DesiredPin | None,
    r: ModelStatus | None,
    recorded: Mapping[Key, ModelStatus],
    policy: PromotionPolicy,
    evidence: Evidence,
) -> Action | str | None:
    """An Action to take, a reason to keep waiting (already recorded), or None (in sync)."""
    env, model = key
    if d is None:
        if r is None or r.phase is Phase.REMOVED:
            return None
        return Action(
            kind=ActionKind.REMOVE,
            environment=env,
            model=model,
            version=r.desired.version,
            spec_digest=r.desired.spec_digest,
            source_commit=evidence.deletions.get(key, evidence.head or r.desired.source_commit),
            reason="the pin was deleted",
            live=r.live,
        )

    base = {
        "environment": env,
        "model": model,
        "version": d.version,
        "source_commit": d.source_commit,
        "spec_digest": d.digest,
    }
    same_change = r is not None and r.desired.source_commit == d.source_commit

    if not d.valid:
        reason = "; ".join(p.line() for p in d.problems)
        if same_change and r is not None and r.phase is Phase.REJECTED and r.reason == reason:
            return None
        return Action(kind=ActionKind.REJECT, reason=reason, live=r.live if r else None, **base)

    assert d.pin is not None and d.digest is not None
    attempts = 0
    if same_change and r is not None:
        if r.phase in SETTLED:
            return None
        if r.phase is Phase.ERRORED:
            # Counted from the recorded finish (or start); never from now, or the retry would slide away.
            since = (r.workflow.finished or r.workflow.started) if r.workflow else None
            retry_at = since + timedelta(seconds=backoff_seconds(r.attempts)) if since else evidence.now
            if evidence.now < retry_at:
                return f"Errored {r.attempts}x; retrying after {retry_at:%Y-%m-%dT%H:%M:%SZ}"
            attempts = r.attempts

    live = r.live if r is not None else None
    full = {**base, "pin": d.pin, "live": live, "attempts": attempts}

    if evidence.adopting and r is None:  # adoption covers pins the trail has never seen
        return Action(
            kind=ActionKind.DEPLOY,
            artifact=evidence.artifacts.get(d.digest),
            adopted=True,
            reason="adopted: first pass over a repository without a status trail",
            **full,
        )
    if live is not None and live.spec_digest == d.digest:
        if r is not None and r.desired.spec_digest not in (None, d.digest):
            return Action(
                kind=ActionKind.ROLLBACK,
                artifact=live.artifact,
                reason=f"the pin returns to the live spec (version {live.version}): nothing to build",
                **full,
            )
        return Action(
            kind=ActionKind.DEPLOY,
            artifact=live.artifact,
            reason="the pin changed but its spec is the live one: evaluate it against the new gates",
            **full,
        )
    env_policy = policy.for_env(env)
    # A rollback returns to a digest that was live here and that no rollback has moved away from since;
    # a version that was rolled back from needs the whole policy again.
    before = next((ref for ref in (r.deployed if r else []) if ref.spec_digest == d.digest), None)
    if before is not None and before.rolled_back_at is None:
        counted: tuple[ApprovalRef, ...] = ()
        if policy.rollback_requires_approval:
            why, counted = _approvals(d, policy, evidence)
            if why:
                return _blocked(why, r, base)
        return Action(
            kind=ActionKind.ROLLBACK,
            artifact=before.artifact,
            reason=f"{env} ran this spec before (live since {before.since:%Y-%m-%dT%H:%M:%SZ}): deploy it again",
            approvals=counted,
            **full,
        )
    upstream: UpstreamRef | None = None
    if env_policy.requires is not None:
        why_or_ref = _requires(d, env_policy.requires, env_policy.min_soak, recorded, evidence)
        if isinstance(why_or_ref, str):
            return _blocked(why_or_ref, r, base)
        upstream = why_or_ref
    why, counted = _approvals(d, policy, evidence)
    if why:
        return _blocked(why, r, base)
    if env_policy.require_signed and not _signed(d, evidence):
        return _blocked(
            f"the commit that set this pin ({d.source_commit[:12]}) has no signature that verifies against "
            f"environments/allowed_signers; {env} requires signed changes",
            r,
            base,
        )
    return Action(
        kind=ActionKind.DEPLOY,
        artifact=evidence.artifacts.get(d.digest),
        approvals=counted,
        upstream=upstream,
        **full,
    )


def _blocked(why: str, r: ModelStatus | None, base: dict[str, str | None]) -> Action | str:
    if (
        r is not None
        and r.phase is Phase.BLOCKED
        and r.desired.source_commit == base["source_commit"]
        and r.reason == why
    ):
        return why
    return Action(kind=ActionKind.BLOCK, reason=why, live=r.live if r else None, **base)


def _requires(
    d: DesiredPin,
    upstream: str,
    min_soak: str | None,
    recorded: Mapping[Key, ModelStatus],
    evidence: Evidence,
) -> str | UpstreamRef:
    """Why the upstream environment's evidence is not enough yet, or that evidence."""
    status = recorded.get((upstream, d.model))
    ref = next((x for x in (status.deployed if status else []) if x.spec_digest == d.digest), None)
    if ref is None:
        return (
            f"{upstream} has not Deployed spec {(d.digest or '')[:19]}… (version {d.version}); promote it there first"
        )
    if min_soak:
        ready = ref.since + timedelta(seconds=duration_seconds(min_soak))
        if evidence.now < ready:
            return (
                f"{upstream} has run spec {(d.digest or '')[:19]}… (version {d.version}) since "
                f"{ref.since:%Y-%m-%dT%H:%M:%SZ}; min_soak {min_soak} is reached at {ready:%Y-%m-%dT%H:%M:%SZ}"
            )
    return UpstreamRef(environment=upstream, since=ref.since)


def _approvals(
    d: DesiredPin, policy: PromotionPolicy, evidence: Evidence
) -> tuple[str | None, tuple[ApprovalRef, ...]]:
    """(why it is not approved enough, or None; the approvals that counted)."""
    env_policy = policy.for_env(d.environment)
    rule = env_policy.approvals
    if rule.min == 0:
        return None, ()
    info = evidence.commits.get(d.source_commit)
    if info is None:
        return f"approval evidence for {d.source_commit[:12]} is unavailable", ()
    authors = sorted({a.lower() for a in (info.author_email, *info.authors) if a})
    refs, refused = count_approvals(env_policy, d.environment, d.model, d.source_commit, authors, info.approvals)
    if len(refs) >= rule.min:
        return None, refs
    allowed = sorted({a.lower() for a in rule.from_})
    pool = ", ".join(allowed) if allowed else "anyone"
    have = ", ".join(r.identity for r in refs) if refs else "none"
    text = (
        f"awaiting approval: {d.environment} needs {rule.min} approval(s) from {pool}, not the change's "
        f"author(s) ({', '.join(authors)}); has {len(refs)} ({have})"
    )
    if refused:
        text += "; not counted: " + "; ".join(refused)
    signed = " with a signing key in environments/allowed_signers" if env_policy.require_signed else ""
    text += f". To approve{signed}: releasectl approve {d.model} --env {d.environment} --source {d.source_commit}"
    return text, ()


def _signed(d: DesiredPin, evidence: Evidence) -> bool:
    info = evidence.commits.get(d.source_commit)
    return info is not None and info.signature_verified
