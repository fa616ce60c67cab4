"""The workflow-events stream: a small server-sent-events reader and the thread that keeps a cache.

Place in the flow: step 4 of a pass, inside the ArgoExecutor. ONE `GET /api/v1/workflow-events/{ns}`
per executor (so per namespace), filtered by `listOptions.labelSelector=releasectl.dev/managed-by=
releasectl`, with `Accept: text/event-stream`; every event (`data: {"result": {"type", "object"}}`,
`:` keep-alive lines between them) updates the RunCache that `finished` and `wait_for_finished`
read. The watcher lists first (one `GET /api/v1/workflows/{ns}` with the same selector), then
watches from the list's resourceVersion; when the stream ends it reconnects from the last
resourceVersion it saw; when it breaks, or the server says that version is too old (410), it lists
again; while the stream cannot be had at all it polls that list every `poll_interval_s` (the
fallback). Never one request per workflow.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from controller.adapters.argo.connection import ArgoAuthError, ArgoUnavailable, Connection, short
from controller.adapters.argo.mapping import resource_version, workflow_run
from controller.errors import ReleasectlError
from controller.ports import ERROR, FINISHED, LABEL_MANAGED, WorkflowRun

SELECTOR = f"{LABEL_MANAGED}=releasectl"
# What the events need not carry: the spec (templates) and the stored copies of templates.
TRIM = "-result.object.spec,result.object.status.storedTemplates,result.object.status.storedWorkflowTemplateSpec"
_MAX_LINE = 64 * 1024 * 1024
_MIN_BACKOFF_S = 0.1


@dataclass(frozen=True)
class Event:
    type: str  # ADDED | MODIFIED | DELETED (or BOOKMARK)
    object: dict[str, Any]


class StreamError(Exception):
    """The server reported an error inside the stream (`data: {"error": {...}}`)."""

    def __init__(self, http_code: int, message: str) -> None:
        super().__init__(f"{http_code}: {message}")
        self.http_code = http_code
        self.message = message


class StreamUnsupported(Exception):
    """The server (or a proxy) does not serve the events stream: poll instead."""


def parse_sse(lines: Iterable[bytes]) -> Iterator[Event]:
    """Server-sent events -> Events. `data:` lines gather until a blank line; `:` lines are keep-alives.

    A line that is a bare JSON object (what Argo sends without `Accept: text/event-stream`) is one
    message too. An error message raises StreamError.
    """
    data: list[str] = []
    for raw in lines:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if line.strip() == "":
            if data:
                yield from _message("\n".join(data))
                data = []
            continue
        if line.startswith(":"):
            continue  # a comment: Argo's keep-alive
        if line.startswith("{"):
            yield from _message(line)
            continue
        key, _, value = line.partition(":")
        if key == "data":
            data.append(value.removeprefix(" "))
        # event:, id:, retry: and unknown fields carry nothing Argo uses
    if data:
        yield from _message("\n".join(data))


def _message(text: str) -> Iterator[Event]:
    try:
        doc = json.loads(text)
    except ValueError:
        return  # a torn message at the end of a dropped stream: the next list or watch repairs it
    if not isinstance(doc, dict):
        return
    if isinstance(doc.get("error"), dict):
        error = doc["error"]
        raise StreamError(int(error.get("http_code") or 0), str(error.get("message") or ""))
    result = doc.get("result")
    if isinstance(result, dict) and isinstance(result.get("object"), dict):
        yield Event(str(result.get("type") or ""), result["object"])


def _newer(candidate: str, current: str) -> bool:
    """Whether a resourceVersion is newer; they are opaque, but Kubernetes' are integers in practice."""
    if candidate.isdigit() and current.isdigit():
        return int(candidate) >= int(current)
    return True


class RunCache:
    """The latest state of every workflow this executor knows, and a condition to wait on.

    Bounded for a controller that runs for months: past `limit` entries, the finished runs seen
    least recently are forgotten first (a forgotten name is fetched again if anyone asks).
    """

    def __init__(self, limit: int = 20_000) -> None:
        self.limit = limit
        self.changed = threading.Condition()
        self._runs: dict[str, WorkflowRun] = {}
        self._versions: dict[str, str] = {}
        self.updates = 0

    def put(self, workflow: Mapping[str, Any], deleted: bool = False) -> WorkflowRun | None:
        run = workflow_run(workflow)
        if not run.name:
            return None
        version = resource_version(workflow)
        with self.changed:
            known = self._versions.get(run.name, "")
            if known and version and not _newer(version, known):
                return self._runs.get(run.name)  # an older answer that raced a newer event
            if deleted:
                before = self._runs.get(run.name, run)
                run = before if before.done else WorkflowRun(
                    before.name, ERROR, "the workflow was deleted before it finished", before.started,
                    before.finished, before.nodes, before.labels, before.annotations,
                )  # fmt: skip
            self._runs.pop(run.name, None)  # re-inserted last: the dict's order is how recently each was seen
            self._runs[run.name] = run
            self._versions[run.name] = version
            if len(self._runs) > self.limit:
                self._evict()
            self.updates += 1
            self.changed.notify_all()
        return run

    def _evict(self) -> None:
        surplus = len(self._runs) - self.limit * 9 // 10  # down to 90 %: one scan per limit/10 new names
        for name in [n for n, r in self._runs.items() if r.phase in FINISHED][:surplus]:
            del self._runs[name]
            self._versions.pop(name, None)

    def __len__(self) -> int:
        return len(self._runs)

    def get(self, name: str) -> WorkflowRun | None:
        with self.changed:
            return self._runs.get(name)

    def done(self, names: Iterable[str]) -> dict[str, WorkflowRun]:
        with self.changed:
            return {n: r for n in names if (r := self._runs.get(n)) is not None and r.phase in FINISHED}

    def poke(self) -> None:
        with self.changed:
            self.updates += 1
            self.changed.notify_all()


ListFn = Callable[[], tuple[list[dict[str, Any]], str]]  # one list call: the items, the list's resourceVersion


class Watcher:
    """The background thread: list, then watch from that version; reconnect; poll when it must."""

    def __init__(
        self,
        connection: Connection,
        cache: RunCache,
        list_workflows: ListFn,
        *,
        poll_interval_s: float = 5.0,
        read_timeout_s: float = 60.0,
        log: Callable[[str], None] = lambda _line: None,
    ) -> None:
        self.connection = connection
        self.cache = cache
        self.list_workflows = list_workflows
        self.poll_interval_s = poll_interval_s
        self.read_timeout_s = read_timeout_s
        self.log = log
        self.streaming = False  # a stream is open: the cache is current
        self.synced = False  # a list has filled the cache at least once
        self.error: ReleasectlError | None = None  # the last failure (an auth error is raised to callers)
        self.connects = 0
        self.lists = 0
        self._stop = threading.Event()
        self._conn: http.client.HTTPConnection | None = None
        self._thread = threading.Thread(target=self._run, name="argo-workflow-events", daemon=True)
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if not self._started:
                self._started = True
                self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
        self.cache.poke()
        if self._started:
            self._thread.join(timeout_s)

    # -- the loop -------------------------------------------------------------------------------

    def _run(self) -> None:
        version: str | None = None
        need_list = True
        poll_only = False
        backoff = _MIN_BACKOFF_S
        while not self._stop.is_set():
            pause = 0.0
            try:
                if need_list or poll_only:
                    version = self._list()
                    need_list = False
                    if poll_only:
                        pause = self.poll_interval_s
                        continue
                opened = time.monotonic()
                version = self._watch(version)
                # The stream ended on its own: reconnect from the last version at once, unless it
                # keeps ending as soon as it opens (a proxy's idle timeout): then back off.
                pause = backoff if time.monotonic() - opened < 1.0 else 0.0
                backoff = min(backoff * 2, self.poll_interval_s) if pause else _MIN_BACKOFF_S
            except StreamError as exc:
                if exc.http_code in (401, 403):
                    self._fail(self.connection.refused(exc.http_code, "watching workflow events", exc.message))
                    pause = self.poll_interval_s
                elif exc.http_code != 410:  # 410 Gone: the version is too old; the list below repairs it
                    self._fail(self.connection.unreachable("watching workflow events", exc))
                need_list = True
            except StreamUnsupported as exc:
                if not poll_only:
                    self.log(
                        f"argo: the workflow-events stream is not served ({exc}); "
                        f"polling every {self.poll_interval_s:g}s instead"
                    )
                poll_only = True
            except ReleasectlError as exc:  # refused (auth), unavailable, TLS
                self._fail(exc)
                need_list = True
                pause = self.poll_interval_s if isinstance(exc, ArgoAuthError) else backoff
                backoff = min(backoff * 2, self.poll_interval_s)
            except ssl.SSLCertVerificationError as exc:
                self._fail(self.connection.untrusted(exc))
                need_list = True
                pause = self.poll_interval_s
            except (OSError, http.client.HTTPException) as exc:  # the stream broke
                self._fail(self.connection.unreachable("watching workflow events", exc))
                need_list = True
                pause = backoff
                backoff = min(backoff * 2, self.poll_interval_s)
            finally:
                self.streaming = False
                if pause:
                    self._stop.wait(pause)

    def _fail(self, exc: ReleasectlError) -> None:
        if self._stop.is_set():
            return
        if str(exc) != str(self.error):
            self.log(f"argo: {exc}")
        self.error = exc
        self.cache.poke()

    def _list(self) -> str | None:
        items, version = self.list_workflows()
        self.lists += 1
        for item in items:
            self.cache.put(item)
        self.synced = True
        self.error = None
        self.cache.poke()
        return version or None

    def _watch(self, version: str | None) -> str | None:
        query = {"listOptions.labelSelector": SELECTOR, "fields": TRIM}
        if version:
            query["listOptions.resourceVersion"] = version
        parts = urlsplit(self.connection.server)
        path = f"{parts.path}api/v1/workflow-events/{self.connection.namespace}?{urlencode(query)}"
        port = parts.port
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                parts.hostname or "", port, timeout=self.read_timeout_s, context=self.connection.ssl_context()
            )
        else:
            conn = http.client.HTTPConnection(parts.hostname or "", port, timeout=self.read_timeout_s)
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        token = self.connection.token.header()
        if token:
            headers["Authorization"] = token
        self._conn = conn
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            if response.status != 200:
                raise self._refusal(response)
            self.connects += 1
            self.streaming = True
            self.error = None
            self.cache.poke()
            for event in parse_sse(_lines(response, self._stop)):
                if event.type == "DELETED":
                    self.cache.put(event.object, deleted=True)
                elif event.type in ("ADDED", "MODIFIED"):
                    self.cache.put(event.object)
                version = resource_version(event.object) or version
            return version
        finally:
            self._conn = None
            conn.close()

    def _refusal(self, response: http.client.HTTPResponse) -> Exception:
        body = response.read(64 * 1024).decode("utf-8", "replace")
        try:
            detail = str(json.loads(body).get("message") or body)
        except (ValueError, AttributeError):
            detail = body
        if response.status in (401, 403):
            return self.connection.refused(response.status, "watching workflow events", detail)
        if response.status in (404, 405, 406, 501):
            return StreamUnsupported(f"{response.status} {short(detail)}")
        if response.status == 410:
            return StreamError(410, detail)
        return ArgoUnavailable(f"the Argo Server at {self.connection.server} answered the events stream with "
                               f"{response.status}: {short(detail)}")  # fmt: skip


def _lines(response: http.client.HTTPResponse, stop: threading.Event) -> Iterator[bytes]:
    while not stop.is_set():  # checked at every line, keep-alives included: close() never waits long
        line = response.readline(_MAX_LINE)
        if not line:
            return
        yield line
