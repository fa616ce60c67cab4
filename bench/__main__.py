"""`make bench`: the controller's cost against raw git plumbing, at monorepo scale.

Place in the flow: the entry point (`python -m bench`, BENCH_SCALE=small for the CI smoke run).
It makes sure the synthetic release repos exist (bench/generate.py, cached under bench/.cache/),
runs bench/measure.py once per repo size in its own process (so each reports the peak RSS of a
controller process that did the work), then prints one table and writes the rows as JSON:
bench/results.json (or bench/results-small.json), a list of objects with `operation`, `pins`,
`commits`, `controller_s`, `git_s`, `ratio` (controller / git), plus one `peak_rss` object with
`controller_mb`. Timings are never asserted here; the acceptance lines say what passed.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.generate import CACHE, Shape, ensure

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@dataclass(frozen=True)
class Scale:
    name: str
    models: int
    merges: int
    growth_models: int
    catch_up: int
    repeats: float
    out: Path


SCALES = {
    "default": Scale("default", 1000, 20_000, 100, 1000, 1.0, HERE / "results.json"),
    "small": Scale("small", 100, 2000, 10, 200, 0.5, HERE / "results-small.json"),
}

# operation -> (what the issue asks, check on the rows)
Rows = dict[tuple[str, int], dict[str, Any]]


def _ratio(op: str, limit: float) -> Callable[[Rows, int, int], tuple[bool, str]]:
    def check(rows: Rows, pins: int, _small: int) -> tuple[bool, str]:
        row = rows[(op, pins)]
        return row["ratio"] <= limit, f"ratio {row['ratio']:.2f} <= {limit}"

    return check


def _one_commit(rows: Rows, pins: int, _small: int) -> tuple[bool, str]:
    row = rows[("one_commit_pass", pins)]
    own = row["controller_s"] * 1000
    return row["ratio"] <= 2 and own < 50, f"ratio {row['ratio']:.2f} <= 2 and {own:.1f} ms < 50 ms"


def _startup(rows: Rows, pins: int, _small: int) -> tuple[bool, str]:
    own = rows[("startup_scan", pins)]["controller_s"]
    return own < 1.0, f"{own:.2f} s < 1 s"


def _growth(rows: Rows, pins: int, small: int) -> tuple[bool, str]:
    big, little = rows[("one_commit_pass", pins)]["controller_s"], rows[("one_commit_pass", small)]["controller_s"]
    return big / little < 2, f"{pins} pins / {small} pins = {big / little:.2f} < 2"


ACCEPTANCE: list[tuple[str, Callable[[Rows, int, int], tuple[bool, str]]]] = [
    ("idle pass, fetch excluded", _ratio("idle_pass_local", 2)),
    ("idle pass, fetch included", _ratio("idle_pass_remote", 2)),
    ("one-commit pass", _one_commit),
    ("catch-up", _ratio("catch_up", 1.5)),
    ("history", _ratio("history", 1.5)),
    ("status commit + push", _ratio("status_commit_push", 1.3)),
    ("status commit + push after a rejection", _ratio("status_commit_push_rejected", 1.3)),
    ("start-up scan", _startup),
    ("growth of the one-commit pass", _growth),
]


def log(line: str) -> None:
    print(line, flush=True)


def measure(shape: Shape, catch_up: int, repeats: float, operations: str | None, cache: Path) -> dict[str, Any]:
    """bench/measure.py in its own process (its peak RSS is the controller's)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    cmd = [
        sys.executable,
        "-m",
        "bench.measure",
        f"--models={shape.models}",
        f"--merges={shape.merges}",
        f"--seed={shape.seed}",
        f"--catch-up={catch_up}",
        f"--repeats={repeats}",
        f"--cache={cache}",
        f"--json={out}",
    ]
    if operations:
        cmd.append(f"--operations={operations}")
    try:
        subprocess.run(cmd, cwd=ROOT, check=True)
        data: dict[str, Any] = json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)
    return data


def collect(main: list[dict[str, Any]], growth: list[dict[str, Any]], scale: str) -> list[dict[str, Any]]:
    """The rows of results.json: every row of the big repo, the growth repo's passes, one peak_rss."""
    keep = {"startup_scan", "one_commit_pass", "one_commit_pass_with_fetch"}
    rows = [dict(r) for r in main] + [dict(r) for r in growth if r["operation"] in keep]
    big = next(r for r in main if r["operation"] == "one_commit_pass")
    small = next((r for r in growth if r["operation"] == "one_commit_pass"), None)
    for row in rows:
        row["scale"] = scale
        if small is not None and row["operation"] == "one_commit_pass" and row["pins"] == big["pins"]:
            row["growth"] = {
                "baseline_pins": small["pins"],
                "baseline_controller_s": small["controller_s"],
                "factor": round(big["controller_s"] / small["controller_s"], 3),
            }
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = f"{'operation':<40} {'pins':>5} {'commits':>7} {'controller':>12} {'git':>12} {'ratio':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if r["operation"] == "peak_rss":
            lines.append(f"{'peak_rss':<40} {r['pins']:>5} {r['commits']:>7} {r['controller_mb']:>9.0f} MB")
            continue
        lines.append(
            f"{r['operation']:<40} {r['pins']:>5} {r['commits']:>7} {r['controller_s'] * 1000:>9.2f} ms "
            f"{r['git_s'] * 1000:>9.2f} ms {r['ratio']:>7.2f}"
        )
    return "\n".join(lines)


def acceptance(rows: list[dict[str, Any]], pins: int, small: int) -> list[tuple[str, bool, str]]:
    index = {(r["operation"], r["pins"]): r for r in rows}
    out = []
    for name, check in ACCEPTANCE:
        try:
            ok, why = check(index, pins, small)
        except KeyError as exc:
            ok, why = False, f"not measured ({exc})"
        out.append((name, ok, why))
    return out


def main() -> int:
    started = time.perf_counter()
    scale = SCALES[os.environ.get("BENCH_SCALE", "default")]
    cache = Path(os.environ.get("BENCH_CACHE", CACHE))
    git_version = subprocess.run(["git", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    log(
        f"releasectl bench ({scale.name}): {scale.models} models x 3 environments, {scale.merges} merges; "
        f"growth at {scale.growth_models * 3} pins; {git_version}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores"
    )
    shape, growth_shape = Shape(scale.models, scale.merges), Shape(scale.growth_models, scale.merges)
    for s in (shape, growth_shape):
        ensure(s, cache, log)
    main_data = measure(shape, scale.catch_up, scale.repeats, None, cache)
    growth_data = measure(growth_shape, scale.catch_up, scale.repeats, "one_commit_pass", cache)
    rows = collect(main_data["rows"], growth_data["rows"], scale.name)
    scale.out.write_text(json.dumps(rows, indent=2) + "\n")
    wall = time.perf_counter() - started
    log("")
    log(table(rows))
    log("")
    verdicts = acceptance(rows, shape.pins, growth_shape.pins)
    verdicts.append(("make bench under 10 minutes", wall < 600, f"{wall:.0f} s"))
    timed = scale.name == "default"
    log("acceptance" + ("" if timed else " (informational at this scale: nothing is asserted)") + ":")
    for name, ok, why in verdicts:
        log(f"  {'PASS' if ok else 'FAIL'}  {name}: {why}")
    log(f"\nchecks: {json.dumps(main_data['checks'])}")
    steps_out = step_section(timed)
    from bench.hostile import measure as measure_hostile
    from bench.loop import section as loop_section

    hostile_out = ROOT / "bench" / ("results-hostile.json" if timed else "results-hostile-small.json")
    measure_hostile(log, hostile_out)
    loop_out = ROOT / "bench" / ("results-loop.json" if timed else "results-loop-small.json")
    loop_section(timed, loop_out, log)
    argo_out = argo_section(timed)
    from bench.smoke import section as smoke_section

    smoke_out = ROOT / "bench" / ("results-smoke.json" if timed else "results-smoke-small.json")
    smoke_section(timed, smoke_out, log)
    log(
        f"wrote {scale.out.relative_to(ROOT)}, {steps_out.relative_to(ROOT)}, {hostile_out.relative_to(ROOT)}, "
        f"{loop_out.relative_to(ROOT)}, {argo_out.relative_to(ROOT)} and {smoke_out.relative_to(ROOT)}; "
        f"whole bench took {time.perf_counter() - started:.0f} s"
    )
    return 0


def step_section(timed: bool) -> Path:
    """Issue 3's figure, in the same run: what one step costs the LocalExecutor, warm and cold."""
    from bench.step_overhead import measure as measure_steps

    steps = 8 if timed else 4
    log(f"\nlocal executor, per step ({steps} trivial sequential Hera steps per workflow):")
    rows = measure_steps(steps, 3 if timed else 1)
    width = max(len(r["operation"]) for r in rows)
    for r in rows:
        ratio = r["ratio_vs_python_c_pass"]
        log(f"  {r['operation']:<{width}}  {r['seconds'] * 1000:9.1f} ms  {ratio:6.2f}x python -c pass")
    by = {r["operation"]: r["seconds"] for r in rows}
    names = list(by)
    python_c, hera, cold, warm = (by[n] for n in names[:4])
    log(
        f"  warm step / python -c pass: {warm / python_c:.2f}; cold step / hera import: {cold / hera:.2f}; "
        f"warm is {cold / warm:.0f}x cheaper than cold"
    )
    out = ROOT / "bench" / ("results-steps.json" if timed else "results-steps-small.json")
    out.write_text(json.dumps(rows, indent=2) + "\n")
    return out


def argo_section(timed: bool) -> Path:
    """Issue 8's figure, in the same run: the ArgoExecutor against the loopback Argo double, vs bare HTTP."""
    import tempfile

    from bench.argo_overhead import measure as measure_argo

    count = 100 if timed else 20
    log(f"\nargo executor ({count} workflows against the loopback Argo Server double):")
    with tempfile.TemporaryDirectory(prefix="argo-bench-") as tmp:
        row = measure_argo(count, Path(tmp))
    req = row["requests"]
    each = row["per_workflow_ms"]
    log(f"  executor: submit + track to completion   {row['executor_s'] * 1000:9.1f} ms  ({each} ms each)")
    log(f"  bare http.client: {count} POSTs + one raw stream {row['bare_s'] * 1000:9.1f} ms")
    log(
        f"  ratio {row['ratio']:.2f}; the server saw {req['creates']} creates, {req['lists']} list, "
        f"{req['streams']} event stream, {req['gets']} GETs of a workflow ({req['events']} events)"
    )
    out = ROOT / "bench" / ("results-argo.json" if timed else "results-argo-small.json")
    out.write_text(json.dumps([row], indent=2) + "\n")
    return out


if __name__ == "__main__":
    sys.exit(main())
