"""A loopback Kubernetes API double: Leases and KServe InferenceServices, as the published API has them.

- `coordination.k8s.io/v1` Leases: read, create (409 AlreadyExists), replace (409 Conflict when the
  body's resourceVersion is stale: optimistic concurrency as the API server does it), with a request
  log of (monotonic time, method, holder written, status) for the tests' "never both" checks.
- `serving.kserve.io/v1beta1` InferenceServices: server-side apply (PATCH with
  `application/apply-patch+yaml`, `fieldManager`, `force`), get, delete. It plays KServe's
  controller too: `metadata.generation` moves when the spec changes, `status` gets Ready with
  `observedGeneration`, and `components.predictor.traffic` follows `canaryTrafficPercent`
  (Knative) with latest/previous rolled-out revisions; promotion is the field's removal.
- The data plane of each InferenceService (`status.url`) is served here as well: a request goes
  to the latest or the previous revision by the traffic split (Knative's part), and each revision
  is the project's own predictor server (workflows/predictor.py `make_server`) on a loopback port,
  started from the container args we applied, so what answers (body, status and the
  X-Model-Version header) is the pod's own code serving the artifact the manifest names.

Every object it returns is complete (apiVersion, kind, metadata with uid, resourceVersion,
generation, creationTimestamp), because kubernetes 37 validates what it deserializes.
"""

from __future__ import annotations

import copy
import json
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

LEASES = "/apis/coordination.k8s.io/v1/namespaces/"
ISVCS = "/apis/serving.kserve.io/v1beta1/namespaces/"
SERVING = "/serving/"


def _ts() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _micro(value: Any) -> Any:
    """RFC 3339 with microseconds and Z, as the API server writes MicroTime."""
    if not isinstance(value, str) or not value:
        return value
    from datetime import UTC, datetime

    parsed = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class KubeDouble(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.version = 100
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}
        self.isvcs: dict[tuple[str, str], dict[str, Any]] = {}
        self.revisions: dict[str, Any] = {}  # revision name -> its predictor server (a pod)
        self.log: list[dict[str, Any]] = []  # every request: t, method, path, status, holder, content type
        self.applied: list[dict[str, Any]] = []  # every InferenceService body applied, as sent
        self.returned: list[dict[str, Any]] = []  # every InferenceService object answered
        self.ready = True  # False: KServe never reports Ready (deadline tests)
        self.refused_tokens: set[str] = set()  # bearer tokens answered 503 (a client cut off from the API)
        self.rng = random.Random(5)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> KubeDouble:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        for pod in self.revisions.values():
            pod.shutdown()
            pod.server_close()

    def kubeconfig(self, path: Any, token: str = "test-token") -> Any:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "double", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": token}}],
            "contexts": [{"name": "double", "context": {"cluster": "double", "user": "tester"}}],
            "current-context": "double",
        }
        path.write_text(json.dumps(config))
        return path

    def next_version(self) -> str:
        self.version += 1
        return str(self.version)

    # -- Leases --------------------------------------------------------------------------------

    def lease_holders(self) -> list[tuple[float, str | None]]:
        """(time, holder) of every successful Lease write, in order."""
        return [
            (e["t"], e["holder"])
            for e in self.log
            if e["kind"] == "lease" and e["method"] in ("POST", "PUT") and e["status"] in (200, 201)
        ]


def status_error(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class _Handler(BaseHTTPRequestHandler):
    server: KubeDouble

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        raw = self._raw_body()
        return json.loads(raw) if raw else None

    def _raw_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _record(self, kind: str, code: int, holder: str | None = None) -> None:
        self.server.log.append(
            {
                "t": time.monotonic(),
                "kind": kind,
                "method": self.command,
                "path": self.path,
                "status": code,
                "holder": holder,
                "content_type": self.headers.get("Content-Type"),
                "authorization": self.headers.get("Authorization"),
            }
        )

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def do_PUT(self) -> None:
        self._route()

    def do_PATCH(self) -> None:
        self._route()

    def do_DELETE(self) -> None:
        self._route()

    def _route(self) -> None:
        path = urlsplit(self.path).path
        with self.server.lock:
            token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
            if token in self.server.refused_tokens:
                self._record("refused", 503)
                self._send(503, status_error(503, "ServiceUnavailable", "the API server is unavailable"))
            elif path.startswith(LEASES):
                self._lease(path.removeprefix(LEASES).split("/"))
            elif path.startswith(ISVCS):
                self._isvc(path.removeprefix(ISVCS).split("/"))
            elif path.startswith(SERVING):
                self._serve(path.removeprefix(SERVING).split("/", 2))
            else:
                self._send(404, status_error(404, "NotFound", f"no route {path}"))

    # -- coordination.k8s.io/v1 Lease ----------------------------------------------------------

    def _lease(self, parts: list[str]) -> None:
        s = self.server
        if len(parts) < 2 or parts[1] != "leases":
            self._send(404, status_error(404, "NotFound", "not a lease path"))
            return
        namespace = parts[0]
        name = parts[2] if len(parts) > 2 else None
        if self.command == "GET" and name:
            found = s.leases.get((namespace, name))
            code = 200 if found else 404
            self._record("lease", code)
            self._send(code, found or status_error(404, "NotFound", f'leases.coordination.k8s.io "{name}" not found'))
        elif self.command == "POST" and name is None:
            body = self._body()
            name = body["metadata"]["name"]
            if (namespace, name) in s.leases:
                self._record("lease", 409, body["spec"].get("holderIdentity"))
                self._send(
                    409, status_error(409, "AlreadyExists", f'leases.coordination.k8s.io "{name}" already exists')
                )
                return
            lease = self._lease_object(namespace, name, body, None)
            s.leases[(namespace, name)] = lease
            self._record("lease", 201, lease["spec"].get("holderIdentity"))
            self._send(201, lease)
        elif self.command == "PUT" and name:
            body = self._body()
            current = s.leases.get((namespace, name))
            if current is None:
                self._record("lease", 404)
                self._send(404, status_error(404, "NotFound", f'leases.coordination.k8s.io "{name}" not found'))
                return
            if body.get("metadata", {}).get("resourceVersion") != current["metadata"]["resourceVersion"]:
                self._record("lease", 409, body.get("spec", {}).get("holderIdentity"))
                self._send(
                    409,
                    status_error(
                        409,
                        "Conflict",
                        f'Operation cannot be fulfilled on leases.coordination.k8s.io "{name}": the object has been '
                        "modified; please apply your changes to the latest version and try again",
                    ),
                )
                return
            lease = self._lease_object(namespace, name, body, current)
            s.leases[(namespace, name)] = lease
            self._record("lease", 200, lease["spec"].get("holderIdentity"))
            self._send(200, lease)
        else:
            self._send(405, status_error(405, "MethodNotAllowed", self.command))

    def _lease_object(
        self, namespace: str, name: str, body: dict[str, Any], current: dict[str, Any] | None
    ) -> dict[str, Any]:
        spec = {k: v for k, v in (body.get("spec") or {}).items() if v is not None}
        for key in ("acquireTime", "renewTime"):
            if key in spec:
                spec[key] = _micro(spec[key])
        meta = current["metadata"] if current else {"uid": str(uuid.uuid4()), "creationTimestamp": _ts()}
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {**meta, "name": name, "namespace": namespace, "resourceVersion": self.server.next_version()},
            "spec": spec,
        }

    # -- serving.kserve.io/v1beta1 InferenceService --------------------------------------------

    def _isvc(self, parts: list[str]) -> None:
        s = self.server
        if len(parts) != 3 or parts[1] != "inferenceservices":
            self._send(404, status_error(404, "NotFound", "not an inferenceservice path"))
            return
        namespace, _, name = parts
        key = (namespace, name)
        if self.command == "GET":
            found = s.isvcs.get(key)
            self._record("isvc", 200 if found else 404)
            if found:
                s.returned.append(copy.deepcopy(found))
                self._send(200, found)
            else:
                self._send(
                    404, status_error(404, "NotFound", f'inferenceservices.serving.kserve.io "{name}" not found')
                )
        elif self.command == "PATCH":
            query = parse_qs(urlsplit(self.path).query)
            if self.headers.get("Content-Type") != "application/apply-patch+yaml":
                self._record("isvc", 415)
                self._send(415, status_error(415, "UnsupportedMediaType", "only server-side apply is served here"))
                return
            if query.get("fieldManager") != ["releasectl"] or query.get("force") != ["true"]:
                self._record("isvc", 422)
                self._send(422, status_error(422, "Invalid", "apply needs fieldManager and force=true"))
                return
            body = self._body()
            s.applied.append(copy.deepcopy(body))
            if body.get("metadata", {}).get("name") != name or body.get("kind") != "InferenceService":
                self._record("isvc", 400)
                self._send(400, status_error(400, "BadRequest", "name or kind does not match the path"))
                return
            obj = self._apply(namespace, name, body, s.isvcs.get(key))
            s.isvcs[key] = obj
            s.returned.append(copy.deepcopy(obj))
            self._record("isvc", 200)
            self._send(200, obj)
        elif self.command == "DELETE":
            found = s.isvcs.pop(key, None)
            self._record("isvc", 200 if found else 404)
            if found:
                self._send(
                    200,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "details": {
                            "name": name,
                            "group": "serving.kserve.io",
                            "kind": "inferenceservices",
                            "uid": found["metadata"]["uid"],
                        },
                    },
                )
            else:
                self._send(
                    404, status_error(404, "NotFound", f'inferenceservices.serving.kserve.io "{name}" not found')
                )
        else:
            self._send(405, status_error(405, "MethodNotAllowed", self.command))

    def _apply(self, namespace: str, name: str, body: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
        """Server-side apply by our only field manager (we own every field we send), then KServe's part."""
        s = self.server
        meta = body["metadata"]
        if current is None:
            generation = 1
            base = {"uid": str(uuid.uuid4()), "creationTimestamp": _ts()}
            status: dict[str, Any] = {}
        else:
            changed = current["spec"] != body["spec"]
            generation = current["metadata"]["generation"] + (1 if changed else 0)
            base = {k: current["metadata"][k] for k in ("uid", "creationTimestamp")}
            status = copy.deepcopy(current.get("status") or {})
        obj = {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {
                **base,
                "name": name,
                "namespace": namespace,
                "labels": meta.get("labels", {}),
                "annotations": meta.get("annotations", {}),
                "generation": generation,
                "resourceVersion": s.next_version(),
            },
            "spec": copy.deepcopy(body["spec"]),
        }
        obj["status"] = self._reconcile(obj, status)
        return obj

    def _reconcile(self, obj: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """What KServe's controller would report: revisions, traffic, Ready."""
        from workflows import predictor as pod

        s = self.server
        name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
        predictor = obj["spec"]["predictor"]
        component = status.setdefault("components", {}).setdefault("predictor", {})
        generation = obj["metadata"]["generation"]
        latest = f"{name}-predictor-{generation:05d}"
        if component.get("latestCreatedRevision") != latest:
            args = predictor["containers"][0]["args"]
            opt = {args[i]: args[i + 1] for i in range(0, len(args) - 1, 2)}
            server = pod.make_server(
                opt["--model"], opt["--version"], opt["--artifact"], opt["--store-uri"], port=0,
                shadow_url=opt.get("--shadow-url", ""),
            )  # fmt: skip
            threading.Thread(target=server.serve_forever, daemon=True).start()
            s.revisions[latest] = server
        component["latestCreatedRevision"] = component["latestReadyRevision"] = latest
        canary = predictor.get("canaryTrafficPercent")
        knative = obj["metadata"]["annotations"].get("serving.kserve.io/deploymentMode") == "Knative"
        rolled = component.get("latestRolledoutRevision")
        if canary is not None and knative and rolled and rolled != latest:
            component["traffic"] = [
                {"revisionName": latest, "percent": canary, "latestRevision": True, "tag": "latest"},
                {"revisionName": rolled, "percent": 100 - canary, "latestRevision": False, "tag": "prev"},
            ]
        else:
            if rolled != latest:
                component["previousRolledoutRevision"] = rolled or latest
            component["latestRolledoutRevision"] = latest
            component["traffic"] = [{"revisionName": latest, "percent": 100, "latestRevision": True}]
        url = f"{s.url}{SERVING}{namespace}/{name}"
        component["url"] = url
        status.update(
            url=url,
            address={"url": url},
            observedGeneration=generation,
            deploymentMode="Knative" if knative else "Standard",
            conditions=[
                {
                    "type": t,
                    "status": "True" if s.ready else "False",
                    "lastTransitionTime": _ts(),
                    **({} if s.ready else {"reason": "RevisionMissing"}),
                }
                for t in ("IngressReady", "PredictorReady", "Ready")
            ],
        )
        return status

    # -- the data plane ------------------------------------------------------------------------

    def _serve(self, parts: list[str]) -> None:
        s = self.server
        obj = s.isvcs.get((parts[0], parts[1])) if len(parts) == 3 else None
        if obj is None:
            self._send(404, {"error": "no such inference service"})
            return
        traffic = obj["status"]["components"]["predictor"]["traffic"]
        draw = s.rng.random() * 100
        chosen = traffic[-1]["revisionName"]
        for entry in traffic:
            if draw < entry["percent"]:
                chosen = entry["revisionName"]
                break
            draw -= entry["percent"]
        target = f"{s.revisions[chosen].url}/{parts[2]}"
        data = self._raw_body() if self.command == "POST" else None
        request = urllib.request.Request(target, data=data, method=self.command)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                status, headers, payload = answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as exc:
            status, headers, payload = exc.code, exc.headers, exc.read()
        self.send_response(status)
        for name in ("Content-Type", "X-Model-Version"):
            if headers.get(name):
                self.send_header(name, headers[name])
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
