"""`releasectl reconcile`'s cluster flags: leader election, the artifact store, the serving target, the image."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.app import cli
from controller.app.cluster_wiring import DEFAULT_IMAGE, compiler, leadership, workflow_target
from controller.app.runtime import Home
from controller.core.models import Action, ActionKind, ModelPin
from controller.errors import UsageError
from tests.kube_double import KubeDouble

REPO = ["reconcile", "--repo", "file:///nowhere"]


def parse(*extra: str) -> argparse.Namespace:
    return cli.parser().parse_args([*REPO, *extra])


@pytest.fixture
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KubeDouble]:
    with KubeDouble() as double:
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        monkeypatch.setenv("KUBECONFIG", str(double.kubeconfig(tmp_path / "kubeconfig")))
        monkeypatch.setenv("POD_NAME", "releasectl-7d9f-abcde")
        yield double


def test_the_defaults_are_the_local_target_without_leader_election() -> None:
    args = parse()
    assert leadership(args) is None and workflow_target(args) is None
    assert DEFAULT_IMAGE == "ghcr.io/releasectl/steps:0.1.0"
    cluster = workflow_target(parse("--artifact-store", "s3://ml/rc", "--target", "kserve"))
    assert cluster.image == DEFAULT_IMAGE and cluster.namespace == "releasectl"


def test_leader_elect_campaigns_for_the_named_lease(kube: KubeDouble) -> None:
    args = parse("--leader-elect", "--lease-name", "rc", "--lease-namespace", "ops", "--lease-duration", "4",
                 "--renew-deadline", "2", "--retry-period", "0.2")  # fmt: skip
    elector = leadership(args)
    assert elector is not None and elector.identity == "releasectl-7d9f-abcde"
    elector.start()
    try:
        assert elector.wait_until_leader(10)
    finally:
        elector.release()
    lease = kube.leases[("ops", "rc")]
    assert lease["spec"]["leaseDurationSeconds"] == 1  # released: a follower takes it at once
    writes = [e["holder"] for e in kube.log if e["kind"] == "lease" and e["method"] == "POST"]
    assert writes == ["releasectl-7d9f-abcde"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--leader-elect", "--lease-name", "Not_A_Label"], "--lease-name 'Not_A_Label' is not a DNS label"),
        (["--leader-elect", "--renew-deadline", "20"], "retry period < renew deadline < lease duration"),
    ],
    ids=["bad-lease-name", "renew-after-expiry"],
)
def test_bad_leader_election_flags_are_usage_errors(kube: KubeDouble, extra: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        leadership(parse(*extra))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target", "kserve"], "--target kserve needs --artifact-store"),
        (["--artifact-store", "s3://b/p"], "--artifact-store is for a cluster: give --target kserve too"),
        (["--artifact-store", "/data", "--target", "kserve"], "on a cluster it must be s3://bucket/prefix or file:///"),
        (["--artifact-store", "s3://b/p", "--target", "kserve", "--serving-namespace", "A"], "is not a DNS label"),
    ],
    ids=["kserve-without-store", "store-without-kserve", "bare-path", "bad-namespace"],
)
def test_bad_target_flags_are_usage_errors(extra: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        workflow_target(parse(*extra))


def test_a_cluster_compiler_names_the_store_the_image_and_kserve(tmp_path: Path) -> None:
    args = parse("--artifact-store", "s3://ml/rc", "--target", "kserve", "--serving-namespace", "models",
                 "--serving-mode", "knative", "--image", "registry.example.com/steps:1")  # fmt: skip
    pin = ModelPin.model_validate(
        {
            "apiVersion": "releasectl/v1", "kind": "ModelPin", "model": "m", "version": "1.0.0", "owner": "a@b.c",
            "training": {"recipe": "logistic-regression", "dataset": {"name": "iris", "sha256": "0" * 64},
                         "params": {"seed": 1}},
        }
    )  # fmt: skip
    action = Action(
        kind=ActionKind.REMOVE, environment="dev", model="m", version="1.0.0", source_commit="1" * 40, pin=pin
    )
    compiled = compiler(args, Home(tmp_path))(action)
    undeploy = next(t for t in compiled["spec"]["templates"] if t["name"] == "undeploy")
    assert undeploy["script"]["image"] == "registry.example.com/steps:1"
    main = next(t for t in compiled["spec"]["templates"] if t["name"] == "main")
    values = {p["name"]: p["value"] for p in main["dag"]["tasks"][0]["arguments"]["parameters"]}
    assert values["serving_uri"] == "kserve://models"
    assert '"mode":"knative"' in values["serving_options"]
    assert str(tmp_path) not in str(compiled)
