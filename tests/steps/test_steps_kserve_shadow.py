"""`strategy: shadow` on KServe against the loopback Kubernetes API (tests/kube_double.py).

A shadow InferenceService for the candidate; the live predictor re-applied with --shadow-url
mirrors each request to it (workflows/predictor.py, HttpMirror) and tallies agreement. Every
InferenceService sent and answered validates against KServe's CRD schema (strict).
"""

import json
from typing import Any

import numpy as np
import pytest
from step_support import Place, Trainer

from tests.kube_double import SERVING, KubeDouble
from workflows import datasets, store
from workflows.steps.common import CheckFailed
from workflows.steps.deploy import deploy
from workflows.targets import shadow as shadow_target

BC = "breast-cancer"
IMAGE = "registry.example.com/releasectl/steps:0.1.0"
LIVE, SHADOW = ("models", "production-tumor"), ("models", "production-tumor-shadow")


def step(place: Place, artifact: str, version: str, strategy: str, bounds: dict[str, Any]) -> dict[str, Any]:
    _, report = deploy.__wrapped__(  # type: ignore[attr-defined]
        environment="production", model="tumor", version=version, artifact=artifact, spec_digest="",
        strategy=strategy, canary="", store_uri=place.store_uri, serving_uri="kserve://models",
        data_uri=place.data_uri, dataset=BC, dataset_sha256=datasets.builtin_digest(BC), dataset_uri="",
        dataset_format="", target_column="", shadow=json.dumps(bounds),
        serving_options=json.dumps({"image": IMAGE, "mode": "standard", "poll_s": 0.01}),
    )  # fmt: skip
    loaded: dict[str, Any] = json.loads(report)
    return loaded


def agreement(place: Place, live: str, candidate: str, requests: int) -> float:
    _, X_test, _, _ = datasets.split(datasets.load(place.data, BC, datasets.builtin_digest(BC)), 7)
    rows = np.asarray([X_test[i % len(X_test)] for i in range(requests)], dtype=np.float64)
    same = store.get(place.store_uri, live).predict(rows) == store.get(place.store_uri, candidate).predict(rows)
    return round(float(np.mean(same)), 6)


def shape(body: dict[str, Any]) -> tuple[str, str, list[str]]:
    """(name, version label, the predictor's args after --port 8080) of an applied InferenceService."""
    args = body["spec"]["predictor"]["containers"][0]["args"]
    return body["metadata"]["name"], body["metadata"]["labels"]["releasectl.dev/version"], args[10:]


def test_a_shadow_inference_service_is_mirrored_then_promoted(kube: KubeDouble, place: Place, trained: Trainer) -> None:
    v1, v2 = trained(), trained(version="2.0.0", C=0.5)
    step(place, v1, "1.0.0", "direct", {})
    report = step(place, v2, "2.0.0", "shadow", {"min_requests": 60, "min_agreement": 0.9})
    shadow_url = f"{kube.url}{SERVING}models/production-tumor-shadow"
    assert [shape(b) for b in kube.applied] == [
        ("production-tumor", "1.0.0", []),
        ("production-tumor-shadow", "2.0.0", []),
        ("production-tumor", "1.0.0", ["--shadow-url", shadow_url]),
        ("production-tumor", "2.0.0", []),
    ]
    shadow_body = kube.applied[1]
    assert shadow_body["metadata"]["labels"]["releasectl.dev/role"] == "shadow"
    assert shadow_body["metadata"]["annotations"]["releasectl.dev/artifact"] == v2
    assert SHADOW not in kube.isvcs  # deleted after the promotion
    live = kube.isvcs[LIVE]
    assert live["metadata"]["annotations"]["releasectl.dev/artifact"] == v2
    figures = report["shadow"]
    assert figures["requests"] == 60 and figures["shadow_errors"] == 0 and figures["dropped"] == 0
    assert figures["in_flight"] == 0 and figures["agreement"] == agreement(place, v1, v2, 60)
    assert figures["live_p95_ms"] > 0 and figures["shadow_p95_ms"] > 0 and figures["min_agreement"] == 0.9
    assert report["shadow_service"] == "models/production-tumor-shadow"


def test_a_low_agreement_shadow_is_failed_and_live_restored(kube: KubeDouble, place: Place, trained: Trainer) -> None:
    v1 = trained()
    stump = trained(recipe="random-forest", version="2.0.0", n_estimators=1, max_depth=1)
    expected = agreement(place, v1, stump, 60)
    assert expected < 0.999
    step(place, v1, "1.0.0", "direct", {})
    with pytest.raises(CheckFailed) as info:
        step(place, stump, "2.0.0", "shadow", {"min_requests": 60, "min_agreement": 0.999})
    reason = str(info.value)
    assert reason.startswith(
        f"shadow 2.0.0 not promoted: agreement {expected:.4f} < min_agreement 0.999 over 60 mirrored requests"
    )
    assert reason.endswith("1.0.0 kept serving")
    assert [shape(b)[:2] for b in kube.applied] == [
        ("production-tumor", "1.0.0"),
        ("production-tumor-shadow", "2.0.0"),
        ("production-tumor", "1.0.0"),  # mirroring
        ("production-tumor", "1.0.0"),  # restored: no --shadow-url
    ]
    assert shape(kube.applied[-1])[2] == [] and SHADOW not in kube.isvcs


@pytest.mark.parametrize(
    ("environment", "model"),
    [("production", "tumor"), ("a" * 30, "b" * 30), ("9env", "m")],
)
def test_shadow_names_are_short_dns_labels(environment: str, model: str) -> None:
    name = shadow_target.shadow_name(environment, model)
    assert len(name) <= 45 and name.endswith("-shadow") and name[0].isalpha()
    assert name != shadow_target.kserve.isvc_name(environment, model)
