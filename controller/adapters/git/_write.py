"""Writing: status commits with plumbing and a temporary index, pushes, and rebase-and-retry.

Place in the flow: step 5 of a pass (record). Never a force-push, never a write under
environments/ for the controller.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from io import BytesIO
from typing import Any

from git.exc import GitCommandError
from gitdb.base import IStream

from controller import failpoints
from controller.adapters.git._common import (
    _REJECTED,
    CONTROLLER,
    Identity,
    PendingCommit,
    message_file,
    stderr_of,
)
from controller.adapters.git._trail import TrailMixin
from controller.core.paths import ENV_ROOT, STATUS_ROOT
from controller.core.trail import parse_trailers
from controller.errors import GitError, PushRejected


def outcome_key(message: str) -> tuple[str, str, str] | None:
    """(environment, model, source commit) of a status commit, from its trailers; None for others."""
    trailers = parse_trailers(message)
    env, model, source = trailers.get("Environment"), trailers.get("Model"), trailers.get("Source-Commit")
    return (env, model, source) if env and model and source else None


def _ssh_signing(key: str) -> list[str]:
    return ["git", "-c", "gpg.format=ssh", "-c", f"user.signingKey={key}"]


class WritingMixin(TrailMixin):
    def store_blob(self, data: bytes) -> str:
        return str(self.repo.odb.store(IStream("blob", len(data), BytesIO(data))).hexsha.decode())

    def write_commits(self, parent: str, commits: Sequence[PendingCommit], identity: Identity) -> str:
        """Chain `commits` on `parent` with plumbing and a temporary index; returns the last sha."""
        for pending in commits:
            for path, _ in pending.files:
                if path.startswith(ENV_ROOT) or not path.startswith(STATUS_ROOT):
                    raise ValueError(f"the controller writes only under {STATUS_ROOT}, not {path}")
        head = parent
        with tempfile.TemporaryDirectory(prefix="releasectl-index-") as tmp:
            env = {"GIT_INDEX_FILE": os.path.join(tmp, "index"), **identity.env()}
            self.git.read_tree(*([head] if head else ["--empty"]), env=env)  # "": a root commit (a new trail)
            for pending in commits:
                for path, data in pending.files:
                    blob = self.store_blob(data)
                    self.git.update_index("--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
                tree = self.git.write_tree(env=env)
                head = self._commit_tree(tree, head, message_file(tmp, pending.message), env)
        return str(head)

    def _commit_tree(self, tree: str, parent: str, message: str, env: dict[str, str]) -> str:
        """`git commit-tree`, ssh-signed with `signing_key` when the controller has one (every replay re-signs)."""
        key = getattr(self, "signing_key", None)
        parents = ["-p", parent] if parent else []
        if key is None:
            return str(self.git.commit_tree(tree, *parents, "-F", message, env=env))
        try:
            return str(
                self.git.execute(
                    [*_ssh_signing(key), "commit-tree", "-S", tree, *parents, "-F", message],
                    env={**os.environ, **env},
                )
            )
        except GitCommandError as exc:
            raise GitError(f"signing a status commit with {key} failed: {stderr_of(exc)}") from exc

    def push(self, sha: str) -> None:
        """Fast-forward the remote branch (the status branch, when there is one) to `sha`; never forced."""
        failpoints.hit("before-push")
        failpoints.hit("during-push")
        branch = self.status_branch or self.branch
        try:
            self.git.push("--porcelain", "origin", f"{sha}:refs/heads/{branch}")
        except GitCommandError as exc:
            text = stderr_of(exc) + str(exc.stdout or "")
            if any(marker in text for marker in _REJECTED):
                raise PushRejected(f"push to origin/{branch} was rejected (someone pushed meanwhile)") from exc
            raise GitError(f"push to origin failed: {stderr_of(exc)}") from exc
        failpoints.hit("after-push")
        self.git.update_ref(self.trail_ref if self.status_branch else self.tracking, sha)

    def publish(
        self,
        base: str,
        commits: Sequence[PendingCommit],
        identity: Identity = CONTROLLER,
        *,
        attempts: int = 6,
        backoff_s: float = 0.05,
        on_retry: Any = None,
        on_drop: Callable[[PendingCommit], None] | None = None,
    ) -> str:
        """Write `commits` on `base` and push; on rejection fetch, replay on the new head, retry.

        Exactly one outcome per change, whoever writes: before replaying, a commit whose outcome
        (environment, model, source commit) landed meanwhile, from another controller, is dropped
        (`on_drop` hears of it); when nothing is left, the new head is returned as it is.
        """
        if not commits:
            return base
        parent = (self.trail_head() or "") if self.status_branch else base
        start = parent  # what the trail was when these outcomes were decided
        for attempt in range(1, attempts + 1):
            if parent != start and parent:
                commits = self._not_recorded_since(start or None, parent, commits, on_drop)
                if not commits:
                    return parent
            head = self.write_commits(parent, commits, identity)
            try:
                self.push(head)
                return head
            except PushRejected:
                if attempt == attempts:
                    raise
                if on_retry is not None:
                    on_retry(attempt)
                # The first rejection means one push landed meanwhile: fetching and replaying take long
                # enough, so retry at once. Only repeated rejections (a busy branch) back off, with jitter.
                if attempt > 1:
                    time.sleep(backoff_s * 2 ** (attempt - 2) * (1 + random.random()))  # noqa: S311 - jitter
                parent = self.fetch()
                if self.status_branch:
                    parent = self.trail_head() or ""
        raise AssertionError("unreachable")

    def _not_recorded_since(
        self,
        base: str | None,
        head: str,
        commits: Sequence[PendingCommit],
        on_drop: Callable[[PendingCommit], None] | None,
    ) -> list[PendingCommit]:
        """`commits` less those whose outcome someone recorded in base..head (trailers of status commits)."""
        landed = {
            outcome_key(record.message)
            for record in self.log_async(head, (STATUS_ROOT,), base, first_parent=False).result()  # type: ignore[attr-defined]
        }
        landed.discard(None)
        kept = []
        for pending in commits:
            if outcome_key(pending.message) in landed:
                if on_drop is not None:
                    on_drop(pending)
            else:
                kept.append(pending)
        return kept

    # -- what users do (CLI rollback / promote, the demo) -----------------------------------------

    def push_branch(self, name: str, sha: str) -> None:
        """Create the remote branch `name` at `sha`: a proposal for people to merge (never forced)."""
        if name in (self.branch, self.status_branch):
            raise GitError(f"refusing to push a proposal to {name}: that branch is not a proposal's")
        try:
            self.git.push("--porcelain", "origin", f"{sha}:refs/heads/{name}")
        except GitCommandError as exc:
            text = stderr_of(exc) + str(exc.stdout or "")
            if any(marker in text for marker in _REJECTED):
                raise PushRejected(f"push to origin/{name} was rejected (the branch exists already)") from exc
            raise GitError(f"push of {name} to origin failed: {stderr_of(exc)}") from exc

    def commit_on(
        self,
        ref: str,
        parent: str,
        files: dict[str, bytes | None],
        message: str,
        identity: Identity | None = None,
    ) -> str:
        """A commit on `ref` (created or fast-forwarded) that writes or deletes `files`."""
        with tempfile.TemporaryDirectory(prefix="releasectl-index-") as tmp:
            env = {"GIT_INDEX_FILE": os.path.join(tmp, "index"), **(identity.env() if identity else {})}
            self.git.read_tree(parent, env=env)
            for path, data in files.items():
                if data is None:
                    self.git.update_index("--force-remove", path, env=env)
                else:
                    blob = self.store_blob(data)
                    self.git.update_index("--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
            tree = self.git.write_tree(env=env)
            sha = str(self.git.commit_tree(tree, "-p", parent, "-F", message_file(tmp, message), env=env))
        self.git.update_ref(ref, sha)
        return sha
