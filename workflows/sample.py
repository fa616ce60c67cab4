"""The smoke tier's data sample: a small, stratified, seeded subset of the pinned rows.

Place in the flow: `releasectl check --smoke` (controller/app/smoke.py) compiles a pin's workflow
with `workflows.builders.smoke_manifest`, which sets the variable SAMPLE_ENV (JSON `{"fraction",
"min_per_class", "seed"}`) on the validate-data, train and evaluate templates. Each step still loads
and checks the pinned bytes in full (the sha256, the schema, drift against the reference); with
the variable set, validate-data also checks that the sample can be trained on, and train and
evaluate work on `sampled(data)` instead of all of it (the same 25 % held-out split, of the
sample). Without the variable (every full workflow) `sampled` returns the data unchanged.

The sample per class is `min(rows of the class, max(ceil(fraction * rows of the class),
min_per_class))` rows, drawn with numpy's PCG64 seeded by `seed`, classes in sorted order, and
kept in file order: the same data and spec always give the same rows.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, replace

import numpy as np
from numpy.typing import NDArray

from workflows.datasets import Dataset

SAMPLE_ENV = "RELEASECTL_SMOKE_SAMPLE"


@dataclass(frozen=True)
class Sample:
    """How much of each class the smoke tier trains and evaluates on."""

    fraction: float = 0.05
    min_per_class: int = 20  # the 25 % stratified split then holds out about 5 rows of each class
    seed: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.fraction, float | int) and 0 < self.fraction <= 1):
            raise ValueError(f"sample fraction {self.fraction!r} must be in (0, 1]")
        if isinstance(self.min_per_class, bool) or not isinstance(self.min_per_class, int) or self.min_per_class < 1:
            raise ValueError(f"sample min_per_class {self.min_per_class!r} must be an integer >= 1")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"sample seed {self.seed!r} must be an integer >= 0")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Sample:
        value = json.loads(text)
        if not isinstance(value, dict) or set(value) - {"fraction", "min_per_class", "seed"}:
            raise ValueError(f"{SAMPLE_ENV} must be a JSON object with fraction, min_per_class, seed: {text[:200]!r}")
        return cls(**value)


def rows(y: NDArray[np.int64], spec: Sample) -> NDArray[np.intp]:
    """The indices of the sampled rows, in file order (see the module docstring)."""
    rng = np.random.default_rng(spec.seed)
    chosen: list[NDArray[np.intp]] = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        keep = min(len(members), max(math.ceil(spec.fraction * len(members)), spec.min_per_class))
        chosen.append(rng.permutation(members)[:keep])
    return np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.intp)


def apply(data: Dataset, spec: Sample | None) -> Dataset:
    """The sampled dataset (same name, digest and columns), or `data` itself without a spec."""
    if spec is None:
        return data
    picked = rows(data.y, spec)
    return replace(data, X=data.X[picked], y=data.y[picked])


def from_env() -> Sample | None:
    """The spec the smoke manifest set on this step, or None (a full workflow)."""
    text = os.environ.get(SAMPLE_ENV, "").strip()
    return Sample.from_json(text) if text else None


def sampled(data: Dataset) -> Dataset:
    """What train and evaluate work on: the smoke sample when the manifest asks for one, else all rows."""
    return apply(data, from_env())
