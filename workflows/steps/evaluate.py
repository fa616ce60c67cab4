"""Step 3 of a deploy workflow: metrics on the held-out split, gates, regression against live.

Place in the flow: the DAG task `evaluate` (controller.core.contract.EVALUATE), after train (or first,
for a version trained in an earlier environment: the same artifact is evaluated against each
environment's gates). It outputs `metrics`, `gates`, `passed` and echoes `artifact`; it exits 0
even when a gate fails, and the builder then runs `gates_failed` (task `gates-failed`), which
says no with the failed gates so that the run ends Failed. controller/core/outcomes.py folds these.
"""

import json
import math
import re
import time
from typing import Annotated, Any

import numpy as np
from hera.workflows import Parameter
from numpy.typing import NDArray

from controller.core.models import METRICS
from workflows import datasets, sample, store
from workflows.steps.common import CheckFailed, checked, dumps, json_object_param, json_param

GATE_RE = re.compile(r"^\s*(>=|<=|>|<|==)\s*(\S+)\s*$")
LATENCY_ROWS = 100
OPS = {
    ">=": lambda v, t: v >= t,
    "<=": lambda v, t: v <= t,
    ">": lambda v, t: v > t,
    "<": lambda v, t: v < t,
    "==": lambda v, t: v == t,
}


def metrics(estimator: Any, X_test: NDArray[Any], y_test: NDArray[Any]) -> dict[str, float]:
    """Quality on the held-out rows and single-row prediction latency (after one warm-up call)."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, log_loss, roc_auc_score

    width = int(X_test.shape[1])
    expected = int(getattr(estimator, "n_features_in_", width))
    if expected != width:
        raise CheckFailed(
            f"the artifact expects {expected} features, the dataset has {X_test.shape[1]}: it was trained on other data"
        )
    predicted = estimator.predict(X_test)
    proba = estimator.predict_proba(X_test)
    classes = list(estimator.classes_)
    result = {
        "accuracy": accuracy_score(y_test, predicted),
        "balanced_accuracy": balanced_accuracy_score(y_test, predicted),
        "f1_macro": f1_score(y_test, predicted, average="macro"),
        "log_loss": log_loss(y_test, proba, labels=classes),
    }
    if len(classes) == 2:
        result["roc_auc"] = roc_auc_score(y_test, proba[:, 1])
    else:
        result["roc_auc"] = roc_auc_score(y_test, proba, multi_class="ovr", average="macro", labels=classes)
    rows = X_test[:LATENCY_ROWS]
    estimator.predict(rows[:1])  # warm-up
    timings = []
    for row in rows:
        started = time.perf_counter()
        estimator.predict(row.reshape(1, -1))
        timings.append((time.perf_counter() - started) * 1000.0)
    result["p50_latency_ms"] = float(np.percentile(timings, 50))
    result["p95_latency_ms"] = float(np.percentile(timings, 95))
    return {name: round(float(value), 6) for name, value in sorted(result.items())}


def parse_gate(metric: str, text: str) -> tuple[str, float]:
    match = GATE_RE.match(str(text))
    if not match:
        raise CheckFailed(f'gate {metric}: {text!r} is not "<op> <number>" (ops: >=, <=, >, <, ==)')
    try:
        threshold = float(match.group(2))
    except ValueError:
        raise CheckFailed(f"gate {metric}: threshold {match.group(2)!r} is not a number") from None
    return match.group(1), threshold


def check(metric: str, op: str, threshold: float, value: float | None, kind: str) -> dict[str, Any]:
    passed = value is not None and math.isfinite(value) and bool(OPS[op](value, threshold))
    return {"metric": metric, "op": op, "threshold": threshold, "value": value, "passed": passed, "kind": kind}


def gate_results(found: dict[str, float], gates: dict[str, Any]) -> list[dict[str, Any]]:
    results = []
    for metric, text in gates.items():
        op, threshold = parse_gate(metric, text)
        results.append(check(metric, op, threshold, found.get(metric), "gate"))
    return results


def regression_results(
    found: dict[str, float], live: dict[str, float], allowed: dict[str, Any]
) -> list[dict[str, Any]]:
    """Each metric may be worse than the live version's by at most the allowed amount."""
    results = []
    for metric, amount in allowed.items():
        if metric not in METRICS:
            raise CheckFailed(f"max_regression: unknown metric {metric!r} (known: {', '.join(METRICS)})")
        if isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
            raise CheckFailed(f"max_regression.{metric} must be a number >= 0, got {amount!r}")
        if METRICS[metric] == "higher":
            op, threshold = ">=", live[metric] - amount
        else:
            op, threshold = "<=", live[metric] + amount
        results.append(check(metric, op, round(threshold, 6), found.get(metric), "regression"))
    return results


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
    dataset_uri: str = "",
    dataset_format: str = "",
    target_column: str = "",
) -> tuple[
    Annotated[str, Parameter(name="metrics")],
    Annotated[str, Parameter(name="gates")],
    Annotated[str, Parameter(name="passed")],
    Annotated[str, Parameter(name="artifact")],
]:
    settings = json_object_param(params, "params")
    wanted = json_object_param(gates, "gates")
    allowed = json_object_param(max_regression, "max_regression")
    store_dir = store_uri
    data = datasets.load_pinned(data_uri, dataset, dataset_sha256, dataset_uri, dataset_format, target_column)
    data = sample.sampled(data)  # all rows, except in a smoke manifest (workflows/sample.py)
    _, X_test, _, y_test = datasets.split(data, int(settings.get("seed", 0)))
    found = metrics(store.get(store_dir, artifact), X_test, y_test)
    print(f"evaluated {artifact} on {dataset} ({len(y_test)} held-out rows): {json.dumps(found)}")
    results = gate_results(found, wanted)
    live = live_artifact.strip()
    if live and live != artifact and allowed:
        live_estimator = store.get(store_dir, live)
        width = int(X_test.shape[1])
        live_features = int(getattr(live_estimator, "n_features_in_", width))
        if live_features == X_test.shape[1]:
            live_found = metrics(live_estimator, X_test, y_test)
            print(f"live {live} on the same rows: {json.dumps(live_found)}")
            results += regression_results(found, live_found, allowed)
        else:
            print(f"live {live} expects {live_features} features, not {X_test.shape[1]}: no regression check")
    passed = all(r["passed"] for r in results)
    for r in results:
        print(
            f"{'PASS' if r['passed'] else 'FAIL'} {r['kind']} {r['metric']} {r['op']} {r['threshold']:g}: {r['value']}"
        )
    return dumps(found), dumps(results), "true" if passed else "false", artifact


def describe(result: dict[str, Any]) -> str:
    value = result.get("value")
    shown = "missing" if value is None else f"{float(value):.4g}"
    what = "regression check" if result.get("kind") == "regression" else "gate"
    return f"{what} {result.get('metric')} {result.get('op')} {float(result.get('threshold', 0)):g} failed with {shown}"


@checked
def gates_failed(gates: str) -> None:
    """Run only when evaluate said passed == false: says no with the failed gates (exit 2)."""
    results = json_param(gates, "gates", [])
    if not isinstance(results, list):
        raise CheckFailed("evaluation did not pass (its gates output is not a list)")
    failed = [describe(r) for r in results if isinstance(r, dict) and not r.get("passed")]
    raise CheckFailed("; ".join(failed) if failed else "evaluation did not pass")
