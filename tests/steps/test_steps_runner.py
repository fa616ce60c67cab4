"""The steps under Hera's real runner, as an Argo pod (or the local executor) runs them."""

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

from step_support import SPEC, Place

from controller.core.contract import CHECK_FAILED_EXIT, CHECK_FAILED_PREFIX
from workflows import datasets
from workflows.steps.deploy import deploy
from workflows.steps.validate_data import validate_data

ROOT = Path(__file__).resolve().parents[2]
BC = "breast-cancer"


def run_step(entrypoint: str, inputs: dict[str, str], tmp: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    outputs = tmp / "outputs"
    tmp.mkdir(parents=True)
    args = tmp / "inputs.json"
    args.write_text(json.dumps([{"name": k, "value": v} for k, v in inputs.items()]))
    env = {**os.environ, "hera__outputs_directory": str(outputs), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "hera.workflows.runner", "-e", entrypoint, str(args)],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc, outputs / "parameters"


def test_decorated_steps_keep_their_signature() -> None:
    assert list(inspect.signature(validate_data).parameters) == [
        "dataset",
        "dataset_sha256",
        "data_uri",
        "reference_sha256",
        "max_drift_psi",
        "dataset_uri",
        "dataset_format",
        "target_column",
    ]
    assert inspect.signature(deploy).parameters["data_uri"].default == ""


def test_train_then_evaluate_under_the_runner(shared: Place, tmp_path: Path) -> None:
    sha = datasets.builtin_digest(BC)
    data = {
        "dataset": BC,
        "dataset_sha256": sha,
        "data_uri": shared.data_uri,
        # Argo passes every input (Hera writes the defaults into the template): so do we.
        **dict.fromkeys(["dataset_uri", "dataset_format", "target_column"], ""),
    }
    params = json.dumps({"n_estimators": 5, "max_depth": 2, "seed": 7})
    proc, out = run_step(
        "workflows.steps.train:train",
        {
            "model": "tumor",
            "version": "1.0.0",
            "spec_digest": SPEC,
            "recipe": "gradient-boosting",
            "params": params,
            **data,
            "store_uri": shared.store_uri,
        },
        tmp_path / "train",
    )
    assert proc.returncode == 0, proc.stderr
    assert "trained gradient-boosting on breast-cancer: 426 rows, 30 features in " in proc.stdout
    artifact = (out / "artifact").read_text()
    assert artifact.startswith("sha256:") and len(artifact) == 71
    assert (shared.store / "sha256" / f"{artifact[7:]}.skops").is_file()
    report = json.loads((out / "report").read_text())  # the training's input digests, for the trail
    assert report["artifact"] == artifact and sorted(report["provenance"]) == ["code", "data", "dependencies"]
    assert report["provenance"]["data"] == "sha256:" + sha

    proc, out = run_step(
        "workflows.steps.evaluate:evaluate",
        {
            "artifact": artifact,
            **data,
            "store_uri": shared.store_uri,
            "params": params,
            "gates": json.dumps({"roc_auc": ">= 0.9", "p95_latency_ms": "<= 1000"}),
            "max_regression": "{}",
            "live_artifact": "",
            "slicing": "",
        },
        tmp_path / "evaluate",
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["artifact", "gates", "metrics", "passed", "verdict"]
    assert json.loads((out / "verdict").read_text()) == {"verdict": "Succeeded", "reason": ""}
    assert (out / "artifact").read_text() == artifact
    assert (out / "passed").read_text() == "true"
    assert json.loads((out / "metrics").read_text())["roc_auc"] > 0.9
    assert [g["metric"] for g in json.loads((out / "gates").read_text())] == ["roc_auc", "p95_latency_ms"]


def test_check_failed_exits_2_with_the_reason_last(shared: Place, tmp_path: Path) -> None:
    sha = datasets.materialize(shared.data, "iris")
    (tmp_path / "iris").mkdir()
    (tmp_path / "iris" / f"{sha}.csv").write_bytes(datasets.builtin_bytes("iris").replace(b"5.1", b"5.2", 1))
    proc, out = run_step(
        "workflows.steps.validate_data:validate_data",
        {
            "dataset": "iris",
            "dataset_sha256": sha,
            "data_uri": tmp_path.as_uri(),
            "reference_sha256": "",
            "max_drift_psi": "0.25",
            **dict.fromkeys(["dataset_uri", "dataset_format", "target_column"], ""),
        },
        tmp_path / "validate",
    )
    assert proc.returncode == CHECK_FAILED_EXIT
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{CHECK_FAILED_PREFIX}dataset iris: snapshot file sha256 ")
    assert last.endswith(f" does not match the pin's {sha[:12]}…")
    assert "Traceback" not in proc.stderr
    assert (out / "report").read_text() == ""  # empty output, so Argo keeps our reason
    verdict = json.loads((out / "verdict").read_text())
    assert verdict["verdict"] == "Failed"
    assert verdict["reason"] == last.removeprefix(CHECK_FAILED_PREFIX)


def test_gates_failed_and_a_crash(tmp_path: Path) -> None:
    proc, _ = run_step(
        "workflows.steps.evaluate:gates_failed",
        {
            "gates": json.dumps(
                [
                    {
                        "metric": "roc_auc",
                        "op": ">=",
                        "threshold": 0.99,
                        "value": 0.9712,
                        "passed": False,
                        "kind": "gate",
                    },
                ]
            )
        },
        tmp_path / "gates",
    )
    assert proc.returncode == CHECK_FAILED_EXIT
    assert proc.stderr.strip().splitlines()[-1] == f"{CHECK_FAILED_PREFIX}gate roc_auc >= 0.99 failed with 0.9712"
    proc, out = run_step(
        "workflows.steps.deploy:undeploy",
        {
            "environment": "dev",
            "model": "tumor",
            "serving_uri": "s3://bucket/serving",
            "serving_options": "",
        },
        tmp_path / "undeploy",
    )
    assert proc.returncode == 1
    assert "only file:///absolute/path URIs are supported" in proc.stderr
    assert CHECK_FAILED_PREFIX not in proc.stderr
    verdict = json.loads((out / "verdict").read_text())
    assert verdict["verdict"] == "Errored"
    assert verdict["reason"].startswith("ValueError: serving_uri 's3://bucket/serving': only file:///")
