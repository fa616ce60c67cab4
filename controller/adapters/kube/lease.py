"""Leader election over a coordination.k8s.io/v1 Lease: only the leader runs passes.

Place in the flow: built by controller/app/cluster_wiring.py (`--leader-elect`) and handed to the
long-running loop, which asks `is_leader()` before each pass and again before it publishes
(controller/ports.py, Leadership). The loop is ours, over CoordinationV1Api: the client's
kubernetes.leaderelection calls sys.exit on bad settings and never gives the lease up.

- Read the Lease; create it when missing; take it over only when the holder's record has not
  changed for a whole lease duration *as this process observed it* (its own monotonic clock, as
  client-go does, so no two machines' clocks are compared); renew it when we hold it. Every write
  is a replace carrying the resourceVersion we read: a 409 means someone else wrote first, and we
  are not the leader this round.
- Fencing: a renewal that started at t makes us leader until t + renew_deadline, never longer.
  renew_deadline < lease_duration, and a follower starts counting only after it sees that write,
  so we stop acting before any follower can consider the lease expired.
- `release()` stops renewing and writes the lease back with no holder, so a follower takes over
  at its next try instead of after a lease duration.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from controller.errors import TransientError, UsageError

LOG = Callable[[str], None]


@dataclass(frozen=True)
class LeaseSettings:
    name: str
    namespace: str
    identity: str
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period_s < self.renew_deadline_s < self.lease_duration_s:
            raise UsageError(
                "leader election needs 0 < retry period < renew deadline < lease duration, got "
                f"{self.retry_period_s:g}s, {self.renew_deadline_s:g}s, {self.lease_duration_s:g}s"
            )
        if self.lease_duration_s != int(self.lease_duration_s) or self.lease_duration_s < 1:
            raise UsageError(f"the lease duration is whole seconds (a Lease field), got {self.lease_duration_s:g}")
        if not self.identity or len(self.identity) > 128:
            raise UsageError("the leader-election identity must be 1 to 128 characters")


def default_identity() -> str:
    """POD_NAME in a pod (the Deployment sets it from the downward API), else host-pid-random."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def _now() -> datetime:
    return datetime.now(UTC)


class LeaseElector:
    """Leadership (controller/ports.py) over one Lease, renewed by a background thread."""

    def __init__(
        self,
        api: Any,
        settings: LeaseSettings,
        *,
        log: LOG | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api  # kubernetes.client.CoordinationV1Api
        self.settings = settings
        self.identity = settings.identity
        self._log = log or (lambda _line: None)
        self._clock = clock
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._valid_until = 0.0  # we may act until this monotonic instant
        self._leading = False
        self._observed: tuple[str | None, str | None] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the protocol ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lease-elector", daemon=True)
            self._thread.start()

    def is_leader(self) -> bool:
        with self._lock:
            return self._leading and self._clock() < self._valid_until

    def wait_until_leader(self, timeout_s: float) -> bool:
        deadline = self._clock() + timeout_s
        with self._changed:
            while not (self._leading and self._clock() < self._valid_until):
                left = deadline - self._clock()
                if left <= 0:
                    return False
                self._changed.wait(min(left, self.settings.retry_period_s))
            return True

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.renew_deadline_s)
            self._thread = None
        with self._lock:
            was_leading, self._leading, self._valid_until = self._leading, False, 0.0
        if was_leading:
            try:
                lease = self.api.read_namespaced_lease(self.settings.name, self.settings.namespace)
                if lease.spec is not None and lease.spec.holder_identity == self.identity:
                    lease.spec.holder_identity = None
                    lease.spec.lease_duration_seconds = 1
                    lease.spec.renew_time = _now()
                    self.api.replace_namespaced_lease(self.settings.name, self.settings.namespace, lease)
                    self._log(f"leader election: {self.identity} released lease {self._where}")
            except Exception as exc:  # giving up is best effort: the lease expires anyway
                self._log(f"leader election: could not release lease {self._where}: {_short(exc)}")

    # -- the loop -------------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"{self.settings.namespace}/{self.settings.name}"

    def _run(self) -> None:
        while not self._stop.is_set():
            started = self._clock()
            try:
                leading = self.try_acquire_or_renew(started)
            except Exception as exc:
                leading = False
                self._log(f"leader election: lease {self._where}: {_short(exc)}")
            with self._changed:
                if leading:
                    if not self._leading:
                        self._log(f"leader election: {self.identity} leads (lease {self._where})")
                    self._leading = True
                    self._valid_until = started + self.settings.renew_deadline_s
                elif self._leading and self._clock() >= self._valid_until:
                    self._leading = False
                    self._log(f"leader election: {self.identity} lost lease {self._where}; not acting")
                self._changed.notify_all()
            self._stop.wait(self._next_wait())

    def _next_wait(self) -> float:
        """A retry period; a follower wakes exactly when the holder's lease expires if that is sooner."""
        wait = self.settings.retry_period_s
        with self._lock:
            if not self._leading and self._observed is not None and self._observed[0]:
                expires = self._observed_at + self.settings.lease_duration_s
                wait = min(wait, max(expires - self._clock(), 0.0) + 0.001)
        return wait

    def try_acquire_or_renew(self, started: float | None = None) -> bool:
        """One round: whether we hold the lease now. Raises on API failures other than 404/409."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        s = self.settings
        now = self._clock() if started is None else started
        try:
            lease = self.api.read_namespaced_lease(s.name, s.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise _api_error(exc, f"read lease {self._where}") from None
            body = client.V1Lease(
                api_version="coordination.k8s.io/v1",
                kind="Lease",
                metadata=client.V1ObjectMeta(name=s.name, namespace=s.namespace),
                spec=client.V1LeaseSpec(
                    holder_identity=self.identity,
                    lease_duration_seconds=int(s.lease_duration_s),
                    acquire_time=_now(),
                    renew_time=_now(),
                    lease_transitions=0,
                ),
            )
            try:
                self.api.create_namespaced_lease(s.namespace, body)
            except ApiException as exc2:
                if exc2.status == 409:
                    return False
                raise _api_error(exc2, f"create lease {self._where}") from None
            return True
        spec = lease.spec or client.V1LeaseSpec()
        holder = spec.holder_identity or None
        record = (holder, spec.renew_time.isoformat() if spec.renew_time else None)
        if record != self._observed:
            with self._lock:
                self._observed, self._observed_at = record, now
        if holder and holder != self.identity:
            duration = float(spec.lease_duration_seconds or s.lease_duration_s)
            if now < self._observed_at + duration:
                return False  # someone holds it and has renewed within a lease duration, as we saw it
        if holder != self.identity:
            spec.acquire_time = _now()
            spec.lease_transitions = (spec.lease_transitions or 0) + 1  # as client-go counts: every change of holder
        spec.holder_identity = self.identity
        spec.lease_duration_seconds = int(s.lease_duration_s)
        spec.renew_time = _now()
        lease.spec = spec
        try:
            self.api.replace_namespaced_lease(s.name, s.namespace, lease)  # carries the resourceVersion we read
        except ApiException as exc:
            if exc.status == 409:
                return False  # someone else wrote first
            raise _api_error(exc, f"replace lease {self._where}") from None
        return True


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def _api_error(exc: Any, what: str) -> TransientError:
    return TransientError(f"{what}: Kubernetes API {exc.status} {exc.reason or ''}".strip())


def coordination_api() -> Any:
    """CoordinationV1Api from the in-cluster configuration in a pod, else KUBECONFIG."""
    from kubernetes import client, config

    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return client.CoordinationV1Api(client.ApiClient(configuration))
    try:
        # KUBECONFIG is read now: the client reads it once, at import time, otherwise.
        api_client = config.new_client_from_config(config_file=os.environ.get("KUBECONFIG"))  # type: ignore[no-untyped-call]
        return client.CoordinationV1Api(api_client)
    except Exception as exc:  # a missing or bad kubeconfig: the operator's to fix
        raise UsageError(f"leader election: no in-cluster config and no usable KUBECONFIG ({_short(exc)})") from None
