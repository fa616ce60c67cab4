"""The warm worker: a long-lived, single-threaded Python that forks one child per step.

Place in the flow: step 4 of a pass, under LocalExecutor. A step whose command is exactly
`python -m <module> ...` would pay ~0.8 s importing Hera in a fresh interpreter; this worker
(started once per LocalExecutor as `python -m controller.adapters.local.warm --preload mod ...`)
imports `hera.workflows.runner` and the preload modules once, then for each request forks a
child that becomes the step: a new session and process group, the step's argv, environment
(`os.environ` too), working directory and sys.path, stdin from /dev/null, stdout and stderr
dup2'ed to the step's files, and `runpy.run_module(module, run_name="__main__", alter_sys=True)`.
The child exits with the SystemExit code (an exception prints its traceback and exits 1).

Protocol, one JSON object per line. Requests on stdin:
    {"id": 7, "module": "hera.workflows.runner", "args": ["-e", "m:f", "/x/script"],
     "env": {...}, "cwd": "/x/work", "stdout": "/x/stdout", "stderr": "/x/stderr"}
Replies on stdout: {"id": 7, "event": "started", "pid": 1234}, then
{"id": 7, "event": "exited", "returncode": 0} (negative: killed by that signal), or
{"id": 7, "event": "failed", "message": "..."} when the fork itself failed.
On end of input the worker kills the process groups of the children it still has and exits.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import io
import json
import os
import runpy
import select
import signal
import sys
import threading
import traceback
from typing import Any

_BASE_SYS_PATH = list(sys.path)
_BASE_PYTHONPATH = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]


def _write(fd: int, obj: dict[str, Any]) -> None:
    data = (json.dumps(obj) + "\n").encode()
    while data:
        data = data[os.write(fd, data) :]


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    with contextlib.suppress(Exception):
        print(code, file=sys.stderr)
    return 1


def _stream(fd: int, encoding: str, errors: str, unbuffered: bool, line_buffering: bool) -> io.TextIOWrapper:
    raw = io.FileIO(fd, "w", closefd=False)
    if unbuffered:  # what `python -u` / PYTHONUNBUFFERED gives a fresh interpreter
        return io.TextIOWrapper(raw, encoding=encoding, errors=errors, write_through=True)
    return io.TextIOWrapper(io.BufferedWriter(raw), encoding=encoding, errors=errors, line_buffering=line_buffering)


def _become_step(req: dict[str, Any], close: list[int], encoding: str) -> int:
    """In the forked child: turn into the step and run it; the exit code."""
    os.setsid()
    for fd in close:
        with contextlib.suppress(OSError):
            os.close(fd)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    fd_in = os.open(os.devnull, os.O_RDONLY)
    fd_out = os.open(req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    fd_err = os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    for src, dst in ((fd_in, 0), (fd_out, 1), (fd_err, 2)):
        os.dup2(src, dst)
        os.close(src)
    env: dict[str, str] = req["env"]
    unbuffered = bool(env.get("PYTHONUNBUFFERED"))
    sys.stdout = _stream(1, encoding, "strict", unbuffered, False)
    sys.stderr = _stream(2, encoding, "backslashreplace", unbuffered, True)
    setattr(sys, "__stdout__", sys.stdout)  # noqa: B010 - typeshed marks these Final; a fresh process has them
    setattr(sys, "__stderr__", sys.stderr)  # noqa: B010
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(env)  # putenv too: C code and subprocesses of the step see it
    step_pp = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    rest = [p for p in _BASE_SYS_PATH[1:] if p not in _BASE_PYTHONPATH]
    sys.path[:] = [os.getcwd(), *step_pp, *rest]
    sys.argv[:] = ["-m", *req["args"]]
    if (np_random := sys.modules.get("numpy.random")) is not None:
        with contextlib.suppress(Exception):
            np_random.seed()  # a fresh interpreter would not share the worker's global RNG state
    try:
        runpy.run_module(req["module"], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    with contextlib.suppress(BaseException):
        shutdown = getattr(threading, "_shutdown", None)
        if shutdown is not None:
            shutdown()  # wait for non-daemon threads, as interpreter exit does
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    return code


class _Worker:
    def __init__(self, req_fd: int, resp_fd: int) -> None:
        self.req_fd, self.resp_fd = req_fd, resp_fd
        self.children: dict[int, tuple[int, int]] = {}  # pidfd (or pid) -> (request id, pid)
        self.use_pidfd = hasattr(os, "pidfd_open")
        self.encoding = sys.stdout.encoding or "utf-8"

    def spawn(self, req: dict[str, Any]) -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            _write(self.resp_fd, {"id": req["id"], "event": "failed", "message": f"fork: {exc}"})
            return
        if pid == 0:
            code = 1
            try:
                pidfds = [k for k, (_, child) in self.children.items() if k != child]
                code = _become_step(req, [self.req_fd, self.resp_fd, *pidfds], self.encoding)
            except BaseException:
                with contextlib.suppress(BaseException):
                    traceback.print_exc()
            finally:
                os._exit(code)
        key = pid
        if self.use_pidfd:
            try:
                key = os.pidfd_open(pid)
            except OSError:
                self.use_pidfd = False
        self.children[key] = (req["id"], pid)
        _write(self.resp_fd, {"id": req["id"], "event": "started", "pid": pid})

    def reap(self, key: int, block: bool) -> None:
        rid, pid = self.children[key]
        done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
        if done == 0:
            return
        del self.children[key]
        if key != pid:
            os.close(key)
        _write(self.resp_fd, {"id": rid, "event": "exited", "returncode": os.waitstatus_to_exitcode(status)})

    def serve(self) -> None:
        buf = b""
        while True:
            watched = [self.req_fd, *(self.children if self.use_pidfd else [])]
            timeout = None if self.use_pidfd or not self.children else 0.02
            ready, _, _ = select.select(watched, [], [], timeout)
            for key in [k for k in ready if k != self.req_fd] if self.use_pidfd else list(self.children):
                self.reap(key, block=self.use_pidfd)
            if self.req_fd not in ready:
                continue
            chunk = os.read(self.req_fd, 1 << 16)
            if not chunk:
                return self.shutdown()
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    self.spawn(json.loads(line))

    def shutdown(self) -> None:
        for _, pid in list(self.children.values()):
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
        for key in list(self.children):
            with contextlib.suppress(ChildProcessError):
                self.reap(key, block=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controller.adapters.local.warm")
    parser.add_argument("--preload", action="append", default=[], help="a module to import once, before forking")
    opts = parser.parse_args(argv)
    req_fd, resp_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # anything the worker itself prints goes to its log, never into the protocol
    os.close(devnull)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the controller; it stops steps itself
    for module in ("hera.workflows.runner", *opts.preload):
        try:
            importlib.import_module(module)
        except BaseException:
            print(f"warm worker: could not preload {module}:", file=sys.stderr)
            traceback.print_exc()
    sys.stdout.flush()
    sys.stderr.flush()
    _Worker(req_fd, resp_fd).serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
