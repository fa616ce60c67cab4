"""What one step costs the LocalExecutor, cold (a fresh interpreter) and warm (forked from its worker).

Place in the flow: a benchmark of step 4 (the executor), outside the controller. Run:

    python -m bench.step_overhead [--steps N] [--repeats R] [--json PATH]

It measures, as medians of R repeats: `python -c pass` as a subprocess (the floor of any process);
`python -c "import hera.workflows.runner"` (what every cold Hera step pays); and a LocalExecutor
workflow of N trivial sequential Hera steps (`noop` below, run by Hera's runner), cold
(warm=False) and warm (warm=True, worker already started and `bench.step_overhead` preloaded),
reported per step (wall / N). It prints a table, and with --json writes a list of
{"operation", "seconds", "ratio_vs_python_c_pass"}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hera.workflows import DAG, RunnerScriptConstructor, Workflow, script


@script(constructor=RunnerScriptConstructor())
def noop() -> None:
    """The trivial step: nothing but Hera's runner around it."""


def _median(fn: Callable[[], float], repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def _time_process(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True)
    return time.perf_counter() - t0


def _manifest(name: str, steps: int) -> dict[str, Any]:
    with Workflow(name=name, entrypoint="main") as wf, DAG(name="main"):
        prev = None
        for i in range(steps):
            cur = noop(name=f"s{i}")
            if prev is not None:
                prev >> cur
            prev = cur
    manifest: dict[str, Any] = wf.to_dict()
    return manifest


def _time_workflow(executor: Any, name: str, steps: int) -> float:
    manifest = _manifest(name, steps)
    t0 = time.perf_counter()
    executor.submit(manifest)
    run = executor.wait(name, timeout_s=600)
    wall = time.perf_counter() - t0
    if run.phase != "Succeeded":
        raise SystemExit(f"{name}: {run.phase}: {run.message}")
    return wall


def measure(steps: int, repeats: int) -> list[dict[str, Any]]:
    from controller.adapters.local.executor import LocalExecutor

    py = sys.executable
    python_c = _median(lambda: _time_process([py, "-c", "pass"]), max(repeats, 5))
    hera = _median(lambda: _time_process([py, "-c", "import hera.workflows.runner"]), max(repeats, 3))
    counter = iter(range(1_000_000))
    with tempfile.TemporaryDirectory(prefix="step-overhead-") as tmp:
        with LocalExecutor(Path(tmp) / "cold", warm=False, max_parallel=1) as cold_ex:
            cold = _median(lambda: _time_workflow(cold_ex, f"cold-{next(counter)}", steps), repeats)
        with LocalExecutor(Path(tmp) / "warm", warm=True, max_parallel=1, preload=["bench.step_overhead"]) as ex:
            startup = _time_workflow(ex, "warm-up", 1)  # starts the worker: Hera imported once
            warm = _median(lambda: _time_workflow(ex, f"warm-{next(counter)}", steps), repeats)
    rows = [
        ("python -c pass (subprocess)", python_c),
        ('python -c "import hera.workflows.runner"', hera),
        (f"LocalExecutor step, cold (warm=False), wall/{steps}", cold / steps),
        (f"LocalExecutor step, warm (worker running), wall/{steps}", warm / steps),
        ("LocalExecutor warm worker start + first 1-step workflow", startup),
    ]
    return [
        {"operation": op, "seconds": round(sec, 4), "ratio_vs_python_c_pass": round(sec / python_c, 2)}
        for op, sec in rows
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.step_overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="sequential trivial steps per workflow (default 8)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats; medians are reported (default 3)")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    opts = parser.parse_args(argv)
    rows = measure(opts.steps, opts.repeats)
    width = max(len(r["operation"]) for r in rows)
    print(f"{'operation':<{width}}  {'seconds':>8}  {'x python -c pass':>16}")
    for r in rows:
        print(f"{r['operation']:<{width}}  {r['seconds']:>8.4f}  {r['ratio_vs_python_c_pass']:>16.2f}")
    cold, warm, hera, python_c = rows[2]["seconds"], rows[3]["seconds"], rows[1]["seconds"], rows[0]["seconds"]
    print(f"\ncold step / hera import: {cold / hera:.2f}   warm step / python -c pass: {warm / python_c:.2f}")
    print(f"warm is {cold / warm:.1f}x cheaper per step than cold")
    if opts.json is not None:
        opts.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
