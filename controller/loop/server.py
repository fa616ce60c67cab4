"""The controller's HTTP endpoints: push webhooks, health, readiness and metrics.

Place in the flow: beside the loop (`releasectl reconcile --listen HOST:PORT`). A webhook only
triggers a pass (a fetch): the controller still trusts only what git says, never the payload.

- `POST /webhooks/github`: `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 of the raw body.
- `POST /webhooks/gitlab`: `X-Gitlab-Token: <secret>`.
- `POST /webhooks/generic`: `X-Releasectl-Signature: sha256=<hex>`, HMAC-SHA256 of the raw body.
  Every comparison is constant-time (hmac.compare_digest). Unsigned or wrongly signed: 401 and one
  log line without the payload; a body over 1 MiB: 413 (refused before it is read).
- `GET /healthz`: 200 while the process is alive. `GET /readyz`: 200 when the repo is reachable
  and the last pass succeeded within three intervals, else 503 with the reason in the body.
- `GET /metrics`: prometheus text format (controller/loop/metrics.py).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from controller.loop.metrics import CONTENT_TYPE, Metrics
from controller.loop.reconciler import Log

MAX_BODY = 1024 * 1024
WEBHOOKS = ("github", "gitlab", "generic")


def hmac_hex(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(kind: str, secret: bytes, headers: Any, body: bytes) -> str | None:
    """None when the request is signed with `secret`; otherwise why not (no secret material in it)."""
    if kind == "gitlab":
        token = headers.get("X-Gitlab-Token")
        if token is None:
            return "missing X-Gitlab-Token"
        return None if hmac.compare_digest(token.encode(), secret) else "X-Gitlab-Token does not match"
    header = "X-Hub-Signature-256" if kind == "github" else "X-Releasectl-Signature"
    given = headers.get(header)
    if given is None:
        return f"missing {header}"
    expected = "sha256=" + hmac_hex(secret, body)
    return None if hmac.compare_digest(given.strip().encode(), expected.encode()) else f"{header} does not match"


class Endpoints:
    """What the handler needs: the secret, the trigger, readiness and the metrics."""

    def __init__(
        self,
        *,
        secret: bytes | None,
        trigger: Callable[[str], None],
        ready: Callable[[], tuple[bool, str]],
        metrics: Metrics,
        log: Log,
    ) -> None:
        self.secret = secret
        self.trigger = trigger
        self.ready = ready
        self.metrics = metrics
        self.log = log


def _handler(ep: Endpoints) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "releasectl"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            return None  # requests are counted in the metrics; failures are logged below

        def _send(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._send(200, b"ok\n")
            elif path == "/readyz":
                ok, why = ep.ready()
                self._send(200 if ok else 503, (why + "\n").encode())
            elif path == "/metrics":
                self._send(200, ep.metrics.render(), CONTENT_TYPE)
            else:
                self._send(404, b"not found\n")

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            kind = path.removeprefix("/webhooks/") if path.startswith("/webhooks/") else ""
            if kind not in WEBHOOKS:
                ep.metrics.webhooks.labels("not_found").inc()
                self.close_connection = True  # its body is not read: do not reuse the connection
                self._send(404, b"not found\n")
                return
            length_text = self.headers.get("Content-Length")
            try:
                length = int(length_text) if length_text is not None else -1
            except ValueError:
                length = -1
            if length < 0:
                ep.metrics.webhooks.labels("bad_request").inc()
                self.close_connection = True
                self._send(411, b"a Content-Length is required\n")
                return
            if length > MAX_BODY:
                ep.metrics.webhooks.labels("too_large").inc()
                ep.log(f"webhook {kind}: refused a body of {length} bytes (limit {MAX_BODY})", level="warning")
                self.close_connection = True  # the body is not read: do not reuse the connection
                self._send(413, b"payload too large\n")
                return
            body = self.rfile.read(length)
            if ep.secret is None:
                ep.metrics.webhooks.labels("not_configured").inc()
                ep.log(f"webhook {kind}: refused, no webhook secret is configured", level="warning")
                self._send(401, b"webhooks need --webhook-secret-file or RELEASECTL_WEBHOOK_SECRET\n")
                return
            why = verify(kind, ep.secret, self.headers, body)
            if why is not None:
                ep.metrics.webhooks.labels("unauthorized").inc()
                ep.log(f"webhook {kind}: unauthorized ({why}) from {self.client_address[0]}", level="warning")
                self._send(401, b"unauthorized\n")
                return
            ep.metrics.webhooks.labels("accepted").inc()
            ep.trigger(f"webhook {kind}")
            self._send(202, b"accepted: a pass will fetch\n")

    return Handler


class Server:
    """A threading HTTP server on (host, port); port 0 picks a free one (see .port)."""

    def __init__(self, host: str, port: int, endpoints: Endpoints) -> None:
        self.httpd = ThreadingHTTPServer((host, port), _handler(endpoints))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> Server:
        self.thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` (or `:PORT` for every interface); ValueError with the rule otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - asked for with ":PORT"
