"""Step processes of the local executor: a plain subprocess (cold), or a fork of the warm worker.

Place in the flow: step 4 of a pass, inside LocalExecutor. run.py hands a Launch (argv, env,
working directory, stdout/stderr files) to WarmClient.launch() when the command is exactly
`python -m <module> ...`, else (or when the worker is unavailable before the step started) to
ColdProcess. Both put the step in its own session and process group, so a deadline or a stop
kills the step and everything it started with one killpg.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

STARTUP_TIMEOUT_S = 120.0  # the worker imports Hera before it serves; far more than that is a hang
_MAX_WORKER_FAILURES = 3


class LaunchError(OSError):
    """The step's process could not be started (command not found, not executable, ...)."""


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    stdout: Path
    stderr: Path


class StepProcess(Protocol):
    pid: int

    def wait(self, timeout: float | None) -> int | None:
        """The return code (negative: killed by that signal), or None if still running at timeout."""
        ...

    def kill(self, sig: int) -> None: ...


def kill_group(pid: int, sig: int) -> None:
    """Signal the step's process group (its pid: each step leads its own session)."""
    if pid <= 0:
        return
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)  # it may not have called setsid yet


class ColdProcess:
    def __init__(self, launch: Launch) -> None:
        with launch.stdout.open("wb") as out, launch.stderr.open("wb") as err:
            try:
                self._proc = subprocess.Popen(
                    launch.argv,
                    cwd=launch.cwd,
                    env=launch.env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                raise LaunchError(exc.errno, f"could not start {launch.argv[0]!r}: {exc.strerror}") from None
        self.pid = self._proc.pid

    def wait(self, timeout: float | None) -> int | None:
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self, sig: int) -> None:
        kill_group(self.pid, sig)


class WarmProcess:
    """A step forked by the warm worker; `lost` when the worker died while the step ran."""

    def __init__(self) -> None:
        self.pid = 0
        self.returncode: int | None = None
        self.started = threading.Event()
        self.exited = threading.Event()
        self.not_started = False  # the worker never forked it: run it cold instead
        self.lost = False
        self.message = ""
        self._pending_signal: int | None = None
        self._lock = threading.Lock()

    def wait(self, timeout: float | None) -> int | None:
        self.exited.wait(timeout)
        return self.returncode if self.exited.is_set() else None

    def kill(self, sig: int) -> None:
        with self._lock:
            if self.pid == 0:
                self._pending_signal = sig
                return
        kill_group(self.pid, sig)

    def on_started(self, pid: int) -> None:
        with self._lock:
            self.pid = pid
            sig = self._pending_signal
        self.started.set()
        if sig is not None:
            kill_group(pid, sig)


def warm_module(argv: list[str], python: str) -> str | None:
    """The module of a `python -m <module> ...` command, the only shape the warm worker runs."""
    if len(argv) >= 3 and argv[0] == python and argv[1] == "-m" and not argv[2].startswith("-"):
        return argv[2]
    return None


class WarmClient:
    """Talks to one warm worker at a time; restarts it when it dies, gives up after repeated failures."""

    def __init__(self, python: str, preload: tuple[str, ...], env: dict[str, str], cwd: Path, log: Path) -> None:
        self._python, self._preload, self._env, self._cwd, self._log = python, preload, env, cwd, log
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pending: dict[int, WarmProcess] = {}
        self._next_id = 0
        self._failures = 0  # workers in a row that died before starting any step
        self._served = False
        self.disabled = False

    @property
    def pid(self) -> int | None:
        with self._lock:
            return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def compatible(self, env: dict[str, str]) -> bool:
        """A forked child cannot change what the interpreter read at start-up: PYTHON* and locale."""
        fixed = {k for k in set(env) | set(self._env) if k.startswith("PYTHON") or k in ("LANG", "LC_ALL", "LC_CTYPE")}
        fixed -= {"PYTHONPATH", "PYTHONUNBUFFERED"}  # the fork applies these two itself
        return all(env.get(k) == self._env.get(k) for k in fixed)

    def start(self) -> None:
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> None:
        if self.disabled or (self._proc is not None and self._proc.poll() is None):
            return
        argv = [self._python, "-m", "controller.adapters.local.warm"]
        for module in self._preload:
            argv += ["--preload", module]
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(
                argv,
                cwd=self._cwd,
                env=self._env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
                close_fds=True,
            )
        self._served = False
        assert self._proc.stdout is not None
        reader = threading.Thread(
            target=self._read, args=(self._proc, self._proc.stdout), name="warm-reader", daemon=True
        )
        reader.start()

    def launch(self, launch: Launch, module: str) -> WarmProcess | None:
        """Ask the worker to fork the step; None when the worker cannot be used (run it cold)."""
        with self._lock:
            self._start_locked()
            proc = self._proc
            if self.disabled or proc is None or proc.stdin is None:
                return None
            self._next_id += 1
            handle = WarmProcess()
            self._pending[self._next_id] = handle
            request = {
                "id": self._next_id,
                "module": module,
                "args": launch.argv[3:],
                "env": launch.env,
                "cwd": str(launch.cwd),
                "stdout": str(launch.stdout),
                "stderr": str(launch.stderr),
            }
            try:
                proc.stdin.write((json.dumps(request) + "\n").encode())
                proc.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                del self._pending[self._next_id]
                return None
        if not handle.started.wait(STARTUP_TIMEOUT_S):
            self.restart(proc)  # a hung worker: kill it; the reader then marks the step not started
            handle.started.wait()
        return None if handle.not_started else handle

    def restart(self, proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(OSError):
            proc.kill()

    def _read(self, proc: subprocess.Popen[bytes], out: IO[bytes]) -> None:
        for line in out:
            try:
                msg = json.loads(line)
            except ValueError:
                continue  # not ours: the worker writes the protocol only, but never die on noise
            if not isinstance(msg, dict) or "id" not in msg or "event" not in msg:
                continue
            with self._lock:
                handle = self._pending.get(msg["id"])
                if msg["event"] == "started":
                    self._served, self._failures = True, 0
                elif msg["event"] in ("exited", "failed"):
                    self._pending.pop(msg["id"], None)
            if handle is None:
                continue
            if msg["event"] == "started":
                handle.on_started(int(msg["pid"]))
            elif msg["event"] == "exited":
                handle.returncode = int(msg["returncode"])
                handle.exited.set()
            else:
                handle.message, handle.not_started = str(msg.get("message", "")), True
                handle.started.set()
                handle.exited.set()
        proc.wait()
        with self._lock:  # the worker is gone: release everyone who waits on it
            orphans, self._pending = self._pending, {}
            if not self._served:
                self._failures += 1
                self.disabled = self._failures >= _MAX_WORKER_FAILURES
            if self._proc is proc:
                self._proc = None
        for handle in orphans.values():
            if handle.started.is_set():
                handle.lost = True
                handle.kill(signal.SIGKILL)
            else:
                handle.not_started = True
                handle.started.set()
            handle.exited.set()

    def close(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
            self.disabled = True
        if proc is None:
            return
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()  # end of input: the worker kills what it still runs and exits
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
