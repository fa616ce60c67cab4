"""bench/smoke.py's step-seconds counter reads the local executor's event lines (no timing asserted)."""

from __future__ import annotations

import pytest

from bench.smoke import StepSeconds


@pytest.mark.parametrize(
    ("lines", "total"),
    [
        pytest.param(["rc-dev-m-1/train: Succeeded in 0.33s"], 0.33, id="a-step"),
        pytest.param(["rc-dev-m-1/train: Failed in 0.20s (exit 2): recipe r: bad"], 0.20, id="a-failed-step"),
        pytest.param(["rc-dev-m-1: Succeeded in 4.29s"], 0.0, id="a-whole-run-is-not-a-step"),
        pytest.param(["rc-dev-m-1/train: started (attempt 1)"], 0.0, id="a-start"),
        pytest.param(
            ["rc-a/validate-data: Succeeded in 1.50s", "rc-b/evaluate: Succeeded in 0.25s"], 1.75, id="summed"
        ),
    ],
)
def test_step_seconds(lines: list[str], total: float) -> None:
    steps = StepSeconds()
    for line in lines:
        steps(line)
    assert steps.total == pytest.approx(total)
