"""Slice and fairness gates: every quality metric per slice of the held-out rows, and gates on them.

Place in the flow: inside the evaluate step (workflows/steps/evaluate.py), after the overall
metrics. The pin's `evaluation.slices` cut the held-out rows by a feature's values (`{feature:
sex}`: one slice per distinct value in the whole dataset, at most MAX_CATEGORIES) or by a numeric
feature's quantile buckets (`{feature: "mean radius", quantiles: 4}`: edges from the whole
dataset, so a slice means the same rows for every version). Then:

- `min_slice: {recall: ">= 0.85"}` bounds the worst slice of each cut (one result per cut);
- `max_slice_gap: {accuracy: 0.05}` bounds best minus worst within each cut (one result per cut);
- every gated metric (gates, min_slice, max_slice_gap) carries its value on every slice.

A slice with fewer than `min_slice_rows` held-out rows (default 20), or where the metric is
undefined (roc_auc on a slice with one class), is recorded with `gated: false` and left out of
the worst and the gap. A cut with no gated slice fails its min_slice gate, and one with fewer than
two fails its max_slice_gap gate: a fairness bound that cannot be measured does not pass.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from controller.core.models import METRICS
from workflows.steps.common import CheckFailed

MAX_CATEGORIES = 50
SLICE_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "log_loss", "recall", "roc_auc")
NEGATED = {">=": "<", "<=": ">", ">": "<=", "<": ">=", "==": "!="}


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def cut(spec: dict[str, Any], feature_names: tuple[str, ...] | list[str], X_all: NDArray[Any], X_test: NDArray[Any]
        ) -> list[tuple[str, NDArray[np.bool_]]]:  # fmt: skip
    """(label, mask over the held-out rows) for each slice of one cut, in a stable order."""
    feature = str(spec.get("feature", ""))
    names = list(feature_names)
    if feature not in names:
        raise CheckFailed(f"evaluation.slices: feature {feature!r} is not a feature column of the dataset")
    column = names.index(feature)
    everything = np.asarray(X_all[:, column], dtype=np.float64)
    held_out = np.asarray(X_test[:, column], dtype=np.float64)
    quantiles = spec.get("quantiles")
    if quantiles is None:
        values = np.unique(everything)
        if len(values) > MAX_CATEGORIES:
            raise CheckFailed(
                f"evaluation.slices: feature {feature!r} has {len(values)} distinct values (at most "
                f"{MAX_CATEGORIES}); give it quantiles"
            )
        return [(f"{feature}={_fmt(v)}", held_out == v) for v in values]
    q = int(quantiles)
    edges = np.unique(np.quantile(everything, np.linspace(0.0, 1.0, q + 1)))
    if len(edges) < 2:
        return [(f"{feature}={_fmt(edges[0])}", np.ones(len(held_out), dtype=bool))]
    bucket = np.clip(np.searchsorted(edges[1:-1], held_out, side="right"), 0, len(edges) - 2)
    out = []
    for i in range(len(edges) - 1):
        close = "]" if i == len(edges) - 2 else ")"
        out.append((f"{feature} in [{edges[i]:.4g}, {edges[i + 1]:.4g}{close}", bucket == i))
    return out


def quality(
    y: NDArray[Any], predicted: NDArray[Any], proba: NDArray[Any], classes: list[Any]
) -> dict[str, float | None]:
    """The quality metrics on some rows; None where a metric is undefined there."""
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        f1_score,
        log_loss,
        roc_auc_score,
    )

    if len(y) == 0:
        return dict.fromkeys(SLICE_METRICS)
    found: dict[str, float | None] = {
        "accuracy": accuracy_score(y, predicted),
        "f1_macro": f1_score(y, predicted, average="macro", labels=classes, zero_division=0),
        "log_loss": log_loss(y, proba, labels=classes),
        "recall": recall_value(y, predicted, classes),
    }
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a slice may lack a class: balanced accuracy still defined
        found["balanced_accuracy"] = balanced_accuracy_score(y, predicted)
    present = set(np.unique(y).tolist())
    if len(present) < 2:
        found["roc_auc"] = None
    elif len(classes) == 2:
        found["roc_auc"] = roc_auc_score(y, proba[:, 1])
    elif present == set(classes):
        found["roc_auc"] = roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes)
    else:
        found["roc_auc"] = None
    return {k: (None if v is None or not math.isfinite(float(v)) else round(float(v), 6)) for k, v in found.items()}


def recall_value(y: NDArray[Any], predicted: NDArray[Any], classes: list[Any]) -> float | None:
    """Recall of the positive class (the larger label) for two classes; macro-averaged over the classes
    present for more. None when undefined: no row of the positive class (of any class, for more)."""
    from sklearn.metrics import recall_score

    present = [c for c in classes if bool(np.any(y == c))]
    if len(classes) == 2:
        if classes[-1] not in present:
            return None
        return float(recall_score(y, predicted, pos_label=classes[-1], labels=classes, zero_division=0))
    if not present:
        return None
    return float(recall_score(y, predicted, average="macro", labels=present, zero_division=0))


def per_slice(estimator: Any, data: Any, X_test: NDArray[Any], y_test: NDArray[Any], specs: list[dict[str, Any]],
              min_rows: int) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """feature -> [{slice, rows, metrics}] for each cut."""
    predicted = estimator.predict(X_test)
    proba = estimator.predict_proba(X_test)
    classes = list(estimator.classes_)
    out: dict[str, list[dict[str, Any]]] = {}
    for spec in specs:
        rows = []
        for label, mask in cut(spec, data.feature_names, data.X, X_test):
            n = int(mask.sum())
            found = quality(y_test[mask], predicted[mask], proba[mask], classes)
            rows.append({"slice": label, "rows": n, "metrics": found, "small": n < min_rows})
        out[str(spec["feature"])] = rows
    return out


def _values(rows: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        value = r["metrics"].get(metric)
        out.append({"slice": r["slice"], "rows": r["rows"], "value": value,
                    "gated": not r["small"] and value is not None})  # fmt: skip
    return out


def _check(op: str, value: float | None, threshold: float) -> bool:
    from workflows.steps.evaluate import OPS

    return value is not None and math.isfinite(value) and bool(OPS[op](value, threshold))


def gate_results(cuts: dict[str, list[dict[str, Any]]], min_slice: dict[str, Any], max_gap: dict[str, Any],
                 min_rows: int) -> list[dict[str, Any]]:  # fmt: skip
    """One result per (min_slice metric, cut) on the worst gated slice, one per (max_slice_gap metric, cut)."""
    from workflows.steps.evaluate import parse_gate

    results: list[dict[str, Any]] = []
    for metric, text in min_slice.items():
        _known(metric, "min_slice")
        op, threshold = parse_gate(metric, text)
        for feature, rows in cuts.items():
            values = _values(rows, metric)
            gated = [v for v in values if v["gated"]]
            if not gated:
                worst, value = f"{feature} (no slice with >= {min_rows} held-out rows and a defined {metric})", None
            else:
                pick = min if METRICS[metric] == "higher" else max
                chosen = pick(gated, key=lambda v: v["value"])
                worst, value = chosen["slice"], chosen["value"]
            results.append({"metric": metric, "op": op, "threshold": threshold, "value": value,
                            "passed": _check(op, value, threshold), "kind": "slice", "slice": worst,
                            "slices": values})  # fmt: skip
    for metric, amount in max_gap.items():
        _known(metric, "max_slice_gap")
        if isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
            raise CheckFailed(f"max_slice_gap.{metric} must be a number >= 0, got {amount!r}")
        for feature, rows in cuts.items():
            values = _values(rows, metric)
            gated = sorted((v for v in values if v["gated"]), key=lambda v: v["value"])
            if len(gated) < 2:
                apart, gap = f"{feature} (fewer than 2 slices with >= {min_rows} held-out rows)", None
            else:
                low, high = gated[0], gated[-1]
                good, bad = (high, low) if METRICS[metric] == "higher" else (low, high)
                apart, gap = f"{good['slice']} vs {bad['slice']}", round(high["value"] - low["value"], 6)
            results.append({"metric": metric, "op": "<=", "threshold": float(amount), "value": gap,
                            "passed": _check("<=", gap, float(amount)), "kind": "slice_gap", "slice": apart,
                            "slices": values})  # fmt: skip
    return results


def annotate(results: list[dict[str, Any]], cuts: dict[str, list[dict[str, Any]]]) -> None:
    """Give each overall gate the metric's value on every slice (latency has no per-slice value)."""
    for r in results:
        if r.get("kind") in ("gate", "regression") and r["metric"] in SLICE_METRICS and cuts:
            r["slices"] = [v for rows in cuts.values() for v in _values(rows, r["metric"])]


def _known(metric: str, field: str) -> None:
    if metric not in SLICE_METRICS:
        raise CheckFailed(f"{field}: {metric!r} is not a slice metric (known: {', '.join(SLICE_METRICS)})")


def describe(result: dict[str, Any]) -> str:
    """`slice sex=1: recall 0.71 < 0.85`; `slice gap sex=0 vs sex=1: accuracy 0.12 > 0.05`."""
    value = result.get("value")
    shown = "missing" if value is None else f"{float(value):.4g}"
    threshold = f"{float(result.get('threshold', 0)):g}"
    op = str(result.get("op", ""))
    if result.get("kind") == "slice_gap":
        return f"slice gap {result.get('slice')}: {result.get('metric')} {shown} > {threshold}"
    return f"slice {result.get('slice')}: {result.get('metric')} {shown} {NEGATED.get(op, 'fails ' + op)} {threshold}"


def evaluate(estimator: Any, data: Any, X_test: NDArray[Any], y_test: NDArray[Any], slicing: dict[str, Any],
             results: list[dict[str, Any]]) -> list[dict[str, Any]]:  # fmt: skip
    """The slice results to add, after annotating `results` (the overall gates) with per-slice values."""
    specs = slicing.get("slices") or []
    if not isinstance(specs, list) or not all(isinstance(s, dict) and "feature" in s for s in specs):
        raise CheckFailed("slicing.slices must be a list of {feature, quantiles?}")
    if not specs:
        return []
    min_rows = int(slicing.get("min_slice_rows", 20))
    cuts = per_slice(estimator, data, X_test, y_test, specs, min_rows)
    annotate(results, cuts)
    return gate_results(cuts, dict(slicing.get("min_slice") or {}), dict(slicing.get("max_slice_gap") or {}), min_rows)
