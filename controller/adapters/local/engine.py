"""The local engine: a detached process that runs submitted manifests, as Argo's controller would.

Place in the flow: step 4 of a pass, behind DetachedExecutor (detached.py). The controller never
runs a workflow in its own process: it drops the manifest into `<home>/runs/<name>/` and a
marker into `<home>/queue/`, and this engine (started on demand, one per home, held by an flock
on `<home>/engine.lock`) picks it up and runs it with the in-process LocalExecutor (executor.py),
whose warm worker pays Hera's import once. A controller killed at any instant leaves its runs
running here; the next controller attaches to them by name. The engine keeps an append-only
`<home>/submissions.log` (one `start`, `restart` or `attach` line per submission it took), which is
how tests count that no run was ever started twice.

If the engine itself dies, a run it left Running is restarted from scratch by the next engine
(its `active/` marker says it was accepted): logged as `restart`. With nothing running and nothing
queued it exits after --idle-exit seconds, or at once when a client asked (`queue/.exit-when-idle`).

Run: `python -m controller.adapters.local.engine --home DIR [--max-parallel N] [--idle-exit S]
[--preload MODULE ...]`.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controller.adapters.local.executor import LocalExecutor
from controller.adapters.local.state import read_json

POLL_S = 0.02
EXIT_WHEN_IDLE = ".exit-when-idle"
STOP_SUFFIX = ".stop"


def queue_dir(home: Path) -> Path:
    return home / "queue"


def active_dir(home: Path) -> Path:
    return home / "active"


def engine_lock(home: Path) -> Path:
    return home / "engine.lock"


def log_submission(home: Path, what: str, name: str) -> None:
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    with (home / "submissions.log").open("a", encoding="utf-8") as f:
        f.write(f"{stamp} {what} {name} {os.getpid()}\n")


class Engine:
    def __init__(self, home: Path, *, max_parallel: int, idle_exit_s: float, preload: Sequence[str]) -> None:
        self.home = home
        self.idle_exit_s = idle_exit_s
        for folder in (queue_dir(home), active_dir(home), home / "runs"):
            folder.mkdir(parents=True, exist_ok=True)
        self.executor = LocalExecutor(home, max_parallel=max_parallel, preload=preload)
        self.running: set[str] = set()
        self.stopping = False

    def take(self, name: str) -> None:
        """A queued submission: start it, restart it (its engine died) or attach (it ran)."""
        rundir = self.home / "runs" / name
        manifest = read_json(rundir / "manifest.json")
        if manifest is None:
            return
        if name in self.running:
            log_submission(self.home, "attach", name)
            return
        recorded = read_json(rundir / "run.json")
        what = "start" if recorded is None else ("attach" if recorded.get("phase") in _FINISHED else "restart")
        try:
            self.executor.submit(manifest)
        except Exception as exc:  # an unrunnable manifest: record it as an Error run, never loop on it
            from controller.adapters.local.state import write_json

            write_json(
                rundir / "run.json",
                {"name": name, "phase": "Error", "message": f"the local engine could not start it: {exc}", "nodes": {}},
            )
            what = "refuse"
        log_submission(self.home, what, name)
        if what in ("start", "restart"):
            (active_dir(self.home) / name).touch()
            self.running.add(name)

    def recover(self) -> None:
        """Runs an earlier engine accepted and did not finish: restart them."""
        for marker in sorted(active_dir(self.home).iterdir()):
            recorded = read_json(self.home / "runs" / marker.name / "run.json")
            if recorded is not None and recorded.get("phase") in _FINISHED:
                marker.unlink(missing_ok=True)
                continue
            self.take(marker.name)

    def step(self) -> bool:
        """One look at the queue and the runs; whether anything is queued or running."""
        queue = queue_dir(self.home)
        for entry in sorted(queue.iterdir()):
            name = entry.name
            if name == EXIT_WHEN_IDLE:
                continue
            if name.endswith(STOP_SUFFIX):
                target = name.removesuffix(STOP_SUFFIX)
                message = ""
                with contextlib.suppress(OSError):
                    message = entry.read_text(encoding="utf-8").strip()
                if target in self.running:
                    self.executor.stop(target, message)
                entry.unlink(missing_ok=True)
                continue
            self.take(name)
            entry.unlink(missing_ok=True)
        for name in list(self.running):
            run = self.executor.get(name)
            if run is None or run.phase in _FINISHED:
                self.running.discard(name)
                (active_dir(self.home) / name).unlink(missing_ok=True)
        return bool(self.running)

    def serve(self) -> int:
        self.recover()
        idle_since: float | None = None
        while not self.stopping:
            busy = self.step()
            now = time.monotonic()
            if busy or any(p.name != EXIT_WHEN_IDLE for p in queue_dir(self.home).iterdir()):
                idle_since = None
            else:
                idle_since = idle_since or now
                asked = (queue_dir(self.home) / EXIT_WHEN_IDLE).exists()
                if asked or now - idle_since >= self.idle_exit_s:
                    (queue_dir(self.home) / EXIT_WHEN_IDLE).unlink(missing_ok=True)
                    break
            time.sleep(POLL_S)
        self.executor.close()
        return 0


_FINISHED = frozenset({"Succeeded", "Failed", "Error"})


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m controller.adapters.local.engine")
    p.add_argument("--home", required=True)
    p.add_argument("--max-parallel", type=int, default=2)
    p.add_argument("--idle-exit", type=float, default=300.0)
    p.add_argument("--preload", nargs="*", default=[])
    args = p.parse_args(argv)
    home = Path(args.home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(engine_lock(home), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another engine serves this home
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    engine = Engine(home, max_parallel=args.max_parallel, idle_exit_s=args.idle_exit, preload=args.preload)

    def on_signal(_signum: int, _frame: Any) -> None:
        engine.stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return engine.serve()


if __name__ == "__main__":
    sys.exit(main())
