"""`releasectl retry MODEL --env ENV`: ask, in git, for a Failed outcome to be tried again.

Place in the flow: before the controller, on the user's side, like rollback. A Failed outcome
(a gate or a check said no) is never retried by itself: the user must act. When what must change
is outside the release repo (a flaky upstream, a fixed dataset, a node that was sick), this
command makes the request explicit in the history: a commit on the current branch that rewrites
the pin's trailing `# releasectl retry N: <source commit>` comment and carries the trailers
`Releasectl-Retry: <source commit of the Failed change>`, `Releasectl-Environment` and
`Releasectl-Model`. The pin's spec is unchanged, but the pin file changed, so the controller sees
a new change of it, level-triggered like any other: the retry goes through the same policy
(requires, approvals, signatures) and runs as a new workflow named by the new commit. Push it or
open a PR; nothing is pushed here.
"""

from __future__ import annotations

import re

from controller.adapters.git import GitRepo
from controller.app.userops import Made
from controller.core.models import Phase
from controller.core.paths import pin_path, status_path
from controller.core.trail import parse_status
from controller.errors import GitError, PermanentError, UsageError

RETRY_LINE = re.compile(r"^# releasectl retry (\d+): [0-9a-f]{40}\n?\Z", re.MULTILINE)
RETRYABLE = (Phase.FAILED, Phase.ERRORED)


def retry(repo: GitRepo, model: str, environment: str) -> Made:
    if repo.is_bare:
        raise UsageError(f"{repo.path} is a bare repository; run retry in a working clone")
    if repo.dirty():
        raise UsageError(f"{repo.path} has uncommitted changes; commit or stash them first")
    head = repo.rev("HEAD")
    path = pin_path(environment, model)
    data = repo.read_file(head, path)
    if data is None:
        raise UsageError(f"{path} does not exist at HEAD")
    status_at = head
    if repo.status_branch:  # the trail on its own branch (reconcile --status-branch): read it there
        try:
            trail = repo.fetch_trail()  # the newest outcome, not the one this clone last saw
        except GitError:
            trail = repo.trail_head()  # no origin to ask: what this clone has
        if trail is None:
            raise UsageError(f"--status-branch {repo.status_branch}: no such branch on origin or in {repo.path}")
        status_at = trail
    status_data = repo.read_file(status_at, status_path(environment, model))
    status = parse_status(status_data) if status_data is not None else None
    last = repo.log("HEAD", (path,), reverse=False, max_count=1)
    source = last[0].sha if last else ""
    if status is None or status.desired.source_commit != source:
        raise PermanentError(
            f"{environment}/{model}: the controller has not recorded an outcome for its current change "
            f"({source[:12]}) yet; there is nothing to retry"
        )
    if status.phase not in RETRYABLE:
        raise PermanentError(
            f"{environment}/{model} {status.desired.version} is {status.phase.value}, not Failed or Errored; "
            "only a Failed or Errored outcome can be retried"
        )
    text = data.decode("utf-8")
    found = RETRY_LINE.search(text)
    number = int(found.group(1)) + 1 if found else 1
    body = text[: found.start()] if found else text
    if not body.endswith("\n"):
        body += "\n"
    new = f"{body}# releasectl retry {number}: {source}\n"
    message = (
        f"retry({environment}): {model} {status.desired.version}\n\n"
        f"Retries the {status.phase.value} outcome of {source[:12]}: {status.reason[:300]}\n"
        "The spec is unchanged; the controller runs it again as a new change, under the same policy.\n\n"
        f"Releasectl-Retry: {source}\n"
        f"Releasectl-Environment: {environment}\n"
        f"Releasectl-Model: {model}\n"
    )
    sha = repo.commit_file(path, new.encode("utf-8"), message)
    return Made(sha, repo.current_branch(), f"asked for retry {number} of {environment}/{model} ({source[:12]})")
