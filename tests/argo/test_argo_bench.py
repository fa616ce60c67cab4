"""`make bench`'s Argo section at a tiny scale: its shape and the requests the server saw, never timings."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.argo_overhead import measure


def test_argo_bench_runs_and_counts_the_requests(tmp_path: Path) -> None:
    row = measure(3, tmp_path)
    assert row["workflows"] == 3
    seen = row["requests"]
    # one create per workflow and never a GET per workflow; the stream may be reopened once when the
    # double ends it at a quiet moment (the executor resumes from its resourceVersion)
    assert (seen["creates"], seen["gets"]) == (3, 0)
    assert 1 <= seen["streams"] <= 2 and seen["lists"] <= seen["streams"] and seen["events"] >= 6
    assert row["executor_s"] > 0 and row["bare_s"] > 0
    assert row["ratio"] == pytest.approx(row["executor_s"] / row["bare_s"], rel=0.02)
