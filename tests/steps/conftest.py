"""Fixtures for the step tests: a data catalog, an artifact store and serving folder per test
session, small real models trained once on the built-in datasets, and the loopback Kubernetes
API (tests/kube_double.py) for the KServe target, every InferenceService checked against the CRD."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from step_support import SPEC, Place, Trainer

from tests.kserve_schema import errors
from tests.kube_double import KubeDouble
from workflows import datasets
from workflows.steps.train import train


@pytest.fixture(scope="session")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Place:
    """One catalog and store for the whole session (artifacts are content-addressed)."""
    root = tmp_path_factory.mktemp("shared")
    return Place(root / "data", root / "store", root / "serving")


@pytest.fixture
def place(shared: Place, tmp_path: Path) -> Place:
    """The shared catalog and store, with a serving folder of this test's own."""
    return Place(shared.data, shared.store, tmp_path / "serving")


@pytest.fixture(scope="session")
def trained(shared: Place) -> Trainer:
    """trained(dataset, recipe, version, **params) -> artifact, trained once per session."""
    cache: dict[str, str] = {}

    def run(
        dataset: str = "breast-cancer", recipe: str = "logistic-regression", version: str = "1.0.0", **params: object
    ) -> str:
        params.setdefault("seed", 7)
        key = json.dumps([dataset, recipe, version, params], sort_keys=True)
        if key not in cache:
            cache[key], _report = train(
                model="tumor",
                version=version,
                spec_digest=SPEC,
                recipe=recipe,
                params=json.dumps(params),
                dataset=dataset,
                dataset_sha256=datasets.builtin_digest(dataset),
                data_uri=shared.data.as_uri(),
                store_uri=shared.store.as_uri(),
            )
        return cache[key]

    return run


@pytest.fixture
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KubeDouble]:
    with KubeDouble() as double:
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        monkeypatch.setenv("KUBECONFIG", str(double.kubeconfig(tmp_path / "kubeconfig")))
        monkeypatch.setenv("hera__outputs_directory", str(tmp_path / "outputs"))
        yield double
        for body in double.applied + double.returned:
            assert errors(body) == [], body["metadata"]["name"]
