"""Fixtures for the Argo executor's tests: the contract, the loopback Argo Server double, executors.

A test that leaves a request, an answer or a submitted workflow that does not conform to
../shared/argo/v4.1.2 fails at teardown, naming each violation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.adapters.argo import ArgoExecutor, Connection, TokenSource
from controller.core.models import Action, ActionKind, ModelPin
from controller.core.schemas import load_yaml
from tests.argo.contract import Swagger, swagger
from tests.argo.double import TOKEN, ArgoDouble
from tests.argo.engine import runner
from tests.argo.pods import ScriptedPods
from workflows.builders import manifest
from workflows.target import Target

NAMESPACE = "releasectl"
SOURCE = "0123456789abcdef0123456789abcdef01234567"
PIN = ModelPin.model_validate(
    load_yaml(b"""
apiVersion: releasectl/v1
kind: ModelPin
model: tumor-classifier
version: 1.0.0
owner: ml-platform@example.com
training:
  recipe: logistic-regression
  dataset: {name: breast-cancer, sha256: 75a1d74a59df9cb0a78ecc0a36085bf8a85239557f178d3b8d758e88b26416e1}
  params: {C: 1.0, max_iter: 200, seed: 7}
evaluation:
  gates: {roc_auc: ">= 0.95", accuracy: ">= 0.90"}
deployment:
  strategy: direct
""")
)


def action(environment: str = "dev", source: str = SOURCE, **extra: Any) -> Action:
    return Action(
        kind=extra.pop("kind", ActionKind.DEPLOY),
        environment=environment,
        model=PIN.model,
        version=PIN.version,
        source_commit=source,
        spec_digest=PIN.spec_digest(),
        pin=extra.pop("pin", PIN),
        **extra,
    )


def target(root: Path, **extra: Any) -> Target:
    for sub in ("store", "data", "serving"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return Target(
        store_uri=(root / "store").as_uri(),
        data_uri=(root / "data").as_uri(),
        serving_uri=(root / "serving").as_uri(),
        namespace=NAMESPACE,
        **extra,
    )


def compiled(root: Path, act: Action | None = None) -> dict[str, Any]:
    return manifest(act or action(), target(root))


@pytest.fixture(scope="session")
def contract() -> Swagger:
    return swagger()


@pytest.fixture
def pods() -> ScriptedPods:
    return ScriptedPods()


@pytest.fixture
def double(contract: Swagger, pods: ScriptedPods) -> Iterator[ArgoDouble]:
    server = ArgoDouble(contract, keepalive_s=0.2)
    server.runner = runner(pods)
    server.start()
    yield server
    for pod_gate in pods.hold.values():
        pod_gate.set()
    server.close()
    assert server.violations == [], "\n".join(server.violations)


Factory = Callable[..., ArgoExecutor]


@pytest.fixture
def make_executor(double: ArgoDouble) -> Iterator[Factory]:
    made: list[ArgoExecutor] = []

    def make(token: str | None = TOKEN, url: str | None = None, log: Any = None, **kwargs: Any) -> ArgoExecutor:
        source = TokenSource("ARGO_TOKEN", value=token) if token else TokenSource("no token")
        connection = Connection(url or double.url, NAMESPACE, source, request_timeout_s=5)
        kwargs.setdefault("poll_interval_s", 0.2)
        kwargs.setdefault("read_timeout_s", 5)
        executor = ArgoExecutor(connection, log=log or (lambda _line: None), **kwargs)
        made.append(executor)
        return executor

    yield make
    for executor in made:
        executor.close()
