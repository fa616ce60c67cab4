"""The status trail on a branch of its own (`reconcile --status-branch NAME`), for a protected main.

Place in the flow: steps 1 and 5 of a pass. With a status branch the controller fetches it beside
the people's branch, reads status files from its head, and writes and pushes status commits
there (only status/ changes, a root commit when the branch does not exist yet); main is left to
people and PR merges. Without one (the default) nothing here is used.
"""

from __future__ import annotations

from git.exc import GitCommandError

from controller.adapters.git._common import TRACKING, Handle, stderr_of
from controller.errors import GitError

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's empty tree


class TrailMixin(Handle):
    status_branch: str | None = None

    @property
    def trail_ref(self) -> str:
        return TRACKING.format(branch=self.status_branch)

    def trail_head(self) -> str | None:
        """The status branch's head (its tracking ref, or a local branch of that name); None: none yet."""
        if not self.status_branch:
            return None
        for ref in (self.trail_ref, f"refs/heads/{self.status_branch}"):
            try:
                return str(self.git.rev_parse("--verify", "--quiet", f"{ref}^{{commit}}"))
            except GitCommandError:
                continue
        return None

    def fetch_trail(self) -> str | None:
        """Fetch the status branch into its tracking ref; a branch that does not exist yet is None."""
        if not self.status_branch:
            return None
        try:
            self.git.fetch("--quiet", "--no-tags", "origin", f"+refs/heads/{self.status_branch}:{self.trail_ref}")
        except GitCommandError as exc:
            if "couldn't find remote ref" not in stderr_of(exc):
                raise GitError(f"fetch of {self.status_branch} from origin failed: {stderr_of(exc)}") from exc
        return self.trail_head()

    def first_parent_index(self, head: str) -> dict[str, int]:
        """sha -> index on the first-parent line of `head`, oldest 0 (one `git rev-list`)."""
        try:
            out = str(self.git.rev_list("--first-parent", "--reverse", head))
        except GitCommandError as exc:
            raise GitError(f"git rev-list {head[:12]} failed: {stderr_of(exc)}") from exc
        return {sha: i for i, sha in enumerate(out.split())}
