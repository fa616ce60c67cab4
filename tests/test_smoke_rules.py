"""The smoke tier's pure rules: gates at risk, the sample, the cheap settings, a run's verdict, the manifest.

Place in the flow: unit tables for controller/core/smoke.py, workflows/sample.py,
workflows/recipes.cheap_params and workflows/builders.smoke_manifest (the acceptance tests with
real git and real training are in tests/test_smoke.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from controller.core.models import Action, ActionKind, ModelPin
from controller.core.smoke import PinCheck, SmokeReport, fold, gate_risk, margin
from controller.ports import NodeResult as Node
from controller.ports import WorkflowRun
from workflows import recipes
from workflows.builders import manifest, smoke_manifest
from workflows.datasets import Dataset
from workflows.sample import SAMPLE_ENV, Sample, apply, rows
from workflows.target import Target

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("metric", "op", "threshold", "value", "sample_rows", "risk"),
    [
        pytest.param("accuracy", ">=", 0.9, 0.97, None, "ok", id="clear-pass"),
        pytest.param("accuracy", ">=", 0.9, 0.93, None, "near", id="within-0.05"),
        pytest.param("accuracy", ">=", 0.9, 0.95, None, "ok", id="exactly-the-margin-is-ok"),
        pytest.param("accuracy", ">=", 0.9, 0.89, None, "fails", id="fails-on-sample"),
        pytest.param("accuracy", ">=", 0.9, 1.0, 40, "ok", id="one-row-of-10-held-out-still-passes"),
        pytest.param("accuracy", ">=", 0.9, 0.95, 40, "near", id="one-row-of-10-held-out-would-fail"),
        pytest.param("roc_auc", ">=", 0.95, 1.0, 40, "ok", id="a-perfect-score-is-not-near"),
        pytest.param("recall", ">=", 0.95, 1.0, 40, "ok", id="a-perfect-recall-is-not-near"),
        pytest.param("roc_auc", ">", 0.95, 0.95, None, "fails", id="strict-op-equal-fails"),
        pytest.param("p95_latency_ms", "<=", 50, 30, None, "ok", id="latency-clear"),
        pytest.param("p95_latency_ms", "<=", 50, 40, None, "near", id="latency-within-25pc"),
        pytest.param("p95_latency_ms", "<=", 50, 51, None, "fails", id="latency-over"),
        pytest.param("log_loss", "<", 0.4, 0.2, None, "ok", id="log-loss-clear"),
        pytest.param("accuracy", "==", 1.0, 1.0, None, "ok", id="equal-holds"),
        pytest.param("accuracy", "==", 1.0, 0.99, None, "fails", id="equal-broken"),
        pytest.param("accuracy", ">=", 0.9, None, None, "fails", id="missing-metric"),
        pytest.param("accuracy", ">=", 0.9, float("nan"), None, "fails", id="nan"),
    ],
)
def test_gate_risk(
    metric: str, op: str, threshold: float, value: float | None, sample_rows: int | None, risk: str
) -> None:
    assert gate_risk(metric, op, threshold, value, sample_rows) == risk


@pytest.mark.parametrize(
    ("metric", "threshold", "sample_rows", "expected"),
    [
        pytest.param("accuracy", 0.9, None, 0.05, id="bounded-default"),
        pytest.param("accuracy", 0.9, 400, 0.05, id="bounded-many-rows"),
        pytest.param("f1_macro", 0.9, 40, 0.1, id="bounded-one-of-10-held-out"),
        pytest.param("p95_latency_ms", 20, 40, 5.0, id="latency-relative"),
    ],
)
def test_margin(metric: str, threshold: float, sample_rows: int | None, expected: float) -> None:
    assert margin(metric, threshold, sample_rows) == pytest.approx(expected)


def _data(counts: list[int]) -> Dataset:
    y = np.concatenate([np.full(n, label, dtype=np.int64) for label, n in enumerate(counts)])
    X = np.arange(len(y) * 2, dtype=np.float64).reshape(len(y), 2)
    return Dataset("d", "0" * 64, X, y, ("a", "b"))


@pytest.mark.parametrize(
    ("counts", "spec", "expected"),
    [
        pytest.param([212, 357], Sample(), [20, 20], id="breast-cancer-floor"),
        pytest.param([1000, 3000], Sample(), [50, 150], id="five-percent-above-floor"),
        pytest.param([5, 300], Sample(), [5, 20], id="small-class-kept-whole"),
        pytest.param([100, 100], Sample(fraction=0.5, min_per_class=1), [50, 50], id="half"),
        pytest.param([7, 9], Sample(fraction=1.0), [7, 9], id="all"),
    ],
)
def test_sample_per_class(counts: list[int], spec: Sample, expected: list[int]) -> None:
    data = _data(counts)
    picked = rows(data.y, spec)
    assert np.bincount(data.y[picked]).tolist() == expected
    assert picked.tolist() == sorted(set(picked.tolist()))  # file order, no row twice
    small = apply(data, spec)
    assert small.X.tolist() == data.X[picked].tolist() and small.y.tolist() == data.y[picked].tolist()
    assert (small.name, small.sha256, small.feature_names) == (data.name, data.sha256, data.feature_names)


def test_sample_is_deterministic_and_seeded() -> None:
    data = _data([500, 500])
    first, again = rows(data.y, Sample(seed=3)), rows(data.y, Sample(seed=3))
    assert first.tolist() == again.tolist()
    assert first.tolist() != rows(data.y, Sample(seed=4)).tolist()
    assert apply(data, None) is data


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param('{"fraction": 0}', "must be in (0, 1]", id="zero-fraction"),
        pytest.param('{"fraction": 1.5}', "must be in (0, 1]", id="over-one"),
        pytest.param('{"min_per_class": 0}', "min_per_class 0", id="no-rows"),
        pytest.param('{"seed": -1}', "seed -1", id="negative-seed"),
        pytest.param('{"rows": 3}', "must be a JSON object with fraction", id="unknown-key"),
    ],
)
def test_sample_spec_is_checked(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=None) as caught:
        Sample.from_json(text)
    assert message in str(caught.value)


def test_sample_round_trips() -> None:
    spec = Sample(0.1, 5, 9)
    assert Sample.from_json(spec.to_json()) == spec
    assert spec.to_json() == '{"fraction":0.1,"min_per_class":5,"seed":9}'


@pytest.mark.parametrize(
    ("recipe", "params", "expected"),
    [
        pytest.param(
            "gradient-boosting",
            {"n_estimators": 60, "learning_rate": 0.1, "seed": 7},
            {"n_estimators": 20, "learning_rate": 0.1, "seed": 7},
            id="capped",
        ),
        pytest.param("gradient-boosting", {"seed": 7}, {"n_estimators": 20, "seed": 7}, id="default-gets-the-bound"),
        pytest.param("random-forest", {"n_estimators": 5, "seed": 1}, {"n_estimators": 5, "seed": 1}, id="below-kept"),
        pytest.param(
            "random-forest", {"n_estimators": -3, "seed": 1}, {"n_estimators": -3, "seed": 1}, id="invalid-kept"
        ),
        pytest.param(
            "logistic-regression", {"max_iter": 400, "C": 0.5, "seed": 11}, {"max_iter": 100, "C": 0.5, "seed": 11}
        ),
        pytest.param(
            "random-forest", {"n_estimators": True, "seed": 1}, {"n_estimators": True, "seed": 1}, id="wrong-type-kept"
        ),
        pytest.param("no-such-recipe", {"n_estimators": 900}, {"n_estimators": 900}, id="unknown-recipe-as-is"),
    ],
)
def test_cheap_params(recipe: str, params: dict[str, Any], expected: dict[str, Any]) -> None:
    assert recipes.cheap_params(recipe, params) == expected


def test_an_installed_recipe_says_its_cheap_settings_or_gets_none() -> None:
    def build(params: dict[str, Any], seed: int) -> Any:
        raise AssertionError("not built here")

    plain = recipes._checked(recipes.Recipe("acme-plain", {"n_estimators": int}, build), "acme-plain", "test")
    assert plain.cheap == {}
    capped = recipes._checked(
        recipes.Recipe("acme-capped", {"n_estimators": int}, build, cheap={"n_estimators": 4}), "acme-capped", "test"
    )
    assert capped.cheap == {"n_estimators": 4}
    with pytest.raises(TypeError, match="cheap setting 'depth'"):
        recipes._checked(recipes.Recipe("acme-bad", {"n_estimators": int}, build, cheap={"depth": 2}), "acme-bad", "t")


# -- the smoke manifest --------------------------------------------------------------------------

TARGET = Target(store_uri="file:///srv/store", data_uri="file:///srv/data", serving_uri="file:///srv/serving")


def _action() -> Action:
    pin = ModelPin.model_validate(yaml.safe_load((ROOT / "environments/dev/tumor-classifier.yaml").read_text()))
    return Action(
        kind=ActionKind.DEPLOY,
        environment="dev",
        model=pin.model,
        version=pin.version,
        source_commit="a" * 40,
        spec_digest="sha256:" + "b" * 64,
        pin=pin,
    )


def test_the_smoke_manifest_is_the_full_one_up_to_evaluate_with_the_sample() -> None:
    action = _action()
    full, smoke = manifest(action, TARGET), smoke_manifest(action, TARGET, Sample().to_json(), "c" * 64)
    templates = {t["name"]: t for t in smoke["spec"]["templates"]}
    assert list(templates) == ["validate-data", "train", "evaluate", "main"]
    full_templates = {t["name"]: t for t in full["spec"]["templates"]}
    for name in ("validate-data", "train", "evaluate"):
        env = templates[name]["script"].pop("env")
        assert {"name": SAMPLE_ENV, "value": Sample().to_json()} in env
        full_env = full_templates[name]["script"].pop("env")
        assert [e for e in env if e["name"] != SAMPLE_ENV] == full_env
        assert templates[name] == full_templates[name]
    tasks = {t["name"]: t for t in templates["main"]["dag"]["tasks"]}
    assert list(tasks) == ["validate-data", "train", "evaluate"]
    full_tasks = {t["name"]: t for t in full_templates["main"]["dag"]["tasks"]}
    assert tasks["train"] == full_tasks["train"] and tasks["evaluate"] == full_tasks["evaluate"]
    reference = {p["name"]: p["value"] for p in tasks["validate-data"]["arguments"]["parameters"]}
    assert reference["reference_sha256"] == "c" * 64
    assert smoke["metadata"]["labels"]["releasectl.dev/tier"] == "smoke"
    assert "releasectl.dev/tier" not in full["metadata"]["labels"]


def test_a_smoke_manifest_needs_a_training_deploy() -> None:
    with pytest.raises(ValueError, match="a smoke run trains"):
        smoke_manifest(_action().model_copy(update={"artifact": "sha256:" + "d" * 64}), TARGET, Sample().to_json())


# -- a run's verdict -----------------------------------------------------------------------------

BASE = PinCheck("environments/dev/m.yaml", "dev", "m", "1.0.0", "error")


def _verdict(verdict: str, reason: str = "") -> dict[str, str]:
    return {"verdict": json.dumps({"verdict": verdict, "reason": reason})}


def _run(phase: str, **nodes: Node) -> WorkflowRun:
    return WorkflowRun(name="rc-dev-m-1", phase=phase, nodes={n.name: n for n in nodes.values()})


OK = _verdict("Succeeded")
VALIDATED = Node("validate-data", "validate-data", "Succeeded", outputs={**OK, "report": '{"sample": {"rows": 40}}'})
TRAINED = Node("train", "train", "Succeeded", outputs=OK)
GATES = json.dumps(
    [
        {"metric": "accuracy", "op": ">=", "threshold": 0.9, "value": 0.92, "passed": True, "kind": "gate"},
        {"metric": "roc_auc", "op": ">=", "threshold": 0.85, "value": 0.99, "passed": True, "kind": "gate"},
    ]
)
EVALUATED = Node(
    "evaluate",
    "evaluate",
    "Succeeded",
    outputs={**OK, "metrics": '{"accuracy": 0.92, "roc_auc": 0.99}', "gates": GATES},
)


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        pytest.param(_run("Succeeded", v=VALIDATED, t=TRAINED, e=EVALUATED), ("passed", None, ""), id="passed"),
        pytest.param(
            _run(
                "Failed",
                v=VALIDATED,
                t=Node("train", "train", "Failed", "x", 2, outputs=_verdict("Failed", "recipe r: bad")),
                e=Node("evaluate", "evaluate", "Omitted"),
            ),
            ("failed", "train", "recipe r: bad"),
            id="a-check-said-no",
        ),
        pytest.param(
            _run(
                "Failed",
                v=Node(
                    "validate-data", "validate-data", "Failed", "x", 1, outputs=_verdict("Errored", "KeyError: 'a'")
                ),
            ),
            ("failed", "validate-data", "KeyError: 'a'"),
            id="the-step-crashed",
        ),
        pytest.param(
            _run("Error", v=VALIDATED, t=Node("train", "train", "Error", "the warm worker died")),
            ("error", "train", "the warm worker died"),
            id="no-verdict-is-a-runtime-error",
        ),
        pytest.param(
            _run("Running", v=VALIDATED, t=Node("train", "train", "Running")),
            ("error", "train", "did not finish within the smoke timeout"),
            id="timeout",
        ),
    ],
)
def test_fold(run: WorkflowRun, expected: tuple[str, str | None, str]) -> None:
    check = fold(BASE, run, ["roc_auc", "accuracy"], ["accuracy"])
    assert (check.result, check.step, check.reason) == expected


def test_fold_judges_gates_on_the_sample_in_the_pins_order() -> None:
    check = fold(BASE, _run("Succeeded", v=VALIDATED, t=TRAINED, e=EVALUATED), ["roc_auc", "accuracy"], ["accuracy"])
    assert [(g.metric, g.risk) for g in check.gates] == [("roc_auc", "ok"), ("accuracy", "near")]
    assert [g.metric for g in check.at_risk] == ["accuracy"]
    assert check.sample == {"rows": 40}
    assert check.unchecked == ("max_regression.accuracy (no live version in the smoke tier)",)


@pytest.mark.parametrize(
    ("results", "at_risk", "fail_at_risk", "code"),
    [
        pytest.param([], False, False, 0, id="nothing"),
        pytest.param(["passed"], False, False, 0, id="passed"),
        pytest.param(["passed"], True, False, 0, id="at-risk-reported-only"),
        pytest.param(["passed"], True, True, 1, id="at-risk-counts-when-asked"),
        pytest.param(["passed", "failed"], False, False, 1, id="failed"),
        pytest.param(["passed", "error"], False, False, 3, id="error"),
        pytest.param(["error", "failed"], False, False, 1, id="failed-wins-over-error"),
    ],
)
def test_exit_code(results: list[str], at_risk: bool, fail_at_risk: bool, code: int) -> None:
    from controller.core.smoke import GateOnSample

    gates = (GateOnSample("accuracy", ">=", 0.9, 0.91, "near"),) if at_risk else ()
    checks = tuple(PinCheck(f"p{i}", "dev", "m", "1.0.0", r, gates=gates) for i, r in enumerate(results))  # type: ignore[arg-type]
    assert SmokeReport("a" * 40, "main", "b" * 40, checks).exit_code(fail_at_risk) == code
