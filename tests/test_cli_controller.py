"""`releasectl reconcile --interval --listen` as a process: endpoints, SIGTERM, runs that outlive it.

Real training on the real steps (slow): the controller is stopped with SIGTERM while its runs are
in flight; it exits 0, the local engine finishes the runs, and the next controller attaches to
them and records their outcomes without starting any run again.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support import git, make_release_repo
from tests.test_async import single_env

pytestmark = pytest.mark.slow


def test_sigterm_leaves_runs_in_flight_to_be_attached_at_the_next_start(tmp_path: Path) -> None:
    repo = make_release_repo(tmp_path, edit=single_env)
    home = tmp_path / "home"
    command = [sys.executable, "-m", "controller", "reconcile", "--repo", repo.url, "--home", str(home)]
    proc = subprocess.Popen(
        [*command, "--interval", "0.5", "--listen", "127.0.0.1:0", "--log-format", "json"],
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    port = None
    assert proc.stderr is not None
    end = time.monotonic() + 120
    while time.monotonic() < end:
        line = proc.stderr.readline()
        lines.append(line)
        if m := re.match(r"listening on 127\.0\.0\.1:(\d+)$", line.strip()):
            port = int(m.group(1))
        if sum(": submitted " in x for x in lines) == 3:
            break
    assert port is not None, "".join(lines)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
        assert response.status == 200
    submitted = [json.loads(x) for x in lines if x.startswith("{") and ": submitted " in x]
    assert {r["model"] for r in submitted} == {"digits-classifier", "tumor-classifier", "wine-classifier"}
    assert all(r["environment"] == "dev" and r["workflow"].startswith("rc-dev-") for r in submitted)

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    rest = proc.stderr.read()
    assert "stopping: SIGTERM received; runs in flight are left to the executor" in rest
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)

    once = subprocess.run([*command, "--once", "--format", "json"], capture_output=True, text=True, check=False)
    assert once.returncode == 0, once.stderr
    result = json.loads(once.stdout)
    # what the first controller had not recorded; a latency gate may fail on a loaded machine: Failed is
    # an outcome too, what matters here is one per pin, whoever recorded it
    assert {o["phase"] for o in result["outcomes"]} <= {"Deployed", "Failed"}
    models = git(repo.remote, "log", "--format=%(trailers:key=Releasectl-Model,valueonly)", "main", "--", "status")
    assert sorted(models.split()) == ["digits-classifier", "tumor-classifier", "wine-classifier"]
    started = [line.split() for line in (home / "executor" / "submissions.log").read_text().splitlines()]
    assert sorted(name for _, what, name, _pid in started if what == "start") == sorted(
        r["workflow"] for r in submitted
    )
    assert not [s for s in started if s[1] == "restart"]
