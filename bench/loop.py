"""`make bench`, the long-running controller's section: merge-to-submission latency, and idle passes
with runs in flight.

Place in the flow: called by bench/__main__.py after the git figures. Both use the production
loop and reconciler on a real release repo (a bare file:// remote):
- merge -> submission: 20+ merges pushed by a clone; the time from the push's return to the
  executor's submit, once with a signed webhook per push (the loop's debounce included) and once
  with the poll alone (interval stated); the runs execute the real compiled manifests on the
  LocalExecutor with fast steps (tests/fastexec.py), since the step's work is not what is measured.
- an idle pass (no new commit) with 100 runs in flight at the local engine (DetachedExecutor over
  100 run records that say Running), against an idle pass with none, in the same run.
Nothing is asserted; the figures and ratios are printed and written to bench/results-loop.json.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controller.adapters.git import GitRepo
from controller.adapters.local.detached import DetachedExecutor
from controller.adapters.local.executor import LocalExecutor
from controller.adapters.local.state import write_json
from controller.loop.reconciler import InFlight, Reconciler
from controller.loop.server import Endpoints, Server
from controller.loop.service import Controller
from tests.fastexec import FastExecutor
from tests.support import Clone, make_release_repo

SECRET = b"bench-secret"


def _single_env(seed: Path, models: int = 3) -> None:
    for env in ("staging", "production"):
        for pin in (seed / "environments" / env).iterdir():
            pin.unlink()
        (seed / "environments" / env).rmdir()
    (seed / "environments/policy.yaml").write_text(
        "apiVersion: releasectl/v1\nkind: PromotionPolicy\norder: [dev]\nenvironments:\n  dev: {}\n"
    )
    template = (seed / "environments/dev/wine-classifier.yaml").read_text()
    for i in range(models - 3):
        name = f"extra-{i:03d}"
        (seed / f"environments/dev/{name}.yaml").write_text(template.replace("wine-classifier", name))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _until(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the controller did not get there in time")
        time.sleep(0.005)


class Timed(FastExecutor):
    """The test executor, noting when each workflow is submitted."""

    def __init__(self, engine: LocalExecutor, folder: Path) -> None:
        super().__init__(engine, folder)
        self.submitted_at: dict[str, float] = {}

    def submit(self, manifest: dict[str, Any]) -> str:
        name = super().submit(manifest)
        self.submitted_at.setdefault(name, time.monotonic())
        return name


def merge_to_submission(merges: int, *, webhook: bool, poll_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="releasectl-bench-loop-") as tmp:
        root = Path(tmp)
        repo = make_release_repo(root, edit=_single_env)
        with LocalExecutor(root / "engine", max_parallel=2, preload=("tests.faststeps",)) as engine:
            executor = Timed(engine, root / "fast")
            rec = Reconciler(GitRepo.controller_clone(repo.url, root / "ctl"), executor, executor.compiler())
            ctl = Controller(rec, interval_s=60.0 if webhook else poll_s)
            server = Server(
                "127.0.0.1",
                0,
                Endpoints(
                    secret=SECRET,
                    trigger=ctl.triggers.fire,
                    ready=lambda: (True, "ok"),
                    metrics=ctl.metrics,
                    log=rec.log,
                ),
            ).start()
            thread = threading.Thread(target=ctl.run, daemon=True)
            thread.start()
            try:
                _until(lambda: len(executor.submitted_at) == 3 and not rec.in_flight)
                user = repo.clone("user")
                latencies = []
                for i in range(merges):
                    model = ("wine-classifier", "digits-classifier", "tumor-classifier")[i % 3]
                    seen = len(executor.submitted_at)

                    def edit(c: Clone, model: str = model, i: int = i) -> None:
                        c.write_pin("dev", model, {**c.read_pin("dev", model), "version": f"7.0.{i}"})

                    user.merge_pr(f"b{i}", edit, f"bump {model}")
                    pushed = time.monotonic()
                    if webhook:
                        body = json.dumps({"ref": "refs/heads/main", "after": user.head()}).encode()
                        signature = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
                        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                        conn.request("POST", "/webhooks/generic", body, {"X-Releasectl-Signature": signature})
                        conn.getresponse().read()
                        conn.close()
                    _until(lambda seen=seen: len(executor.submitted_at) > seen)
                    latencies.append(max(executor.submitted_at.values()) - pushed)
                    _until(lambda: not rec.in_flight)
            finally:
                ctl.stop()
                thread.join(10)
                server.close()
    return {
        "operation": "merge_to_submission_webhook" if webhook else "merge_to_submission_poll",
        "merges": merges,
        "poll_interval_s": 60.0 if webhook else poll_s,
        "median_s": statistics.median(latencies),
        "p95_s": _percentile(latencies, 0.95),
    }


def idle_with_runs_in_flight(in_flight: int, repeats: int) -> dict[str, Any]:
    """Median idle pass with `in_flight` runs at the local engine, and with none, on the same repo."""
    with tempfile.TemporaryDirectory(prefix="releasectl-bench-idle-") as tmp:
        root = Path(tmp)
        repo = make_release_repo(root, edit=lambda seed: _single_env(seed, in_flight))
        home = root / "engine"
        executor = DetachedExecutor(home)
        rec = Reconciler(GitRepo.controller_clone(repo.url, root / "ctl"), executor, lambda action: {})
        snap = rec.reader.load(rec.repo.fetch())
        rec.snapshot = snap
        started = datetime.now(UTC).replace(microsecond=0)

        def idle() -> float:
            t0 = time.perf_counter()
            result = rec.reconcile()
            took = time.perf_counter() - t0
            assert not result.outcomes and not result.submitted
            return took

        none = statistics.median(idle() for _ in range(repeats))
        from controller.core.planner import Evidence, plan

        actions = plan(snap.desired, snap.recorded, snap.policy, Evidence(now=started, adopting=True)).runnable()  # type: ignore[arg-type]
        for action in actions[:in_flight]:
            rundir = home / "runs" / action.workflow_name
            rundir.mkdir(parents=True)
            (rundir / "submitted").touch()
            write_json(rundir / "manifest.json", {"metadata": {"name": action.workflow_name, "labels": {}}})
            write_json(rundir / "run.json", {"name": action.workflow_name, "phase": "Running", "nodes": {}})
            rec.in_flight[action.key] = InFlight(action, action.workflow_name, started)
        assert len(rec.in_flight) == in_flight
        some = statistics.median(idle() for _ in range(repeats))
    return {
        "operation": "idle_pass_with_runs_in_flight",
        "runs_in_flight": in_flight,
        "controller_s": some,
        "baseline_s": none,
        "ratio": some / none,
    }


def section(timed: bool, out: Path, log: Callable[[str], None]) -> list[dict[str, Any]]:
    merges = 20 if timed else 6
    log(f"\nlong-running controller ({merges} merges each; 100 runs in flight):")
    rows = [
        merge_to_submission(merges, webhook=True, poll_s=1.0),
        merge_to_submission(merges, webhook=False, poll_s=1.0),
        idle_with_runs_in_flight(100, 50 if timed else 10),
    ]
    for row in rows[:2]:
        how = "webhook" if row["operation"].endswith("webhook") else f"poll every {row['poll_interval_s']:g} s"
        median, p95 = row["median_s"] * 1000, row["p95_s"] * 1000
        log(f"  merge -> submission, {how:<17} median {median:8.1f} ms   p95 {p95:8.1f} ms")
    idle = rows[2]
    log(
        f"  idle pass with {idle['runs_in_flight']} runs in flight {idle['controller_s'] * 1000:8.2f} ms, "
        f"with none {idle['baseline_s'] * 1000:6.2f} ms: ratio {idle['ratio']:.2f} "
        f"({'PASS' if idle['ratio'] <= 2 else 'FAIL'} <= 2)"
    )
    out.write_text(json.dumps(rows, indent=2) + "\n")
    return rows
