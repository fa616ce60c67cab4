"""Wiring for a cluster: leader election, the artifact store, the serving target and the steps' image.

Place in the flow: `releasectl reconcile` (controller/app/cli.py) adds these flags with
`add_cluster_arguments`; the run wiring asks `leadership(args)` for the Lease elector the
long-running loop consults before each pass and before publishing, and `compiler(args, home)` for
the Action -> manifest function: the LocalExecutor's file:// target by default, or, with
`--artifact-store`, a cluster target whose manifests name no path of this machine
(workflows/target.py `cluster_target`).

    releasectl reconcile --repo URL --interval 60 --leader-elect \\
        --artifact-store s3://ml-artifacts/releasectl --target kserve --serving-namespace models
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from controller import __version__
from controller.core.models import DNS_LABEL_RE, Action
from controller.errors import UsageError
from controller.ports import Leadership

DEFAULT_IMAGE = f"ghcr.io/releasectl/steps:{__version__}"


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("running on a cluster")
    group.add_argument(
        "--leader-elect",
        action="store_true",
        help="only the holder of a coordination.k8s.io Lease runs passes (in-cluster config or KUBECONFIG)",
    )
    group.add_argument(
        "--lease-name", default="releasectl-controller", help="the Lease's name (default: releasectl-controller)"
    )
    group.add_argument(
        "--lease-namespace",
        default=os.environ.get("POD_NAMESPACE") or "releasectl",
        help="the Lease's namespace (default: $POD_NAMESPACE or releasectl)",
    )
    group.add_argument(
        "--lease-duration",
        type=int,
        default=15,
        metavar="S",
        help="a follower takes over after S seconds (default: 15)",
    )
    group.add_argument(
        "--renew-deadline",
        type=float,
        default=10.0,
        metavar="S",
        help="stop acting after S seconds without a renewal; less than the lease duration (default: 10)",
    )
    group.add_argument(
        "--retry-period", type=float, default=2.0, metavar="S", help="renew or campaign every S seconds (default: 2)"
    )
    group.add_argument(
        "--artifact-store",
        metavar="URI",
        help="s3://bucket/prefix (AWS_* variables; a Secret in the pods) or file:///path on a "
        "ReadWriteMany volume mounted at that path in every pod; unset: the local store under --home",
    )
    group.add_argument(
        "--target", choices=["local", "kserve"], default="local", help="where deploy serves models (default: local)"
    )
    group.add_argument(
        "--serving-namespace",
        default="releasectl-serving",
        metavar="NS",
        help="where KServe serves the models (default: releasectl-serving)",
    )
    group.add_argument(
        "--serving-mode",
        choices=["standard", "knative"],
        default="standard",
        help="KServe's deployment mode; canary needs knative (default: standard)",
    )
    if "--image" not in parser._option_string_actions:  # the Argo executor's flags may have it already
        group.add_argument("--image", help=f"the steps' image (default: {DEFAULT_IMAGE})")
    group.add_argument(
        "--steps-service-account",
        default="releasectl-steps",
        metavar="NAME",
        help="the workflow pods' service account (default: releasectl-steps)",
    )
    group.add_argument(
        "--s3-secret",
        default="releasectl-s3",
        metavar="NAME",
        help="the Secret with the AWS_* keys, in the workflows' and the serving namespace (default: releasectl-s3)",
    )
    group.add_argument(
        "--shared-volume-claim",
        default="releasectl-shared",
        metavar="NAME",
        help="with --artifact-store file:///...: the ReadWriteMany PVC (default: releasectl-shared)",
    )


def leadership(args: argparse.Namespace, log: Callable[[str], None] | None = None) -> Leadership | None:
    """The Lease elector when --leader-elect is given (not started: the loop starts it)."""
    if not getattr(args, "leader_elect", False):
        return None
    from controller.adapters.kube.lease import LeaseElector, LeaseSettings, coordination_api, default_identity

    for flag, value in (("--lease-name", args.lease_name), ("--lease-namespace", args.lease_namespace)):
        if not DNS_LABEL_RE.match(value):
            raise UsageError(f"{flag} {value!r} is not a DNS label")
    settings = LeaseSettings(
        name=args.lease_name,
        namespace=args.lease_namespace,
        identity=default_identity(),
        lease_duration_s=float(args.lease_duration),
        renew_deadline_s=args.renew_deadline,
        retry_period_s=args.retry_period,
    )
    return LeaseElector(coordination_api(), settings, log=log)


def workflow_target(args: argparse.Namespace) -> Any | None:
    """The cluster Target from --artifact-store and --target kserve; None for the local default."""
    store = getattr(args, "artifact_store", None)
    target = getattr(args, "target", "local")
    if store is None and target == "local":
        return None
    if store is None:
        raise UsageError("--target kserve needs --artifact-store (s3://bucket/prefix or file:///shared/path)")
    if target != "kserve":
        raise UsageError(
            "--artifact-store is for a cluster: give --target kserve too (pods cannot reach local serving)"
        )
    from workflows.target import cluster_target

    namespace = getattr(args, "namespace", None) or os.environ.get("POD_NAMESPACE") or "releasectl"
    try:
        return cluster_target(
            store,
            serving_namespace=args.serving_namespace,
            image=getattr(args, "image", None) or DEFAULT_IMAGE,
            namespace=namespace,
            service_account=args.steps_service_account,
            s3_secret=args.s3_secret,
            volume_claim=args.shared_volume_claim,
            serving_mode=args.serving_mode,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def compiler(args: argparse.Namespace, home: Any) -> Callable[[Action], dict[str, Any]]:
    """Action -> manifest for the chosen target: the home's local one unless a cluster one is asked for."""
    target = workflow_target(args)
    if target is None:
        from controller.app.runtime import compiler as local_compiler

        return local_compiler(home)
    from workflows.builders import manifest

    def compile_action(action: Action) -> dict[str, Any]:
        return manifest(action, target)

    return compile_action
