"""Signatures and approvals: `git log` with ssh signature checks, change authors, approval commits.

Place in the flow: evidence gathering before the planner (approval commits naming a source
commit, the authors of a change) and the audit (every commit with its verified signer). SSH
signatures are checked by git itself (`gpg.format=ssh`, `gpg.ssh.allowedSignersFile`): git runs
`ssh-keygen -Y find-principals` and `-Y verify`, so `%G?`/`%GS`/`%GF` give the verdict, the
principal that environments/allowed_signers maps the key to, and the key's fingerprint.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from git.exc import GitCommandError

from controller.adapters.git._common import Handle, message_file, stderr_of
from controller.core.audit import SignedCommit
from controller.errors import GitError

_FORMAT = "--format=%x01%H%x00%P%x00%ae%x00%an%x00%ce%x00%cI%x00%G?%x00%GS%x00%GF%x00%B%x00"
_UNSIGNED = "--format=%x01%H%x00%P%x00%ae%x00%an%x00%ce%x00%cI%x00N%x00%x00%x00%B%x00"


@contextmanager
def signers_config(allowed_signers: bytes | None) -> Iterator[list[str]]:
    """`git -c ...` options that check ssh signatures against `allowed_signers` (none: no checks)."""
    if allowed_signers is None:
        yield []
        return
    with tempfile.TemporaryDirectory(prefix="releasectl-signers-") as tmp:
        path = os.path.join(tmp, "allowed_signers")
        with open(path, "wb") as handle:
            handle.write(allowed_signers)
        yield ["-c", "gpg.format=ssh", "-c", f"gpg.ssh.allowedSignersFile={path}"]


def parse_signed_log(out: str) -> Iterator[SignedCommit]:
    for record in out.split("\x01"):
        if not record.strip("\n"):
            continue
        sha, parents, email, name, committer, date, verdict, signer, key, message = record.split("\0", 10)[:10]
        good = verdict == "G"
        yield SignedCommit(
            sha=sha,
            parents=tuple(parents.split()),
            author_email=email,
            author_name=name,
            committer_email=committer,
            committed_at=datetime.fromisoformat(date),
            message=message,
            signed=verdict not in ("N", ""),
            signer=signer if good and signer else None,
            key=key if good and key else None,
        )


class SignedMixin(Handle):
    def signed_log(
        self,
        rev_range: Sequence[str],
        allowed_signers: bytes | None,
        *,
        grep: str | Sequence[str] = (),
        paths: Sequence[str] = (),
        first_parent: bool = False,
    ) -> list[SignedCommit]:
        """Commits of `rev_range` (oldest first) with their ssh signature verdicts; ONE `git log`."""
        args = ["log", "--reverse", _FORMAT if allowed_signers is not None else _UNSIGNED]
        if first_parent:
            args[1:1] = ["--first-parent"]
        patterns = [grep] if isinstance(grep, str) else list(grep)
        if patterns:
            args += ["-E", *(f"--grep={p}" for p in patterns)] + (["--all-match"] if len(patterns) > 1 else [])
        args += [*rev_range, "--", *[p.rstrip("/") for p in paths]]
        with signers_config(allowed_signers) as config:
            try:
                out = self.git.execute(["git", *config, *args])
            except GitCommandError as exc:
                raise GitError(f"git log {' '.join(rev_range)} failed: {stderr_of(exc)}") from exc
        return list(parse_signed_log(str(out)))

    def approval_commits(self, source: str, head: str, allowed_signers: bytes | None) -> list[SignedCommit]:
        """Commits after `source` up to `head` that carry a `Releasectl-Approves:` trailer."""
        if source == head:
            return []
        return self.signed_log([f"{source}..{head}"], allowed_signers, grep="^Releasectl-Approves: ")

    def change_authors(self, sha: str) -> tuple[str, ...]:
        """Every author of a change: the commit's, and for a merge those of the commits it brought in."""
        try:
            out = (
                self.git.log("--format=%ae", f"{sha}^1..{sha}")
                if self._is_merge(sha)
                else self.git.log("-1", "--format=%ae", sha)
            )
        except GitCommandError as exc:
            raise GitError(f"git log {sha[:12]} failed: {stderr_of(exc)}") from exc
        return tuple(sorted({line.strip() for line in str(out).splitlines() if line.strip()}))

    def _is_merge(self, sha: str) -> bool:
        return len(str(self.git.rev_parse(f"{sha}^@")).split()) > 1

    def first_parent_graph(self, head: str) -> tuple[dict[str, int], dict[str, int], dict[str, str]]:
        """ONE `git log` over the whole history: (first-parent sha -> index, oldest 0; any commit ->
        the index of the first-parent commit that made it reachable; any commit -> its author email)."""
        try:
            out = str(self.git.log("--format=%H %ae %P", head))
        except GitCommandError as exc:
            raise GitError(f"git log {head[:12]} failed: {stderr_of(exc)}") from exc
        parents: dict[str, list[str]] = {}
        authors: dict[str, str] = {}
        for line in out.splitlines():
            sha, email, *rest = line.split()
            parents[sha] = rest
            authors[sha] = email
        line_: list[str] = []
        at: str | None = head
        while at is not None:
            line_.append(at)
            up = parents.get(at, [])
            at = up[0] if up else None
        line_.reverse()
        position = {sha: i for i, sha in enumerate(line_)}
        joined: dict[str, int] = {}
        for i, sha in enumerate(line_):
            joined[sha] = i
            stack = list(parents.get(sha, [])[1:])
            while stack:
                other = stack.pop()
                if other in joined or other in position:
                    continue
                joined[other] = i
                stack.extend(parents.get(other, []))
        return position, joined, authors

    def staged(self) -> bool:
        """Whether the index differs from HEAD (a commit would carry those changes)."""
        try:
            self.git.diff("--cached", "--quiet")
        except GitCommandError:
            return True
        return False

    def commit_empty(self, message: str) -> str:
        """`git commit --allow-empty` on the current branch, with the user's own config (and signing)."""
        with tempfile.TemporaryDirectory(prefix="releasectl-msg-") as tmp:
            try:
                self.git.commit("--allow-empty", "-q", "-F", message_file(tmp, message))
            except GitCommandError as exc:
                raise GitError(f"git commit failed: {stderr_of(exc)}") from exc
        return self.rev("HEAD")
