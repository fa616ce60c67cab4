"""LocalExecutor keeps runs on disk: attach by name, restart abandoned runs, refuse conflicts, stop.

Place in the flow: tests of step 4 (the executor's crash safety). Steps are cheap containers
(`python -c ...`, plain subprocesses) that count their executions in a file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hera.workflows import DAG, Container, Parameter, Workflow

from controller.adapters.local.executor import LocalExecutor, ManifestConflict, UnknownRun
from controller.adapters.local.manifest import manifest_digest
from controller.adapters.local.state import OwnerLock
from controller.errors import TransientError
from controller.ports import Executor
from tests.executor.conftest import compiled

# Appends a line to the counter file, then sleeps the given seconds (0: none).
COUNT = "import sys, time; open(sys.argv[1], 'a').write('x\\n'); time.sleep(float(sys.argv[2]))"


def counting(name: str, counter: Path, sleep: str = "0", tasks: tuple[str, ...] = ("count",)) -> dict[str, Any]:
    step = Container(
        name="count",
        command=["python", "-c", COUNT],
        args=["{{inputs.parameters.counter}}", "{{inputs.parameters.sleep}}"],
        inputs=[Parameter(name="counter"), Parameter(name="sleep", default="0")],
    )
    with Workflow(name=name, entrypoint="main") as wf, DAG(name="main"):
        prev = None
        for t in tasks:
            cur = step(name=t, arguments={"counter": str(counter), "sleep": sleep})
            if prev is not None:
                prev >> cur
            prev = cur
    return compiled(wf)


def runs(counter: Path) -> int:
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def until_counted(ex: LocalExecutor, name: str, counter: Path, n: int) -> None:
    """Wait until the step has started and counted itself n times (it then sleeps)."""
    while runs(counter) < n:
        assert ex.poll(name).phase in ("Pending", "Running")
        ex.wait(name, 0.05)


def test_run_is_persisted_and_a_finished_run_is_attached_not_rerun(tmp_path: Path) -> None:
    counter, home = tmp_path / "n", tmp_path / "home"
    m = counting("attach-me", counter)
    with LocalExecutor(home, warm=False) as ex:
        assert ex.submit(m) == "attach-me"
        first = ex.wait("attach-me", 30)
        assert first.phase == "Succeeded" and runs(counter) == 1
        assert ex.submit(m) == "attach-me"  # same executor
        assert ex.wait("attach-me", 30) == first
    rundir = home / "runs" / "attach-me"
    assert json.loads((rundir / "manifest.json").read_text()) == m
    recorded = json.loads((rundir / "run.json").read_text())
    assert (recorded["phase"], recorded["manifestDigest"]) == ("Succeeded", manifest_digest(m))
    assert {p.name for p in (rundir / "steps" / "count-1").iterdir()} >= {"inputs.json", "outputs", "stdout", "stderr"}
    with LocalExecutor(home, warm=False) as again:  # a new process would see the same
        assert again.submit(m) == "attach-me"
        assert again.poll("attach-me") == first
        assert again.wait("attach-me", 1) == first
        again.stop("attach-me")  # a finished run: nothing to do
    assert runs(counter) == 1


def test_a_different_manifest_under_a_used_name_is_refused(tmp_path: Path) -> None:
    with LocalExecutor(tmp_path / "home", warm=False) as ex:
        ex.submit(counting("taken", tmp_path / "a"))
        ex.wait("taken", 30)
        with pytest.raises(ManifestConflict, match=r"^metadata.name: a different manifest already ran as 'taken'"):
            ex.submit(counting("taken", tmp_path / "b"))
    with LocalExecutor(tmp_path / "home", warm=False) as ex, pytest.raises(ManifestConflict):
        ex.submit(counting("taken", tmp_path / "b"))


def test_a_run_left_running_by_a_dead_process_restarts_from_scratch(tmp_path: Path) -> None:
    counter, home = tmp_path / "n", tmp_path / "home"
    m = counting("crashed", counter)
    rundir = home / "runs" / "crashed"
    (rundir / "steps" / "count-1").mkdir(parents=True)
    (rundir / "steps" / "count-1" / "stale").write_text("from the dead process")
    (rundir / "run.json").write_text(
        json.dumps({"name": "crashed", "phase": "Running", "nodes": {}, "manifestDigest": manifest_digest(m)})
    )
    with LocalExecutor(home, warm=False) as ex:
        assert ex.poll("crashed").phase == "Running"
        ex.submit(m)
        r = ex.wait("crashed", 30)
    assert (r.phase, runs(counter)) == ("Succeeded", 1)
    assert not (rundir / "steps" / "count-1" / "stale").exists()


def test_a_run_owned_by_a_live_process_is_attached_read_only(tmp_path: Path) -> None:
    counter, home = tmp_path / "n", tmp_path / "home"
    m = counting("elsewhere", counter)
    rundir = home / "runs" / "elsewhere"
    rundir.mkdir(parents=True)
    (rundir / "run.json").write_text(
        json.dumps({"name": "elsewhere", "phase": "Running", "nodes": {}, "manifestDigest": manifest_digest(m)})
    )
    owner = OwnerLock(rundir / "owner.lock")
    assert owner.acquire()  # stands for another process that runs it
    try:
        with LocalExecutor(home, warm=False) as ex:
            assert ex.submit(m) == "elsewhere"
            assert ex.wait("elsewhere", 0.3).phase == "Running"
            with pytest.raises(TransientError, match="owned by another process"):
                ex.stop("elsewhere")
    finally:
        owner.release()
    assert runs(counter) == 0


def test_stop_kills_the_steps_and_fails_the_run(tmp_path: Path) -> None:
    counter = tmp_path / "n"
    events: list[str] = []
    with LocalExecutor(tmp_path / "home", warm=False, on_event=events.append) as ex:
        ex.submit(counting("stop-me", counter, sleep="60", tasks=("first", "second")))
        until_counted(ex, "stop-me", counter, 1)
        ex.stop("stop-me")
        r = ex.poll("stop-me")
    assert (r.phase, r.message) == ("Failed", "Stopped with strategy 'Stop'")
    assert (r.nodes["first"].phase, r.nodes["first"].exit_code) == ("Failed", 143)
    assert (r.nodes["second"].phase, r.nodes["second"].message) == ("Omitted", "not run: Stopped with strategy 'Stop'")
    assert runs(counter) == 1


def test_close_abandons_a_run_that_the_next_executor_restarts(tmp_path: Path) -> None:
    counter, home = tmp_path / "n", tmp_path / "home"
    slow = counting("abandoned", counter, sleep="60")
    ex = LocalExecutor(home, warm=False)
    ex.submit(slow)
    until_counted(ex, "abandoned", counter, 1)
    ex.close()
    assert json.loads((home / "runs" / "abandoned" / "run.json").read_text())["phase"] == "Running"
    with pytest.raises(RuntimeError, match="closed"):
        ex.submit(slow)
    with LocalExecutor(home, warm=False) as again:
        assert again.wait("abandoned", 0).phase == "Running"  # nobody owns it: returns at once
        again.submit(slow)  # same manifest: restarted from scratch (and it sleeps again)
        until_counted(again, "abandoned", counter, 2)
        again.stop("abandoned")
        assert again.poll("abandoned").phase == "Failed"
    assert runs(counter) == 2


def test_poll_of_an_unknown_run_and_the_protocol(tmp_path: Path) -> None:
    with LocalExecutor(tmp_path, warm=False) as ex:
        assert isinstance(ex, Executor) and ex.name == "local"
        with pytest.raises(UnknownRun, match="no run named 'nope'"):
            ex.poll("nope")
