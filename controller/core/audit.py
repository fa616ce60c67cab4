"""The audit: commits of a release repo -> every change, outcome and break in the chain. Pure.

Place in the flow: the git adapter reads first-parent commits (with their changed files and
ssh signature verdicts) and the status files they wrote; controller/app/audit.py hands them to
this module, which folds them into a report per environment and model (changes, approvals,
gates, evidence, rollbacks, figures) and, with `--verify`, into the list of breaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class SignedCommit:
    """A commit with its signature verdict, as `git log` with allowed signers reports it."""

    sha: str
    parents: tuple[str, ...]
    author_email: str
    author_name: str
    committer_email: str
    committed_at: datetime
    message: str
    signed: bool = False  # carries a signature at all
    signer: str | None = None  # the principal allowed_signers maps the verifying key to (good signatures only)
    key: str | None = None  # the verifying key's fingerprint
