"""A person's working clone: what `releasectl rollback` needs (revert, restore one file, commit).

Place in the flow: before the controller, on the user's side.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from git.exc import GitCommandError

from controller.adapters.git._common import Handle, stderr_of
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
