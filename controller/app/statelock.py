"""One controller per state folder: an exclusive `flock` on `<home>/controller.lock`.

Place in the flow: taken by `releasectl reconcile` (controller/app/run.py) before it opens its
clone and held until it exits. A second local controller given the same --home (its bare clones,
artifact store, serving state and executor runs) stops at once with a clear error and exit code 3
instead of sharing them. The kernel drops the lock when the holder exits, however it exits, so a
crash leaves nothing stale. Several controllers on one release repo need separate homes and
`--leader-elect` (README).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from controller.errors import ReleasectlError

LOCK_NAME = "controller.lock"


class StateFolderInUse(ReleasectlError):
    """Another controller holds this --home: a runtime failure (exit code 3), not the user's input."""

    exit_code = 3


@dataclass
class StateLock:
    path: Path
    fd: int | None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the lock
            self.fd = None


def acquire(home: Path) -> StateLock:
    """Take the state folder's lock, or raise StateFolderInUse naming its holder."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
        os.close(fd)
        raise StateFolderInUse(
            f"the state folder {home} is in use by another releasectl controller ({holder}); "
            "give each controller its own --home (and run several on one repo only with --leader-elect)"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}, since {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}\n".encode(), 0)
    return StateLock(path, fd)


@contextmanager
def hold(home: Path) -> Iterator[StateLock]:
    """Hold the state folder's lock for the duration of the block."""
    lock = acquire(home)
    try:
        yield lock
    finally:
        lock.release()
