"""A loopback Argo Server double: workflows in memory, the REST calls releasectl uses, the SSE stream.

Place in the flow: test support, standing in for the Argo Server (no Kubernetes can run here). It
serves, on 127.0.0.1 with a thread per connection, what ../shared/argo/v4.1.2/swagger.json
defines for: create (`POST /api/v1/workflows/{ns}`; 409 "already exists" on a used name), get,
list with `listOptions.labelSelector`, stop (`PUT .../{name}/stop`) and the workflow-events stream
(`GET /api/v1/workflow-events/{ns}`: server-sent events when `Accept: text/event-stream`, one JSON
object per line otherwise; `listOptions.resourceVersion` replays what came after it, or a 410
error message when that version was compacted away; `fields` trims; `:` keep-alives).

Every request and every answer is checked against the swagger as it arrives, and every submitted
workflow against Argo's JSON Schema (published and strict); what does not conform is collected in
`violations` (the fixtures fail a test that leaves any). Workflows are run by tests/argo/engine.py
with a pod runner the test chooses (scripted, or the real step processes).
"""

from __future__ import annotations

import contextlib
import copy
import json
import queue
import socket
import ssl
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.argo.contract import Swagger, workflow_problems
from tests.argo.selectors import selector_matches, trim

TOKEN = "test-token-7c1d"
_END = object()


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    status: int = 0


class ArgoDouble:
    """The server's state and behaviour; `start()` serves it on a free loopback port."""

    def __init__(
        self,
        contract: Swagger | None,
        *,
        token: str | None = TOKEN,
        keepalive_s: float = 0.5,
        tls: ssl.SSLContext | None = None,
        check_answers: bool = True,
    ) -> None:
        self.contract = contract  # None: no checks at all (the benchmark measures the client, not the checks)
        self.tls = tls
        self.check_answers = check_answers and contract is not None
        self.token = token
        self.keepalive_s = keepalive_s
        self.lock = threading.RLock()
        self.workflows: dict[tuple[str, str], dict[str, Any]] = {}
        self.version = 100
        self.history: list[tuple[int, str, str, dict[str, Any]]] = []  # (resourceVersion, ns, type, object)
        self.compacted_before = 0  # a watch from an older version gets 410 Gone
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self.subscribers: list[queue.Queue[Any]] = []
        self.streams_opened = 0
        self.runner: Callable[[ArgoDouble, str, str], None] | None = None  # runs a created workflow
        self.unavailable = False  # creates answer 503, as a server behind a proxy that lost its backend
        self.base_path = ""  # e.g. "/argo": the server answers under that prefix (and without it)
        self.prefixed = 0  # requests that came with the prefix
        self.serve_events = True  # False: the events stream answers 404, as behind a proxy that does not pass it
        self.runs: list[threading.Thread] = []
        self.stopped: dict[tuple[str, str], threading.Event] = {}
        self.server: _Server | None = None
        self.port = 0

    # -- serving --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> ArgoDouble:
        handler = type("Handler", (_Handler,), {"double": self})
        self.server = _Server(("127.0.0.1", self.port), handler)
        if self.tls is not None:
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def down(self) -> None:
        """The server goes away: its port refuses connections, open streams end."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server.cut()
            self.server = None
        self.drop_streams()

    def up(self) -> None:
        """Back on the same port."""
        self.start()

    def drop_streams(self) -> None:
        with self.lock:
            for sub in self.subscribers:
                sub.put(_END)

    def close(self) -> None:
        for event in self.stopped.values():
            event.set()
        self.down()
        for run in self.runs:
            run.join(10)

    # -- state ----------------------------------------------------------------------------------

    def emit(self, ns: str, kind: str, workflow: dict[str, Any]) -> None:
        with self.lock:
            self.history.append((int(workflow["metadata"]["resourceVersion"]), ns, kind, copy.deepcopy(workflow)))
            for sub in self.subscribers:
                sub.put((ns, kind, workflow))

    def update(self, ns: str, name: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Change a stored workflow as Argo's controller would; a new resourceVersion and a MODIFIED event."""
        with self.lock:
            workflow = copy.deepcopy(self.workflows[(ns, name)])
            change(workflow)
            self.version += 1
            workflow["metadata"]["resourceVersion"] = str(self.version)
            phase = (workflow.get("status") or {}).get("phase") or ""
            labels = workflow["metadata"].setdefault("labels", {})
            if phase:
                labels["workflows.argoproj.io/phase"] = phase
            if phase in ("Succeeded", "Failed", "Error"):
                labels["workflows.argoproj.io/completed"] = "true"
            self.workflows[(ns, name)] = workflow
            self.emit(ns, "MODIFIED", workflow)
            return workflow

    def get(self, ns: str, name: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.workflows[(ns, name)])

    def count(self, method: str, prefix: str) -> int:
        return sum(1 for r in self.requests if r.method == method and r.path.startswith(prefix))

    def create(self, ns: str, workflow: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        meta = workflow.setdefault("metadata", {})
        name = meta.get("name")
        with self.lock:
            if (ns, name) in self.workflows:
                return 409, {"code": 6, "message": f'workflows.argoproj.io "{name}" already exists'}
            self.version += 1
            meta.update(namespace=ns, uid=str(uuid.uuid4()), resourceVersion=str(self.version), creationTimestamp=now())
            meta.setdefault("labels", {})["workflows.argoproj.io/completed"] = "false"
            self.workflows[(ns, name)] = workflow
            self.stopped[(ns, name)] = threading.Event()
            self.emit(ns, "ADDED", workflow)
            created = copy.deepcopy(workflow)
        if self.runner is not None:
            thread = threading.Thread(target=self.runner, args=(self, ns, name), daemon=True)
            self.runs.append(thread)
            thread.start()
        return 200, created


class _Server(ThreadingHTTPServer):
    """Remembers its connections, so that going down closes the keep-alive ones too."""

    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections: set[Any] = set()

    def get_request(self) -> tuple[Any, Any]:
        conn, address = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as Go's net/http (the Argo Server) does
        self.connections.add(conn)
        return conn, address

    def shutdown_request(self, request: Any) -> None:
        self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError)):  # a client that hung up is no news
            super().handle_error(request, client_address)

    def cut(self) -> None:
        for conn in list(self.connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    double: ArgoDouble
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return None

    # -- plumbing -------------------------------------------------------------------------------

    def _answer(self, status: int, doc: Any) -> None:
        d = self.double
        if d.check_answers and d.contract is not None:
            d.violations += d.contract.check_response(self.command, self.path, status, doc)
        self._record.status = status
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, code: int) -> None:
        self._answer(status, {"code": code, "message": message})

    def _dispatch(self) -> None:
        d = self.double
        if d.base_path and self.path.startswith(d.base_path + "/"):  # behind an ingress at a path
            self.path = self.path[len(d.base_path) :]
            d.prefixed += 1
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        body = json.loads(raw) if raw else None
        self._record = Recorded(self.command, parts.path, query, body)
        with d.lock:
            d.requests.append(self._record)
        if d.contract is not None:
            d.violations += d.contract.check_request(self.command, self.path, headers, raw)
        if d.token is not None and headers.get("authorization") != f"Bearer {d.token}":
            self._error(401, "token not valid. see https://argo-workflows.readthedocs.io/en/latest/faq/", 16)
            return
        segments = parts.path.strip("/").split("/")
        one = {k: v[-1] for k, v in query.items()}
        match segments:
            case ["api", "v1", "workflows", ns] if self.command == "POST":
                self._create(ns, body or {})
            case ["api", "v1", "workflows", ns] if self.command == "GET":
                self._list(ns, one.get("listOptions.labelSelector", ""))
            case ["api", "v1", "workflows", ns, name] if self.command == "GET":
                self._get(ns, name)
            case ["api", "v1", "workflows", ns, name, "stop"] if self.command == "PUT":
                self._stop(ns, name, body or {})
            case ["api", "v1", "workflow-events", _] if self.command == "GET" and not d.serve_events:
                self._error(404, "Not Found", 5)
            case ["api", "v1", "workflow-events", ns] if self.command == "GET":
                self._events(ns, one, headers.get("accept") == "text/event-stream")
            case _:
                self._error(404, f"{self.command} {parts.path}: not served by this double", 12)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

    # -- operations -----------------------------------------------------------------------------

    def _create(self, ns: str, body: dict[str, Any]) -> None:
        d = self.double
        if d.unavailable:
            self._error(503, "upstream connect error or disconnect/reset before headers", 14)
            return
        workflow = copy.deepcopy(body.get("workflow") or {})
        if d.contract is not None:
            d.violations += [f"POST /api/v1/workflows/{ns}: workflow: {p}" for p in workflow_problems(workflow)]
        meta = workflow.get("metadata") or {}
        if meta.get("namespace", ns) != ns or body.get("namespace", ns) != ns:
            self._error(400, "namespace of the workflow does not match the request's", 3)
            return
        status, doc = d.create(ns, workflow)
        self._answer(status, doc)

    def _get(self, ns: str, name: str) -> None:
        with self.double.lock:
            found = self.double.workflows.get((ns, name))
            doc = copy.deepcopy(found)
        if doc is None:
            self._error(404, f'workflows.argoproj.io "{name}" not found', 5)
        else:
            self._answer(200, doc)

    def _list(self, ns: str, selector: str) -> None:
        d = self.double
        with d.lock:
            items = [
                copy.deepcopy(w)
                for (n, _), w in sorted(d.workflows.items())
                if n == ns and selector_matches(selector, w["metadata"].get("labels") or {})
            ]
            version = str(d.version)
        self._answer(200, {"metadata": {"resourceVersion": version}, "items": items})

    def _stop(self, ns: str, name: str, body: dict[str, Any]) -> None:
        d = self.double
        if (ns, name) not in d.workflows:
            self._error(404, f'workflows.argoproj.io "{name}" not found', 5)
            return
        if body.get("name") not in (None, name) or body.get("namespace") not in (None, ns):
            self._error(400, "name or namespace of the body does not match the path", 3)
            return
        message = body.get("message") or ""

        def shutdown(w: dict[str, Any]) -> None:
            w["spec"]["shutdown"] = "Stop"
            if message:
                w.setdefault("metadata", {}).setdefault("annotations", {})["test/stop-message"] = message

        doc = d.update(ns, name, shutdown)
        d.stopped[(ns, name)].set()
        self._answer(200, doc)

    def _events(self, ns: str, query: dict[str, str], sse: bool) -> None:
        d = self.double
        selector = query.get("listOptions.labelSelector", "")
        fields = query.get("fields", "")
        since = query.get("listOptions.resourceVersion")
        feed: queue.Queue[Any] = queue.Queue()
        with d.lock:
            d.streams_opened += 1
            if since and int(since) < d.compacted_before:
                backlog: list[Any] = [("error", 410, f"too old resource version: {since} ({d.compacted_before})")]
            elif since:
                backlog = [(n, k, w) for v, n, k, w in d.history if v > int(since)]
            else:
                backlog = [(n, "ADDED", copy.deepcopy(w)) for (n, _), w in sorted(d.workflows.items())]
            d.subscribers.append(feed)
        self._record.status = 200
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream" if sse else "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for item in backlog:
                feed.put(item)
            while True:
                try:
                    item = feed.get(timeout=d.keepalive_s)
                except queue.Empty:
                    if sse:
                        self._chunk(b": keep-alive\n\n")
                    continue
                if item is _END:
                    break
                if item[0] == "error":
                    doc = {"error": {"grpc_code": 11, "http_code": item[1], "message": item[2], "http_status": "Gone"}}
                    if d.contract is not None:
                        d.violations += d.contract.check_response("GET", self.path, 200, doc, stream=True)
                    self._message(doc, sse)
                    break
                n, kind, workflow = item
                if n != ns or not selector_matches(selector, workflow["metadata"].get("labels") or {}):
                    continue
                doc = {"result": {"type": kind, "object": workflow}}
                if d.check_answers and d.contract is not None:
                    d.violations += d.contract.check_response("GET", self.path, 200, doc, stream=True)
                self._message(trim(doc, fields), sse)
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with d.lock:
                if feed in d.subscribers:
                    d.subscribers.remove(feed)
            self.close_connection = True

    def _message(self, doc: dict[str, Any], sse: bool) -> None:
        text = json.dumps(doc).encode()
        self._chunk(b"data: " + text + b"\n\n" if sse else text + b"\n")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()
