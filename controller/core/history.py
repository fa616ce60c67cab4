"""Commits -> the history of a pin: every change and every outcome, from git alone.

Place in the flow: the git adapter lists the first-parent commits that touched a pin or its
status file (CommitRecord); this module folds them into rows that `releasectl history` prints
and that the audit reads. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime

from controller.core.paths import FileChange, split_pin_path, split_status_path
from controller.core.trail import parse_trailers


@dataclass(frozen=True)
class CommitRecord:
    sha: str
    parents: tuple[str, ...]
    author_email: str
    committed_at: datetime
    message: str
    changes: tuple[FileChange, ...] = ()

    @property
    def subject(self) -> str:
        return self.message.split("\n", 1)[0]


@dataclass(frozen=True)
class HistoryRow:
    when: str
    environment: str
    model: str
    kind: str  # change | revert | delete | outcome
    version: str
    phase: str
    commit: str
    source_commit: str
    author: str
    subject: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def fold(
    commits: Iterable[CommitRecord], model: str, versions: Mapping[str, str], environment: str | None = None
) -> list[HistoryRow]:
    """Oldest first. `versions` maps a pin blob sha to the version it pins (read by the caller)."""
    rows: list[HistoryRow] = []
    for commit in commits:
        when = commit.committed_at.isoformat().replace("+00:00", "Z")
        trailers = parse_trailers(commit.message)
        for change in commit.changes:
            pin = split_pin_path(change.path)
            status = split_status_path(change.path)
            if pin is not None and pin[1] == model and environment in (None, pin[0]):
                if change.status == "D":
                    kind, version = "delete", versions.get(change.old_blob or "", "unknown")
                else:
                    kind = "revert" if commit.subject.startswith('Revert "') else "change"
                    version = versions.get(change.new_blob or "", "unknown")
                rows.append(
                    HistoryRow(
                        when,
                        pin[0],
                        model,
                        kind,
                        version,
                        "",
                        commit.sha,
                        commit.sha,
                        commit.author_email,
                        commit.subject,
                    )
                )
            elif status is not None and status[1] == model and environment in (None, status[0]) and trailers:
                rows.append(
                    HistoryRow(
                        when,
                        status[0],
                        model,
                        "outcome",
                        trailers.get("Version", "unknown"),
                        trailers.get("Phase", ""),
                        commit.sha,
                        trailers.get("Source-Commit", ""),
                        commit.author_email,
                        commit.subject,
                    )
                )
    return rows
