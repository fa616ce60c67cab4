"""The KServe deployment target: one serving.kserve.io/v1beta1 InferenceService per environment and model.

Place in the flow: the deploy and undeploy steps (workflows/steps/deploy.py) call `deploy` and
`undeploy` here when the workflow's serving URI is `kserve://<namespace>` (`--target kserve`);
this module is the step side's only kubernetes-client user (an import-linter contract says so).

- Every change is a server-side apply (field manager `releasectl`, force) of the whole object we
  own, so removing a field from what we send removes it from the cluster.
- The predictor is a container built from the project (`python -m workflows.predictor`): it
  speaks KServe's v1 protocol and loads the skops artifact by digest through the allow-list
  (KServe's own sklearn server loads only joblib or pickle files, which we never write).
- `direct` and `blue-green`: apply, wait for Ready (a deadline gives Errored), health-check the
  predictor; a failed check re-applies the version that was live before (Failed).
- `canary` needs Knative mode (annotation serving.kserve.io/deploymentMode: Knative): each step
  sets spec.predictor.canaryTrafficPercent and is judged on real requests; promote removes the
  field, a rollback sets it to 0. KServe's Standard mode has no traffic split, so a canary pin is
  refused there with that reason (Failed), never silently deployed all at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import numpy as np

from controller.core.models import DNS_LABEL_RE
from controller.ports import LABEL_ENVIRONMENT, LABEL_MANAGED, LABEL_MODEL, LABEL_VERSION
from workflows.serving import VERSION_HEADER
from workflows.steps.common import CheckFailed, canary_wants_more, check_label, json_object_param

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
API_VERSION = f"{GROUP}/{VERSION}"
FIELD_MANAGER = "releasectl"
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
ARTIFACT_ANNOTATION = "releasectl.dev/artifact"
MODES = {"standard": "Standard", "knative": "Knative"}
PORT = 8080
NAME_MAX = 45  # KServe derives "<name>-predictor-<hash>" objects from it; keep room for the suffixes
LABEL_VALUE_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
S3_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_REGION")


class ServingTimeout(RuntimeError):
    """The InferenceService did not become Ready before the deadline (infrastructure: Errored)."""


class KubeUnavailable(RuntimeError):
    """The Kubernetes API refused or could not be reached (infrastructure: Errored)."""


@dataclass(frozen=True)
class Options:
    """How InferenceServices are shaped: from `kserve://<namespace>` and the `serving_options` JSON."""

    namespace: str
    image: str
    store_uri: str
    mode: str = "Standard"
    service_account: str = ""
    s3_secret: str = ""
    ready_timeout_s: float = 600.0
    poll_s: float = 2.0
    resources: dict[str, Any] = field(
        default_factory=lambda: {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
    )

    @classmethod
    def parse(cls, serving_uri: str, options: str, store_uri: str) -> Options:
        parts = urlsplit(serving_uri)
        namespace = parts.netloc
        if parts.scheme != "kserve" or not DNS_LABEL_RE.match(namespace) or parts.path not in ("", "/"):
            raise CheckFailed(f"serving_uri {serving_uri!r} must be kserve://<namespace> (a DNS label)")
        given = json_object_param(options, "serving_options")
        mode = MODES.get(str(given.get("mode", "standard")).lower())
        if mode is None:
            raise CheckFailed(f"serving_options.mode {given.get('mode')!r} must be one of {', '.join(MODES)}")
        image = str(given.get("image") or "")
        if not image or any(c.isspace() for c in image):
            raise CheckFailed("serving_options.image must name the predictor image")
        return cls(
            namespace=namespace,
            image=image,
            store_uri=store_uri,
            mode=mode,
            service_account=str(given.get("service_account") or ""),
            s3_secret=str(given.get("s3_secret") or ""),
            ready_timeout_s=float(given.get("ready_timeout_s", 600)),
            poll_s=float(given.get("poll_s", 2.0)),
        )


def is_kserve(serving_uri: str) -> bool:
    return serving_uri.startswith("kserve://")


def isvc_name(environment: str, model: str) -> str:
    """`<environment>-<model>` as a DNS-1035 label of at most 45 characters (hash-shortened)."""
    check_label(environment, "environment")
    check_label(model, "model")
    name = f"{environment}-{model}"
    if not name[0].isalpha():
        name = f"rc-{name}"
    if len(name) > NAME_MAX:
        name = f"{name[: NAME_MAX - 11].rstrip('-')}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"
    return name


def inference_service(
    opts: Options, environment: str, model: str, version: str, artifact: str, canary_percent: int | None
) -> dict[str, Any]:
    """The whole InferenceService we own for one environment and model (what is applied)."""
    env: list[dict[str, Any]] = [{"name": "PYTHONUNBUFFERED", "value": "1"}]
    if opts.s3_secret:
        for key in S3_ENV:
            env.append(
                {
                    "name": key,
                    "valueFrom": {"secretKeyRef": {"name": opts.s3_secret, "key": key, "optional": key != S3_ENV[0]}},
                }
            )
    container: dict[str, Any] = {
        "name": "kserve-container",
        "image": opts.image,
        "command": ["python", "-m", "workflows.predictor"],
        "args": [
            "--model",
            model,
            "--version",
            version,
            "--artifact",
            artifact,
            "--store-uri",
            opts.store_uri,
            "--port",
            str(PORT),
        ],
        "env": env,
        "ports": [{"containerPort": PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": f"/v1/models/{model}", "port": PORT}, "periodSeconds": 5},
        "resources": opts.resources,
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    predictor: dict[str, Any] = {"minReplicas": 1, "containers": [container]}
    if opts.service_account:
        predictor["serviceAccountName"] = opts.service_account
    if canary_percent is not None:
        predictor["canaryTrafficPercent"] = canary_percent
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": {
            "name": isvc_name(environment, model),
            "namespace": opts.namespace,
            "labels": {
                LABEL_ENVIRONMENT: environment,
                LABEL_MODEL: model,
                LABEL_VERSION: version if LABEL_VALUE_RE.match(version) else "unknown",
                LABEL_MANAGED: "releasectl",
            },
            "annotations": {MODE_ANNOTATION: opts.mode, ARTIFACT_ANNOTATION: artifact},
        },
        "spec": {"predictor": predictor},
    }


def api_client() -> Any:
    """In-cluster configuration inside a pod, else KUBECONFIG (or ~/.kube/config)."""
    from kubernetes import client, config

    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return client.ApiClient(configuration)
    # KUBECONFIG is read now: the client reads it once, at import time, otherwise.
    return config.new_client_from_config(config_file=os.environ.get("KUBECONFIG"))  # type: ignore[no-untyped-call]


class KServe:
    """The InferenceService calls the deploy step makes (CustomObjectsApi)."""

    def __init__(self, opts: Options, api: Any | None = None) -> None:
        from kubernetes import client

        self.opts = opts
        self.api = api or client.CustomObjectsApi(api_client())

    def _fail(self, exc: Exception, what: str) -> Exception:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        if isinstance(exc, ApiException):
            reason = exc.reason or ""
            with contextlib.suppress(ValueError):
                reason = json.loads(exc.body or "{}").get("message") or reason
            if exc.status in (401, 403):
                return KubeUnavailable(f"{what}: the Kubernetes API refused us ({exc.status}): {reason}")
            return KubeUnavailable(f"{what}: Kubernetes API error {exc.status}: {reason}")
        if isinstance(exc, HTTPError):
            return KubeUnavailable(f"{what}: cannot reach the Kubernetes API: {exc}")
        return exc

    def get(self, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            found = cast(
                dict[str, Any],
                self.api.get_namespaced_custom_object(GROUP, VERSION, self.opts.namespace, PLURAL, name),
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise self._fail(exc, f"get inferenceservice {self.opts.namespace}/{name}") from None
        except Exception as exc:
            raise self._fail(exc, f"get inferenceservice {self.opts.namespace}/{name}") from None
        return found

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        try:
            applied = cast(
                dict[str, Any],
                self.api.patch_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    self.opts.namespace,
                    PLURAL,
                    name,
                    body,
                    field_manager=FIELD_MANAGER,
                    force=True,
                    _content_type="application/apply-patch+yaml",
                ),
            )
        except Exception as exc:
            raise self._fail(exc, f"apply inferenceservice {self.opts.namespace}/{name}") from None
        return applied

    def delete(self, name: str) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            self.api.delete_namespaced_custom_object(GROUP, VERSION, self.opts.namespace, PLURAL, name)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise self._fail(exc, f"delete inferenceservice {self.opts.namespace}/{name}") from None
        except Exception as exc:
            raise self._fail(exc, f"delete inferenceservice {self.opts.namespace}/{name}") from None
        return True

    def wait_ready(self, name: str, generation: int) -> dict[str, Any]:
        """The object once KServe has seen `generation` and says Ready; ServingTimeout otherwise."""
        deadline = time.monotonic() + self.opts.ready_timeout_s
        last = "not seen yet"
        while True:
            found = self.get(name)
            if found is not None:
                status = found.get("status") or {}
                ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
                seen = int(status.get("observedGeneration") or 0) >= generation
                if seen and ready and ready.get("status") == "True":
                    return found
                last = f"Ready={ready.get('status') if ready else 'unknown'}" + (
                    f" ({ready.get('reason') or ready.get('message')})"
                    if ready and ready.get("status") != "True"
                    else ""
                )
                if not seen:
                    last += f", generation {generation} not observed yet"
            if time.monotonic() >= deadline:
                raise ServingTimeout(
                    f"inferenceservice {self.opts.namespace}/{name} not Ready within "
                    f"{self.opts.ready_timeout_s:g}s: {last}"
                )
            time.sleep(self.opts.poll_s)


def endpoint(isvc: dict[str, Any]) -> str:
    """The predictor's URL: the cluster-local address when KServe gives one, else status.url."""
    status = isvc.get("status") or {}
    url = (status.get("address") or {}).get("url") or status.get("url")
    if not url:
        raise ServingTimeout(f"inferenceservice {isvc['metadata']['name']} is Ready but has no URL")
    return str(url).rstrip("/")


def _http(url: str, body: Any | None = None, timeout: float = 10.0) -> tuple[int, Any]:
    status, answer, _ = _exchange(url, body, timeout)
    return status, answer


def _exchange(url: str, body: Any | None = None, timeout: float = 10.0) -> tuple[int, Any, str | None]:
    """(status, JSON body, the X-Model-Version that answered) of one request; status 0 when none came."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - an http(s) URL KServe reported
        url, data=data, method="POST" if data else "GET", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null"), response.headers.get(VERSION_HEADER)
    except urllib.error.HTTPError as exc:
        return exc.code, None, exc.headers.get(VERSION_HEADER) if exc.headers else None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return 0, str(exc), None


def answers_ok(status: int, body: Any, classes: list[Any], rows: int) -> bool:
    if status != 200 or not isinstance(body, dict):
        return False
    predictions = body.get("predictions")
    return isinstance(predictions, list) and len(predictions) == rows and all(p in classes for p in predictions)


def health_check(url: str, model: str, version: str, rows: Any, classes: list[Any]) -> str | None:
    """None when the predictor says ready and answers rows with its classes; else why not."""
    status, body = _http(f"{url}/v1/models/{model}")
    if status != 200 or not isinstance(body, dict) or body.get("ready") is not True:
        return f"GET {url}/v1/models/{model} answered {status or body}"
    probe = np.asarray(rows[:20], dtype=np.float64).tolist()
    status, body = _http(f"{url}/v1/models/{model}:predict", {"instances": probe})
    if not answers_ok(status, body, classes, len(probe)):
        return f"POST {url}/v1/models/{model}:predict answered {status}: {str(body)[:200]}"
    return None


def measure(
    url: str, model: str, rows: Any, requests: int, classes: list[Any], candidate: str, weight: int
) -> dict[str, int]:
    """One canary step, judged on the candidate's own answers: one row per request, as clients send them.

    Knative splits the traffic, so which revision answered is read from the predictor's
    X-Model-Version header (workflows/serving.py sets it on every answer, errors included). An
    answer without it (a connection error, a 502/503 from the activator: no predictor answered)
    counts against the candidate, so that a crashing candidate cannot hide behind a missing
    header. How long a step goes on is the local canary's rule (steps/common.canary_wants_more).
    """
    sent = routed = errors = live_errors = unattributed = 0
    while canary_wants_more(sent, routed, requests, weight):
        row = np.asarray(rows[sent % len(rows)], dtype=np.float64).reshape(1, -1).tolist()
        sent += 1
        status, body, version = _exchange(f"{url}/v1/models/{model}:predict", {"instances": row})
        ok = answers_ok(status, body, classes, 1)
        if version == candidate or version is None:
            routed += 1
            errors += not ok
            unattributed += version is None
        else:
            live_errors += not ok
    return {
        "requests": sent,
        "candidate_requests": routed,
        "errors": errors,
        "live_errors": live_errors,
        "unattributed": unattributed,
    }
