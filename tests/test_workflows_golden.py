"""The compiled workflows: golden YAML per action kind, Argo's schema (strict too), Hera's models.

`REGENERATE=1 pytest tests/test_workflows_golden.py` (or `make golden`) rewrites the golden files.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hera.workflows.models import Workflow as ArgoWorkflow

from controller.core.models import Action, ActionKind, LiveRef, ModelPin
from controller.core.schemas import load_yaml
from tests.argo_schema import errors
from workflows.builders import build, manifest
from workflows.target import Target, cluster_target

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "golden"
TARGET = Target(
    store_uri="file:///var/lib/releasectl/store",
    data_uri="file:///var/lib/releasectl/data",
    serving_uri="file:///var/lib/releasectl/serving",
)
SOURCE = "0123456789abcdef0123456789abcdef01234567"
IMAGE = "registry.example.com/releasectl/steps:0.1.0"
CLUSTER_S3 = cluster_target("s3://releasectl-artifacts/prod", serving_namespace="models", image=IMAGE)
CLUSTER_VOLUME = cluster_target(
    "file:///mnt/releasectl", serving_namespace="models", image=IMAGE, serving_mode="knative"
)


PROD = ModelPin.model_validate(
    load_yaml(b"""
apiVersion: releasectl/v1
kind: ModelPin
model: tumor-classifier
version: 1.0.0
owner: ml-platform@example.com
training:
  recipe: gradient-boosting
  dataset: {name: breast-cancer, sha256: 75a1d74a59df9cb0a78ecc0a36085bf8a85239557f178d3b8d758e88b26416e1}
  params: {n_estimators: 30, learning_rate: 0.1, max_depth: 2, seed: 7}
evaluation:
  gates: {roc_auc: ">= 0.95", accuracy: ">= 0.90", p95_latency_ms: "<= 50"}
  max_regression: {accuracy: 0.02}
deployment:
  strategy: canary
""")
)
LIVE = LiveRef(
    version="0.9.0",
    spec_digest="sha256:" + "9" * 64,
    artifact="sha256:" + "8" * 64,
    since=datetime(2026, 11, 1, tzinfo=UTC),
    dataset_sha256="7" * 64,
)


def _action(kind: ActionKind, **extra: Any) -> Action:
    return Action(
        kind=kind,
        environment="production",
        model="tumor-classifier",
        version=PROD.version,
        source_commit=SOURCE,
        spec_digest=PROD.spec_digest(),
        pin=PROD,
        **extra,
    )


CASES = {
    "deploy-train": _action(ActionKind.DEPLOY, live=LIVE),
    "deploy-existing-artifact": _action(ActionKind.DEPLOY, artifact="sha256:" + "a" * 64, live=LIVE),
    "rollback": _action(ActionKind.ROLLBACK, artifact="sha256:" + "b" * 64, live=LIVE),
    "remove": _action(ActionKind.REMOVE, live=LIVE),
}
CLUSTER_CASES = {
    "cluster-s3-deploy-train": (CASES["deploy-train"], CLUSTER_S3),
    "cluster-volume-rollback": (CASES["rollback"], CLUSTER_VOLUME),
    "cluster-s3-remove": (CASES["remove"], CLUSTER_S3),
}
ALL = {**{name: (action, TARGET) for name, action in CASES.items()}, **CLUSTER_CASES}


@pytest.mark.parametrize("case", list(ALL))
def test_golden(case: str) -> None:
    text = build(*ALL[case]).to_yaml()
    # Cluster manifests mount volumes, which the local executor does not run: a folder of their own.
    path = GOLDEN / "cluster" / f"{case}.yaml" if case in CLUSTER_CASES else GOLDEN / f"{case}.yaml"
    if os.environ.get("REGENERATE"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"{path} is missing: run `make golden`"
    assert text == path.read_text(), f"{path} is stale: run `make golden` and review the diff"


@pytest.mark.parametrize("case", list(ALL))
@pytest.mark.parametrize("strict", [False, True], ids=["argo-schema", "argo-schema-strict"])
def test_manifest_passes_argos_schema(case: str, strict: bool) -> None:
    assert errors(manifest(*ALL[case]), strict=strict) == []


@pytest.mark.parametrize("case", list(ALL))
def test_manifest_passes_heras_argo_models(case: str) -> None:
    compiled = manifest(*ALL[case])
    assert ArgoWorkflow.model_validate(compiled).metadata.name == ALL[case][0].workflow_name


def _scripts(compiled: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in compiled["spec"]["templates"] if "script" in t]


@pytest.mark.parametrize("case", list(CLUSTER_CASES))
def test_cluster_manifests_name_no_path_of_the_controllers_machine(case: str) -> None:
    action, target = CLUSTER_CASES[case]
    compiled = manifest(action, target)
    text = yaml.safe_dump(compiled)
    assert "/var/lib/releasectl" not in text and str(Path.home()) not in text and str(ROOT) not in text
    uris = [
        p["value"]
        for t in compiled["spec"]["templates"]
        if "dag" in t
        for task in t["dag"]["tasks"]
        for p in task["arguments"]["parameters"]
        if p["name"].endswith("_uri") and p["value"]
    ]
    assert uris  # every step is told where things are...
    if target.volume_path:  # ...on the shared volume, mounted at the same path in every pod
        assert all(u.startswith("file:///mnt/releasectl/") or u.startswith("kserve://") for u in uris), uris
        for t in _scripts(compiled):
            mounts = {m["name"]: m["mountPath"] for m in t["script"]["volumeMounts"]}
            assert mounts == {"shared": "/mnt/releasectl", "tmp": "/tmp"}
            claims = {v["name"]: v for v in t["volumes"]}
            assert claims["shared"]["persistentVolumeClaim"] == {"claimName": "releasectl-shared"}
    else:  # ...or in object storage, with the credentials from a Secret
        assert "file://" not in text
        assert all(u.startswith("s3://releasectl-artifacts/prod/") or u.startswith("kserve://") for u in uris), uris
        for t in _scripts(compiled):
            env = {e["name"]: e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") for e in t["script"]["env"]}
            assert env["AWS_ACCESS_KEY_ID"] == env["AWS_SECRET_ACCESS_KEY"] == "releasectl-s3"
    assert compiled["spec"]["serviceAccountName"] == "releasectl-steps"
    for t in _scripts(compiled):
        assert t["script"]["image"] == IMAGE
        assert t["script"]["resources"] == {"limits": {"memory": "4Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}}
        assert t["script"]["securityContext"]["runAsNonRoot"] is True
        assert t["script"]["securityContext"]["readOnlyRootFilesystem"] is True


def test_local_target_keeps_its_file_store_and_the_default_image_is_this_version() -> None:
    compiled = manifest(CASES["deploy-train"], TARGET)
    assert {t["script"]["image"] for t in _scripts(compiled)} == {"ghcr.io/releasectl/steps:0.1.0"}
    assert "file:///var/lib/releasectl/store" in yaml.safe_dump(compiled)


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("/var/lib/releasectl", "must be s3://bucket/prefix or file:///path on a ReadWriteMany volume"),
        ("file://host/share", "must be s3://bucket/prefix or file:///path on a ReadWriteMany volume"),
        ("s3://", "must be s3://bucket/prefix"),
        ("gs://bucket/x", "must be s3://bucket/prefix or file:///path"),
    ],
    ids=["bare-path", "file-with-host", "s3-without-bucket", "other-scheme"],
)
def test_cluster_target_refuses_stores_pods_cannot_reach(store: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cluster_target(store, serving_namespace="models")


def test_strict_schema_catches_a_misspelt_field() -> None:
    compiled = manifest(CASES["rollback"], TARGET)
    compiled["spec"]["entrypoitn"] = compiled["spec"].pop("entrypoint")
    assert errors(compiled) == []  # Argo's published schema lets it through...
    assert any("entrypoitn" in e for e in errors(compiled, strict=True))  # ...the strict variant does not


def test_task_shapes_per_action_kind() -> None:
    def tasks(case: str) -> list[tuple[str, str | None, str | None]]:
        compiled = manifest(CASES[case], TARGET)
        main = next(t for t in compiled["spec"]["templates"] if t["name"] == "main")
        return [(t["name"], t.get("depends"), t.get("when")) for t in main["dag"]["tasks"]]

    passed = "{{tasks.evaluate.outputs.parameters.passed}}"
    assert tasks("deploy-train") == [
        ("validate-data", None, None),
        ("train", "validate-data", None),
        ("evaluate", "train", None),
        ("deploy", "evaluate", f"{passed} == true"),
        ("gates-failed", "evaluate", f"{passed} == false"),
    ]
    assert tasks("deploy-existing-artifact") == [
        ("validate-data", None, None),
        ("evaluate", "validate-data", None),
        ("deploy", "evaluate", f"{passed} == true"),
        ("gates-failed", "evaluate", f"{passed} == false"),
    ]
    assert tasks("rollback") == [("deploy", None, None)]
    assert tasks("remove") == [("undeploy", None, None)]


def test_steps_run_through_heras_runner_with_the_drift_reference_and_live_artifact() -> None:
    compiled = manifest(CASES["deploy-train"], TARGET)
    templates = {t["name"]: t for t in compiled["spec"]["templates"]}
    assert templates["train"]["script"]["command"] == ["python"]
    assert templates["train"]["script"]["args"] == ["-m", "hera.workflows.runner", "-e", "workflows.steps.train:train"]
    main = templates["main"]["dag"]["tasks"]
    args = {t["name"]: {p["name"]: p["value"] for p in t["arguments"]["parameters"]} for t in main}
    assert args["validate-data"]["reference_sha256"] == "7" * 64
    assert args["evaluate"]["live_artifact"] == "sha256:" + "8" * 64
    assert args["evaluate"]["artifact"] == "{{tasks.train.outputs.parameters.artifact}}"
    assert args["deploy"]["strategy"] == "canary"
    assert yaml.safe_load(args["deploy"]["canary"]) == {
        "steps": [10, 50, 100],
        "max_error_rate": 0.01,
        "requests_per_step": 200,
    }
    assert compiled["metadata"]["labels"] == {
        "releasectl.dev/environment": "production",
        "releasectl.dev/model": "tumor-classifier",
        "releasectl.dev/action": "deploy",
        "releasectl.dev/version": "1.0.0",
        "releasectl.dev/managed-by": "releasectl",
    }
    assert compiled["metadata"]["annotations"]["releasectl.dev/attempt"] == "0"
    verdicts = {t["name"]: t["outputs"]["parameters"][0] for t in compiled["spec"]["templates"] if "script" in t}
    assert set(verdicts) == {"validate-data", "train", "evaluate", "gates-failed", "deploy"}
    assert all(
        v == {"name": "verdict", "valueFrom": {"path": "/tmp/hera-outputs/parameters/verdict", "default": ""}}
        for v in verdicts.values()
    )


def test_record_only_actions_have_no_workflow() -> None:
    with pytest.raises(ValueError, match="block actions are recorded, not run"):
        build(_action(ActionKind.BLOCK), TARGET)


def test_building_a_manifest_imports_no_training_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import workflows.builders; "
        "print(sorted(m for m in ('sklearn', 'skops', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_workflow_code_never_submits() -> None:
    """Builders return Workflows; nothing under workflows/ talks to an Argo Server."""
    import ast

    for path in sorted((ROOT / "workflows").rglob("*.py")):
        tree = ast.parse(path.read_text())
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom | ast.Import) for a in n.names}
        calls = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
        assert "WorkflowsService" not in names, path
        assert not {"create", "submit", "create_workflow"} & calls, path
