"""A person's working clone: what `releasectl rollback` needs (revert, restore one file, commit).

Place in the flow: before the controller, on the user's side.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from git.exc import GitCommandError

from controller.adapters.git._common import Handle, stderr_of
from controller.core.paths import ENV_ROOT, STATUS_ROOT
from controller.errors import GitError


class WorktreeMixin(Handle):
    @property
    def is_bare(self) -> bool:
        return bool(self.repo.bare)

    def dirty(self) -> bool:
        return bool(self.repo.is_dirty(untracked_files=False))

    def current_branch(self) -> str:
        return str(self.git.rev_parse("--abbrev-ref", "HEAD"))

    def ref_exists(self, ref: str) -> bool:
        try:
            self.git.rev_parse("--verify", "--quiet", ref)
            return True
        except GitCommandError:
            return False

    def merge_base(self, a: str, b: str) -> str | None:
        """The best common ancestor of two commits (`git merge-base`), or None when they share none."""
        try:
            return str(self.git.merge_base(a, b)).strip() or None
        except GitCommandError:
            return None

    def all_changes(self, sha: str) -> list[str]:
        """Every path a commit changed against its first parent (not only under environments/)."""
        out = self.git.diff_tree(
            "--no-commit-id", "-r", "-z", "--name-only", "--no-renames", "-m", "--first-parent", "--root", sha
        )
        return [p for p in str(out).split("\0") if p]

    def revert(self, sha: str, mainline: int | None = None) -> str:
        args = ["--no-edit"] + (["-m", str(mainline)] if mainline else []) + [sha]
        try:
            self.git.revert(*args)
        except GitCommandError as exc:
            raise GitError(f"git revert {sha[:12]} failed: {stderr_of(exc)}") from exc
        return self.rev("HEAD")

    def restore_and_commit(self, path: str, rev: str, message: str) -> str:
        """Check `path` out as it was at `rev` and commit only that file (a path-limited revert)."""
        self.git.checkout(rev, "--", path)
        self.git.commit("-m", message, "--", path)
        return self.rev("HEAD")

    def worktree_commit(self) -> str:
        """A commit of environments/ and status/ as they are on disk (untracked files too), HEAD as parent.

        What `releasectl validate` reads by default, like a linter: nothing moves (no ref, no change
        to the user's index); the commit is a loose object that `git gc` prunes, as `git stash create`'s.
        Works in a repository with no commit yet.
        """
        import os
        import tempfile

        try:
            parent = [str(self.git.rev_parse("--verify", "--quiet", "HEAD^{commit}"))]
        except GitCommandError:
            parent = []
        with tempfile.TemporaryDirectory(prefix="releasectl-index-") as tmp:
            env = {
                "GIT_INDEX_FILE": os.path.join(tmp, "index"),
                "GIT_AUTHOR_NAME": "releasectl validate",
                "GIT_AUTHOR_EMAIL": "releasectl@noreply.invalid",
                "GIT_COMMITTER_NAME": "releasectl validate",
                "GIT_COMMITTER_EMAIL": "releasectl@noreply.invalid",
            }
            try:
                with self.git.custom_environment(**env):
                    if parent:
                        self.git.read_tree(parent[0])
                    for root in (ENV_ROOT, STATUS_ROOT):  # only what a snapshot reads
                        try:
                            self.git.add("-A", "--", root.rstrip("/"))
                        except GitCommandError as exc:
                            if "did not match" not in stderr_of(exc):
                                raise
                    tree = str(self.git.write_tree())
                    args = [tree, *(x for p in parent for x in ("-p", p)), "-m", "releasectl: the working tree"]
                    return str(self.git.commit_tree(*args))
            except GitCommandError as exc:
                raise GitError(f"could not read the working tree of {self.path}: {stderr_of(exc)}") from exc

    def commit_file(self, path: str, data: bytes, message: str) -> str:
        """Write `path` in the working tree and commit only that file on the current branch."""
        target = Path(str(self.repo.working_tree_dir)) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        with tempfile.TemporaryDirectory(prefix="releasectl-msg-") as tmp:
            message_path = Path(tmp) / "message"
            message_path.write_text(message, encoding="utf-8")
            try:
                self.git.add("--", path)
                self.git.commit("-q", "-F", str(message_path), "--", path)
            except GitCommandError as exc:
                raise GitError(f"git commit of {path} failed: {stderr_of(exc)}") from exc
        return self.rev("HEAD")
