"""Git credentials for the controller's clone: only from files or environment variables.

Place in the flow: set up once when the controller opens its bare clone (GitRepo.controller_clone).
A password inside the --repo URL is refused: it would be written into the clone's config and show
in process lists. Instead, in order:
- RELEASECTL_GIT_CREDENTIALS_FILE: a git-credentials file (`https://user:token@host` lines), read
  by git's own `credential-store` helper;
- RELEASECTL_GIT_TOKEN (and RELEASECTL_GIT_USERNAME, default `x-access-token`): a helper that
  reads the variables when git asks, so the token is never written to disk;
- ssh remotes use ssh's own keys and agent (files), as always.
Only the helpers' names and the file's path are written to the clone's config, never a secret.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from controller.errors import UsageError, redact

FILE_ENV = "RELEASECTL_GIT_CREDENTIALS_FILE"
TOKEN_ENV = "RELEASECTL_GIT_TOKEN"  # noqa: S105 - the variable's name, not a secret
USERNAME_ENV = "RELEASECTL_GIT_USERNAME"
ENV_HELPER = (
    '!f() { test "$1" = get || exit 0; '
    f'printf "username=%s\\npassword=%s\\n" "${{{USERNAME_ENV}:-x-access-token}}" "${TOKEN_ENV}"; }}; f'
)


def refuse_inline_password(url: str) -> None:
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password is not None:
        raise UsageError(
            f"--repo {redact(url)}: a password in the URL would be stored in the controller's clone and shown "
            f"in process lists; give git credentials through {FILE_ENV} (a git-credentials file) or {TOKEN_ENV}"
        )


def helpers(environ: Mapping[str, str]) -> list[str]:
    """The credential helpers the environment asks for, in the order git tries them."""
    found = []
    path = environ.get(FILE_ENV)
    if path:
        if not os.path.isfile(path):
            raise UsageError(f"{FILE_ENV}={path}: no such file")
        found.append(f"store --file={shlex.quote(os.path.abspath(path))}")
    if environ.get(TOKEN_ENV):
        found.append(ENV_HELPER)
    return found


def configure(git: Any, environ: Mapping[str, str]) -> None:
    """Write the helpers into the clone's config (an empty first entry drops inherited helpers)."""
    wanted = helpers(environ)
    with contextlib.suppress(Exception):  # nothing was set: nothing to unset
        git.config("--unset-all", "credential.helper")
    if wanted:
        for value in ["", *wanted]:
            git.config("--add", "credential.helper", value)
