"""Fixtures shared by the controller's tests: one warm LocalExecutor per test process.

Place in the flow: tests only. The engine's warm worker imports Hera and tests.faststeps once; each
test gets its own FastExecutor view (its own behaviour file and record of submissions).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.adapters.local.executor import LocalExecutor
from tests.fastexec import FastExecutor


@pytest.fixture(scope="session")
def fast_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalExecutor]:
    with LocalExecutor(tmp_path_factory.mktemp("fast-engine"), max_parallel=4, preload=("tests.faststeps",)) as engine:
        yield engine


@pytest.fixture
def fast(fast_engine: LocalExecutor, tmp_path: Path) -> FastExecutor:
    return FastExecutor(fast_engine, tmp_path / "fast")
