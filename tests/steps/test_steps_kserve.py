"""The KServe target against a loopback Kubernetes API (tests/kube_double.py): apply, canary steps,
promotion, rollback, the Standard-mode refusal and the Ready deadline. Every InferenceService the
code sends, and every one the double answers, validates against KServe's CRD schema (strict)."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from step_support import Place, Trainer

from tests.kserve_schema import errors
from tests.kube_double import KubeDouble
from workflows import datasets
from workflows.steps.common import CheckFailed
from workflows.steps.deploy import deploy, undeploy
from workflows.targets import kserve, rollout

BC = "breast-cancer"
IMAGE = "registry.example.com/releasectl/steps:0.1.0"


def options(place: Place, mode: str = "standard", **extra: Any) -> str:
    return json.dumps({"image": IMAGE, "mode": mode, "service_account": "releasectl-steps", "poll_s": 0.01, **extra})


def opts(place: Place, mode: str = "Knative", **extra: Any) -> kserve.Options:
    return kserve.Options(namespace="models", image=IMAGE, store_uri=place.store_uri, mode=mode, poll_s=0.01, **extra)


def rows() -> np.ndarray:
    """Rows of the dataset the good artifacts were trained on (30 features)."""
    return np.asarray(datasets.BUILTINS[BC]().data[:40], dtype=np.float64)


def percents(double: KubeDouble) -> list[int | None]:
    return [b["spec"]["predictor"].get("canaryTrafficPercent") for b in double.applied]


def step(
    place: Place, artifact: str, version: str, strategy: str, mode: str = "standard", **extra: Any
) -> dict[str, Any]:
    _, report = deploy(
        environment="production", model="tumor", version=version, artifact=artifact, spec_digest="",
        strategy=strategy, canary=json.dumps({"steps": [10, 50, 100], "requests_per_step": 20}),
        store_uri=place.store_uri, serving_uri="kserve://models", data_uri=place.data_uri, dataset=BC,
        dataset_sha256=datasets.builtin_digest(BC), dataset_uri="", dataset_format="", target_column="",
        serving_options=options(place, mode, **extra),
    )  # fmt: skip
    loaded: dict[str, Any] = json.loads(report)
    return loaded


def test_the_deploy_step_applies_an_inference_service_and_checks_its_health(
    kube: KubeDouble, place: Place, trained: Trainer
) -> None:
    artifact = trained(BC)
    report = step(place, artifact, "1.0.0", "direct")
    assert report["inference_service"] == "models/production-tumor" and report["mode"] == "Standard"
    assert report["previous_version"] is None and report["health"] == "ok"
    (body,) = kube.applied
    assert body["metadata"]["annotations"] == {
        "serving.kserve.io/deploymentMode": "Standard",
        "releasectl.dev/artifact": artifact,
    }
    container = body["spec"]["predictor"]["containers"][0]
    assert container["image"] == IMAGE and container["command"] == ["python", "-m", "workflows.predictor"]
    assert container["args"] == [
        "--model", "tumor", "--version", "1.0.0", "--artifact", artifact, "--store-uri", place.store_uri,
        "--port", "8080",
    ]  # fmt: skip
    assert body["spec"]["predictor"]["serviceAccountName"] == "releasectl-steps"
    assert "canaryTrafficPercent" not in body["spec"]["predictor"]
    applies = [e for e in kube.log if e["kind"] == "isvc" and e["method"] == "PATCH"]
    assert [(e["content_type"], e["status"]) for e in applies] == [("application/apply-patch+yaml", 200)]
    assert "fieldManager=releasectl" in applies[0]["path"] and "force=true" in applies[0]["path"]
    assert applies[0]["authorization"] == "Bearer test-token"
    # Deploying the same artifact again applies nothing: it is live; the health check still runs.
    again = step(place, artifact, "1.0.0", "direct")
    assert again["already_live"] is True and len(kube.applied) == 1


def test_canary_steps_then_promotion_by_removing_the_field(kube: KubeDouble, place: Place, trained: Trainer) -> None:
    first, second = trained(BC), trained(BC, version="2.0.0", C=0.5)
    step(place, first, "1.0.0", "canary", mode="knative")  # nothing live yet: applied at once
    report = step(place, second, "2.0.0", "canary", mode="knative")
    assert percents(kube) == [None, 10, 50, 100, None]
    assert [s["weight"] for s in report["steps"]] == [10, 50, 100]
    assert all(s["requests"] == 20 and s["errors"] == 0 for s in report["steps"])
    live = kube.isvcs[("models", "production-tumor")]
    assert "canaryTrafficPercent" not in live["spec"]["predictor"]
    assert live["metadata"]["annotations"]["releasectl.dev/artifact"] == second
    predictor = live["status"]["components"]["predictor"]
    assert predictor["traffic"] == [
        {"revisionName": predictor["latestRolledoutRevision"], "percent": 100, "latestRevision": True}
    ]
    assert report["previous_version"] == "1.0.0"


def test_a_failing_canary_rolls_back_by_setting_zero(kube: KubeDouble, place: Place, trained: Trainer) -> None:
    good = trained(BC)
    bad = trained("wine")  # 13 features: every request with 30 values fails on it
    o = opts(place)
    rollout.deploy(o, "production", "tumor", "1.0.0", good, "direct", ([], 0, 0), rows(), [0, 1], {"steps": []})
    report: dict[str, Any] = {"steps": []}
    with pytest.raises(CheckFailed) as info:
        rollout.deploy(
            o, "production", "tumor", "2.0.0", bad, "canary", ([10, 50, 100], 0.0, 60), rows(), [0, 1], report
        )
    step10 = report["steps"][0]
    assert step10["weight"] == 10 and step10["errors"] > 0 and len(report["steps"]) == 1
    assert str(info.value) == (f"canary error rate {step10['error_rate']:.3f} > 0 at 10% traffic; rolled back to 1.0.0")
    assert percents(kube) == [None, 10, 0]
    traffic = kube.isvcs[("models", "production-tumor")]["status"]["components"]["predictor"]["traffic"]
    assert [(t["tag"], t["percent"]) for t in traffic] == [("latest", 0), ("prev", 100)]


def test_canary_is_refused_in_standard_mode(kube: KubeDouble, place: Place, trained: Trainer, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        step(place, trained(BC), "1.0.0", "canary", mode="standard")
    assert info.value.code == 2  # a check said no: Failed, with the reason
    out = json.loads((tmp_path / "outputs" / "parameters" / "verdict").read_text())
    assert out == {
        "verdict": "Failed",
        "reason": "canary needs KServe's Knative deployment mode: spec.predictor.canaryTrafficPercent is ignored "
        "in Standard mode, so the traffic could not be split; use strategy direct or blue-green, or run the "
        "controller with --serving-mode knative",
    }
    assert kube.applied == []


def test_not_ready_before_the_deadline_is_errored(
    kube: KubeDouble, place: Place, trained: Trainer, tmp_path: Path
) -> None:
    kube.ready = False
    with pytest.raises(kserve.ServingTimeout):
        step(place, trained(BC), "1.0.0", "direct", ready_timeout_s=0.2)
    out = json.loads((tmp_path / "outputs" / "parameters" / "verdict").read_text())
    assert out["verdict"] == "Errored"
    assert out["reason"].startswith(
        "ServingTimeout: inferenceservice models/production-tumor not Ready within 0.2s: Ready=False (RevisionMissing)"
    )


def test_undeploy_deletes_the_inference_service(kube: KubeDouble, place: Place, trained: Trainer) -> None:
    step(place, trained(BC), "1.0.0", "direct")
    assert json.loads(undeploy("production", "tumor", "kserve://models", options(place)))["removed"] is True
    assert ("models", "production-tumor") not in kube.isvcs
    assert json.loads(undeploy("production", "tumor", "kserve://models", options(place)))["removed"] is False


@pytest.mark.parametrize(
    ("environment", "model", "name"),
    [
        ("dev", "tumor", "dev-tumor"),
        ("1st", "tumor", "rc-1st-tumor"),
        ("production", "a" * 50, "production-" + "a" * 23 + "-"),
    ],
    ids=["plain", "leading-digit", "long"],
)
def test_inference_service_names_are_short_dns_1035_labels(environment: str, model: str, name: str) -> None:
    got = kserve.isvc_name(environment, model)
    assert got.startswith(name) and len(got) <= 45 and got[0].isalpha()


def test_the_crd_check_catches_a_misspelt_field() -> None:
    o = kserve.Options(namespace="models", image=IMAGE, store_uri="s3://b/p", mode="Knative")
    body = kserve.inference_service(o, "dev", "tumor", "1.0.0", "sha256:" + "a" * 64, 10)
    assert errors(body) == []
    body["spec"]["predictor"]["canaryTraficPercent"] = body["spec"]["predictor"].pop("canaryTrafficPercent")
    assert errors(body) == [
        "spec.predictor: Additional properties are not allowed ('canaryTraficPercent' was unexpected)"
    ]


def test_the_canary_is_judged_on_the_candidates_own_answers(kube: KubeDouble, place: Place, trained: Trainer) -> None:
    """The live version fails every request the canary sends (it expects 64 values, rows have 30),
    the candidate answers them all: the candidate is promoted, the live version's errors are
    reported apart. Each pod names itself in X-Model-Version; Knative's split is the double's."""
    digits = trained("digits")
    good = trained(BC)
    o = opts(place)
    digit_rows = np.asarray(datasets.BUILTINS["digits"]().data[:40], dtype=np.float64)
    rollout.deploy(
        o, "production", "tumor", "1.0.0", digits, "direct", ([], 0, 0), digit_rows, list(range(10)), {"steps": []}
    )
    report: dict[str, Any] = {"steps": []}
    rollout.deploy(o, "production", "tumor", "2.0.0", good, "canary", ([10, 50, 100], 0.0, 40), rows(), [0, 1], report)
    assert [s["weight"] for s in report["steps"]] == [10, 50, 100]
    for s in report["steps"]:
        assert s["errors"] == 0 and s["error_rate"] == 0.0 and s["unattributed"] == 0
        assert s["candidate_requests"] + s["live_errors"] == s["requests"]  # every live answer failed
        assert s["candidate_requests"] >= round(40 * s["weight"] / 200)
    assert report["steps"][0]["live_errors"] > 0 and report["steps"][-1]["live_errors"] == 0
    assert percents(kube) == [None, 10, 50, 100, None]
    live = kube.isvcs[("models", "production-tumor")]
    assert live["metadata"]["labels"]["releasectl.dev/version"] == "2.0.0"


def test_a_new_version_with_the_live_artifact_is_reapplied_with_its_name(
    kube: KubeDouble, place: Place, trained: Trainer
) -> None:
    artifact = trained(BC)
    step(place, artifact, "1.0.0", "direct")
    report = step(place, artifact, "1.1.0", "direct")
    assert "already_live" not in report and report["previous_version"] == "1.0.0"
    assert [b["metadata"]["labels"]["releasectl.dev/version"] for b in kube.applied] == ["1.0.0", "1.1.0"]
