"""`make bench` at a tiny scale: the generator writes real formats and every measurement runs once.

Place in the flow: CI's guard on bench/ (generate -> measure -> results rows). It checks shapes
and the controller's answers (all generated pins and statuses parse, the one-commit pass finds
exactly the bumped model, catch-up sees every bumped pin), never timings.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.__main__ import acceptance, collect, table
from bench.generate import ENVIRONMENTS, Shape, ensure, extend
from bench.measure import OPERATIONS, Config, run
from controller.core.pins import parse_pin, parse_policy
from controller.core.trail import parse_status, parse_trailers

MODELS, MERGES = 20, 200


def _git(repo: Path, *args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True).stdout


def test_generated_repo_is_real(tmp_path: Path) -> None:
    repo, state = ensure(Shape(MODELS, MERGES), tmp_path, log=lambda _line: None)
    listing = _git(repo, "ls-tree", "-r", "--name-only", "main").decode().split()
    pins = [p for p in listing if p.startswith("environments/") and p.count("/") == 2]
    statuses = [p for p in listing if p.startswith("status/")]
    assert len(pins) == len(statuses) == MODELS * len(ENVIRONMENTS)
    assert not isinstance(parse_policy(_git(repo, "show", "main:environments/policy.yaml")), list)
    for path in pins:
        pin = parse_pin(path, _git(repo, "show", f"main:{path}"), Path(path).stem)
        assert not isinstance(pin, list), pin
        assert pin.version == state.versions[path.removeprefix("environments/").removesuffix(".yaml")]
    for path in statuses:
        status = parse_status(_git(repo, "show", f"main:{path}"))
        assert status is not None and f"status/{status.environment}/{status.model}.yaml" == path

    merges = _git(repo, "rev-list", "--first-parent", "--merges", "--count", "main").decode().strip()
    assert int(merges) == MERGES
    # status commits: the controller's identity, every trailer, Reconciled a commit of main
    log = _git(repo, "log", "--first-parent", "--author=releasectl", "--format=%H%x00%B%x01", "-5", "main")
    for record in [r for r in log.decode().split("\x01") if r.strip()]:
        sha, body = record.strip().split("\0", 1)
        trailers = parse_trailers(body)
        assert {"Environment", "Model", "Version", "Phase", "Source-Commit", "Reconciled"} <= set(trailers)
        _git(repo, "merge-base", "--is-ancestor", trailers["Reconciled"], sha)
        files = _git(repo, "diff-tree", "--no-commit-id", "-r", "--name-only", sha).decode().split()
        assert files == [f"status/{trailers['Environment']}/{trailers['Model']}.yaml"]

    before = state.merges
    bumps = extend(repo, state, 3, pins_per_merge=1)
    assert len(bumps) == 3 and state.merges == before + 3
    assert _git(repo, "rev-parse", "main").decode().strip() == state.head


def test_every_measurement_runs_once_and_answers_right(tmp_path: Path) -> None:
    quiet = lambda _line: None  # noqa: E731
    cache = tmp_path / "cache"
    config = Config(models=MODELS, merges=MERGES, catch_up=30, repeats=0.01, cache=cache, workdir=tmp_path)
    main = run(config, quiet)
    growth = run(
        Config(models=5, merges=MERGES, repeats=0.01, cache=cache, workdir=tmp_path, operations=("one_commit_pass",)),
        quiet,
    )

    ops = {r["operation"] for r in main.rows}
    assert set(OPERATIONS) | {"one_commit_pass_with_fetch", "catch_up_with_fetch", "peak_rss"} <= ops
    checks = main.checks
    assert checks["startup_scan"]["valid"] == checks["startup_scan"]["pins"] == MODELS * 3
    one = checks["one_commit_pass"]
    assert one["candidate_models"] == [one["bumped"].split("/")[1]]
    assert one["bumped"] in one["actions"]
    assert not checks["catch_up"]["missing"] and not checks["catch_up"]["wrong_version"]
    assert checks["status_json"]["rows"] == MODELS * 3
    assert checks["history"]["changes"] > 0
    blocked = checks["idle_pass_remote_blocked"]
    assert blocked["pending"] == [blocked["blocked"]]

    rows = collect(main.rows, growth.rows, "tiny")
    rss = [r for r in rows if r["operation"] == "peak_rss"]
    assert len(rss) == 1 and rss[0]["controller_mb"] > 0
    for row in rows:
        if row["operation"] == "peak_rss":
            continue
        assert {"operation", "pins", "commits", "controller_s", "git_s", "ratio"} <= set(row)
        assert row["controller_s"] > 0 and row["git_s"] > 0
        assert row["ratio"] == pytest.approx(row["controller_s"] / row["git_s"], rel=0.01)
    assert {(r["operation"], r["pins"]) for r in rows if r["operation"] == "one_commit_pass"} == {
        ("one_commit_pass", MODELS * 3),
        ("one_commit_pass", 15),
    }
    assert "one_commit_pass" in table(rows)
    assert len(acceptance(rows, MODELS * 3, 15)) == 9
