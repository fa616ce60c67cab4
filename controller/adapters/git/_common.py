"""Shared pieces of the git adapter: identities, pending commits, log parsing, error text.

Place in the flow: underneath controller/adapters/git/repo.py and its two mixins (writing, worktree).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import git
from git.exc import GitCommandError

from controller.core.history import CommitRecord
from controller.core.paths import raw_changes
from controller.errors import UsageError, redact

TRACKING = "refs/remotes/origin/{branch}"
_REJECTED = ("[rejected]", "non-fast-forward", "fetch first", "failed to update ref", "stale info")


@dataclass(frozen=True)
class Identity:
    name: str
    email: str

    @classmethod
    def parse(cls, text: str) -> Identity:
        name, _, rest = text.partition("<")
        if not rest.endswith(">") or "@" not in rest:
            raise UsageError(f"identity {text!r} must look like 'Name <email>'")
        return cls(name.strip(), rest[:-1].strip())

    def env(self) -> dict[str, str]:
        return {
            "GIT_AUTHOR_NAME": self.name,
            "GIT_AUTHOR_EMAIL": self.email,
            "GIT_COMMITTER_NAME": self.name,
            "GIT_COMMITTER_EMAIL": self.email,
        }


CONTROLLER = Identity("releasectl", "releasectl@noreply.invalid")


@dataclass(frozen=True)
class PendingCommit:
    """One status commit to write: files under status/ and its message."""

    files: tuple[tuple[str, bytes], ...]
    message: str


class Handle:
    """What the mixins need from a GitRepo (it provides all of it)."""

    repo: git.Repo
    git: Any
    path: Path
    branch: str

    @property
    def tracking(self) -> str:
        return TRACKING.format(branch=self.branch)

    def fetch(self) -> str:
        raise NotImplementedError

    def rev(self, rev: str) -> str:
        raise NotImplementedError


def message_file(folder: str, message: str) -> str:
    path = os.path.join(folder, "message")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(message)
    return path


def stderr_of(exc: GitCommandError) -> str:
    """git's error text in one line, with any URL credentials redacted."""
    text = str(exc.stderr or exc).strip()
    line = " ".join(line.strip() for line in text.splitlines() if line.strip()).removeprefix("stderr: ").strip("'")
    return redact(line)


def parse_log(out: str) -> Iterator[CommitRecord]:
    for record in out.split("\x01"):
        if not record:
            continue
        sha, parents, email, date, rest = record.split("\0", 4)
        message, _, raw = rest.partition("\0")
        changes = list(raw_changes(raw.split("\0")))
        yield CommitRecord(
            sha=sha,
            parents=tuple(parents.split()),
            author_email=email,
            committed_at=datetime.fromisoformat(date),
            message=message,
            changes=tuple(changes),
        )
