"""`make bench`, the smoke tier's section: `check --smoke` over the example set against the full workflow.

Place in the flow: called by bench/__main__.py. Both sides run the nine pins of environments/
(three models in dev, staging and production), with real scikit-learn on the LocalExecutor, in
the same run:
- smoke: a PR that adds the nine pins to a release repo whose main has none, checked with
  `controller.app.smoke.check_smoke` (a sample of each dataset, the recipes' cheap settings,
  validate-data -> train -> evaluate, a temporary home), as `releasectl check --smoke` runs it;
- full: the controller's first pass over a release repo holding the same nine pins (`reconcile
  --once`: `Reconciler.settle`), every pin's whole workflow (validate-data, train once per
  version, evaluate, deploy with its strategy) and its status commit and push.
Each side also sums its steps' own durations (from the executor's events): the work, without the
fixed start-up both pay (the command's imports, the warm worker importing scikit-learn once).
Nothing is asserted; the figures, their ratio and "smoke under 60 s" are printed and written to
bench/results-smoke.json (results-smoke-small.json with BENCH_SCALE=small, one repeat each).
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controller.adapters.git import GitRepo
from controller.app.runtime import Home, compiler, local_executor
from controller.app.smoke import check_smoke
from controller.loop.reconciler import Reconciler
from tests.support import ROOT, make_release_repo

ENVIRONMENTS = ("dev", "staging", "production")
# A step attempt's line from the local executor (controller/adapters/local/run.py), e.g.
# "<run>/<task>: Succeeded in 0.33s" or "<run>/<task>: Failed in 0.20s (exit 2): ...", not a run's.
STEP_DONE = re.compile(r"^[^/\s]+/[^:\s]+: \w+ in ([0-9.]+)s\b")


class StepSeconds:
    """Sums the durations the executor reports for finished steps (not for whole runs)."""

    def __init__(self) -> None:
        self.total = 0.0

    def __call__(self, line: str) -> None:
        found = STEP_DONE.match(line.strip())
        if found:
            self.total += float(found.group(1))


def _no_pins(seed: Path) -> None:
    for env in ENVIRONMENTS:
        for pin in (seed / "environments" / env).glob("*.yaml"):
            pin.unlink()
        (seed / "environments" / env / ".keep").write_text("")


def smoke_once(root: Path) -> tuple[float, float, int, dict[str, int]]:
    """Seconds of one `check --smoke` over a PR adding the example set, its steps' seconds; pins; results."""
    repo = make_release_repo(root, edit=_no_pins)
    user = repo.clone("user")
    user.run("checkout", "-q", "-b", "example-set")
    for env in ENVIRONMENTS:
        for pin in sorted((ROOT / "environments" / env).glob("*.yaml")):
            shutil.copy(pin, user.path / "environments" / env / pin.name)
    user.commit("the example set")
    steps = StepSeconds()
    started = time.perf_counter()
    report = check_smoke(GitRepo(user.path), "HEAD", "origin/main", on_event=steps)
    took = time.perf_counter() - started
    results = {r: sum(1 for c in report.checks if c.result == r) for r in ("passed", "failed", "error")}
    return took, steps.total, len(report.checks), results


def full_once(root: Path) -> tuple[float, float, int, dict[str, int]]:
    """Seconds of the controller's first pass over the example set, settled, its steps' seconds; outcomes; phases."""
    repo = make_release_repo(root)
    home = Home(root / "home")
    steps = StepSeconds()
    started = time.perf_counter()
    with local_executor(home, on_event=steps) as executor:
        ctl = GitRepo.controller_clone(repo.url, home.workdir(repo.url))
        rec = Reconciler(ctl, executor, compiler(home))
        result = rec.settle(full=True)
    took = time.perf_counter() - started
    phases: dict[str, int] = {}
    for outcome in result.outcomes:
        phases[outcome.phase.value] = phases.get(outcome.phase.value, 0) + 1
    return took, steps.total, len(result.outcomes), phases


def section(timed: bool, out: Path, log: Callable[[str], None]) -> dict[str, Any]:
    repeats = 3 if timed else 1
    log(f"\nsmoke tier against the full workflow (the example set: 9 pins; {repeats} run(s) each, real training):")
    smoke_s: list[float] = []
    full_s: list[float] = []
    smoke_steps: list[float] = []
    full_steps: list[float] = []
    smoke_pins = full_pins = 0
    smoke_results: dict[str, int] = {}
    full_phases: dict[str, int] = {}
    for _ in range(repeats):  # alternated, so that both see the same machine
        with tempfile.TemporaryDirectory(prefix="releasectl-bench-smoke-") as tmp:
            took, work, smoke_pins, smoke_results = smoke_once(Path(tmp))
            smoke_s.append(took)
            smoke_steps.append(work)
        with tempfile.TemporaryDirectory(prefix="releasectl-bench-full-") as tmp:
            took, work, full_pins, full_phases = full_once(Path(tmp))
            full_s.append(took)
            full_steps.append(work)
    row = {
        "operation": "smoke_vs_full_example_set",
        "pins": smoke_pins,
        "full_outcomes": full_pins,
        "repeats": repeats,
        "smoke_s": round(statistics.median(smoke_s), 3),
        "full_s": round(statistics.median(full_s), 3),
        "ratio": round(statistics.median(smoke_s) / statistics.median(full_s), 3),
        "smoke_step_s": round(statistics.median(smoke_steps), 3),
        "full_step_s": round(statistics.median(full_steps), 3),
        "smoke_results": smoke_results,
        "full_phases": full_phases,
        "smoke_runs_s": [round(s, 3) for s in smoke_s],
        "full_runs_s": [round(s, 3) for s in full_s],
    }
    log(
        f"  check --smoke, {smoke_pins} pins               {row['smoke_s']:7.2f} s wall, "
        f"{row['smoke_step_s']:7.2f} s in steps   {smoke_results}"
    )
    log(
        f"  full workflow (first pass), {full_pins} pins   {row['full_s']:7.2f} s wall, "
        f"{row['full_step_s']:7.2f} s in steps   {full_phases}"
    )
    under = row["smoke_s"] < 60
    work = row["smoke_step_s"] / row["full_step_s"] if row["full_step_s"] else float("nan")
    log(
        f"  smoke / full: {row['ratio']:.2f} wall, {work:.2f} in steps; "
        f"{'PASS' if under else 'FAIL'}  smoke under 60 s on this machine"
    )
    out.write_text(json.dumps([row], indent=2) + "\n")
    return row
