"""One workflow run of the local executor: schedule the DAG, retry, enforce deadlines, record.

Place in the flow: step 4 of a pass, inside LocalExecutor. submit() builds a Run from the checked
Plan and starts its thread. The thread starts every task whose dependencies have settled (as
Argo does: `depends` false -> Omitted; `{{...}}` unresolvable -> Error before the step runs;
`when` false -> Skipped), each in its own thread so that independent tasks run in parallel
within the executor's `max_parallel`; retries per retryStrategy; kills everything at the
workflow's activeDeadlineSeconds or on stop(); and rewrites run.json at every change. When all
tasks have settled the workflow's phase is assessed as Argo assesses its DAG (dag.assess).
"""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from controller.adapters.local import expr as ex
from controller.adapters.local import tags as tg
from controller.adapters.local.dag import assess
from controller.adapters.local.manifest import Plan, Retry, Task
from controller.adapters.local.proc import StepProcess, WarmClient
from controller.adapters.local.state import OwnerLock, run_to_dict, write_json
from controller.adapters.local.step import KILL_GRACE_S, Attempt, Prepared, Runtime, prepare, run_attempt
from controller.ports import (
    ERROR,
    FAILED,
    OMITTED,
    PENDING,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    NodeResult,
    WorkflowRun,
)

_SETTLED = frozenset({SUCCEEDED, FAILED, ERROR, SKIPPED, OMITTED})


@dataclass
class _Node:
    name: str
    template: str
    phase: str = PENDING
    message: str = ""
    exit_code: int | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    result: str | None = None
    started: datetime | None = None
    finished: datetime | None = None
    attempts: int = 0

    def freeze(self) -> NodeResult:
        return NodeResult(
            name=self.name,
            template=self.template,
            phase=self.phase,
            message=self.message,
            exit_code=self.exit_code,
            outputs=dict(self.outputs),
            started=self.started,
            finished=self.finished,
            attempts=self.attempts,
        )


@dataclass(frozen=True)
class Launcher:
    """What the executor shares with all its runs: the interpreter, base env, slots, warm worker."""

    python: str
    base_env: dict[str, str]
    slots: threading.Semaphore
    warm: WarmClient | None


def _retry_allowed(retry: Retry | None, att: Attempt, first_start: float) -> tuple[bool, float]:
    """Whether Argo would retry after this attempt, and after how long (its backoff)."""
    if retry is None or att.number > retry.limit:
        return False, 0.0
    wanted = {"Always": (FAILED, ERROR), "OnFailure": (FAILED,), "OnError": (ERROR,)}[retry.policy]
    if att.phase not in wanted:
        return False, 0.0
    if retry.expression is not None:
        scope: dict[str, ex.Value] = {
            "lastRetry.exitCode": str(att.exit_code if att.exit_code is not None else -1),
            "lastRetry.status": att.phase,
            "lastRetry.duration": f"{att.seconds:g}",
            "lastRetry.message": att.message,
            "retries": str(att.number - 1),
        }
        try:
            if not ex.evaluate_bool(retry.expression, scope, "retryStrategy.expression"):
                return False, 0.0
        except ex.ExprError:
            return False, 0.0
    delay = retry.backoff_s * retry.factor ** (att.number - 1)
    if retry.cap_s is not None:
        delay = min(delay, retry.cap_s)
    if retry.max_duration_s is not None and time.monotonic() - first_start + delay > retry.max_duration_s:
        return False, 0.0
    return True, delay


class Run:
    def __init__(
        self,
        plan: Plan,
        rundir: Path,
        lock: OwnerLock,
        launcher: Launcher,
        on_event: Callable[[str], None],
    ) -> None:
        self.plan, self.rundir, self._lock_file = plan, rundir, lock
        self._emit_to = on_event
        self._lock = threading.RLock()
        self._nodes = {t.name: _Node(t.name, t.template.name) for t in plan.tasks}
        self._tasks = {t.name: t for t in plan.tasks}
        self.phase, self.message = PENDING, ""
        self.started: datetime | None = None
        self.finished: datetime | None = None
        self._events: queue.Queue[str] = queue.Queue()
        self._active: dict[str, StepProcess] = {}
        self._abort = threading.Event()
        self._abort_reason = ""
        self._abandoned = False
        self._finishing = False  # every task settled: a stop() now has nothing left to stop
        self.done = threading.Event()
        self._rt = Runtime(
            python=launcher.python,
            base_env=launcher.base_env,
            slots=launcher.slots,
            warm=launcher.warm,
            abort=self._abort,
            abort_message=lambda: self._abort_reason,
            register=self._register,
            on_start=self._on_start,
        )
        self._snapshot = self._freeze()
        self._thread = threading.Thread(target=self._main, name=f"run-{plan.name}", daemon=True)

    # ---------------------------------------------------------------- public, thread-safe

    def start(self) -> None:
        self._persist()
        self._thread.start()

    def snapshot(self) -> WorkflowRun:
        with self._lock:
            return self._snapshot

    def stop(self, reason: str, *, abandon: bool = False) -> None:
        """Kill the run's steps; the run ends Failed with `reason` (or, abandoned, stays as last written)."""
        with self._lock:
            if self._finishing or self._abort.is_set():
                return
            self._abort_reason, self._abandoned = reason, abandon
            self._abort.set()
            active = list(self._active.values())
        for proc in active:
            proc.kill(signal.SIGTERM)
        threading.Thread(target=self._force_kill, args=(active,), daemon=True).start()

    # ---------------------------------------------------------------- internals

    def _force_kill(self, procs: list[StepProcess]) -> None:
        time.sleep(KILL_GRACE_S)
        for proc in procs:
            if proc.wait(0) is None:  # still running after SIGTERM and the grace period
                proc.kill(signal.SIGKILL)

    def _register(self, task: str, proc: StepProcess | None) -> None:
        with self._lock:
            if proc is None:
                self._active.pop(task, None)
            else:
                self._active[task] = proc

    def _emit(self, line: str) -> None:
        with contextlib.suppress(Exception), (self.rundir / "events.log").open("a", encoding="utf-8") as f:
            f.write(f"{datetime.now(UTC).isoformat(timespec='milliseconds')} {line}\n")
        with contextlib.suppress(Exception):
            self._emit_to(line)

    def _freeze(self) -> WorkflowRun:
        return WorkflowRun(
            name=self.plan.name,
            phase=self.phase,
            message=self.message,
            started=self.started,
            finished=self.finished,
            nodes={k: n.freeze() for k, n in self._nodes.items()},
        )

    def _persist(self) -> None:
        with self._lock:
            if self._abandoned:
                return
            self._snapshot = self._freeze()
            write_json(self.rundir / "run.json", run_to_dict(self._snapshot, manifestDigest=self.plan.digest))

    def _settle(self, name: str, phase: str, message: str) -> None:
        with self._lock:
            node = self._nodes[name]
            node.phase, node.message = phase, message
            node.finished = datetime.now(UTC) if node.started else None
        self._persist()
        self._emit(f"{self.plan.name}/{name}: {phase} ({message})" if message else f"{self.plan.name}/{name}: {phase}")

    def _on_start(self, task: str, att: Attempt) -> None:
        with self._lock:
            node = self._nodes[task]
            node.phase, node.attempts = RUNNING, att.number
            node.started = node.started or att.started
        self._persist()
        self._emit(f"{self.plan.name}/{task}: started (attempt {att.number})")

    def _main(self) -> None:
        try:
            self._schedule()
        except BaseException as exc:  # an executor bug must not leave the run hanging
            self.stop(f"local executor error: {exc!r}")
            with self._lock:
                self.phase, self.message = ERROR, f"local executor error: {exc!r}"
                self.finished = datetime.now(UTC)
            self._persist()
        finally:
            self._lock_file.release()
            self.done.set()

    def _schedule(self) -> None:
        with self._lock:
            self.phase, self.started = RUNNING, datetime.now(UTC)
        self._persist()
        t0 = time.monotonic()
        deadline = t0 + self.plan.deadline_s if self.plan.deadline_s else None
        pending = [t.name for t in self.plan.tasks]
        running: set[str] = set()
        while True:
            progressed = True
            while progressed and not self._abort.is_set():
                progressed = False
                for name in list(pending):
                    if all(self._nodes[d].phase in _SETTLED for d in self._tasks[name].deps):
                        pending.remove(name)
                        progressed = True
                        if self._begin(self._tasks[name]):
                            running.add(name)
            if not running:
                break
            timeout = None if deadline is None or self._abort.is_set() else max(0.0, deadline - time.monotonic())
            try:
                running.discard(self._events.get(timeout=timeout))
            except queue.Empty:
                self.stop(f"workflow exceeded activeDeadlineSeconds ({self.plan.deadline_s:g}s)")
        with self._lock:
            self._finishing = True
        if self._abandoned:
            return
        for name in pending:
            self._settle(name, OMITTED, f"not run: {self._abort_reason}")
        phases = {n: node.phase for n, node in self._nodes.items()}
        phase, source = assess(self.plan, phases)
        with self._lock:
            if self._abort.is_set():
                self.phase, self.message = FAILED, self._abort_reason
            else:
                self.phase = phase
                self.message = (self._nodes[source].message or f"task {source!r} {phase}") if source else ""
            self.finished = datetime.now(UTC)
        self._persist()
        took = (self.finished - self.started).total_seconds() if self.started else 0.0
        self._emit(f"{self.plan.name}: {self.phase} in {took:.2f}s" + (f": {self.message}" if self.message else ""))

    def _scope(self, task: Task) -> dict[str, str]:
        values = {"workflow.name": self.plan.name}
        values |= {f"workflow.parameters.{k}": v for k, v in self.plan.parameters.items()}
        values |= {f"inputs.parameters.{k}": v for k, v in self.plan.dag_inputs.items()}
        for anc in task.ancestors:
            node = self._nodes[anc]
            values |= {f"tasks.{anc}.outputs.parameters.{k}": v for k, v in node.outputs.items()}
            if node.result is not None:
                values[f"tasks.{anc}.outputs.result"] = node.result
        return values

    def _begin(self, task: Task) -> bool:
        """Decide a task whose dependencies settled: start its thread (True), or settle it now."""
        if task.depends is not None:
            env = ex.depends_env({d: self._nodes[d].phase for d in task.deps})
            try:
                if not ex.evaluate_bool(task.depends, env, "depends"):
                    self._settle(task.name, OMITTED, "omitted: depends condition not met")
                    return False
            except ex.ExprError as exc:
                self._settle(task.name, ERROR, f"unable to evaluate depends: {exc}")
                return False
        scope = self._scope(task)
        try:
            args = {k: tg.render(v, scope) for k, v in task.arguments}
            when = tg.render(task.when, scope) if task.when is not None else None
        except tg.MissingTag as missing:
            tag = missing.tag
            why = ""
            if tag.startswith("tasks."):
                other = self._nodes[tag.split(".")[1]]
                why = f": task {other.name!r} was {other.phase} and has no such output"
            self._settle(task.name, ERROR, f"unable to resolve {{{{{tag}}}}} in task {task.name!r}{why}")
            return False
        if when is not None:
            try:
                if not ex.evaluate_when(when):
                    self._settle(task.name, SKIPPED, f"when '{when}' evaluated false")
                    return False
            except ex.ExprError as exc:
                self._settle(task.name, ERROR, f"invalid 'when' expression '{when}': {exc}")
                return False
        workflow = {k: v for k, v in scope.items() if k.startswith("workflow.")}
        inputs: dict[str, str] = {}
        for p in task.template.inputs:
            value = args.get(p.name, p.value if p.value is not None else p.default)
            value = tg.render(value or "", workflow)
            if p.enum is not None and value not in p.enum:
                self._settle(task.name, ERROR, f"inputs.parameters.{p.name}: {value!r} is not one of {list(p.enum)}")
                return False
            inputs[p.name] = value
        try:
            prep = prepare(task.template, inputs, workflow, self._rt)
        except tg.MissingTag as missing:
            self._settle(task.name, ERROR, f"unable to resolve {{{{{missing.tag}}}}} in task {task.name!r}")
            return False
        threading.Thread(target=self._run_task, args=(task, prep), name=f"task-{task.name}", daemon=True).start()
        return True

    def _run_task(self, task: Task, prep: Prepared) -> None:
        try:
            self._attempts(task, prep)
        except BaseException as exc:
            self._settle(task.name, ERROR, f"local executor error: {exc!r}")
        finally:
            self._events.put(task.name)

    def _attempts(self, task: Task, prep: Prepared) -> None:
        first_start = time.monotonic()
        number = 0
        while True:
            number += 1
            att = run_attempt(task.name, prep, number, self.rundir / "steps" / f"{task.name}-{number}", self._rt)
            if not att.ran:
                self._settle(task.name, OMITTED, f"not run: {self._abort_reason}")
                return
            with self._lock:
                node = self._nodes[task.name]
                node.attempts, node.exit_code = number, att.exit_code
                node.outputs, node.result = att.outputs, att.result
                node.started = node.started or att.started
            line = f"{self.plan.name}/{task.name}: {att.phase} in {att.seconds:.2f}s"
            if att.phase != SUCCEEDED:
                code = f" (exit {att.exit_code})" if att.exit_code is not None else ""
                line += f"{code}: {att.message}"
            retry, delay = _retry_allowed(task.template.retry, att, first_start)
            retry = retry and not self._abort.is_set()
            if retry:
                self._emit(f"{line}; retrying (attempt {number + 1})")
                if self._abort.wait(delay):
                    retry = False
            if not retry:
                with self._lock:
                    node.phase, node.message, node.finished = att.phase, att.message, att.finished
                self._persist()
                self._emit(line)
                return
