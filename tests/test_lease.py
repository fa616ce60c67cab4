"""Leader election over a coordination.k8s.io/v1 Lease, against a loopback Lease API that honours
resourceVersion conflicts (tests/kube_double.py): exactly one acts, a follower takes over after the
leader dies, a leader cut off from the API stops acting before anyone else can start (fencing)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from controller.adapters.kube.lease import LeaseElector, LeaseSettings, coordination_api
from controller.errors import UsageError
from controller.ports import Leadership
from tests.kube_double import KubeDouble

ROOT = Path(__file__).resolve().parent.parent
FAST = {"lease_duration_s": 2.0, "renew_deadline_s": 1.0, "retry_period_s": 0.2}


@pytest.fixture
def kube() -> Iterator[KubeDouble]:
    with KubeDouble() as double:
        yield double


def api(kube: KubeDouble, tmp_path: Path, token: str) -> client.CoordinationV1Api:
    os.environ["KUBECONFIG"] = str(kube.kubeconfig(tmp_path / f"kubeconfig-{token}", token=token))
    try:
        return coordination_api()
    finally:
        del os.environ["KUBECONFIG"]


def elector(kube: KubeDouble, tmp_path: Path, identity: str, **settings: float) -> LeaseElector:
    chosen = {**FAST, **settings}
    return LeaseElector(api(kube, tmp_path, identity), LeaseSettings("leader", "releasectl", identity, **chosen))


def wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"lease_duration_s": 10, "renew_deadline_s": 10, "retry_period_s": 2},
            "retry period < renew deadline < lease",
        ),
        ({"lease_duration_s": 10, "renew_deadline_s": 5, "retry_period_s": 5}, "retry period < renew deadline < lease"),
        ({"lease_duration_s": 10, "renew_deadline_s": 5, "retry_period_s": 0}, "0 < retry period"),
        ({"lease_duration_s": 2.5, "renew_deadline_s": 2, "retry_period_s": 1}, "the lease duration is whole seconds"),
    ],
    ids=["renew-equals-duration", "retry-equals-renew", "no-retry-period", "fractional-duration"],
)
def test_bad_settings_are_a_usage_error_not_an_exit(settings: dict[str, float], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        LeaseSettings("leader", "releasectl", "a", **settings)


def test_the_double_refuses_a_stale_replace(kube: KubeDouble, tmp_path: Path) -> None:
    coordination = api(kube, tmp_path, "x")
    body = client.V1Lease(metadata=client.V1ObjectMeta(name="l"), spec=client.V1LeaseSpec(holder_identity="x"))
    created = coordination.create_namespaced_lease("releasectl", body)
    created.spec.holder_identity = "y"
    coordination.replace_namespaced_lease("l", "releasectl", created)  # carries the version it read: accepted
    with pytest.raises(ApiException) as info:
        coordination.replace_namespaced_lease("l", "releasectl", created)  # the same, now stale
    assert info.value.status == 409


def test_one_leads_the_other_follows_and_takes_over_after_a_release(kube: KubeDouble, tmp_path: Path) -> None:
    a, b = elector(kube, tmp_path, "a"), elector(kube, tmp_path, "b")
    assert isinstance(a, Leadership)
    a.start()
    assert a.wait_until_leader(5)
    b.start()
    assert not b.wait_until_leader(0.6)  # a renews: b never leads while a is alive
    assert a.is_leader() and not b.is_leader()
    released = time.monotonic()
    a.release()
    assert not a.is_leader()
    assert b.wait_until_leader(5)
    # A released lease is free at once: b did not wait a whole lease duration.
    assert kube.lease_holders()[-1][1] == "b"
    first_b = next(t for t, holder in kube.lease_holders() if holder == "b")
    assert first_b - released < FAST["lease_duration_s"]
    b.release()
    lease = kube.leases[("releasectl", "leader")]
    assert "holderIdentity" not in lease["spec"] and lease["spec"]["leaseTransitions"] == 1


def test_a_leader_cut_off_from_the_api_stops_acting_before_the_lease_can_expire(
    kube: KubeDouble, tmp_path: Path
) -> None:
    a, b = elector(kube, tmp_path, "a"), elector(kube, tmp_path, "b")
    a.start()
    assert a.wait_until_leader(5)
    b.start()
    kube.refused_tokens.add("a")  # a can no longer renew
    last_renewal = max(t for t, holder in kube.lease_holders() if holder == "a")
    wait_for(lambda: not a.is_leader(), timeout=5)
    stopped = time.monotonic()
    assert b.wait_until_leader(10)
    took_over = next(t for t, holder in kube.lease_holders() if holder == "b")
    assert stopped < took_over  # fenced: a had stopped acting before b could start
    assert took_over - last_renewal >= FAST["lease_duration_s"]  # b waited out a's whole lease
    a.release()
    b.release()


def _child(identity: str, log: Path, kubeconfig: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONPATH": str(ROOT)}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.lease_child", "--identity", identity, "--log", str(log)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _acts(log: Path) -> list[tuple[str, float]]:
    if not log.exists():
        return []
    rows = [line.split() for line in log.read_text().splitlines()]
    return [(row[0], float(row[1])) for row in rows if len(row) == 2]  # a line being written is skipped


def test_two_processes_exactly_one_acts_and_the_other_takes_over_after_sigkill(
    kube: KubeDouble, tmp_path: Path
) -> None:
    duration, retry = 3.0, 0.5  # the children's defaults: renew deadline 2 s
    log = tmp_path / "acts.log"
    first = _child("first", log, kube.kubeconfig(tmp_path / "k1", token="first"))
    second = None
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "started"
        wait_for(lambda: any(who == "first" for who, _ in _acts(log)), timeout=30)
        second = _child("second", log, kube.kubeconfig(tmp_path / "k2", token="second"))
        assert second.stdout is not None and second.stdout.readline().strip() == "started"
        time.sleep(duration + retry)  # both campaign for longer than a lease duration
        assert {who for who, _ in _acts(log)} == {"first"}  # exactly one acts
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed = time.monotonic()
        wait_for(lambda: any(who == "second" for who, _ in _acts(log)), timeout=30)
        acts = _acts(log)
        last_first = max(t for who, t in acts if who == "first")
        first_second = min(t for who, t in acts if who == "second")
        assert last_first < killed < first_second  # never both acting
        # Within the lease duration plus one retry period (0.5 s more for two processes' scheduling).
        assert first_second - killed <= duration + retry + 0.5
        holders = kube.lease_holders()
        last_first_write = max(t for t, holder in holders if holder == "first")
        first_second_write = min(t for t, holder in holders if holder == "second")
        # The Lease API's own log: second wrote itself in only after first's lease had run out.
        assert first_second_write - last_first_write >= duration
        assert [h for _, h in holders] == sorted([h for _, h in holders], key=["first", "second"].index)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=20)
