"""Slice and fairness gates: the pin's schema, the cuts, the worst slice, the gap and the small slices."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from controller.core.models import Evaluation, GateResult
from controller.core.outcomes import gate_reason
from workflows import slices


def _rows(*items: tuple[str, int, float | None]) -> list[dict[str, Any]]:
    return [{"slice": s, "rows": n, "metrics": {"recall": v, "accuracy": v, "log_loss": v}, "small": n < 20}
            for s, n, v in items]  # fmt: skip


@pytest.mark.parametrize(
    ("evaluation", "message"),
    [
        ({"min_slice": {"recall": ">= 0.8"}}, "min_slice and evaluation.max_slice_gap need evaluation.slices"),
        ({"slices": [{"feature": "sex"}, {"feature": "sex", "quantiles": 4}]}, "names a feature twice"),
        ({"slices": [{"feature": "age", "quantiles": 1}]}, "greater than or equal to 2"),
        ({"slices": [{"feature": "sex"}], "min_slice": {"p95_latency_ms": "<= 5"}}, "Input should be 'accuracy'"),
        ({"slices": [{"feature": "sex"}], "min_slice": {"recall": "at least 0.8"}}, "String should match pattern"),
        ({"slices": [{"feature": "sex"}], "max_slice_gap": {"accuracy": -0.1}}, "greater than or equal to 0"),
        ({"slices": [{"feature": "a,b"}]}, "String should match pattern"),
    ],
    ids=["gate-without-slices", "twice", "one-quantile", "latency", "bad-gate", "negative-gap", "comma-in-feature"],
)
def test_bad_slice_settings_are_rejected_when_the_pin_is_read(evaluation: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Evaluation.model_validate(evaluation)


def test_a_good_slice_setting_reads() -> None:
    ev = Evaluation.model_validate(
        {"slices": [{"feature": "sex"}, {"feature": "mean radius", "quantiles": 4}],
         "min_slice": {"recall": ">= 0.85"}, "max_slice_gap": {"accuracy": 0.05}}
    )  # fmt: skip
    assert [s.model_dump(exclude_none=True) for s in ev.slices] == [
        {"feature": "sex"},
        {"feature": "mean radius", "quantiles": 4},
    ]
    assert ev.min_slice_rows == 20


def test_cuts_by_value_and_by_quantile_use_the_whole_column() -> None:
    X_all = np.array([[0.0, 1.0], [1.0, 2.0], [0.0, 3.0], [1.0, 4.0], [0.0, 5.0]])
    X_test = np.array([[1.0, 1.5], [0.0, 4.5], [1.0, 5.0]])
    by_value = slices.cut({"feature": "sex"}, ("sex", "age"), X_all, X_test)
    assert [(label, mask.tolist()) for label, mask in by_value] == [
        ("sex=0", [False, True, False]),
        ("sex=1", [True, False, True]),
    ]
    by_quantile = slices.cut({"feature": "age", "quantiles": 2}, ("sex", "age"), X_all, X_test)
    assert [(label, mask.tolist()) for label, mask in by_quantile] == [
        ("age in [1, 3)", [True, False, False]),
        ("age in [3, 5]", [False, True, True]),
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"feature": "height"}, "feature 'height' is not a feature column of the dataset"),
        ({"feature": "age"}, "feature 'age' has 60 distinct values (at most 50); give it quantiles"),
    ],
    ids=["unknown-feature", "too-many-values"],
)
def test_a_cut_that_cannot_be_made_says_why(spec: dict[str, Any], message: str) -> None:
    X = np.column_stack([np.zeros(60), np.arange(60.0)])
    with pytest.raises(slices.CheckFailed, match=re.escape(message)):
        slices.cut(spec, ("sex", "age"), X, X)


@pytest.mark.parametrize(
    ("rows", "gate", "expected"),
    [
        (
            _rows(("sex=0", 80, 0.95), ("sex=1", 40, 0.71)),
            {"min_slice": {"recall": ">= 0.85"}},
            [("slice", "sex=1", 0.71, False)],
        ),
        (
            _rows(("sex=0", 80, 0.95), ("sex=1", 40, 0.90), ("sex=2", 5, 0.10)),
            {"min_slice": {"recall": ">= 0.85"}},
            [("slice", "sex=1", 0.90, True)],  # the 5-row slice is recorded, not gated
        ),
        (
            _rows(("sex=0", 80, 0.95), ("sex=1", 40, 0.83)),
            {"max_slice_gap": {"accuracy": 0.05}},
            [("slice_gap", "sex=0 vs sex=1", 0.12, False)],
        ),
        (
            _rows(("sex=0", 80, 0.30), ("sex=1", 40, 0.33)),
            {"max_slice_gap": {"log_loss": 0.05}},  # lower is better: the worst is the larger loss
            [("slice_gap", "sex=0 vs sex=1", 0.03, True)],
        ),
        (
            _rows(("sex=0", 80, 0.95), ("sex=1", 10, 0.50)),
            {"max_slice_gap": {"accuracy": 0.05}},
            [("slice_gap", "sex (fewer than 2 slices with >= 20 held-out rows)", None, False)],
        ),
        (
            _rows(("sex=0", 80, None), ("sex=1", 40, None)),
            {"min_slice": {"recall": ">= 0.85"}},
            [("slice", "sex (no slice with >= 20 held-out rows and a defined recall)", None, False)],
        ),
    ],
    ids=["worst-fails", "small-slice-not-gated", "gap-fails", "gap-lower-is-better", "gap-unmeasurable", "undefined"],
)
def test_slice_gates(rows: list[dict[str, Any]], gate: dict[str, Any], expected: list[tuple[Any, ...]]) -> None:
    results = slices.gate_results({"sex": rows}, gate.get("min_slice", {}), gate.get("max_slice_gap", {}), 20)
    assert [(r["kind"], r["slice"], r["value"], r["passed"]) for r in results] == expected
    assert all(len(r["slices"]) == len(rows) for r in results)  # every slice's value is recorded
    small = [v for r in results for v in r["slices"] if not v["gated"]]
    assert all(v["rows"] < 20 or v["value"] is None for v in small)


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        ({"metric": "recall", "op": ">=", "threshold": 0.85, "value": 0.71, "passed": False, "kind": "slice",
          "slice": "sex=1"}, "slice sex=1: recall 0.71 < 0.85"),
        ({"metric": "accuracy", "op": "<=", "threshold": 0.05, "value": 0.12, "passed": False, "kind": "slice_gap",
          "slice": "sex=0 vs sex=1"}, "slice gap sex=0 vs sex=1: accuracy 0.12 > 0.05"),
        ({"metric": "log_loss", "op": "<=", "threshold": 0.4, "value": None, "passed": False, "kind": "slice",
          "slice": "age (no slice with >= 20 held-out rows and a defined log_loss)"},
         "slice age (no slice with >= 20 held-out rows and a defined log_loss): log_loss missing > 0.4"),
    ],
    ids=["worst", "gap", "missing"],
)  # fmt: skip
def test_the_step_and_the_trail_say_the_same_reason(result: dict[str, Any], reason: str) -> None:
    assert slices.describe(result) == reason  # the gates-failed step's message
    assert gate_reason([GateResult.model_validate(result)]) == reason  # the status file's reason


def test_recall_is_of_the_positive_class_and_undefined_without_it() -> None:
    y = np.array([0, 0, 1, 1])
    assert slices.recall_value(y, np.array([0, 1, 1, 0]), [0, 1]) == 0.5
    assert slices.recall_value(np.array([0, 0]), np.array([0, 1]), [0, 1]) is None
    three = np.array([0, 1, 2, 2])
    assert slices.recall_value(three, np.array([0, 1, 2, 0]), [0, 1, 2]) == pytest.approx((1 + 1 + 0.5) / 3)
