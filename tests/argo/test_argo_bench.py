"""`make bench`'s Argo section at a tiny scale: its shape and the requests the server saw, never timings."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.argo_overhead import measure


def test_argo_bench_runs_and_counts_the_requests(tmp_path: Path) -> None:
    row = measure(3, tmp_path)
    assert row["workflows"] == 3
    assert row["requests"] == {"creates": 3, "lists": 1, "gets": 0, "streams": 1, "events": 6}
    assert row["executor_s"] > 0 and row["bare_s"] > 0
    assert row["ratio"] == pytest.approx(row["executor_s"] / row["bare_s"], rel=0.02)
