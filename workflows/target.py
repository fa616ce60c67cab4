"""Where a workflow's steps run: the Target a builder compiles for (local folders or a cluster).

Place in the flow: controller/app/runtime.py makes the local Target from the home's folders;
controller/app/cluster_wiring.py makes a cluster one with `cluster_target` from --artifact-store
and --target kserve; workflows/builders.py shapes every pod and every step's arguments from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from controller import __version__
from controller.core.models import DNS_LABEL_RE

STEPS_IMAGE = f"ghcr.io/releasectl/steps:{__version__}"
S3_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_REGION")


@dataclass(frozen=True)
class Target:
    """Where steps find data, keep artifacts and serve models; and how pods are shaped.

    The LocalExecutor's target keeps file:// folders of the controller's home. A cluster target
    (`cluster_target`) names only what every pod can reach: an s3:// store (credentials from the
    Secret `s3_secret`) or a ReadWriteMany volume mounted at the same path in every pod, and a
    KServe namespace for serving.
    """

    store_uri: str
    data_uri: str
    serving_uri: str
    image: str = STEPS_IMAGE
    namespace: str = "releasectl"
    service_account: str | None = None
    step_deadline_s: int = 1800
    workflow_deadline_s: int = 3600
    retries: int = 2
    cpu_request: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None
    s3_secret: str | None = None  # a Secret with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (+ endpoint, region)
    volume_claim: str | None = None  # a ReadWriteMany PVC mounted at volume_path in every pod
    volume_path: str | None = None
    serving_options: str = ""  # JSON for the KServe target (workflows/targets/kserve.py Options)
    secure_pods: bool = False  # non-root, no privilege escalation, read-only root with /tmp an emptyDir


def cluster_target(
    artifact_store: str,
    *,
    serving_namespace: str,
    image: str = STEPS_IMAGE,
    namespace: str = "releasectl",
    service_account: str = "releasectl-steps",
    s3_secret: str = "releasectl-s3",  # noqa: S107 - the name of a Secret, not a secret
    volume_claim: str = "releasectl-shared",
    serving_mode: str = "standard",
    ready_timeout_s: int = 600,
) -> Target:
    """A target whose manifests run on a cluster as they are: no path of the controller's machine.

    `artifact_store` is `s3://bucket/prefix` or `file:///shared/path` (the mount path of the
    ReadWriteMany PVC `volume_claim` in every pod). Artifacts go under `<store>/artifacts`, the
    data catalog under `<store>/datasets`; serving is KServe in `serving_namespace`.
    """
    parts = urlsplit(artifact_store)
    base = artifact_store.rstrip("/")
    for what, value in (("namespace", namespace), ("serving namespace", serving_namespace)):
        if not DNS_LABEL_RE.match(value):
            raise ValueError(f"{what} {value!r} is not a DNS label")
    if not image or any(c.isspace() for c in image):
        raise ValueError(f"image {image!r} must be an image reference")
    if serving_mode not in ("standard", "knative"):
        raise ValueError(f"serving mode {serving_mode!r} must be standard or knative")
    claim = path = secret = None
    if parts.scheme == "s3":
        if not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"artifact store {artifact_store!r} must be s3://bucket/prefix")
        secret = s3_secret
    elif parts.scheme == "file" and parts.netloc == "" and parts.path.startswith("/") and parts.path != "/":
        claim, path = volume_claim, parts.path.rstrip("/")
    else:
        raise ValueError(
            f"artifact store {artifact_store!r}: on a cluster it must be s3://bucket/prefix or "
            "file:///path on a ReadWriteMany volume mounted in every pod"
        )
    # The predictor runs in the serving namespace with its default service account: it needs no API.
    options = {
        "image": image,
        "mode": serving_mode,
        "s3_secret": secret or "",
        "ready_timeout_s": ready_timeout_s,
    }
    return Target(
        store_uri=f"{base}/artifacts",
        data_uri=f"{base}/datasets",
        serving_uri=f"kserve://{serving_namespace}",
        image=image,
        namespace=namespace,
        service_account=service_account,
        cpu_request="500m",
        memory_request="1Gi",
        memory_limit="4Gi",
        s3_secret=secret,
        volume_claim=claim,
        volume_path=path,
        serving_options=json.dumps(options, sort_keys=True, separators=(",", ":")),
        secure_pods=True,
    )
