"""`reconcile -v`: every step line of the local engine's runs, logged as it is written.

Place in the flow: wiring beside the long-running loop and `--once` (controller/app/run.py). With
the local executor the steps run in the local engine, another process (adapters/local/engine.py),
which appends one line per step change to `<home>/runs/<name>/events.log` ("<time> <workflow>/<task>:
started (attempt 1)", "...: Succeeded", "<workflow>: Succeeded in 4.21s"). This thread follows
those files from the offset they had when it started (what happened before is not news) and
gives each new complete line to the controller's log, with the workflow's name as a field. With
`--executor argo`, follow the steps with `argo get` / `argo logs` (README).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

POLL_S = 0.2
MAX_LINE = 2000


class StepTail:
    def __init__(self, runs: Path, log: Callable[..., None], poll_s: float = POLL_S) -> None:
        self.runs = Path(runs)
        self.log = log
        self.poll_s = poll_s
        self._offsets: dict[Path, int] = {}
        self._partial: dict[Path, bytes] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        for path in self._files():  # lines already written belong to earlier controllers
            self._offsets[path] = path.stat().st_size

    def _files(self) -> list[Path]:
        try:
            return sorted(self.runs.glob("*/events.log"))
        except OSError:
            return []

    def poll(self) -> int:
        """Log every complete line written since the last poll; how many."""
        told = 0
        for path in self._files():
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            offset = self._offsets.get(path, 0)
            if size < offset:  # rewritten: a run of that name started over
                offset = 0
            if size == offset:
                continue
            with path.open("rb") as f:
                f.seek(offset)
                data = self._partial.pop(path, b"") + f.read(size - offset)
            self._offsets[path] = size
            *lines, rest = data.split(b"\n")
            if rest:
                self._partial[path] = rest[-MAX_LINE:]
            for raw in lines:
                text = raw.decode("utf-8", "replace")[:MAX_LINE]
                _, _, event = text.partition(" ")  # drop the engine's timestamp: the log has its own
                if event:
                    self.log(f"step {event}", workflow=path.parent.name)
                    told += 1
        return told

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll()
            except OSError:
                continue

    def start(self) -> StepTail:
        self._thread = threading.Thread(target=self._run, name="step-tail", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self.poll()  # the last lines before the controller returns


def tail(home: Any, log: Callable[..., None]) -> StepTail:
    runs = Path(home.runs) / "runs"  # the engine's LocalExecutor keeps <its home>/runs/<name>/
    runs.mkdir(parents=True, exist_ok=True)
    return StepTail(runs, log).start()
