"""One attempt of one DAG task in the local executor: prepare it, run its process, read what it left.

Place in the flow: step 4 of a pass, inside LocalExecutor. run.py resolves a task's inputs
and calls prepare() once per task, then run_attempt() for each attempt, under a slot of the
executor's `max_parallel`. An attempt lives in `<run>/steps/<task>-<attempt>/`: `inputs.json` (the
template's `{{inputs.parameters}}`), `script` (a script template's substituted source, whose path
is appended to the args as Argo does), `work/` (its working directory), `outputs/` (its
`$hera__outputs_directory`), `stdout`, `stderr` and `step.json` (argv, pid, return code).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from controller.adapters.local import tags as tg
from controller.adapters.local.manifest import HERA_OUTPUTS_ENV, StepTemplate
from controller.adapters.local.proc import (
    ColdProcess,
    Launch,
    LaunchError,
    StepProcess,
    WarmClient,
    WarmProcess,
    kill_group,
    warm_module,
)
from controller.adapters.local.state import write_json
from controller.ports import ERROR, FAILED, SUCCEEDED

RESULT_LIMIT = 256 * 1024  # Argo keeps at most this much of stdout as outputs.result
KILL_GRACE_S = 2.0  # SIGTERM, then SIGKILL after this long


@dataclass(frozen=True)
class Prepared:
    """A task's template with its inputs resolved and every `{{...}}` substituted."""

    template: StepTemplate
    argv: list[str]
    env: dict[str, str]
    source: str | None
    inputs_json: str


@dataclass
class Attempt:
    number: int
    phase: str = ERROR
    message: str = ""
    exit_code: int | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    result: str | None = None
    started: datetime | None = None
    finished: datetime | None = None
    seconds: float = 0.0
    ran: bool = False  # a process was started (False: aborted while waiting for a slot)


@dataclass
class Runtime:
    """What every attempt of a run needs from the executor."""

    python: str
    base_env: dict[str, str]
    slots: threading.Semaphore
    warm: WarmClient | None
    abort: threading.Event
    abort_message: Callable[[], str]
    register: Callable[[str, StepProcess | None], None]
    on_start: Callable[[str, Attempt], None]


def go_json(value: object) -> str:
    """JSON as Go's encoding/json writes it (compact, HTML-escaped), as Argo substitutes it."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for a, b in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(a, b)
    return text


def prepare(tmpl: StepTemplate, inputs: Mapping[str, str], workflow: Mapping[str, str], rt: Runtime) -> Prepared:
    """Substitute a template for its resolved inputs; MissingTag if something cannot be resolved."""
    listed = []
    for p in tmpl.inputs:
        entry: dict[str, object] = {"name": p.name}
        if p.default is not None:
            entry["default"] = p.default
        entry["value"] = inputs[p.name]
        if p.enum is not None:
            entry["enum"] = list(p.enum)
        if p.description is not None:
            entry["description"] = p.description
        listed.append(entry)
    inputs_json = go_json(listed)
    values = dict(workflow) | {f"inputs.parameters.{k}": v for k, v in inputs.items()}
    values["inputs.parameters"] = inputs_json
    command = [tg.render(a, values) for a in tmpl.command]
    if command[0] in ("python", "python3"):
        command[0] = rt.python
    env = dict(rt.base_env)
    for name, value in tmpl.env:
        rendered = tg.render(value, values)
        if name == "PYTHONPATH":
            rendered = f"{rendered}:{rt.base_env['PYTHONPATH']}"
        env[name] = rendered
    source = tg.render(tmpl.source, values) if tmpl.source is not None else None
    return Prepared(tmpl, command + [tg.render(a, values) for a in tmpl.args], env, source, inputs_json)


def _tail(path: Path, limit: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _strip_newline(text: str) -> str:
    return text[:-1] if text.endswith("\n") else text


def _last_line(path: Path) -> str:
    lines = [ln.strip() for ln in _tail(path, 64 * 1024).splitlines() if ln.strip()]
    return lines[-1][:2000] if lines else ""


def _wait(proc: StepProcess, deadline_s: float | None) -> tuple[int, bool]:
    """Wait for the step; kill its process group at the deadline. (return code, killed by deadline)."""
    rc = proc.wait(deadline_s)
    if rc is not None:
        return rc, False
    proc.kill(signal.SIGTERM)
    rc = proc.wait(KILL_GRACE_S)
    if rc is None:
        proc.kill(signal.SIGKILL)
        rc = proc.wait(None)
    return (rc if rc is not None else -signal.SIGKILL), True


def _start(prep: Prepared, launch: Launch, rt: Runtime) -> tuple[StepProcess, bool]:
    module = warm_module(launch.argv, rt.python)
    if module is not None and rt.warm is not None and rt.warm.compatible(launch.env):
        handle = rt.warm.launch(launch, module)
        if handle is not None:
            return handle, True
    return ColdProcess(launch), False


def run_attempt(task: str, prep: Prepared, number: int, stepdir: Path, rt: Runtime) -> Attempt:
    att = Attempt(number)
    work, outdir = stepdir / "work", stepdir / "outputs"
    work.mkdir(parents=True, exist_ok=True)
    outdir.mkdir(exist_ok=True)
    (stepdir / "inputs.json").write_text(prep.inputs_json + "\n", encoding="utf-8")
    argv = list(prep.argv)
    if prep.source is not None:
        (stepdir / "script").write_text(prep.source, encoding="utf-8")
        argv.append(str(stepdir / "script"))
    env = prep.env | {HERA_OUTPUTS_ENV: str(outdir)}
    launch = Launch(argv, env, work, stepdir / "stdout", stepdir / "stderr")
    while not rt.slots.acquire(timeout=0.2):
        if rt.abort.is_set():
            return att
    warm, killed, pid, rc = False, False, 0, None
    try:
        if rt.abort.is_set():
            return att
        t0 = time.monotonic()
        att.started = datetime.now(UTC)
        try:
            proc, warm = _start(prep, launch, rt)
        except LaunchError as exc:
            att.phase, att.message, att.finished, att.ran = FAILED, str(exc.strerror), datetime.now(UTC), True
            return att
        att.ran = True
        rt.register(task, proc)
        rt.on_start(task, att)
        if rt.abort.is_set():
            proc.kill(signal.SIGKILL)
        rc, killed = _wait(proc, prep.template.deadline_s)
        pid = proc.pid
        kill_group(pid, signal.SIGKILL)  # whatever the step left running in its group
        lost = isinstance(proc, WarmProcess) and proc.lost
    finally:
        rt.register(task, None)
        rt.slots.release()
    att.seconds, att.finished = time.monotonic() - t0, datetime.now(UTC)
    att.exit_code = rc if rc >= 0 else 128 - rc
    att.result = _strip_newline(_tail(stepdir / "stdout", RESULT_LIMIT))
    missing = []
    for out in prep.template.outputs:
        try:
            att.outputs[out.name] = _strip_newline((outdir / out.rel_path).read_text("utf-8", errors="replace"))
        except OSError:
            if out.default is not None:
                att.outputs[out.name] = out.default
            else:
                missing.append(out.name)
    if lost:
        att.phase, att.exit_code = ERROR, None
        att.message = "the warm worker died while the step ran; the step was killed"
    elif killed:
        att.phase = FAILED
        att.message = f"step exceeded activeDeadlineSeconds ({prep.template.deadline_s:g}s) and was killed"
    elif rc != 0 and rt.abort.is_set():
        att.phase, att.message = FAILED, rt.abort_message()
    elif rc != 0:
        att.phase = FAILED
        att.message = _last_line(stepdir / "stderr") or f"Error (exit code {att.exit_code})"
    elif missing:
        att.phase = ERROR
        att.message = f"output parameter {missing[0]!r}: no file at valueFrom.path and no valueFrom.default"
    else:
        att.phase = SUCCEEDED
    record = {"argv": argv, "cwd": str(work), "warm": warm, "pid": pid, "returncode": rc}
    write_json(stepdir / "step.json", record | {"phase": att.phase, "message": att.message})
    return att
