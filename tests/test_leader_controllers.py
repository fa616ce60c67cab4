"""Two `releasectl reconcile --leader-elect` processes against the loopback Lease API (tests/kube_double.py).

Real controllers (the CLI, the long-running loop, the ArgoExecutor), two replicas as the
Deployment in deploy/ runs them: each with its own home, as two pods have, and sharing what pods
share: the Argo Server (tests/argo/double.py, checked against Argo's swagger, whose engine runs
every pod's command on this machine: real steps, real training), the artifact store on a
ReadWriteMany volume, and KServe behind the Kubernetes API double. Only the holder of the
coordination.k8s.io/v1 Lease acts: the follower submits nothing and publishes nothing. After
the leader is SIGKILLed, the follower takes the Lease once it has run out (the double's own
request log says when) and records the next merged change. The trail holds exactly one outcome
per change.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests.argo.contract import swagger
from tests.argo.double import TOKEN, ArgoDouble
from tests.argo.engine import runner
from tests.argo.pods import ProcessPods
from tests.kube_double import KubeDouble
from tests.support import ROOT, ReleaseRepo, git, make_release_repo
from tests.test_async import single_env

pytestmark = pytest.mark.slow

MODEL = "tumor-classifier"
DURATION, RENEW, RETRY = 3, 2.0, 0.5


def one_model(seed: Path) -> None:
    single_env(seed)
    for pin in (seed / "environments/dev").iterdir():
        if pin.stem != MODEL:
            pin.unlink()


class Replica:
    """One controller process and its JSON log lines, read on a thread so that it never blocks."""

    def __init__(
        self, name: str, repo: ReleaseRepo, kube: KubeDouble, argo: ArgoDouble, tmp: Path, shared: Path
    ) -> None:
        self.name = name
        env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig(tmp / f"kubeconfig-{name}", token=name))}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        env["ARGO_TOKEN"] = TOKEN
        env["POD_NAME"] = name  # the Deployment sets it from the downward API: the Lease identity
        command = [sys.executable, "-m", "controller", "reconcile", "--repo", repo.url, "--home", str(tmp / name)]
        command += ["--interval", "0.5", "--log-format", "json", "--leader-elect", "--lease-namespace", "releasectl"]
        command += ["--lease-duration", str(DURATION), "--renew-deadline", str(RENEW), "--retry-period", str(RETRY)]
        # What two pods share: the artifact store and data catalog (a ReadWriteMany volume), and
        # the serving target (KServe, through the same API double).
        command += ["--artifact-store", shared.as_uri(), "--target", "kserve", "--serving-namespace", "models"]
        command += ["--executor", "argo", "--argo-server", argo.url, "--namespace", "releasectl"]
        self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
        self.killed = False
        self.records: list[dict[str, object]] = []
        self.raw: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.raw.append(line)
            if line.startswith("{"):
                self.records.append(json.loads(line))

    def said(self, text: str) -> list[dict[str, object]]:
        return [r for r in list(self.records) if text in str(r["msg"])]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)


def wait_until(what: str, check: Callable[[], bool], replicas: list[Replica], timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        if any(r.proc.poll() is not None and not r.killed for r in replicas):
            break
        time.sleep(0.1)
    logs = "".join(f"--- {r.name}\n" + "".join(r.raw[-30:]) for r in replicas)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def dev_status(repo: ReleaseRepo) -> dict[str, str]:
    try:
        doc = yaml.safe_load(git(repo.remote, "show", f"main:status/dev/{MODEL}.yaml"))
    except subprocess.CalledProcessError:
        return {}
    return {"phase": doc["phase"], "version": doc["desired"]["version"]}


@contextmanager
def argo_double(tmp: Path, kube: KubeDouble) -> Iterator[ArgoDouble]:
    pods = ProcessPods(tmp / "pods", {"KUBECONFIG": str(kube.kubeconfig(tmp / "kubeconfig-pods", token="pods"))})
    server = ArgoDouble(swagger(), keepalive_s=0.5)
    server.runner = runner(pods)
    server.start()
    try:
        yield server
    finally:
        server.close()
    assert server.violations == [], "\n".join(server.violations)


def test_only_the_lease_holder_acts_and_the_follower_takes_over_after_sigkill(tmp_path: Path) -> None:
    repo = make_release_repo(tmp_path, edit=one_model)
    first_version = repo.clone("reader").read_pin("dev", MODEL)["version"]
    shared = tmp_path / "shared"
    shared.mkdir()
    with KubeDouble() as kube, argo_double(tmp_path, kube) as argo:
        a = Replica("ctl-a", repo, kube, argo, tmp_path, shared)
        replicas = [a]
        try:
            wait_until("ctl-a to lead", lambda: bool(a.said("leader election: ctl-a leads")), replicas)
            b = Replica("ctl-b", repo, kube, argo, tmp_path, shared)
            replicas.append(b)
            wait_until(
                "the first outcome",
                lambda: dev_status(repo) == {"phase": "Deployed", "version": first_version},
                replicas,
            )
            wait_until(
                "ctl-b to campaign",
                lambda: any(e["kind"] == "lease" and e["authorization"] == "Bearer ctl-b" for e in kube.log),
                replicas,
            )
            time.sleep(DURATION + RETRY)  # both replicas run for longer than a lease duration
            assert b.proc.poll() is None and not b.said("leads")
            assert [r["model"] for r in a.said(": submitted ")] == [MODEL]
            assert b.said(": submitted ") == [] and b.said("recorded ") == []

            a.killed = True
            a.proc.send_signal(signal.SIGKILL)
            a.proc.wait()
            killed = time.monotonic()
            person = repo.clone("person")
            pin = person.read_pin("dev", MODEL)
            pin["version"] = "9.9.0"
            person.write_pin("dev", MODEL, pin)
            person.commit(f"Bump {MODEL} in dev to 9.9.0")
            person.push()
            wait_until(
                "ctl-b to record the next change",
                lambda: dev_status(repo) == {"phase": "Deployed", "version": "9.9.0"},
                replicas,
            )
            assert b.said("leader election: ctl-b leads")
            assert [r["model"] for r in b.said(": submitted ")] == [MODEL]
            holders = kube.lease_holders()
            last_a = max(t for t, who in holders if who == "ctl-a")
            first_b = min(t for t, who in holders if who == "ctl-b")
            assert last_a < killed < first_b  # the Lease never named ctl-b while ctl-a was alive
            assert first_b - last_a >= DURATION  # it waited for ctl-a's lease to run out
            assert first_b - killed <= DURATION + RETRY + 1.0
            assert {who for _, who in holders} == {"ctl-a", "ctl-b"}
            outcomes = repo.log("%s", f"status/dev/{MODEL}.yaml")
            assert len(outcomes) == 2, outcomes  # one status commit per change: nothing twice
        finally:
            for replica in replicas:
                replica.stop()
