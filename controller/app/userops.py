"""What people do to a release repo from the command line: roll a pin back, promote a pin.

Place in the flow: before the controller, on the user's side. Both only make commits (a revert
on the current branch; a copy of a pin on a new branch ready for a PR); history is never
rewritten and nothing is pushed.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.adapters.git import GitRepo
from controller.core.models import ModelPin
from controller.core.paths import POLICY_PATH, pin_path
from controller.core.pins import parse_pin, parse_policy
from controller.core.schemas import dump_yaml, load_yaml
from controller.errors import PermanentError, UsageError


@dataclass(frozen=True)
class Made:
    sha: str
    ref: str
    summary: str


def rollback(repo: GitRepo, model: str, environment: str) -> Made:
    """`git revert` of the last first-parent change of that pin, limited to the pin's file."""
    path = pin_path(environment, model)
    last = repo.log("HEAD", (path,), reverse=False, max_count=1)
    if not last:
        raise UsageError(f"{path} has no history at HEAD")
    commit = last[0]
    change = next(c for c in commit.changes if c.path == path)
    if change.status == "A":
        raise PermanentError(f"{path} was created by {commit.sha[:12]}; there is no earlier version to return to")
    if repo.is_bare:
        raise UsageError(f"{repo.path} is a bare repository; run rollback in a working clone")
    if repo.dirty():
        raise UsageError(f"{repo.path} has uncommitted changes; commit or stash them first")
    only_this = all(c.path == path for c in commit.changes)
    if only_this and len(repo.all_changes(commit.sha)) == 1:
        sha = repo.revert(commit.sha, mainline=1 if len(commit.parents) > 1 else None)
    else:
        message = (
            f'Revert "{commit.subject}" for {path}\n\n'
            f"This reverts commit {commit.sha} for {path} only;\nits other changes stay.\n"
        )
        sha = repo.restore_and_commit(path, f"{commit.sha}^1", message)
    return Made(sha, repo.current_branch(), f"reverted {commit.sha[:12]} ({commit.subject}) for {path}")


def promote(repo: GitRepo, model: str, source: str, target: str, branch: str | None = None) -> Made:
    """A commit on a new branch that gives `target` the version and training spec of `source`.

    The target keeps its own owner, evaluation gates and deployment strategy when it has a pin:
    what is promoted is the artifact's definition, not the environment's rules.
    """
    head = repo.rev("HEAD")
    _check_order(repo, head, source, target)
    src_path, dst_path = pin_path(source, model), pin_path(target, model)
    data = repo.read_file(head, src_path)
    if data is None:
        raise UsageError(f"{src_path} does not exist at HEAD")
    parsed = parse_pin(src_path, data, model)
    if isinstance(parsed, list):
        raise PermanentError("; ".join(p.line() for p in parsed))
    doc = load_yaml(data)
    existing = repo.read_file(head, dst_path)
    if existing is not None:
        current = load_yaml(existing)
        if isinstance(current, dict):
            for key in ("owner", "evaluation", "deployment"):
                if key in current:
                    doc[key] = current[key]
        if (
            isinstance(current, dict)
            and current.get("version") == parsed.version
            and current.get("training") == doc.get("training")
        ):
            raise PermanentError(f"{dst_path} already pins {model} {parsed.version} with the same spec")
    checked = parse_pin(dst_path, dump_yaml(doc).encode(), model)
    if isinstance(checked, list):
        raise PermanentError("; ".join(p.line() for p in checked))
    assert isinstance(checked, ModelPin)
    name = branch or f"promote/{model}-{target}-{parsed.version}"
    ref = f"refs/heads/{name}"
    if repo.ref_exists(ref):
        raise UsageError(f"branch {name} already exists")
    text = (
        f"promote({target}): {model} {parsed.version} from {source}\n\n"
        f"Copies version {parsed.version} and its training spec ({checked.spec_digest()[:19]}…)\n"
        f"from {src_path} to {dst_path}; {target} keeps its own gates and strategy.\n"
    )
    header = "# yaml-language-server: $schema=https://releasectl.dev/schemas/v1/ModelPin.json\n"
    sha = repo.commit_on(ref, head, {dst_path: (header + dump_yaml(doc)).encode()}, text)
    return Made(sha, name, f"{model} {parsed.version}: {source} -> {target} on branch {name}")


def _check_order(repo: GitRepo, head: str, source: str, target: str) -> None:
    """A promotion goes from an environment to the one after it in policy.order."""
    policy = parse_policy(repo.read_file(head, POLICY_PATH))
    if isinstance(policy, list):
        raise PermanentError("; ".join(p.line() for p in policy))
    order = policy.order
    for env in (source, target):
        if env not in order:
            raise UsageError(f"unknown environment {env!r} (policy.order: {' -> '.join(order)})")
    if order.index(target) != order.index(source) + 1:
        raise PermanentError(
            f"cannot promote from {source} to {target}: {target} does not follow {source} in policy.order "
            f"({' -> '.join(order)})"
        )
