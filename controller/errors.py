"""The two error families of the controller, and the one it retries by itself.

Place in the flow: adapters raise these; the reconciler retries TransientError (PushRejected
among them) with backoff; the CLI's single error funnel maps each family to an exit code (see
docs/design.md: 1 a check said no, 2 usage, 3 a runtime failure).
"""

from __future__ import annotations


class ReleasectlError(Exception):
    """Base of every error the CLI reports as one clear line."""

    exit_code = 3


class PermanentError(ReleasectlError):
    """The input is wrong; retrying will not help. The user must fix something."""

    exit_code = 1


class UsageError(PermanentError):
    """The command line itself is wrong (unknown environment, missing repository, ...)."""

    exit_code = 2


class TransientError(ReleasectlError):
    """Infrastructure failed (a remote, an executor); retried with backoff."""

    exit_code = 3


class PushRejected(TransientError):
    """The remote refused a fast-forward: someone pushed meanwhile. Fetch, rebase, retry."""


class GitError(TransientError):
    """A git command failed for a reason that is not the user's input."""
