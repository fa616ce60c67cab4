"""What the local executor keeps on disk about a run: run.json, atomic writes, the owner lock.

Place in the flow: step 4 of a pass, inside LocalExecutor. Every change of a run's state is written
to `<home>/runs/<name>/run.json` (the WorkflowRun as JSON, replaced atomically), so that `poll`
works from disk for a run this process does not own and a crash leaves an honest record. The
process that runs a workflow holds an exclusive flock on `<home>/runs/<name>/owner.lock`; the
kernel drops it when that process dies, which is how a later submit knows the run was abandoned.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Collection
from datetime import datetime
from pathlib import Path
from typing import Any

from controller.ports import ERROR, FINISHED, NodeResult, WorkflowRun


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def node_to_dict(node: NodeResult) -> dict[str, Any]:
    return {
        "name": node.name,
        "template": node.template,
        "phase": node.phase,
        "message": node.message,
        "exit_code": node.exit_code,
        "outputs": dict(node.outputs),
        "started": _time(node.started),
        "finished": _time(node.finished),
        "attempts": node.attempts,
    }


def run_to_dict(run: WorkflowRun, **extra: Any) -> dict[str, Any]:
    return {
        "name": run.name,
        "phase": run.phase,
        "message": run.message,
        "started": _time(run.started),
        "finished": _time(run.finished),
        "nodes": {k: node_to_dict(v) for k, v in run.nodes.items()},
        **extra,
    }


def run_from_dict(data: dict[str, Any]) -> WorkflowRun:
    nodes = {
        k: NodeResult(
            name=v["name"],
            template=v["template"],
            phase=v["phase"],
            message=v.get("message", ""),
            exit_code=v.get("exit_code"),
            outputs=dict(v.get("outputs", {})),
            started=_parse_time(v.get("started")),
            finished=_parse_time(v.get("finished")),
            attempts=int(v.get("attempts", 1)),
        )
        for k, v in data.get("nodes", {}).items()
    }
    return WorkflowRun(
        name=data["name"],
        phase=data["phase"],
        message=data.get("message", ""),
        started=_parse_time(data.get("started")),
        finished=_parse_time(data.get("finished")),
        nodes=nodes,
    )


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=False, ensure_ascii=False)
        f.write("\n")
    tmp.replace(path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


class OwnerLock:
    """An exclusive, non-blocking flock on a run's owner.lock, held while this process runs it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def lock_is_free(path: Path) -> bool:
    """True when no live process holds the run's owner lock (it finished, or its owner died)."""
    probe = OwnerLock(path)
    if not probe.acquire():
        return False
    probe.release()
    return True


def finished_runs(
    get: Callable[[str], WorkflowRun | None], names: Collection[str], engine: str
) -> dict[str, WorkflowRun]:
    """Those of `names` that finished; a name `get` does not know is an Error run saying so."""
    done: dict[str, WorkflowRun] = {}
    for name in names:
        run = get(name)
        if run is None:
            done[name] = WorkflowRun(name, ERROR, f"the {engine} has no run named {name!r}")
        elif run.phase in FINISHED:
            done[name] = run
    return done


def wait_for_any(
    finished: Callable[[Collection[str]], dict[str, WorkflowRun]],
    names: Collection[str],
    timeout_s: float,
    step_s: float = 0.05,
) -> bool:
    """Poll `finished` every `step_s` until one of `names` has finished or the timeout passed."""
    end = time.monotonic() + timeout_s
    while True:
        if finished(names):
            return True
        left = end - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(step_s, left))
