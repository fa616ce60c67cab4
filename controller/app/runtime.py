"""Wiring for one machine: the releasectl home, the LocalExecutor and the workflow target.

Place in the flow: built once by the CLI (reconcile, serve, demo) before the first pass. The home
holds everything the embedded default keeps on disk: the controller's bare clones, the data
catalog, the content-addressed artifact store, the serving state and the executor's runs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.core.models import Action

STEP_MODULES = (
    "workflows.steps.validate_data",
    "workflows.steps.train",
    "workflows.steps.evaluate",
    "workflows.steps.deploy",
)
# Imported once by the local executor's warm worker, so that a forked step starts with them loaded.
WARM_IMPORTS = (
    *STEP_MODULES,
    "numpy",
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "sklearn.metrics",
    "sklearn.model_selection",
    "skops.io",
)


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def resolve(cls, path: str | None) -> Home:
        chosen = path or os.environ.get("RELEASECTL_HOME") or str(Path.home() / ".local/share/releasectl")
        return cls(Path(chosen).expanduser().resolve())

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def serving(self) -> Path:
        return self.root / "serving"

    @property
    def runs(self) -> Path:
        return self.root / "executor"

    def workdir(self, url: str) -> Path:
        return self.root / "clones" / hashlib.sha256(url.encode()).hexdigest()[:16]

    def target(self) -> Any:
        from workflows.target import Target

        for path in (self.store, self.data, self.serving):
            path.mkdir(parents=True, exist_ok=True)
        return Target(store_uri=self.store.as_uri(), data_uri=self.data.as_uri(), serving_uri=self.serving.as_uri())


def local_executor(home: Home, *, on_event: Callable[[str], None] | None = None, max_parallel: int = 2) -> Any:
    from controller.adapters.local.executor import LocalExecutor

    home.runs.mkdir(parents=True, exist_ok=True)
    return LocalExecutor(home.runs, max_parallel=max_parallel, preload=WARM_IMPORTS, on_event=on_event)


def detached_executor(home: Home, *, max_parallel: int = 2, idle_exit_s: float = 300.0) -> Any:
    """The controller's executor: runs live in the local engine, a process that outlives the controller."""
    from controller.adapters.local.detached import DetachedExecutor

    home.runs.mkdir(parents=True, exist_ok=True)
    return DetachedExecutor(home.runs, max_parallel=max_parallel, preload=WARM_IMPORTS, idle_exit_s=idle_exit_s)


def compiler(home: Home) -> Callable[[Action], dict[str, Any]]:
    from workflows.builders import manifest

    target = home.target()

    def compile_action(action: Action) -> dict[str, Any]:
        return manifest(action, target)

    return compile_action


def load_recipes(warn: Callable[[str], None]) -> None:
    """Register the recipes installed through the `releasectl.recipes` entry points (once per process)."""
    from workflows.recipes import load_errors, registry

    registry()
    for line in load_errors():
        warn(f"warning: {line}")
