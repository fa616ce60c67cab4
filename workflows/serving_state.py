"""The local serving target's state files: `<serving>/<environment>/<model>.json`, one per model.

Place in the flow: the deploy and undeploy steps (workflows/steps/deploy.py) write them under a
per-model lock (live, candidate with a traffic weight, shadow, previous); the Router in
workflows/serving.py reads them for every request and follows their changes. Names are checked
as DNS labels before they become a path; writes are atomic (temp file and rename).
"""

import contextlib
import fcntl
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from workflows.steps.common import check_label, write_json_atomic

__all__ = ["locked", "read_state", "state_path", "write_state"]


def state_path(serving_dir: Path | str, environment: str, model: str) -> Path:
    check_label(environment, "environment")
    check_label(model, "model")
    return Path(serving_dir) / environment / f"{model}.json"


def read_state(serving_dir: Path | str, environment: str, model: str) -> dict[str, Any] | None:
    path = state_path(serving_dir, environment, model)
    if not path.is_file():
        return None
    value = json.loads(path.read_text())
    if not isinstance(value, dict):
        raise ValueError(f"{path}: serving state is not a JSON object")
    return value


def write_state(serving_dir: Path | str, environment: str, model: str, state: dict[str, Any] | None) -> None:
    """Replace the state atomically; None removes the model from the environment."""
    path = state_path(serving_dir, environment, model)
    if state is None:
        path.unlink(missing_ok=True)
    else:
        write_json_atomic(path, state)


@contextlib.contextmanager
def locked(serving_dir: Path | str, environment: str, model: str) -> Iterator[None]:
    """One deploy or undeploy of a model in an environment at a time (an advisory file lock)."""
    path = state_path(serving_dir, environment, model)
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / f".{model}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
