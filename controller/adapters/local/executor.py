"""LocalExecutor: runs a compiled Argo Workflow manifest on this machine, as an Argo cluster would.

Place in the flow: step 4 of a pass (git -> pins -> plan -> **executor** -> status commit). The
reconciler compiles an Action with workflows/builders.py and submits the manifest here; this is
the embedded default, and it runs the SAME manifest an Argo cluster would (Hera has no local
runtime). It implements controller/ports.py's Executor: submit / poll / wait / stop.

What it runs (anything else is refused by submit() with UnsupportedManifest naming the JSON path,
before anything runs; never a silent skip):
- `metadata.name` (generateName is refused: names must be deterministic), `spec.entrypoint` (a
  dag template), `spec.arguments.parameters`, `spec.activeDeadlineSeconds`;
- templates of kind `dag` (the entrypoint only) and `script` / `container` with `command`, `args`,
  `env` (name/value), `source`, `inputs.parameters` (name, value, default, enum),
  `outputs.parameters` with `valueFrom.path` under `$hera__outputs_directory` (+ `valueFrom.default`),
  `retryStrategy` (`limit` required; `retryPolicy` Always | OnFailure (Argo's default) | OnError;
  `expression` over lastRetry.*; `backoff` duration/factor/cap/maxDuration), `activeDeadlineSeconds`;
- DAG tasks with `name`, `template`, `arguments.parameters` (value), `depends` (Argo's enhanced
  depends logic without .Daemoned/.AnySucceeded/.AllFailed), `dependencies`, `when`;
- `{{workflow.name}}`, `{{workflow.parameters.x}}`, `{{inputs.parameters.x}}`, `{{inputs.parameters}}`,
  `{{tasks.t.outputs.parameters.y}}`, `{{tasks.t.outputs.result}}` (t must be an ancestor).

Accepted and ignored (they only matter on a cluster): metadata labels, annotations, namespace;
spec podGC, ttlStrategy, serviceAccountName, securityContext, nodeSelector, tolerations, affinity,
imagePullSecrets, podMetadata, workflowMetadata, priority, podPriorityClassName, schedulerName,
dnsPolicy, dnsConfig, hostNetwork, hostAliases, archiveLogs, podDisruptionBudget, executor,
automountServiceAccountToken, podSpecPatch, priorityClassName, podResources, resourceClaims;
the same pod fields on templates, plus template metadata, annotations, archiveLocation,
pendingTimeout; container/script image, imagePullPolicy, resources, securityContext, name, ports,
probes, terminationMessage*, resizePolicy, restartPolicy(Rules), tty, stdin(Once); retryStrategy
affinity. The exact sets are IGNORED_FIELDS below.

How a step runs: `command + args` (+ the path of the substituted `source` file for a script) with
`python`/`python3` meaning this interpreter, the template's env over a minimal base (PATH, HOME,
LANG, PYTHONPATH of the project, TMPDIR), `$hera__outputs_directory` set to the attempt's own
outputs directory, in its own working directory, session and process group. `python -m <module>`
steps are forked from a warm worker that has imported Hera once (warm.py); other commands, and
any step when the worker is unavailable, are plain subprocesses. Node phases: exit 0 Succeeded;
non-zero Failed (message: the last non-empty stderr line, exit_code: the status, 128+N when killed
by signal N); killed at its deadline or could not start: Failed; executor-side trouble (the warm
worker died under the step, a missing output file, an unresolvable `{{...}}`): Error.

Where it keeps things: `<home>/runs/<name>/` holds manifest.json, run.json (the WorkflowRun,
rewritten atomically at every change), events.log, owner.lock (flocked by the owning process) and
`steps/<task>-<attempt>/` (inputs.json, script, work/, outputs/, stdout, stderr, step.json).
Submitting a name whose run finished, or is running in a live process, attaches to it; a run left
Running by a dead process is restarted from scratch; a different manifest under a used name is a
ManifestConflict. close() abandons unfinished runs (their steps are killed, run.json stays
Running), so the next submit of the same manifest restarts them.

Not modelled: DAG failFast (every task whose dependencies settle is decided; the phase is assessed
as Argo's failFast default would), the Argo node message "retryStrategy.expression evaluated to
false" (the last attempt's message is kept), outputs.result on NodeResult (no field: it is used
for `{{tasks.t.outputs.result}}` and kept in the step's stdout file).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import threading
import time
import weakref
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from controller.adapters.local.dag import check_manifest
from controller.adapters.local.manifest import IGNORED, UnsupportedManifest, manifest_digest
from controller.adapters.local.proc import WarmClient
from controller.adapters.local.run import Launcher, Run
from controller.adapters.local.state import (
    OwnerLock,
    finished_runs,
    lock_is_free,
    read_json,
    run_from_dict,
    wait_for_any,
    write_json,
)
from controller.errors import PermanentError, TransientError
from controller.ports import FINISHED, WorkflowRun

__all__ = ["IGNORED_FIELDS", "LocalExecutor", "ManifestConflict", "UnknownRun", "UnsupportedManifest"]

IGNORED_FIELDS: dict[str, frozenset[str]] = IGNORED
PROJECT_ROOT = Path(__file__).resolve().parents[3]
_STOP_WAIT_S = 30.0
_LIVE: weakref.WeakSet[LocalExecutor] = weakref.WeakSet()


class ManifestConflict(PermanentError, ValueError):
    """A different manifest was submitted under the name of an existing run."""


class UnknownRun(PermanentError, LookupError):
    """No run of that name under this executor's home."""


def _noop(_: str) -> None:
    return None


class LocalExecutor:
    """Runs compiled Argo Workflow manifests on this machine; see the module docstring."""

    name = "local"

    def __init__(
        self,
        home: Path,
        *,
        max_parallel: int = 2,
        warm: bool = True,
        preload: Sequence[str] = (),
        python: str = sys.executable,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        if max_parallel < 1:
            raise ValueError("max_parallel must be at least 1")
        self.home = Path(home).resolve()
        (self.home / "runs").mkdir(parents=True, exist_ok=True)
        self._python = python
        self._on_event = on_event or _noop
        self._lock = threading.Lock()
        self._runs: dict[str, Run] = {}
        self._metadata: dict[str, dict[str, Any]] = {}  # run name -> its manifest's metadata
        self._closed = False
        self._slots = threading.BoundedSemaphore(max_parallel)
        self._base_env = self._make_base_env(python)
        self._warm = (
            WarmClient(python, tuple(preload), self._base_env, self.home, self.home / "warm-worker.log")
            if warm
            else None
        )
        self._launcher = Launcher(python, self._base_env, self._slots, self._warm)
        _LIVE.add(self)

    @staticmethod
    def _make_base_env(python: str) -> dict[str, str]:
        path = os.pathsep.join([str(Path(python).parent), os.environ.get("PATH", os.defpath)])
        pythonpath = [str(PROJECT_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env = {
            "PATH": path,
            "HOME": os.environ.get("HOME", str(Path.home())),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "PYTHONPATH": os.pathsep.join(dict.fromkeys(pythonpath)),
        }
        if "TMPDIR" in os.environ:
            env["TMPDIR"] = os.environ["TMPDIR"]
        return env

    @property
    def warm_pid(self) -> int | None:
        """The warm worker's pid while it runs (steps forked from it have it as parent)."""
        return self._warm.pid if self._warm is not None else None

    # ---------------------------------------------------------------- the Executor protocol

    def submit(self, manifest: dict[str, Any]) -> str:
        """Check the whole manifest, then start it (or attach to the run of the same name)."""
        plan = check_manifest(manifest)
        name = plan.name
        rundir = self.home / "runs" / name
        with self._lock:
            if self._closed:
                raise RuntimeError("this LocalExecutor is closed")
            if name in self._runs:
                self._check_digest(name, self._runs[name].plan.digest, plan.digest)
                return name
            recorded = read_json(rundir / "run.json")
            if recorded is not None:
                previous = recorded.get("manifestDigest") or self._recorded_digest(rundir)
                self._check_digest(name, previous, plan.digest)
                if recorded.get("phase") in FINISHED:
                    return name  # attach to the finished run: nothing runs again
            lock = OwnerLock(rundir / "owner.lock")
            rundir.mkdir(parents=True, exist_ok=True)
            if not lock.acquire():
                return name  # a live owner (another executor or process) runs it: attach
            shutil.rmtree(rundir / "steps", ignore_errors=True)  # restart from scratch
            (rundir / "events.log").unlink(missing_ok=True)
            write_json(rundir / "manifest.json", manifest)
            run = Run(plan, rundir, lock, self._launcher, self._on_event)
            self._runs[name] = run
        if self._warm is not None:
            self._warm.start()  # its imports overlap with the first step's preparation
        run.start()
        return name

    def poll(self, name: str) -> WorkflowRun:
        """The run's state now, from memory for our runs and from run.json for others."""
        with self._lock:
            run = self._runs.get(name)
        if run is not None:
            return run.snapshot()
        recorded = read_json(self.home / "runs" / name / "run.json")
        if recorded is None:
            raise UnknownRun(f"no run named {name!r} under {self.home}")
        return run_from_dict(recorded)

    def wait(self, name: str, timeout_s: float | None = None) -> WorkflowRun:
        """Block until the run has finished or the timeout passed; the run as it stands then."""
        with self._lock:
            run = self._runs.get(name)
        if run is not None:
            run.done.wait(timeout_s)
            return run.snapshot()
        end = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            current = self.poll(name)
            if current.phase in FINISHED or lock_is_free(self.home / "runs" / name / "owner.lock"):
                return current  # finished, or nobody is running it any more
            if end is not None and time.monotonic() >= end:
                return current
            time.sleep(0.2)

    def get(self, name: str) -> WorkflowRun | None:
        """The run's state now, with its manifest's labels; None when there is no run of that name."""
        try:
            run = self.poll(name)
        except UnknownRun:
            return None
        meta = self._metadata.get(name)
        if meta is None:
            manifest = read_json(self.home / "runs" / name / "manifest.json") or {}
            meta = self._metadata[name] = dict(manifest.get("metadata") or {})
        return replace(run, labels=dict(meta.get("labels") or {}), annotations=dict(meta.get("annotations") or {}))

    def list(self, labels: Mapping[str, str]) -> list[WorkflowRun]:
        """Every run whose manifest's labels include `labels`."""
        found = []
        for manifest_path in sorted((self.home / "runs").glob("*/manifest.json")):
            manifest = read_json(manifest_path) or {}
            have = (manifest.get("metadata") or {}).get("labels") or {}
            if all(have.get(k) == v for k, v in labels.items()):
                run = self.get(manifest_path.parent.name)
                if run is not None:
                    found.append(run)
        return found

    def finished(self, names: Collection[str]) -> dict[str, WorkflowRun]:
        return finished_runs(self.get, names, "local executor")

    def wait_for_finished(self, names: Collection[str], timeout_s: float) -> bool:
        return wait_for_any(self.finished, names, timeout_s)

    def stop(self, name: str, message: str = "") -> None:
        """Kill the run's steps; it ends Failed with "Stopped with strategy 'Stop'"."""
        with self._lock:
            run = self._runs.get(name)
        if run is None:
            current = self.poll(name)
            if current.phase not in FINISHED and not lock_is_free(self.home / "runs" / name / "owner.lock"):
                raise TransientError(f"run {name!r} is owned by another process; stop it there")
            return
        run.stop("Stopped with strategy 'Stop'" + (f": {message}" if message else ""))
        run.done.wait(_STOP_WAIT_S)

    # ---------------------------------------------------------------- lifetime

    def close(self) -> None:
        """Abandon unfinished runs (steps killed, run.json left Running) and stop the warm worker."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            runs = list(self._runs.values())
        for run in runs:
            run.stop("the local executor was closed", abandon=True)
        for run in runs:
            run.done.wait(_STOP_WAIT_S)
        if self._warm is not None:
            self._warm.close()

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @staticmethod
    def _recorded_digest(rundir: Path) -> str:
        recorded = read_json(rundir / "manifest.json")
        return manifest_digest(recorded) if recorded is not None else ""

    def _check_digest(self, name: str, previous: str, current: str) -> None:
        if previous != current:
            raise ManifestConflict(
                f"metadata.name: a different manifest already ran as {name!r} "
                f"(recorded {previous or 'unknown'}, submitted {current}); workflow names must be unique"
            )


@atexit.register
def _close_all() -> None:
    for executor in list(_LIVE):
        executor.close()
