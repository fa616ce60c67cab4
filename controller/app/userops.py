"""What people do to a release repo from the command line: roll a pin back, promote a pin.

Place in the flow: before the controller, on the user's side. Both only make commits (a revert
on the current branch; a copy of a pin on a new branch ready for a PR); history is never
rewritten and nothing is pushed. A rollback must return to a spec the environment has Deployed
before (the status trail says which), and it refuses an environment the policy does not list.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from controller.adapters.git import GitRepo
from controller.core.models import ModelPin, ModelStatus
from controller.core.paths import POLICY_PATH, pin_path, status_path
from controller.core.pins import parse_pin, parse_policy
from controller.core.schemas import dump_yaml, load_yaml
from controller.core.trail import parse_status
from controller.errors import PermanentError, UsageError


@dataclass(frozen=True)
class Made:
    sha: str
    ref: str  # the branch the commit is on: the current one (rollback) or a new one (promote)
    summary: str
    next_step: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _environments(repo: GitRepo, head: str, environment: str) -> None:
    policy = parse_policy(repo.read_file(head, POLICY_PATH))
    if isinstance(policy, list):
        raise PermanentError("; ".join(p.line() for p in policy))
    if environment not in policy.order:
        raise UsageError(f"unknown environment {environment!r} (environments: {', '.join(policy.order)})")


def _ran_before(path: str, data: bytes, model: str, environment: str, status: ModelStatus | None, sha: str) -> str:
    """What restoring `data` does; refuses when it is not a rollback (the pin never ran here)."""
    parsed = parse_pin(path, data, model)
    if isinstance(parsed, list):
        raise PermanentError(
            f"{path} before {sha[:12]} was not a valid pin ({parsed[0].line()}); there is nothing to roll back to"
        )
    digest = parsed.spec_digest()
    if status is None:
        return f"{environment} has no status trail for {model} yet: the controller decides what it builds"
    ran = next((ref for ref in status.deployed if ref.spec_digest == digest), None)
    if ran is None:
        raise PermanentError(
            f"{path} before {sha[:12]} ({model} {parsed.version}, spec {digest[:19]}…) never Deployed in "
            f"{environment}, so restoring it is not a rollback (the controller would build it); "
            "change the pin in a PR instead"
        )
    return f"the controller redeploys {parsed.version} ({ran.artifact[:19]}…) without training"


def rollback(repo: GitRepo, model: str, environment: str) -> Made:
    """`git revert` of the last first-parent change of that pin, limited to the pin's file.

    Only a return to a spec this environment has Deployed before (per the status trail) is a
    rollback; anything else is refused, since the controller would build it like any new change.
    """
    head = repo.rev("HEAD")
    _environments(repo, head, environment)
    path = pin_path(environment, model)
    last = repo.log(head, (path,), reverse=False, max_count=1)
    if not last:
        raise UsageError(f"{path} has no history at HEAD")
    commit = last[0]
    change = next(c for c in commit.changes if c.path == path)
    if change.status == "A":
        raise PermanentError(f"{path} was created by {commit.sha[:12]}; there is no earlier version to return to")
    before = repo.read_file(commit.parents[0], path) if commit.parents else None
    if before is None:
        raise PermanentError(f"{path} did not exist before {commit.sha[:12]}; there is no earlier version to return to")
    status = parse_status(repo.read_file(head, status_path(environment, model)) or b"")
    effect = _ran_before(path, before, model, environment, status, commit.sha)
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
    branch = repo.current_branch()
    return Made(sha, branch, f"reverted {commit.sha[:12]} ({commit.subject}) for {path}; {effect}", "git push")


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
    return Made(
        sha, name, f"{model} {parsed.version}: {source} -> {target} on branch {name}", f"git push origin {name}"
    )


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
