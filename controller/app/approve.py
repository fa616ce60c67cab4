"""`releasectl approve`: an approval as a commit of its own, tied to the approver's identity.

Place in the flow: on the user's side, after a change was merged (any merge style, any forge).
The approval is a commit on the current branch, signed when the user's git signs
(`commit.gpgSign`, `gpg.format=ssh`), whose trailers name the source commit it approves, the
environment and the model. It is pushed or merged like any change; the controller counts it for
that change only (controller/loop/approvals.py, controller/core/planner.py).
"""

from __future__ import annotations

from controller.adapters.git import GitRepo
from controller.app.userops import Made
from controller.core.models import DNS_LABEL_RE
from controller.core.paths import POLICY_PATH, pin_path
from controller.core.pins import parse_policy
from controller.core.schemas import load_yaml
from controller.errors import PermanentError, UsageError


def approval_message(model: str, environment: str, source: str, version: str) -> str:
    return (
        f"approve({environment}): {model} {version} ({source[:12]})\n\n"
        f"Approves the change {source} to {pin_path(environment, model)}.\n\n"
        f"Releasectl-Approves: {source}\n"
        f"Releasectl-Environment: {environment}\n"
        f"Releasectl-Model: {model}\n"
    )


def approve(repo: GitRepo, model: str, environment: str, source: str | None = None) -> Made:
    """An empty commit on the current branch that approves `source` (default: the pin's last change)."""
    for name, value in (("model", model), ("--env", environment)):
        if not DNS_LABEL_RE.match(value):
            raise UsageError(f"{name} {value!r} is not a DNS label")
    if repo.is_bare:
        raise UsageError(f"{repo.path} is a bare repository; run approve in a working clone")
    if repo.staged():
        raise UsageError(f"{repo.path} has staged changes; an approval commit carries none (commit or unstage them)")
    head = repo.rev("HEAD")
    policy = parse_policy(repo.read_file(head, POLICY_PATH))
    if isinstance(policy, list):
        raise PermanentError("; ".join(p.line() for p in policy))
    if environment not in policy.order:
        raise UsageError(f"unknown environment {environment!r} (environments: {', '.join(policy.order)})")
    path = pin_path(environment, model)
    if source is None:
        last = repo.last_changes(head, [path])
        if path not in last:
            raise UsageError(f"{path} has no history at HEAD; nothing to approve")
        sha = last[path]
    else:
        sha = repo.rev(source)
        if path not in repo.all_changes(sha):
            raise PermanentError(f"commit {sha[:12]} does not change {path}; approve the commit that set the pin")
    data = repo.read_file(sha, path)
    doc = load_yaml(data) if data is not None else None
    version = str(doc.get("version", "unknown")) if isinstance(doc, dict) else "deleted"
    made = repo.commit_empty(approval_message(model, environment, sha, version))
    return Made(
        made, repo.current_branch(), f"approved {model} {version} in {environment}: change {sha[:12]}", "git push"
    )
