"""The controller's test executor: the real LocalExecutor running the real compiled manifests with
fast step functions (tests/faststeps.py), plus a record of what was submitted.

Place in the flow: tests only, behind the Executor protocol. `fast_compiler` builds each action's
manifest with workflows/builders.py exactly as the controller does, then points every script
template at tests.faststeps and tells the steps where the test's behaviour file is; so a wrong
`depends` or `when` in the builders makes these tests fail, as it would on Argo.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from controller.adapters.local.executor import LocalExecutor
from controller.core.models import Action
from controller.ports import LABEL_ENVIRONMENT, LABEL_MODEL, WorkflowRun
from workflows.builders import manifest
from workflows.target import Target

TARGET = Target(store_uri="file:///srv/store", data_uri="file:///srv/data", serving_uri="file:///srv/serving")
STEPS = "workflows.steps."


@dataclass
class Behaviour:
    """How the steps of one (environment, model) behave."""

    metrics: dict[str, float] = field(default_factory=lambda: {"roc_auc": 0.99, "accuracy": 0.97})
    gates_pass: bool = True
    fail_task: str | None = None  # a task whose check says no (verdict Failed)
    fail_message: str = "check failed"
    crash_task: str | None = None  # a task that crashes (verdict Errored)
    sleep: dict[str, float] = field(default_factory=dict)  # task -> seconds
    overrun_once: dict[str, float] = field(default_factory=dict)  # task -> seconds, first run only


def fast_manifest(compiled: dict[str, Any], behaviour_file: Path) -> dict[str, Any]:
    """The compiled manifest with each step pointed at tests.faststeps and the behaviour file."""
    out = copy.deepcopy(compiled)
    labels = out["metadata"]["labels"]
    key = f"{labels[LABEL_ENVIRONMENT]}/{labels[LABEL_MODEL]}"
    for template in out["spec"]["templates"]:
        script = template.get("script")
        if script is None:
            continue
        args = script["args"]
        i = args.index("-e") + 1
        module, _, function = args[i].partition(":")
        assert module.startswith(STEPS), args
        args[i] = f"tests.faststeps:{function}"
        script["env"] = [
            *script.get("env", []),
            {"name": "FAST_BEHAVIOUR", "value": str(behaviour_file)},
            {"name": "FAST_KEY", "value": key},
        ]
    return out


def fast_compiler(behaviour_file: Path, target: Target = TARGET) -> Callable[[Action], dict[str, Any]]:
    def compile_action(action: Action) -> dict[str, Any]:
        return fast_manifest(manifest(action, target), behaviour_file)

    return compile_action


class FastExecutor:
    """A view of a shared warm LocalExecutor for one test: records submissions, owns a behaviour file."""

    def __init__(self, engine: LocalExecutor, folder: Path) -> None:
        self.engine = engine
        self.name = engine.name
        folder.mkdir(parents=True, exist_ok=True)
        self.behaviour_file = folder / "behaviour.json"
        self.behaviour: dict[tuple[str, str], Behaviour] = {}
        self.manifests: dict[str, dict[str, Any]] = {}
        self.submitted: list[str] = []
        self.stopped: list[str] = []
        self.on_finished: Callable[[str], None] | None = None  # called once, when a run is first seen finished
        self.write_behaviour()

    def write_behaviour(self) -> None:
        doc = {f"{env}/{model}": asdict(b) for (env, model), b in self.behaviour.items()}
        partial = self.behaviour_file.with_suffix(".tmp")
        partial.write_text(json.dumps(doc))
        partial.replace(self.behaviour_file)  # steps read it while runs go on: never half a file

    def compiler(self, target: Target = TARGET) -> Callable[[Action], dict[str, Any]]:
        return fast_compiler(self.behaviour_file, target)

    def tasks(self, name: str) -> list[str]:
        spec = self.manifests[name]["spec"]
        entry = next(t for t in spec["templates"] if t["name"] == spec["entrypoint"])
        return [t["name"] for t in entry["dag"]["tasks"]]

    # -- the Executor protocol --------------------------------------------------------------------

    def submit(self, manifest: dict[str, Any]) -> str:
        self.write_behaviour()
        name = self.engine.submit(manifest)
        self.submitted.append(name)
        self.manifests.setdefault(name, manifest)
        return name

    def get(self, name: str) -> WorkflowRun | None:
        return self.engine.get(name)

    def list(self, labels: Mapping[str, str]) -> list[WorkflowRun]:
        return [r for r in self.engine.list(labels) if r.name in self.manifests]

    def finished(self, names: Collection[str]) -> dict[str, WorkflowRun]:
        done = self.engine.finished(names)
        if done and self.on_finished is not None:
            hook, self.on_finished = self.on_finished, None
            hook(next(iter(done)))
        return done

    def wait_for_finished(self, names: Collection[str], timeout_s: float) -> bool:
        return self.engine.wait_for_finished(names, timeout_s)

    def stop(self, name: str, message: str = "") -> None:
        self.stopped.append(name)
        self.engine.stop(name, message)

    def close(self) -> None:
        return None
