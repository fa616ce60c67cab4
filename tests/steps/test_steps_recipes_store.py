"""Recipes build what controller.core.models.RECIPES allows; the skops store is verified and allow-listed."""

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from controller.core import models
from workflows import recipes, store
from workflows.steps import common

EXAMPLES = {
    "gradient-boosting": {"n_estimators": 5, "learning_rate": 0.2, "max_depth": 2, "subsample": 0.9, "seed": 3},
    "random-forest": {"n_estimators": 5, "max_depth": 3, "min_samples_leaf": 2, "seed": 3},
    "logistic-regression": {"C": 0.5, "max_iter": 300, "seed": 3},
}


@pytest.mark.parametrize("recipe", sorted(models.RECIPES))
def test_every_recipe_builds_with_every_allowed_param(recipe: str) -> None:
    params = EXAMPLES[recipe]
    assert set(params) == set(models.RECIPES[recipe])
    estimator = recipes.build(recipe, params)
    settings = estimator.get_params()
    prefix = "model__" if recipe == "logistic-regression" else ""
    for key, value in params.items():
        assert settings[prefix + ("random_state" if key == "seed" else key)] == value
    if recipe == "random-forest":
        assert settings["n_jobs"] == 1
    if recipe == "logistic-regression":
        assert isinstance(estimator, Pipeline) and isinstance(estimator.steps[0][1], StandardScaler)
    X, y = load_iris(return_X_y=True)
    assert set(estimator.fit(X, y).predict(X[:5])) <= {0, 1, 2}


def test_recipe_params_are_checked() -> None:
    with pytest.raises(common.CheckFailed, match=r"unknown recipe 'svm' \(known: gradient-boosting, "):
        recipes.build("svm", {"seed": 1})
    with pytest.raises(common.CheckFailed, match=r"recipe random-forest: unknown params learning_rate \(allowed: "):
        recipes.build("random-forest", {"seed": 1, "learning_rate": 0.1})
    with pytest.raises(common.CheckFailed, match=r"recipe logistic-regression: params\.seed is required"):
        recipes.build("logistic-regression", {"C": 1.0})
    with pytest.raises(common.CheckFailed, match=r"params\.n_estimators must be int, got 2\.5"):
        recipes.build("gradient-boosting", {"seed": 1, "n_estimators": 2.5})
    assert recipes.build("gradient-boosting", {"seed": 1, "n_estimators": 20.0}).n_estimators == 20


def _fitted() -> Pipeline:
    X, y = load_iris(return_X_y=True)
    return recipes.build("random-forest", {"n_estimators": 3, "seed": 1}).fit(X, y)


def test_put_get_roundtrip_is_content_addressed(tmp_path: Path) -> None:
    estimator = _fitted()
    artifact = store.put(tmp_path, estimator, {"model": "iris-model", "version": "1.0.0"})
    hexdigest = artifact.removeprefix("sha256:")
    model_file = tmp_path / "sha256" / f"{hexdigest}.skops"
    assert hashlib.sha256(model_file.read_bytes()).hexdigest() == hexdigest
    assert model_file.read_bytes()[:2] == b"PK"  # a skops zip, not a pickle
    meta = json.loads((tmp_path / "sha256" / f"{hexdigest}.json").read_text())
    assert meta == store.meta(tmp_path, artifact)
    assert meta["model"] == "iris-model" and meta["n_features"] == 4 and meta["classes"] == [0, 1, 2]
    loaded = store.get(tmp_path, artifact)
    X, _ = load_iris(return_X_y=True)
    assert np.array_equal(loaded.predict(X), estimator.predict(X))
    assert sorted(p.suffix for p in (tmp_path / "sha256").iterdir()) == [".json", ".skops"]


def test_get_refuses_tampered_and_missing_artifacts(tmp_path: Path) -> None:
    artifact = store.put(tmp_path, _fitted(), {})
    path, _ = store.paths(tmp_path, artifact)
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(common.CheckFailed, match=r"stored bytes hash to sha256 .*; the store is corrupt"):
        store.get(tmp_path, artifact)
    with pytest.raises(store.ArtifactMissing, match="is not in the artifact store") as missing:
        store.get(tmp_path, "sha256:" + "0" * 64)  # infrastructure (Errored), not a check that said no (Failed)
    assert not isinstance(missing.value, common.CheckFailed)
    with pytest.raises(common.CheckFailed, match="is not a digest of the form sha256:<64 hex>"):
        store.get(tmp_path, "sha256:../../x")


def test_types_outside_the_allow_list_are_refused(tmp_path: Path) -> None:
    estimator = FunctionTransformer(math.sqrt)  # a function outside the allow-list
    artifact = store.put(tmp_path, estimator, {})
    with pytest.raises(common.CheckFailed, match=r"refusing to load types outside the allow-list: math\.sqrt"):
        store.get(tmp_path, artifact)


def test_file_uris_only() -> None:
    assert common.path_from_uri("file:///srv/data%20set") == Path("/srv/data set")
    with pytest.raises(ValueError, match="only file:///absolute/path URIs are supported"):
        common.path_from_uri("s3://bucket/data")
    with pytest.raises(ValueError, match="must not name a host"):
        common.path_from_uri("file://example.com/data")
