"""Fast step functions for the controller's tests: the real step contract, no training.

Place in the flow: tests only. tests/fastexec.py compiles the REAL workflow manifests
(workflows/builders.py) and points each script template's `-e module:function` here, so the
LocalExecutor runs the compiled DAG with Argo's `depends`/`when` semantics while each step takes
milliseconds. Every function has the real step's parameters and outputs, goes through the real
`checked` wrapper (so it writes the `verdict` output parameter), and behaves as the test asked in
the JSON file named by $FAST_BEHAVIOUR, keyed by $FAST_KEY (`<environment>/<model>`):

  {"dev/wine": {"metrics": {...}, "gates_pass": true, "fail_task": "train", "fail_message": "...",
                "crash_task": "evaluate", "sleep": {"train": 30}, "overrun_once": {"deploy": 5}}}
"""

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

from hera.workflows import Parameter

from workflows.steps.common import CheckFailed, checked, dumps
from workflows.steps.evaluate import gates_failed

__all__ = ["deploy", "evaluate", "gates_failed", "train", "undeploy", "validate_data"]

DEFAULT_METRICS = {"roc_auc": 0.99, "accuracy": 0.97}


def _behaviour() -> dict[str, Any]:
    path = os.environ.get("FAST_BEHAVIOUR", "")
    if not path or not Path(path).is_file():
        return {}
    every = json.loads(Path(path).read_text())
    found = every.get(os.environ.get("FAST_KEY", ""), {})
    return found if isinstance(found, dict) else {}


def _act(task: str) -> dict[str, Any]:
    """Sleep, fail or crash as the behaviour says for this task; the behaviour."""
    how = _behaviour()
    seconds = float(how.get("sleep", {}).get(task, 0))
    once = how.get("overrun_once", {}).get(task)
    if once is not None:  # the first run of this task for this key overruns; later ones do not
        marker = Path(os.environ["FAST_BEHAVIOUR"]).with_name(f"ran-{os.environ['FAST_KEY'].replace('/', '-')}-{task}")
        if not marker.exists():
            marker.write_text("1")
            seconds = float(once)
    if seconds:
        time.sleep(seconds)
    if how.get("crash_task") == task:
        raise RuntimeError("boom")
    if how.get("fail_task") == task:
        raise CheckFailed(str(how.get("fail_message", "check failed")))
    return how


@checked
def validate_data(
    dataset: str, dataset_sha256: str, data_uri: str, reference_sha256: str = "", max_drift_psi: str = "0.25"
) -> Annotated[str, Parameter(name="report")]:
    _act("validate-data")
    return dumps({"dataset": dataset, "rows": 10})


@checked
def train(
    model: str,
    version: str,
    spec_digest: str,
    recipe: str,
    params: str,
    dataset: str,
    dataset_sha256: str,
    data_uri: str,
    store_uri: str,
) -> tuple[Annotated[str, Parameter(name="artifact")], Annotated[str, Parameter(name="report")]]:
    _act("train")
    artifact = "sha256:" + hashlib.sha256(f"{spec_digest}:{os.environ.get('FAST_KEY', '')}".encode()).hexdigest()
    return artifact, dumps({"artifact": artifact})


@checked
def evaluate(
    artifact: str,
    dataset: str,
    dataset_sha256: str,
    data_uri: str,
    store_uri: str,
    params: str,
    gates: str,
    max_regression: str,
    live_artifact: str = "",
    slicing: str = "",
) -> tuple[
    Annotated[str, Parameter(name="metrics")],
    Annotated[str, Parameter(name="gates")],
    Annotated[str, Parameter(name="passed")],
    Annotated[str, Parameter(name="artifact")],
]:
    how = _act("evaluate")
    metrics = how.get("metrics", DEFAULT_METRICS)
    passed = bool(how.get("gates_pass", True))
    results = [
        {"metric": m, "op": ">=", "threshold": 0.9, "value": v, "passed": passed, "kind": "gate"}
        for m, v in metrics.items()
    ]
    return dumps(metrics), dumps(results), "true" if passed else "false", artifact


@checked
def deploy(
    environment: str,
    model: str,
    version: str,
    artifact: str,
    spec_digest: str,
    strategy: str,
    canary: str,
    store_uri: str,
    serving_uri: str,
    data_uri: str = "",
    dataset: str = "",
    dataset_sha256: str = "",
) -> tuple[Annotated[str, Parameter(name="artifact")], Annotated[str, Parameter(name="report")]]:
    _act("deploy")
    return artifact, dumps({"strategy": strategy, "version": version})


@checked
def undeploy(environment: str, model: str, serving_uri: str) -> Annotated[str, Parameter(name="report")]:
    _act("undeploy")
    return dumps({"removed": model})
