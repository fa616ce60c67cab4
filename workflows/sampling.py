"""A bounded sample of the inputs the serving endpoint answers: what `releasectl drift` compares.

Place in the flow: the serving endpoint (`releasectl serve`, workflows/serving.py make_server)
hands every row it answered to a `Sampler`; per environment and model it keeps a uniform
reservoir sample (Vitter's algorithm R) of at most `max_rows` rows and `max_bytes` bytes, each
row with the second it was served, in `<serving>/<environment>/samples/<model>.json`, written
atomically (every `flush_every` rows, and when the server stops). The deploy step's own traffic
never goes through a Sampler. controller/app/drift.py reads the file with `read_sample`.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from workflows.steps.common import check_label, write_atomic

MAX_ROWS = 2_000
MAX_BYTES = 4 * 1024 * 1024
FLUSH_EVERY = 50
SCHEMA = 1


def sample_path(serving_dir: Path | str, environment: str, model: str) -> Path:
    check_label(environment, "environment")
    check_label(model, "model")
    return Path(serving_dir) / environment / "samples" / f"{model}.json"


def read_sample(serving_dir: Path | str, environment: str, model: str) -> dict[str, Any] | None:
    """The stored sample ({seen, width, rows: [{t, x}], ...}); None when nothing was sampled yet."""
    path = sample_path(serving_dir, environment, model)
    if not path.is_file():
        return None
    if path.stat().st_size > 2 * MAX_BYTES:
        raise ValueError(f"{path}: larger than {2 * MAX_BYTES} bytes; not a sample this endpoint wrote")
    value = json.loads(path.read_text())
    if not isinstance(value, dict) or value.get("schema") != SCHEMA or not isinstance(value.get("rows"), list):
        raise ValueError(f"{path}: not a releasectl input sample (schema {SCHEMA})")
    return value


class Reservoir:
    """One model's sample: uniform over every row seen, bounded in rows and bytes."""

    def __init__(self, environment: str, model: str, max_rows: int, max_bytes: int, seed: int | None) -> None:
        self.environment, self.model = environment, model
        self.max_rows, self.max_bytes = max_rows, max_bytes
        self.seen = 0
        self.width: int | None = None
        self.capacity = max_rows
        self.rows: list[dict[str, Any]] = []
        self.dirty = 0
        self._rng = random.Random(seed)  # noqa: S311 - sampling, not cryptography

    def load(self, stored: dict[str, Any] | None) -> None:
        if stored is None:
            return
        self.seen = int(stored.get("seen") or 0)
        self.width = stored.get("width")
        self.capacity = int(stored.get("capacity") or self.max_rows)
        self.rows = list(stored["rows"])[: self.capacity]

    def add(self, X: NDArray[np.float64], now: int) -> None:
        for row in X:
            if self.width != len(row):  # a new live version with other features: start again
                self.width, self.seen, self.rows = len(row), 0, []
                # bound the bytes: a float's JSON is at most ~24 characters, plus the timestamp
                self.capacity = max(1, min(self.max_rows, self.max_bytes // (24 * len(row) + 32)))
            self.seen += 1
            entry = {"t": now, "x": [float(v) for v in row]}
            if len(self.rows) < self.capacity:
                self.rows.append(entry)
            else:
                slot = self._rng.randrange(self.seen)
                if slot < self.capacity:
                    self.rows[slot] = entry
            self.dirty += 1

    def document(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "environment": self.environment,
            "model": self.model,
            "seen": self.seen,
            "width": self.width,
            "capacity": self.capacity,
            "rows": self.rows,
        }


class Sampler:
    """Every model's reservoir in one environment, flushed to files under the serving folder."""

    def __init__(
        self,
        serving_dir: Path | str,
        environment: str,
        max_rows: int = MAX_ROWS,
        max_bytes: int = MAX_BYTES,
        flush_every: int = FLUSH_EVERY,
        seed: int | None = None,
    ) -> None:
        self.serving_dir, self.environment = Path(serving_dir), check_label(environment, "environment")
        self.max_rows, self.max_bytes, self.flush_every, self.seed = max_rows, max_bytes, flush_every, seed
        self._lock = threading.Lock()
        self._reservoirs: dict[str, Reservoir] = {}

    def _reservoir(self, model: str) -> Reservoir:
        found = self._reservoirs.get(model)
        if found is None:
            found = Reservoir(self.environment, model, self.max_rows, self.max_bytes, self.seed)
            with contextlib.suppress(ValueError, OSError):  # an unreadable sample is replaced by a new one
                found.load(read_sample(self.serving_dir, self.environment, model))
            self._reservoirs[model] = found
        return found

    def add(self, model: str, X: NDArray[np.float64], now: float | None = None) -> None:
        with self._lock:
            reservoir = self._reservoir(model)
            reservoir.add(X, int(time.time() if now is None else now))
            if reservoir.dirty >= self.flush_every:
                self._write(reservoir)

    def flush(self) -> None:
        with self._lock:
            for reservoir in self._reservoirs.values():
                if reservoir.dirty:
                    self._write(reservoir)

    def _write(self, reservoir: Reservoir) -> None:
        data = json.dumps(reservoir.document(), separators=(",", ":"), allow_nan=False).encode()
        write_atomic(sample_path(self.serving_dir, self.environment, reservoir.model), data)
        reservoir.dirty = 0
