"""ArgoExecutor: runs the compiled workflows on an Argo Server, through Hera's WorkflowsService.

Place in the flow: step 4 of a pass (git -> pins -> plan -> **executor** -> status commit), on a
cluster. It implements controller/ports.py's Executor and is the only user of Hera's
WorkflowsService (an import-linter contract says so):

- submit: `POST /api/v1/workflows/{ns}` with `{"namespace", "workflow"}`. The name is deterministic,
  so a 409 ("already exists") is a resubmission: the existing workflow is fetched and attached to
  when its identity (ports.identity: environment, model, action labels, source-commit and
  spec-digest annotations) is the manifest's; otherwise RunConflict names the difference.
- get: the event cache when the stream is live, else `GET /api/v1/workflows/{ns}/{name}`.
- list: `GET /api/v1/workflows/{ns}?listOptions.labelSelector=...`.
- finished / wait_for_finished: read the cache that ONE workflow-events stream per namespace keeps
  current (events.py); a name the cache does not know is fetched once (404: an Error run saying it
  vanished). Never one request per workflow per poll.
- stop: `PUT /api/v1/workflows/{ns}/{name}/stop` (Argo ends it Failed, running exit handlers);
  nothing when it has finished or does not exist.

Errors: 401/403 -> ArgoAuthError naming where the token came from (a PermanentError); a server
that cannot be reached, times out or answers 5xx -> ArgoUnavailable (a TransientError: the
reconciler records Errored and retries later); a certificate that does not verify -> ArgoTLSError;
400 -> ArgoRejected.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Collection, Mapping
from types import TracebackType
from typing import Any, TypeVar, cast

import requests
from hera.exceptions import AlreadyExists, BadRequest, Forbidden, HeraException, NotFound, Unauthorized
from hera.workflows.models import Workflow as ArgoWorkflow
from hera.workflows.models import WorkflowCreateRequest, WorkflowStopRequest
from hera.workflows.service import WorkflowsService
from pydantic import ValidationError

from controller.adapters.argo.connection import (
    ArgoRejected,
    ArgoUnavailable,
    Connection,
    short,
)
from controller.adapters.argo.events import SELECTOR, RunCache, Watcher
from controller.ports import ERROR, LABEL_MANAGED, RunConflict, WorkflowRun, identity

T = TypeVar("T")


class _Session(requests.Session):
    """A requests session whose every request has a timeout (Hera passes none)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout_s)
        return super().request(method, url, *args, **kwargs)


def _dump(model: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped


class ArgoExecutor:
    """Runs workflows on an Argo Server; see the module docstring."""

    name = "argo"

    def __init__(
        self,
        connection: Connection,
        *,
        poll_interval_s: float = 5.0,
        read_timeout_s: float = 60.0,
        log: Callable[[str], None] = lambda _line: None,
    ) -> None:
        self.connection = connection
        self.namespace = connection.namespace
        self.log = log
        for line in connection.warnings():
            log(line)
        if connection.insecure:
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # we said it once, loudly
        self._service = self._new_service()
        self._watch_service = self._new_service()  # the watcher's own session: sessions are not shared
        self._locks = {id(self._service): threading.Lock(), id(self._watch_service): threading.Lock()}
        self.cache = RunCache()
        self.watcher = Watcher(
            connection,
            self.cache,
            self._list_for_watcher,
            poll_interval_s=poll_interval_s,
            read_timeout_s=read_timeout_s,
            log=log,
        )
        self._closed = False

    def _new_service(self) -> WorkflowsService:
        # requests' `verify` takes a CA bundle path as well as a bool; Hera passes it through as is.
        return WorkflowsService(
            host=self.connection.server,
            verify_ssl=cast(bool, self.connection.verify),
            namespace=self.namespace,
            session=_Session(self.connection.request_timeout_s),
        )

    # -- calls through Hera, with our errors ----------------------------------------------------

    def _call(self, service: WorkflowsService, what: str, fn: Callable[[], T]) -> T:
        lock = self._locks[id(service)]
        try:
            with lock:  # one request at a time per session (a requests.Session is not meant to be shared)
                service.token = self.connection.token.header()
                return fn()
        except (Unauthorized, Forbidden) as exc:
            raise self.connection.refused(exc.status_code, what, _server_message(exc)) from None
        except (NotFound, AlreadyExists):
            raise
        except BadRequest as exc:
            raise ArgoRejected(f"the Argo Server at {self.connection.server} rejected {what}: "
                               f"{short(_server_message(exc))}") from None  # fmt: skip
        except HeraException as exc:  # 500, 501 and every other status Hera does not name
            raise self.connection.unreachable(what, exc) from None
        except requests.exceptions.SSLError as exc:
            raise self.connection.untrusted(exc) from None
        except requests.RequestException as exc:  # refused, reset, timed out
            raise self.connection.unreachable(what, _root(exc)) from None
        except (KeyError, ValueError, ValidationError) as exc:  # an error body without "message", a torn answer
            raise ArgoUnavailable(f"the Argo Server at {self.connection.server} gave an unreadable answer "
                                  f"while {what}: {short(exc)}") from None  # fmt: skip

    def _fetch(self, name: str) -> WorkflowRun | None:
        try:
            found = self._call(
                self._service,
                f"getting workflow {name}",
                lambda: self._service.get_workflow(name, namespace=self.namespace),
            )
        except NotFound:
            return None
        return self.cache.put(_dump(found))

    def _list_for_watcher(self) -> tuple[list[dict[str, Any]], str]:
        found = self._call(
            self._watch_service,
            "listing workflows",
            lambda: self._watch_service.list_workflows(namespace=self.namespace, label_selector=SELECTOR),
        )
        items = [_dump(w) for w in found.items or []]
        version = (found.metadata.resource_version if found.metadata is not None else None) or ""
        return items, version

    # -- the Executor protocol ------------------------------------------------------------------

    def submit(self, manifest: dict[str, Any]) -> str:
        """Create the workflow, or attach to the one of the same name and identity (a 409)."""
        return self._submit(manifest, again=True)

    def _submit(self, manifest: dict[str, Any], *, again: bool) -> str:
        self._open()
        metadata = manifest.get("metadata") or {}
        name = metadata.get("name")
        if not isinstance(name, str) or not name:
            raise ArgoRejected("a workflow submitted to Argo needs metadata.name (names are deterministic)")
        body = copy.deepcopy(manifest)
        body["metadata"]["namespace"] = self.namespace
        try:
            workflow = ArgoWorkflow.model_validate(body)
        except ValidationError as exc:
            where = ".".join(map(str, exc.errors()[0]["loc"])) if exc.errors() else "?"
            raise ArgoRejected(f"workflow {name} does not fit Argo's Workflow model at {where}: "
                               f"{short(exc.errors()[0]['msg'] if exc.errors() else exc)}") from None  # fmt: skip
        request = WorkflowCreateRequest(namespace=self.namespace, workflow=workflow)
        self.watcher.start()
        try:
            created = self._call(
                self._service,
                f"creating workflow {name}",
                lambda: self._service.create_workflow(request, namespace=self.namespace),
            )
        except AlreadyExists:
            existing = self._fetch(name)
            if existing is None:  # deleted between our create and our get: try once more
                if again:
                    return self._submit(manifest, again=False)
                raise ArgoUnavailable(
                    f"the Argo Server at {self.connection.server} says workflow {name} exists and does not"
                ) from None
            want, have = identity(metadata), identity({"labels": existing.labels, "annotations": existing.annotations})
            if want != have:
                diff = ", ".join(
                    f"{k}: {have.get(k, '<none>')!r} (want {want.get(k, '<none>')!r})"
                    for k in sorted(set(want) | set(have))
                    if want.get(k) != have.get(k)
                )
                raise RunConflict(
                    f"workflow {name} in namespace {self.namespace} already exists for another action ({diff})"
                ) from None
            self.log(f"argo: {name} exists already ({existing.phase}): attached")
            return name
        self.cache.put(_dump(created))
        return name

    def get(self, name: str) -> WorkflowRun | None:
        self._open()
        cached = self.cache.get(name)
        if cached is not None and (self.watcher.streaming or cached.done):
            return cached
        return self._fetch(name)

    def list(self, labels: Mapping[str, str]) -> list[WorkflowRun]:
        self._open()
        for key, value in labels.items():
            if any(c in f"{key}{value}" for c in ",=!() "):
                raise ValueError(f"label {key}={value!r} cannot be part of a label selector")
        wanted = {LABEL_MANAGED: "releasectl", **labels}  # only ever releasectl's workflows, the stream's selector
        selector = ",".join(f"{k}={v}" for k, v in wanted.items())
        found = self._call(
            self._service,
            f"listing workflows with {selector}",
            lambda: self._service.list_workflows(namespace=self.namespace, label_selector=selector),
        )
        runs = []
        for item in found.items or []:
            run = self.cache.put(_dump(item))
            if run is not None:
                runs.append(run)
        return runs

    def finished(self, names: Collection[str]) -> dict[str, WorkflowRun]:
        self._open()
        self.watcher.start()
        self._raise_auth()
        done = self.cache.done(names)
        for name in names:
            if name in done or self.cache.get(name) is not None:
                continue
            run = self._fetch(name)  # not seen yet (another process submitted it): one GET, then the stream
            if run is None:
                done[name] = WorkflowRun(name, ERROR, f"workflow {name} vanished from namespace {self.namespace}")
            elif run.done:
                done[name] = run
        return done

    def wait_for_finished(self, names: Collection[str], timeout_s: float) -> bool:
        end = time.monotonic() + max(0.0, timeout_s)
        if self.finished(names):
            return True
        cond = self.cache.changed
        while True:
            with cond:
                if self.cache.done(names):
                    return True
                left = end - time.monotonic()
                if left <= 0:
                    return False
                cond.wait(left)
            if self._closed:
                return False
            self._raise_auth()
            if self.cache.done(names):
                return True

    def stop(self, name: str, message: str = "") -> None:
        self._open()
        current = self.get(name)
        if current is None or current.done:
            return
        request = WorkflowStopRequest(name=name, namespace=self.namespace, message=message or None)
        try:
            stopped = self._call(
                self._service,
                f"stopping workflow {name}",
                lambda: self._service.stop_workflow(name, request, namespace=self.namespace),
            )
        except NotFound:
            return
        except ArgoRejected:  # Argo refuses to stop a completed workflow: it finished since we looked
            now = self._fetch(name)
            if now is None or now.done:
                return
            raise
        self.cache.put(_dump(stopped))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.watcher.close()
        self._service.session.close()
        self._watch_service.session.close()

    def __enter__(self) -> ArgoExecutor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- helpers --------------------------------------------------------------------------------

    def _open(self) -> None:
        if self._closed:
            raise RuntimeError("this ArgoExecutor is closed")

    def _raise_auth(self) -> None:
        from controller.adapters.argo.connection import ArgoAuthError

        error = self.watcher.error
        if isinstance(error, ArgoAuthError):
            raise error


def _server_message(exc: HeraException) -> str:
    text = str(exc)
    start, end = text.find("`"), text.rfind("`")
    return text[start + 1 : end] if 0 <= start < end else text


def _root(exc: BaseException) -> BaseException:
    """The innermost cause of a requests error (urllib3 wraps 'Connection refused' three levels deep)."""
    seen = exc
    while True:
        inner = seen.__cause__ or seen.__context__
        if inner is None or inner is seen:
            break
        seen = inner
    return seen
