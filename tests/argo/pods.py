"""Pod runners for the Argo double: scripted answers, or the template's real command on this machine.

Place in the flow: test support, called by tests/argo/engine.py for each pod.

- ScriptedPods answers as the step functions would (the output parameters the template declares,
  with the values the contract in controller/core/contract.py names), fails a task on request
  (exit code 2 and a Failed verdict: a check said no; exit 1 and an Errored verdict: a crash), and
  can hold a task until the test releases it (or the workflow is stopped).
- ProcessPods runs a pod as Argo would with this project's Python in place of the image: the
  template's command and args, for a script template its `source` with `{{inputs.parameters}}`
  substituted (the JSON list of the resolved input parameters) written to a file whose path is
  appended to the args, the template's env with Hera's `/tmp/hera-outputs` mapped to the pod's own
  folder, and the outputs read from each declared `valueFrom.path` (one trailing newline dropped,
  `valueFrom.default` when the file is missing). Argo's message for a failed pod is
  "Error (exit code N)": the reason travels in the `verdict` output, not on stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from controller.core.contract import (
    OUT_ARTIFACT,
    OUT_GATES,
    OUT_METRICS,
    OUT_PASSED,
    OUT_REPORT,
    OUT_VERDICT,
)
from tests.argo.engine import Pod, PodResult, render

ROOT = Path(__file__).resolve().parents[2]
HERA_OUTPUTS = "/tmp/hera-outputs"
ARTIFACT = "sha256:" + "c" * 64


def verdict(word: str, reason: str = "") -> str:
    return json.dumps({"verdict": word, "reason": reason})


class ScriptedPods:
    def __init__(self) -> None:
        self.metrics = {"roc_auc": 0.99, "accuracy": 0.97}
        self.gates_pass = True
        self.fail: dict[str, tuple[int, str, str]] = {}  # task -> (exit code, verdict, reason)
        self.hold: dict[str, threading.Event] = {}  # task -> released when set
        self.entered: dict[str, threading.Event] = {}  # task -> set when a pod of it starts
        self.ran: list[tuple[str, str, int]] = []  # (workflow, task, attempt)
        self.lock = threading.Lock()

    def started(self, task: str) -> threading.Event:
        with self.lock:
            return self.entered.setdefault(task, threading.Event())

    def __call__(self, pod: Pod) -> PodResult:
        with self.lock:
            self.ran.append((pod.workflow, pod.task, pod.attempt))
        self.started(pod.task).set()
        gate = self.hold.get(pod.task)
        if gate is not None:
            while not gate.wait(0.02):
                if pod.stopped.is_set():
                    return PodResult("Failed", 143, "workflow shutdown with strategy:  Stop")
        declared = [p["name"] for p in (pod.template.get("outputs") or {}).get("parameters") or []]
        if pod.task in self.fail:
            code, word, reason = self.fail[pod.task]
            return PodResult(
                "Failed",
                code,
                f"Error (exit code {code})",
                {n: "" for n in declared} | {OUT_VERDICT: verdict(word, reason)},
            )
        values = self._values(pod)
        return PodResult(
            "Succeeded", 0, "", {n: values.get(n, "") for n in declared} | {OUT_VERDICT: verdict("Succeeded")}
        )

    def _values(self, pod: Pod) -> dict[str, str]:
        artifact = pod.inputs.get("artifact") or ARTIFACT
        if pod.task == "evaluate":
            gates = [
                {"metric": m, "op": ">=", "threshold": 0.9, "value": v, "passed": self.gates_pass, "kind": "gate"}
                for m, v in self.metrics.items()
            ]
            return {
                OUT_METRICS: json.dumps(self.metrics),
                OUT_GATES: json.dumps(gates),
                OUT_PASSED: "true" if self.gates_pass else "false",
                OUT_ARTIFACT: artifact,
            }
        return {OUT_ARTIFACT: artifact, OUT_REPORT: json.dumps({"task": pod.task})}


def _map(value: str, outputs: Path) -> str:
    return str(outputs) + value[len(HERA_OUTPUTS) :] if value.startswith(HERA_OUTPUTS) else value


class ProcessPods:
    """Each pod is a process on this machine, in `<root>/<workflow>/<task>-<attempt>/`."""

    def __init__(self, root: Path, cluster_env: Mapping[str, str] | None = None) -> None:
        self.root = root
        # What the cluster gives every pod besides its template's env: the service account's
        # access to the API (in a real pod, KUBERNETES_SERVICE_HOST and a mounted token; here a
        # KUBECONFIG naming the loopback Kubernetes double).
        self.cluster_env = dict(cluster_env or {})
        self.commands: list[list[str]] = []
        self.seconds: list[float] = []

    def __call__(self, pod: Pod) -> PodResult:
        template = pod.template
        body: Mapping[str, Any] = template.get("script") or template.get("container") or {}
        folder = self.root / pod.workflow / f"{pod.task}-{pod.attempt}"
        outputs = folder / "outputs"
        outputs.mkdir(parents=True)
        declared = (template.get("inputs") or {}).get("parameters") or []
        resolved = []
        for param in declared:
            entry = {"name": param["name"]}
            if "default" in param:
                entry["default"] = str(param["default"])
            entry["value"] = pod.inputs[param["name"]]
            resolved.append(entry)
        values = {f"inputs.parameters.{k}": v for k, v in pod.inputs.items()}
        values["inputs.parameters"] = json.dumps(resolved)
        command = [render(c, values) for c in body.get("command") or []]
        args = [render(a, values) for a in body.get("args") or []]
        if "script" in template:
            script = folder / "script"  # Argo's /argo/staging/script
            script.write_text(render(body.get("source", ""), values))
            args.append(str(script))
        argv = command + args
        if argv and argv[0] in ("python", "python3"):
            argv[0] = sys.executable  # this project's Python in place of the image's
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": os.environ.get("HOME", str(folder)),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(ROOT),
            **self.cluster_env,
        }
        for item in body.get("env") or []:
            env[item["name"]] = _map(render(str(item.get("value", "")), values), outputs)
        self.commands.append(argv)
        deadline = template.get("activeDeadlineSeconds")
        started = time.perf_counter()
        try:
            done = subprocess.run(
                argv, check=False, cwd=folder, env=env, capture_output=True, text=True, timeout=float(deadline or 600)
            )
        except subprocess.TimeoutExpired:
            return PodResult("Failed", None, "Pod was active on the node longer than the specified deadline")
        self.seconds.append(time.perf_counter() - started)
        (folder / "stdout").write_text(done.stdout)
        (folder / "stderr").write_text(done.stderr)
        found: dict[str, str] = {}
        for param in (template.get("outputs") or {}).get("parameters") or []:
            source = param.get("valueFrom") or {}
            path = Path(_map(source.get("path", ""), outputs))
            if path.is_file():
                found[param["name"]] = path.read_text().removesuffix("\n")
            elif "default" in source:
                found[param["name"]] = str(source["default"])
            else:
                return PodResult(
                    "Error", done.returncode, f"open {source.get('path')}: no such file or directory", found
                )
        result = done.stdout.removesuffix("\n") if "script" in template else None
        if done.returncode != 0:
            return PodResult("Failed", done.returncode, f"Error (exit code {done.returncode})", found, result)
        return PodResult("Succeeded", 0, "", found, result)
