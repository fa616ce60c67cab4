"""The one path grammar of a release repo, and git's raw-diff records. Pure, imports nothing of ours.

Place in the flow: under everything. The git adapter, the snapshot reader, the trail, history,
queries and user operations all spell `environments/<env>/<model>.yaml` and
`status/<env>/<model>.yaml` through these functions, and parse `git diff-tree --raw -z` /
`git log --raw -z` records with `raw_changes`, so there is one place that knows the layout.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

ENV_ROOT = "environments/"
STATUS_ROOT = "status/"
POLICY_PATH = "environments/policy.yaml"
ALLOWED_SIGNERS = "environments/allowed_signers"  # ssh allowed-signers for policies with require_signed
PIN_SUFFIX = ".yaml"
ZERO = "0" * 40  # git's name for "no object" in raw diffs


def pin_path(environment: str, model: str) -> str:
    return f"{ENV_ROOT}{environment}/{model}{PIN_SUFFIX}"


def status_path(environment: str, model: str) -> str:
    return f"{STATUS_ROOT}{environment}/{model}{PIN_SUFFIX}"


def _split(path: str, root: str) -> tuple[str, str] | None:
    if not path.startswith(root) or not path.endswith(PIN_SUFFIX):
        return None
    parts = path[len(root) : -len(PIN_SUFFIX)].split("/")
    return (parts[0], parts[1]) if len(parts) == 2 else None


def split_pin_path(path: str) -> tuple[str, str] | None:
    """(environment, model) of `environments/<env>/<model>.yaml`; None for anything else."""
    return None if path == POLICY_PATH else _split(path, ENV_ROOT)


def split_status_path(path: str) -> tuple[str, str] | None:
    """(environment, model) of `status/<env>/<model>.yaml`; None for anything else."""
    return _split(path, STATUS_ROOT)


@dataclass(frozen=True)
class FileChange:
    path: str
    old_blob: str | None
    new_blob: str | None
    status: str  # A, M or D
    mode: str = "100644"  # the new tree mode: 120000 a symlink, 160000 a submodule (never read as a pin)


def raw_change(meta: str, path: str) -> FileChange | None:
    """One `:<old mode> <new mode> <old> <new> <status>` record and its path; None if not one."""
    if not meta.startswith(":"):
        return None
    _om, mode, old, new, status = meta[1:].split(" ")
    return FileChange(path, None if old == ZERO else old, None if new == ZERO else new, status[0], mode)


def raw_changes(tokens: Sequence[str]) -> Iterator[FileChange]:
    """NUL-split `--raw -z` output (meta, path, meta, path, ...; stray tokens are skipped)."""
    i = 0
    while i < len(tokens):
        meta = tokens[i].lstrip("\n")
        if meta.startswith(":") and i + 1 < len(tokens):
            change = raw_change(meta, tokens[i + 1])
            if change is not None:
                yield change
            i += 2
        else:
            i += 1
