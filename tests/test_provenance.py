"""Reproducibility: deterministic skops bytes, the recorded inputs, and what a mismatch names."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
import skops.io
from sklearn.datasets import load_wine

from workflows import provenance, recipes, store

WINE_X, WINE_Y = load_wine(return_X_y=True)
RECIPES = {
    "gradient-boosting": {"n_estimators": 10, "max_depth": 2, "subsample": 0.8, "seed": 3},
    "random-forest": {"n_estimators": 10, "max_depth": 3, "seed": 3},
    "logistic-regression": {"C": 0.5, "max_iter": 500, "seed": 3},
}


def _fit(recipe: str) -> Any:
    return recipes.build(recipe, dict(RECIPES[recipe])).fit(WINE_X, WINE_Y)


def test_plain_skops_bytes_are_not_deterministic() -> None:
    # The reason for provenance.canonical: skops names array files by id() and records id()s.
    a, b = _fit("random-forest"), _fit("random-forest")
    assert skops.io.dumps(a) != skops.io.dumps(b)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_every_built_in_recipe_trains_to_the_same_bytes_for_a_seed(recipe: str) -> None:
    first, second = provenance.canonical_dumps(_fit(recipe)), provenance.canonical_dumps(_fit(recipe))
    assert first == second
    loaded = skops.io.loads(first, trusted=skops.io.get_untrusted_types(data=first))
    assert (loaded.predict_proba(WINE_X) == _fit(recipe).predict_proba(WINE_X)).all()
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}


def test_a_different_seed_gives_different_bytes() -> None:
    other = recipes.build("random-forest", {**RECIPES["random-forest"], "seed": 4}).fit(WINE_X, WINE_Y)
    assert provenance.canonical_dumps(other) != provenance.canonical_dumps(_fit("random-forest"))


def test_the_store_names_an_artifact_by_its_canonical_bytes(tmp_path: Path) -> None:
    artifact = store.put(tmp_path, _fit("logistic-regression"), {})
    again = store.put(tmp_path, _fit("logistic-regression"), {})
    assert artifact == again
    expected = hashlib.sha256(provenance.canonical_dumps(_fit("logistic-regression"))).hexdigest()
    assert artifact == f"sha256:{expected}"


def _write_dist(site: Path, name: str, version: str) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def test_dependencies_are_canonical_sorted_and_the_first_on_the_path_wins(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    _write_dist(first, "Tiny_Probe", "2.0")
    _write_dist(second, "tiny.probe", "1.0")
    _write_dist(second, "another-one", "0.1")
    assert provenance.dependencies([str(first), str(second)]) == ["another-one==0.1", "tiny-probe==2.0"]


def _meta(deps: list[str], *, code: str = "c1", data: str = "d" * 64, params: Any = None) -> dict[str, Any]:
    parts = {"recipe_function": code, "recipe_module": "m", "steps": "s", "releasectl": "0.1.0"}
    return {
        "params": params if params is not None else {"seed": 1},
        "provenance": {
            "dependencies": deps,
            "dependencies_digest": hashlib.sha256("\n".join(deps).encode()).hexdigest(),
            "code": parts,
            "code_digest": hashlib.sha256(repr(sorted(parts.items())).encode()).hexdigest(),
            "data_digest": "sha256:" + data,
        },
    }


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (_meta(["numpy==2.0.0", "scikit-learn==1.9.1"]), []),
        (
            _meta(["numpy==2.0.0", "scikit-learn==1.9.2"]),
            [{"input": "dependency", "name": "scikit-learn", "recorded": "1.9.1", "now": "1.9.2"}],
        ),
        (
            _meta(["numpy==2.0.0", "scikit-learn==1.9.1", "tiny-probe==1.0"]),
            [{"input": "dependency", "name": "tiny-probe", "recorded": "not installed", "now": "1.0"}],
        ),
        (
            _meta(["numpy==2.0.0", "scikit-learn==1.9.1"], code="c2"),
            [{"input": "code", "name": "recipe_function", "recorded": "c1", "now": "c2"}],
        ),
        (
            _meta(["numpy==2.0.0", "scikit-learn==1.9.1"], data="e" * 64),
            [{"input": "data", "name": "dataset", "recorded": "sha256:" + "d" * 64, "now": "sha256:" + "e" * 64}],
        ),
        (
            _meta(["numpy==2.0.0", "scikit-learn==1.9.1"], params={"seed": 2}),
            [{"input": "params", "name": "params", "recorded": '{"seed":1}', "now": '{"seed":2}'}],
        ),
    ],
    ids=["same", "version-changed", "added", "code", "data", "params"],
)
def test_a_mismatch_names_the_input_that_differs(now: dict[str, Any], expected: list[dict[str, str]]) -> None:
    assert provenance.differences(_meta(["numpy==2.0.0", "scikit-learn==1.9.1"]), now) == expected


def test_an_artifact_trained_before_provenance_existed_says_so() -> None:
    assert provenance.differences({"params": {"seed": 1}}, _meta([])) == [
        {"input": "provenance", "name": "provenance", "recorded": "not recorded", "now": "recorded"}
    ]
