"""deploy/: the Kubernetes manifests validate strictly (kubernetes-validate, a pinned Kubernetes
version) and say what the design asks; the Dockerfiles copy only files that exist and install the project."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from controller.app import cli
from workflows.target import STEPS_IMAGE

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.35.0"  # a version kubernetes-validate ships schemas for
ARGO_FLAGS = {"--argo-server", "--namespace", "--argo-token-file", "--argo-ca-file"}  # the Argo executor's


def kustomization() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return loaded


def documents() -> list[dict[str, Any]]:
    return [d for name in kustomization()["resources"] for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in documents() if d["kind"] == kind]


def test_the_kustomization_lists_every_manifest() -> None:
    files = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(kustomization()["resources"]) == files


@pytest.mark.parametrize("doc", documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_every_manifest_validates_strictly(doc: dict[str, Any]) -> None:
    assert kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True) is not None


def test_strict_validation_catches_a_misspelt_field() -> None:
    (deployment,) = by_kind("Deployment")
    deployment["spec"]["replica"] = deployment["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_roles_grant_the_least_verbs() -> None:
    rules = {
        (r["metadata"]["namespace"], r["metadata"]["name"]): [
            (
                tuple(rule["apiGroups"]),
                tuple(rule["resources"]),
                tuple(rule.get("resourceNames", ())),
                tuple(rule["verbs"]),
            )
            for rule in r["rules"]
        ]
        for r in by_kind("Role")
    }
    assert rules == {
        ("releasectl", "releasectl-controller-workflows"): [
            (("argoproj.io",), ("workflows",), (), ("create", "get", "list", "watch", "patch"))
        ],
        ("releasectl", "releasectl-controller-leader"): [
            (("coordination.k8s.io",), ("leases",), (), ("create",)),
            (("coordination.k8s.io",), ("leases",), ("releasectl-controller",), ("get", "update")),
        ],
        ("releasectl", "releasectl-steps-executor"): [
            (("argoproj.io",), ("workflowtaskresults",), (), ("create", "patch"))
        ],
        ("releasectl-serving", "releasectl-steps-serving"): [
            (("serving.kserve.io",), ("inferenceservices",), (), ("create", "get", "patch", "delete"))
        ],
    }
    bound = {(b["roleRef"]["name"], b["subjects"][0]["name"]) for b in by_kind("RoleBinding")}
    assert bound == {
        ("releasectl-controller-workflows", "releasectl-controller"),
        ("releasectl-controller-leader", "releasectl-controller"),
        ("releasectl-steps-executor", "releasectl-steps"),
        ("releasectl-steps-serving", "releasectl-steps"),
    }
    assert not by_kind("ClusterRole") and not by_kind("ClusterRoleBinding")


def test_the_deployment_runs_two_leader_electing_replicas_safely() -> None:
    (deployment,) = by_kind("Deployment")
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert deployment["spec"]["replicas"] == 2
    assert spec["serviceAccountName"] == "releasectl-controller"
    args = container["args"]
    assert args[0] == "reconcile" and "--leader-elect" in args
    assert f"--image={STEPS_IMAGE}" in args  # the steps' image of this version
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert spec["securityContext"]["runAsNonRoot"] is True
    secrets = {v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
    secrets |= {
        e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert secrets == {"releasectl-git", "releasectl-webhook", "releasectl-argo", "releasectl-s3"}
    # Every writable path is a volume: the root filesystem can stay read-only.
    assert {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")} == {
        "/tmp",
        "/var/lib/releasectl",
    }
    (service,) = by_kind("Service")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}]


def test_the_deployments_flags_are_the_controllers() -> None:
    (deployment,) = by_kind("Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    reconcile = next(a for a in cli.parser()._subparsers._group_actions[0].choices.items() if a[0] == "reconcile")[1]
    known = {s for action in reconcile._actions for s in action.option_strings}
    flags = {a.split("=", 1)[0] for a in args[1:]}
    assert flags - known <= ARGO_FLAGS, flags - known  # the Argo executor's flags land with it


DOCKERFILES = ["Dockerfile", "steps.Dockerfile"]


def instructions(name: str) -> list[tuple[str, str]]:
    text = (ROOT / "deploy" / name).read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfiles_copy_only_files_that_exist_and_install_the_project(name: str) -> None:
    steps = instructions(name)
    copies = [shlex.split(arg) for op, arg in steps if op == "COPY"]
    sources = [src for words in copies for src in words[:-1] if not src.startswith("--")]
    assert sources, name
    missing = [src for src in sources if not (ROOT / src).exists()]
    assert missing == [], f"{name} copies files that do not exist: {missing}"
    # What `pip install .` needs: pyproject.toml, the readme it names, and every package it finds.
    assert {"pyproject.toml", "README.md", "controller", "workflows"} <= set(sources)
    installs = [arg for op, arg in steps if op == "RUN" and "pip install" in arg]
    assert any(re.search(r"pip install [^&]*(\s\.|'\.\[parquet\]')(\s|$)", arg) for arg in installs), installs
    user = [arg for op, arg in steps if op == "USER"]
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert steps[0][0] == "FROM"
