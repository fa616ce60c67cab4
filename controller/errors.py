"""The two error families of the controller, and the one it retries by itself.

Place in the flow: adapters raise these; the reconciler retries TransientError (PushRejected
among them) with backoff; the CLI's single error funnel maps each family to an exit code (see
docs/design.md: 1 a check said no, 2 usage, 3 a runtime failure).
"""

from __future__ import annotations

import re

# scheme://user:password@host, or an http(s) URL whose user part alone may be a token
_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/@\s:'\"]+):([^/@\s'\"]*)@")
_HTTP_USER = re.compile(r"(?i)\b(https?://)([^/@\s:'\"]+)@")


def redact(text: str) -> str:
    """`text` with the secrets of URLs replaced by `***` (passwords, and http(s) user parts).

    Every error line, log line and status commit goes through this: a URL with credentials in it,
    from a remote's error or an executor's message, never reaches a terminal, a log or the trail.
    """
    if "@" not in text:
        return text
    return _HTTP_USER.sub(r"\1***@", _CREDENTIALS.sub(r"\1\2:***@", text))


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
