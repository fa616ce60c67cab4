"""validate-data (schema, digest, drift) and evaluate (metrics, gates, regression, gates-failed)."""

import json

import numpy as np
import pytest
from step_support import Place, Trainer

from workflows import datasets
from workflows.steps.common import CheckFailed
from workflows.steps.evaluate import evaluate, gates_failed
from workflows.steps.validate_data import psi, validate_data

BC = "breast-cancer"


def _csv_with(place: Place, name: str, change: str) -> str:
    """A custom snapshot of breast-cancer registered in the catalog; its sha256."""
    data = datasets.load(place.data, BC, datasets.builtin_digest(BC))
    X, y = data.X.copy(), data.y.copy()
    if change == "shift":
        X[:, 0] = X[:, 0] * 1.5
    elif change == "resample":
        rows = np.random.default_rng(1).choice(len(y), size=len(y), replace=True)
        X, y = X[rows], y[rows]
    elif change == "nan":
        X[3, 2] = np.nan
        X[4, 2] = np.inf
    elif change == "one-class":
        X, y = X[y == 1], y[y == 1]
    elif change == "few-rows":
        X, y = np.concatenate([X[y == 0][:5], X[y == 1][:5]]), np.array([0] * 5 + [1] * 5)
    elif change == "rename":
        return datasets.register(place.data, name, datasets.to_csv(["x" + f for f in data.feature_names], X, y))
    return datasets.register(place.data, name, datasets.to_csv(data.feature_names, X, y))


def test_validate_ok_report(place: Place) -> None:
    sha = datasets.builtin_digest(BC)
    report = json.loads(validate_data(BC, sha, place.data_uri))
    assert report == {
        "dataset": BC,
        "sha256": sha,
        "rows": 569,
        "features": 30,
        "classes": 2,
        "psi_max": None,
        "psi_feature": None,
        "reference": None,
    }


def test_validate_digest_mismatch_exits_2(place: Place, capsys: pytest.CaptureFixture[str]) -> None:
    sha = datasets.materialize(place.data, "wine")
    with pytest.raises(SystemExit) as info:
        validate_data("wine", "f" * 64, place.data_uri)
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("releasectl-check-failed: dataset wine: no snapshot")
    assert sha != "f" * 64


def test_drift_above_threshold_names_feature_psi_and_threshold(place: Place) -> None:
    reference = datasets.builtin_digest(BC)
    shifted = _csv_with(place, BC, "shift")
    with pytest.raises(CheckFailed) as info:
        validate_data.__wrapped__(BC, shifted, place.data_uri, reference, 0.25)  # type: ignore[attr-defined]
    message = str(info.value)
    assert message.startswith(f"dataset {BC}: feature 'mean radius' drifted from the reference snapshot: PSI ")
    assert message.endswith(" > 0.25")
    assert float(message.split("PSI ")[1].split(" ", maxsplit=1)[0]) > 0.25


def test_small_drift_passes_and_is_reported(place: Place) -> None:
    reference = datasets.builtin_digest(BC)
    resampled = _csv_with(place, BC, "resample")
    report = json.loads(validate_data(BC, resampled, place.data_uri, reference, 0.25))
    assert report["reference"] == reference
    assert 0 < report["psi_max"] <= 0.25
    assert report["psi_feature"] in datasets.load(place.data, BC, reference).feature_names
    same = json.loads(validate_data(BC, reference, place.data_uri, reference, 0.25))
    assert same["psi_max"] is None  # the same snapshot: nothing to compare


def test_psi_of_identical_samples_is_zero_and_grows_with_shift() -> None:
    values = np.random.default_rng(0).normal(size=1000)
    assert psi(values, values) == pytest.approx(0.0)
    assert psi(values, values + 0.1) < psi(values, values + 1.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("nan", "feature 'mean perimeter' has 2 missing or non-finite values (2 in all)"),
        ("one-class", "the target has 1 class; at least 2 are needed"),
        ("few-rows", "10 rows, at least 20 are needed"),
    ],
)
def test_schema_and_completeness(place: Place, change: str, message: str) -> None:
    name = f"bc-{change}"
    sha = _csv_with(place, name, change)
    with pytest.raises(CheckFailed) as info:
        validate_data.__wrapped__(name, sha, place.data_uri)  # type: ignore[attr-defined]
    assert str(info.value) == f"dataset {name}: {message}"


def test_reference_with_other_features_is_refused(place: Place) -> None:
    renamed = _csv_with(place, BC, "rename")
    with pytest.raises(CheckFailed, match="features differ from the reference snapshot"):
        validate_data.__wrapped__(BC, renamed, place.data_uri, datasets.builtin_digest(BC))  # type: ignore[attr-defined]


def _evaluate(
    place: Place,
    artifact: str,
    gates: dict[str, str],
    regression: dict[str, float] | None = None,
    live: str = "",
    dataset: str = BC,
) -> tuple[dict[str, float], list[dict[str, object]], str, str]:
    metrics, gate_list, passed, echoed = evaluate(
        artifact,
        dataset,
        datasets.builtin_digest(dataset),
        place.data_uri,
        place.store_uri,
        json.dumps({"seed": 7}),
        json.dumps(gates),
        json.dumps(regression or {}),
        live,
    )
    return json.loads(metrics), json.loads(gate_list), passed, echoed


def test_evaluate_metrics_and_gates(place: Place, trained: Trainer) -> None:
    artifact = trained()
    metrics, gates, passed, echoed = _evaluate(place, artifact, {"roc_auc": ">= 0.95", "accuracy": ">= 0.999"})
    assert echoed == artifact
    assert set(metrics) == {
        "accuracy",
        "balanced_accuracy",
        "f1_macro",
        "roc_auc",
        "log_loss",
        "p50_latency_ms",
        "p95_latency_ms",
        "recall",
    }
    assert metrics["roc_auc"] > 0.95 and 0 < metrics["accuracy"] < 0.999
    assert 0 < metrics["p50_latency_ms"] <= metrics["p95_latency_ms"]
    assert gates == [
        {
            "metric": "roc_auc",
            "op": ">=",
            "threshold": 0.95,
            "value": metrics["roc_auc"],
            "passed": True,
            "kind": "gate",
        },
        {
            "metric": "accuracy",
            "op": ">=",
            "threshold": 0.999,
            "value": metrics["accuracy"],
            "passed": False,
            "kind": "gate",
        },
    ]
    assert passed == "false"
    with pytest.raises(CheckFailed) as info:
        gates_failed.__wrapped__(json.dumps(gates))  # type: ignore[attr-defined]
    assert str(info.value) == f"gate accuracy >= 0.999 failed with {metrics['accuracy']:.4g}"


def test_evaluate_multiclass(place: Place, trained: Trainer) -> None:
    artifact = trained("wine", "random-forest", n_estimators=5)
    metrics, gates, passed, _ = _evaluate(place, artifact, {"roc_auc": ">= 0.8"}, dataset="wine")
    assert 0.8 <= metrics["roc_auc"] <= 1.0
    assert passed == "true" and gates[0]["passed"] is True


def test_regression_against_the_live_version(place: Place, trained: Trainer) -> None:
    live = trained()  # logistic regression: roc_auc ~0.998
    weak = trained(recipe="gradient-boosting", version="1.1.0", n_estimators=1, max_depth=1)
    live_metrics, _, _, _ = _evaluate(place, live, {})
    metrics, gates, passed, _ = _evaluate(place, weak, {}, {"roc_auc": 0.01, "log_loss": 0.05}, live=live)
    assert passed == "false"
    assert gates == [
        {
            "metric": "roc_auc",
            "op": ">=",
            "threshold": round(live_metrics["roc_auc"] - 0.01, 6),
            "value": metrics["roc_auc"],
            "passed": False,
            "kind": "regression",
        },
        {
            "metric": "log_loss",
            "op": "<=",
            "threshold": round(live_metrics["log_loss"] + 0.05, 6),
            "value": metrics["log_loss"],
            "passed": False,
            "kind": "regression",
        },
    ]
    with pytest.raises(CheckFailed, match=r"^regression check roc_auc >= 0\.9\d+ failed with 0\.\d+; regression"):
        gates_failed.__wrapped__(json.dumps(gates))  # type: ignore[attr-defined]
    # The same artifact as live, or no live version: no regression checks.
    assert _evaluate(place, live, {}, {"roc_auc": 0.0}, live=live)[1:3] == ([], "true")


def test_missing_metric_and_bad_gate(place: Place, trained: Trainer) -> None:
    artifact = trained()
    _, gates, passed, _ = _evaluate(place, artifact, {"auc_pr": ">= 0.5"})
    assert gates[0]["value"] is None and passed == "false"
    with pytest.raises(CheckFailed, match=r'gate roc_auc: "about 0.9" is not "<op> <number>"|is not "<op> <number>"'):
        evaluate.__wrapped__(
            artifact,
            BC,
            datasets.builtin_digest(BC),
            place.data_uri,
            place.store_uri,  # type: ignore[attr-defined]
            '{"seed": 7}',
            '{"roc_auc": "about 0.9"}',
            "{}",
        )


def test_evaluate_refuses_an_artifact_trained_on_other_data(place: Place, trained: Trainer) -> None:
    wine = trained("wine", "logistic-regression")
    with pytest.raises(CheckFailed, match="the artifact expects 13 features, the dataset has 30"):
        evaluate.__wrapped__(
            wine,
            BC,
            datasets.builtin_digest(BC),
            place.data_uri,
            place.store_uri,  # type: ignore[attr-defined]
            '{"seed": 7}',
            "{}",
            "{}",
        )
