"""Who may approve a change: the one rule, shared by the planner and the audit. Pure.

Place in the flow: the git side reads approval commits (a `Releasectl-Approves: <source commit>`
trailer, the approver's identity as the commit's author, and the principal that
environments/allowed_signers maps the commit's signing key to); the planner counts them before
a change deploys, and `releasectl audit --verify` counts them again over the history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from controller.core.models import ApprovalRef, EnvironmentPolicy


@dataclass(frozen=True)
class Approval:
    """A commit with a `Releasectl-Approves: <source commit>` trailer, as the git side read it."""

    identity: str  # the approving commit's author email
    commit: str
    source_commit: str  # the change it approves
    environment: str
    model: str
    signer: str | None = None  # the principal environments/allowed_signers maps its signing key to
    key: str | None = None  # that key's fingerprint


def count_approvals(
    env_policy: EnvironmentPolicy,
    environment: str,
    model: str,
    source_commit: str,
    authors: Iterable[str],
    approvals: Iterable[Approval],
) -> tuple[tuple[ApprovalRef, ...], list[str]]:
    """(the approvals that count for this change, why each other one for this pin does not).

    An approval counts only from an identity in `approvals.from` (anyone when empty), never from
    an author of the change, only for the source commit, environment and model it names, and,
    with `require_signed`, only when its commit is signed by a key allowed_signers maps to it.
    The audit applies the same rule to the history.
    """
    allowed = {a.lower() for a in env_policy.approvals.from_}
    who_wrote = {a.lower() for a in authors if a}
    counted: dict[str, ApprovalRef] = {}
    refused: list[str] = []
    for approval in approvals:
        if (approval.environment, approval.model) != (environment, model):
            continue
        who = approval.identity.lower()
        why = None
        if approval.source_commit != source_commit:
            why = f"names {approval.source_commit[:12]}, not this change"
        elif who in who_wrote:
            why = "is by an author of the change"
        elif allowed and who not in allowed:
            why = "is from outside approvals.from"
        elif env_policy.require_signed and approval.signer is None:
            why = "is not signed by a key in environments/allowed_signers"
        elif env_policy.require_signed and (approval.signer or "").lower() != who:
            why = f"is signed by a key that environments/allowed_signers maps to {approval.signer}"
        if why is None:
            counted.setdefault(who, ApprovalRef(identity=approval.identity, commit=approval.commit, key=approval.key))
        else:
            refused.append(f"{approval.identity}'s approval {approval.commit[:12]} {why}")
    return tuple(counted[k] for k in sorted(counted)), refused
