"""End to end under Argo's own parameter passing: the double runs every pod's command on this machine.

The real compiled manifests (workflows/builders.py) go through the ArgoExecutor to the Argo double,
whose engine runs each DAG task in dependency order (depends and when as Argo decides them) as a
process: the template's command and args with this project's Python in place of the image, the
`{{inputs.parameters}}` JSON written to a file appended to the args, the template's env with
Hera's outputs folder mapped to the pod's own, outputs read from their declared valueFrom.path,
and the next task's arguments substituted from those outputs. Real training on breast-cancer.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.core.contract import OUT_ARTIFACT, OUT_VERDICT
from controller.core.models import Phase
from controller.core.outcomes import fold
from controller.ports import SKIPPED, SUCCEEDED
from tests.argo.conftest import NAMESPACE, Factory, action, target
from tests.argo.contract import Swagger
from tests.argo.double import ArgoDouble
from tests.argo.engine import runner
from tests.argo.pods import ProcessPods
from workflows.builders import manifest

pytestmark = pytest.mark.slow


@pytest.fixture
def pods(tmp_path: Path) -> ProcessPods:  # type: ignore[override]
    return ProcessPods(tmp_path / "pods")


@pytest.fixture
def double(contract: Swagger, pods: ProcessPods) -> Iterator[ArgoDouble]:
    server = ArgoDouble(contract, keepalive_s=0.5)
    server.runner = runner(pods)
    server.start()
    yield server
    server.close()
    assert server.violations == [], "\n".join(server.violations)


def test_compiled_manifests_run_under_argo_parameter_passing(
    tmp_path: Path, double: ArgoDouble, pods: ProcessPods, make_executor: Factory
) -> None:
    executor = make_executor()
    where = target(tmp_path / "site")

    # 1. deploy with training: validate-data -> train -> evaluate -> deploy (gates-failed skipped)
    first = action()
    name = executor.submit(manifest(first, where))
    assert executor.wait_for_finished([name], 300)
    run = executor.get(name)
    assert run is not None and run.phase == SUCCEEDED, run
    assert {t: n.phase for t, n in run.nodes.items()} == {
        "validate-data": SUCCEEDED,
        "train": SUCCEEDED,
        "evaluate": SUCCEEDED,
        "deploy": SUCCEEDED,
        "gates-failed": SKIPPED,
    }
    artifact = run.nodes["train"].outputs[OUT_ARTIFACT]
    assert artifact.startswith("sha256:") and len(artifact) == 71
    # Argo passed train's output into evaluate's and deploy's arguments
    assert run.nodes["evaluate"].outputs[OUT_ARTIFACT] == artifact == run.nodes["deploy"].outputs[OUT_ARTIFACT]
    assert all(
        json.loads(n.outputs[OUT_VERDICT])["verdict"] == "Succeeded"
        for t, n in run.nodes.items()
        if t != "gates-failed"
    )
    store_file = tmp_path / "site" / "store" / "sha256" / f"{artifact.removeprefix('sha256:')}.skops"
    assert store_file.is_file()
    outcome = fold(first, run, executor.name)
    assert outcome.phase is Phase.DEPLOYED, outcome.reason
    assert outcome.artifact == artifact
    assert outcome.metrics["roc_auc"] >= 0.95 and outcome.metrics["accuracy"] >= 0.9
    assert [g.passed for g in outcome.gates] == [True, True]

    # each pod ran the template's own command with this Python and the staged script appended
    assert len(pods.commands) == 4
    for argv in pods.commands:
        assert argv[:4] == [sys.executable, "-m", "hera.workflows.runner", "-e"]
        assert argv[4].startswith("workflows.steps.") and Path(argv[5]).name == "script"
    staged = json.loads(Path(pods.commands[1][5]).read_text())  # train's {{inputs.parameters}}
    assert {p["name"]: p["value"] for p in staged}["recipe"] == "logistic-regression"

    # 2. the deploy-existing path with gates that fail: evaluate says passed=false, `when` picks gates-failed
    strict = first.pin.model_copy(  # type: ignore[union-attr]
        update={"evaluation": first.pin.evaluation.model_copy(update={"gates": {"roc_auc": ">= 0.9999"}})}  # type: ignore[union-attr]
    )
    second = action(source="1" * 40, pin=strict, artifact=artifact, environment="staging")
    name2 = executor.submit(manifest(second, where))
    assert executor.wait_for_finished([name2], 300)
    run2 = executor.get(name2)
    assert run2 is not None
    assert {t: n.phase for t, n in run2.nodes.items()} == {
        "validate-data": SUCCEEDED,
        "evaluate": SUCCEEDED,
        "gates-failed": "Failed",
        "deploy": SKIPPED,
    }
    assert run2.phase == "Failed" and run2.nodes["gates-failed"].exit_code == 2
    assert run2.nodes["gates-failed"].message == "Error (exit code 2)"
    said = json.loads(run2.nodes["gates-failed"].outputs[OUT_VERDICT])
    assert said["verdict"] == "Failed" and "roc_auc" in said["reason"]
    outcome2 = fold(second, run2, executor.name)
    assert outcome2.phase is Phase.FAILED
    assert outcome2.reason.startswith("gate roc_auc >= 0.9999 failed with ")
    assert len(pods.commands) == 7
    assert double.count("GET", f"/api/v1/workflow-events/{NAMESPACE}") == 1
