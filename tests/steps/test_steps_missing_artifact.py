"""An artifact the status trail names but the store lacks: the step says Errored (infrastructure,
retried), never Failed (the user must act), with a reason that names the artifact and the store."""

import json
from pathlib import Path

from step_support import Place
from test_steps_runner import BC, run_step

from controller.core.contract import CHECK_FAILED_EXIT, CHECK_FAILED_PREFIX
from workflows import datasets

MISSING = "sha256:" + "5" * 64


def test_evaluate_and_deploy_of_a_missing_artifact_are_errored(shared: Place, tmp_path: Path) -> None:
    sha = datasets.builtin_digest(BC)
    datasets.materialize(shared.data, BC)
    proc, out = run_step(
        "workflows.steps.evaluate:evaluate",
        {
            "artifact": MISSING,
            "dataset": BC,
            "dataset_sha256": sha,
            "data_uri": shared.data_uri,
            "store_uri": shared.store_uri,
            "params": json.dumps({"seed": 7}),
            "gates": "{}",
            "max_regression": "{}",
            "live_artifact": "",
            **dict.fromkeys(["dataset_uri", "dataset_format", "target_column", "slicing"], ""),
        },
        tmp_path / "evaluate",
    )
    assert proc.returncode not in (0, CHECK_FAILED_EXIT), proc.stderr
    assert CHECK_FAILED_PREFIX not in proc.stderr, proc.stderr
    assert (out / "verdict").is_file(), proc.stderr
    verdict = json.loads((out / "verdict").read_text())
    assert verdict == {
        "verdict": "Errored",
        "reason": f"ArtifactMissing: artifact {MISSING} is not in the artifact store {shared.store}: the status "
        "trail names it, so another controller with its own store built it, or this store lost it (run one "
        "controller per release repo, or share its store)",
    }
    proc, out = run_step(
        "workflows.steps.deploy:deploy",
        {
            "environment": "staging",
            "model": "tumor",
            "version": "1.0.0",
            "artifact": MISSING,
            "spec_digest": "sha256:" + "ab" * 32,
            "strategy": "direct",
            "canary": "{}",
            "store_uri": shared.store_uri,
            "serving_uri": (tmp_path / "serving").as_uri(),
            "data_uri": "",
            "dataset": "",
            "dataset_sha256": "",
            **dict.fromkeys(["dataset_uri", "dataset_format", "target_column", "serving_options", "shadow"], ""),
        },
        tmp_path / "deploy",
    )
    assert proc.returncode not in (0, CHECK_FAILED_EXIT) and CHECK_FAILED_PREFIX not in proc.stderr
    assert json.loads((out / "verdict").read_text())["verdict"] == "Errored"
    assert proc.stderr.strip().splitlines()[-1].startswith(f"workflows.store.ArtifactMissing: artifact {MISSING}")
