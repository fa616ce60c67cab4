"""Run a CPU-bound function in a forked child while this process does other work.

Place in the flow: under the snapshot reader's start-up scan, which parses thousands of pins
and statuses; with a fork, both cores parse (the machines this runs on have 2). The child's
result comes back over a private pipe, pickled: between this process and its own fork only,
never from disk or the network. Where fork is unavailable, the function runs inline.
"""

from __future__ import annotations

import os
import pickle
import traceback
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class ChildFailed(RuntimeError):
    """The forked child raised; its traceback is the message."""


class Forked(Generic[T]):
    """`fn()` running in a child process; `result()` waits for it."""

    def __init__(self, fn: Callable[[], T]) -> None:
        self._inline: tuple[T] | None = None
        if not hasattr(os, "fork"):
            self._inline = (fn(),)
            return
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: compute, send, leave without running the parent's exit handlers
            os.close(read)
            try:
                payload = pickle.dumps((True, fn()), protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException:
                payload = pickle.dumps((False, traceback.format_exc()))
            with os.fdopen(write, "wb") as pipe:
                pipe.write(payload)
            os._exit(0)
        os.close(write)
        self._pid, self._read = pid, read

    def result(self) -> T:
        if self._inline is not None:
            return self._inline[0]
        with os.fdopen(self._read, "rb") as pipe:
            payload = pipe.read()
        os.waitpid(self._pid, 0)
        if not payload:
            raise ChildFailed("the forked child died without an answer")
        ok, value = pickle.loads(payload)  # noqa: S301 - our own child's answer
        if not ok:
            raise ChildFailed(value)
        return value  # type: ignore[no-any-return]
