"""What a person watching a pass sees: one line per workflow state change, steps only with -v.

Place in the flow: between the LocalExecutor's `on_event` lines and the reconciler's `log` lines
on one side, and the terminal on the other. The executor says, per step and per workflow,
"<workflow>/<task>: started (attempt N)", "<workflow>/<task>: Succeeded in 0.12s" and
"<workflow>: Succeeded in 3.2s". By default a workflow's lines are: Running (its first step
started) and how it ended; step lines are dropped, or on a terminal shown in one status line that
is rewritten in place. With verbose every step line is printed as it comes.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import TextIO

_STEP = re.compile(r"^(?P<workflow>[a-z0-9][-a-z0-9.]*)/(?P<task>[^:]+): (?P<what>.*)$")
_WORKFLOW = re.compile(r"^(?P<workflow>[a-z0-9][-a-z0-9.]*): (?P<what>.*)$")


class Progress:
    """Thread-safe: the executor calls `event` from its own threads."""

    def __init__(self, out: Callable[[str], None], *, verbose: bool = False, live: TextIO | None = None) -> None:
        self.out = out
        self.verbose = verbose
        self.live = live  # a terminal to draw the status line on; None in a pipe
        self._lock = threading.Lock()
        self._running: set[str] = set()
        self._steps: dict[str, str] = {}  # workflow -> "task: what", for the status line
        self._drawn = False

    def log(self, line: str, **_fields: object) -> None:
        """A reconciler line (a workflow submitted, an outcome, a push): always shown."""
        with self._lock:
            self._print(line)

    def event(self, line: str) -> None:
        with self._lock:
            if self.verbose:
                self._print(f"  {line}")
                return
            step = _STEP.match(line)
            if step is not None:
                workflow = step["workflow"]
                if workflow not in self._running:
                    self._running.add(workflow)
                    self._print(f"  {workflow}: Running")
                self._steps[workflow] = f"{step['task']} {step['what']}"
                self._draw()
                return
            finished = _WORKFLOW.match(line)
            if finished is not None:
                self._running.discard(finished["workflow"])
                self._steps.pop(finished["workflow"], None)
            self._print(f"  {line}")

    def close(self) -> None:
        with self._lock:
            self._clear()

    # -- the terminal's status line ---------------------------------------------------------------

    def _print(self, line: str) -> None:
        self._clear()
        self.out(line)
        self._draw()

    def _draw(self) -> None:
        if self.live is None or not self._steps:
            return
        text = "; ".join(f"{wf[-10:]} {what}" for wf, what in sorted(self._steps.items()))
        self.live.write(f"\r\033[K  … {len(self._steps)} running: {text}"[:200])
        self.live.flush()
        self._drawn = True

    def _clear(self) -> None:
        if self.live is not None and self._drawn:
            self.live.write("\r\033[K")
            self.live.flush()
            self._drawn = False
