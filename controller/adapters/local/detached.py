"""DetachedExecutor: the Executor the controller uses on one machine; runs live in the local engine.

Place in the flow: step 4 of a pass. It implements controller/ports.py's Executor over files that
the local engine (engine.py, a process of its own, started on demand) reads and writes, the way
a controller talks to Argo over its API: submit drops the manifest and a queue marker, get and
finished read run.json (a stat per run in flight, re-read only when it changed), stop drops a
stop request. Killing the controller never kills a run; the next controller attaches by name.

Submission is idempotent: the first submit of a name creates `runs/<name>/submitted` with O_EXCL
and queues it; any later submit of that name attaches, when the existing manifest is the same
action (ports.identity), or raises RunConflict.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from controller.adapters.local.dag import check_manifest
from controller.adapters.local.engine import EXIT_WHEN_IDLE, STOP_SUFFIX, active_dir, engine_lock, queue_dir
from controller.adapters.local.state import finished_runs, read_json, run_from_dict, wait_for_any, write_json
from controller.ports import FINISHED, PENDING, RunConflict, WorkflowRun, identity

_WAIT_STEP_S = 0.05
_LIVENESS_EVERY_S = 1.0


class DetachedExecutor:
    name = "local"

    def __init__(
        self,
        home: Path,
        *,
        max_parallel: int = 2,
        preload: Sequence[str] = (),
        idle_exit_s: float = 300.0,
        python: str = sys.executable,
    ) -> None:
        self.home = Path(home).resolve()
        for folder in (queue_dir(self.home), active_dir(self.home), self.home / "runs"):
            folder.mkdir(parents=True, exist_ok=True)
        self.max_parallel = max_parallel
        self.preload = tuple(preload)
        self.idle_exit_s = idle_exit_s
        self.python = python
        self._seen: dict[str, tuple[int, int, WorkflowRun | None]] = {}  # name -> (mtime_ns, size, run)
        self._meta: dict[str, dict[str, Any]] = {}  # name -> manifest metadata
        self._last_liveness = 0.0
        self._lock = threading.Lock()
        self._spawned: list[subprocess.Popen[bytes]] = []

    # -- the engine process -----------------------------------------------------------------------

    def engine_running(self) -> bool:
        fd = os.open(engine_lock(self.home), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops the probe's lock
        return False

    def ensure_engine(self) -> None:
        with self._lock:
            self._spawned = [p for p in self._spawned if p.poll() is None]
            if self.engine_running():
                return
            (queue_dir(self.home) / EXIT_WHEN_IDLE).unlink(missing_ok=True)
            log = (self.home / "engine.log").open("ab")
            command = [
                self.python,
                "-m",
                "controller.adapters.local.engine",
                "--home",
                str(self.home),
                "--max-parallel",
                str(self.max_parallel),
                "--idle-exit",
                f"{self.idle_exit_s:g}",
            ]
            if self.preload:
                command += ["--preload", *self.preload]
            from controller.adapters.local.executor import PROJECT_ROOT

            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")]))
            self._spawned.append(
                subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, env=env
                )
            )
            log.close()
            deadline = time.monotonic() + 10.0
            while not self.engine_running() and time.monotonic() < deadline:
                if self._spawned[-1].poll() is not None and not self.engine_running():
                    break  # it lost the race to another engine, or failed: the next call looks again
                time.sleep(0.01)

    def _maybe_revive(self) -> None:
        now = time.monotonic()
        if now - self._last_liveness < _LIVENESS_EVERY_S:
            return
        self._last_liveness = now
        queued = any(p.name != EXIT_WHEN_IDLE for p in queue_dir(self.home).iterdir())
        if (queued or any(active_dir(self.home).iterdir())) and not self.engine_running():
            self.ensure_engine()

    # -- the Executor protocol --------------------------------------------------------------------

    def submit(self, manifest: dict[str, Any]) -> str:
        plan = check_manifest(manifest)  # an unrunnable manifest fails here, before anything is queued
        name = plan.name
        rundir = self.home / "runs" / name
        if not (rundir / "submitted").exists():
            rundir.mkdir(parents=True, exist_ok=True)
            write_json(rundir / "manifest.json", manifest)  # before the marker: a crash between leaves no orphan
            try:
                os.close(os.open(rundir / "submitted", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            except FileExistsError:
                pass  # another submitter won the race: attach below
            else:
                (queue_dir(self.home) / name).touch()
                self._meta[name] = dict(manifest.get("metadata") or {})
                self.ensure_engine()
                return name
        existing = self._metadata(name)
        if identity(existing) != identity(manifest.get("metadata") or {}):
            raise RunConflict(f"workflow {name} already exists for a different action: {identity(existing)}")
        if not self._done(name):  # attach; a submitter killed before queueing it left it unqueued
            if not (rundir / "run.json").exists() and not (active_dir(self.home) / name).exists():
                (queue_dir(self.home) / name).touch()
            self.ensure_engine()
        return name

    def get(self, name: str) -> WorkflowRun | None:
        rundir = self.home / "runs" / name
        path = rundir / "run.json"
        try:
            st = path.stat()
        except FileNotFoundError:
            if (rundir / "submitted").exists():
                return self._labelled(WorkflowRun(name, PENDING))
            return None
        cached = self._seen.get(name)
        if cached is not None and cached[0] == st.st_mtime_ns and cached[1] == st.st_size and cached[2] is not None:
            return cached[2]
        data = read_json(path)
        run = self._labelled(run_from_dict(data)) if data is not None else None
        if run is not None:
            self._seen[name] = (st.st_mtime_ns, st.st_size, run)
        return run

    def list(self, labels: Mapping[str, str]) -> list[WorkflowRun]:
        found = []
        for rundir in sorted((self.home / "runs").iterdir()):
            meta = self._metadata(rundir.name)
            have = meta.get("labels") or {}
            if all(have.get(k) == v for k, v in labels.items()):
                run = self.get(rundir.name)
                if run is not None:
                    found.append(run)
        return found

    def finished(self, names: Collection[str]) -> dict[str, WorkflowRun]:
        done = finished_runs(self.get, names, "local engine")
        if len(done) < len(names):
            self._maybe_revive()
        return done

    def wait_for_finished(self, names: Collection[str], timeout_s: float) -> bool:
        return wait_for_any(self.finished, names, timeout_s, _WAIT_STEP_S)

    def stop(self, name: str, message: str = "") -> None:
        if self._done(name):
            return
        request = queue_dir(self.home) / f"{name}{STOP_SUFFIX}"
        request.write_text(message or "stopped by the controller", encoding="utf-8")
        self.ensure_engine()

    def close(self) -> None:
        """Let the engine exit once it is idle; runs in flight go on until they finish."""
        with contextlib.suppress(OSError):
            (queue_dir(self.home) / EXIT_WHEN_IDLE).touch()

    def __enter__(self) -> DetachedExecutor:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- helpers ----------------------------------------------------------------------------------

    def _done(self, name: str) -> bool:
        run = self.get(name)
        return run is not None and run.phase in FINISHED

    def _metadata(self, name: str) -> dict[str, Any]:
        meta = self._meta.get(name)
        if meta is None:
            manifest = read_json(self.home / "runs" / name / "manifest.json") or {}
            meta = dict(manifest.get("metadata") or {})
            if meta:
                self._meta[name] = meta
        return meta

    def _labelled(self, run: WorkflowRun) -> WorkflowRun:
        meta = self._metadata(run.name)
        return replace(run, labels=dict(meta.get("labels") or {}), annotations=dict(meta.get("annotations") or {}))
