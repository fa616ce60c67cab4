"""Input drift: per-feature PSI and KS of the served sample against the training data, and the decision.

Place in the flow: `releasectl drift` (controller/app/drift.py) reads the serving endpoint's
input sample and the live version's training data, and asks `compare` whether the pin's
`monitoring.drift` thresholds are crossed; `evidence` is the text of the commit that proposes the
retraining. Pure: numbers in, a frozen decision out; no I/O.

- PSI is computed as the validate-data step does (10 quantile bins of the reference, shares
  floored at 1e-4), so the two agree on a feature.
- KS is the two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical
  distribution functions (scipy's ks_2samp statistic, without scipy).
- A feature drifts when its PSI is above `psi` or its KS above `ks`; fewer sampled rows than
  `min_samples` decide nothing (not enough evidence either way).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from controller.core.models import DriftThresholds

PSI_BINS = 10
PSI_EPSILON = 1e-4


def psi(reference: NDArray[np.float64], current: NDArray[np.float64]) -> float:
    """Population stability index of one feature, over 10 quantile bins of the reference."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, PSI_BINS + 1))[1:-1])
    ref_share = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1)
    cur_share = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1)
    p = np.maximum(ref_share / len(reference), PSI_EPSILON)
    q = np.maximum(cur_share / len(current), PSI_EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def ks(reference: NDArray[np.float64], current: NDArray[np.float64]) -> float:
    """The two-sample KS statistic: max over x of |F_ref(x) - F_cur(x)|."""
    a, b = np.sort(reference), np.sort(current)
    points = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, points, side="right") / len(a)
    cdf_b = np.searchsorted(b, points, side="right") / len(b)
    return float(np.max(np.abs(cdf_a - cdf_b)))


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    psi: float
    ks: float
    drifted: bool

    def as_dict(self) -> dict[str, object]:
        return {"feature": self.feature, "psi": self.psi, "ks": self.ks, "drifted": self.drifted}


@dataclass(frozen=True)
class Decision:
    """What the sample says: enough rows or not, each feature's figures, which ones drifted."""

    samples: int
    thresholds: DriftThresholds
    features: tuple[FeatureDrift, ...]

    @property
    def enough(self) -> bool:
        return self.samples >= self.thresholds.min_samples

    @property
    def drifted(self) -> tuple[FeatureDrift, ...]:
        return tuple(f for f in self.features if f.drifted) if self.enough else ()

    def as_dict(self) -> dict[str, object]:
        return {
            "samples": self.samples,
            "enough_samples": self.enough,
            "thresholds": self.thresholds.model_dump(mode="json"),
            "drifted": [f.feature for f in self.drifted],
            "features": [f.as_dict() for f in self.features],
        }


def decide(stats: Sequence[tuple[str, float, float]], samples: int, thresholds: DriftThresholds) -> Decision:
    """(feature, psi, ks) per feature -> the decision; the worst first (by PSI, then KS)."""
    features = [
        FeatureDrift(name, round(p, 6), round(k, 6), p > thresholds.psi or k > thresholds.ks) for name, p, k in stats
    ]
    features.sort(key=lambda f: (-f.drifted, -f.psi, -f.ks, f.feature))
    return Decision(samples=samples, thresholds=thresholds, features=tuple(features))


def compare(
    reference: NDArray[np.float64],
    current: NDArray[np.float64],
    names: Sequence[str],
    thresholds: DriftThresholds,
) -> Decision:
    """PSI and KS of every feature (columns) of the sample `current` against `reference`."""
    if reference.ndim != 2 or current.ndim != 2 or len({reference.shape[1], current.shape[1], len(names)}) != 1:
        raise ValueError(
            f"the sample has {current.shape[-1]} features per row, the training data {reference.shape[-1]}"
        )
    if len(reference) == 0:
        raise ValueError("the training data has no rows")
    if len(current) == 0:
        return decide([], 0, thresholds)
    stats = [
        (str(n), psi(reference[:, i], current[:, i]), ks(reference[:, i], current[:, i])) for i, n in enumerate(names)
    ]
    return decide(stats, len(current), thresholds)


def evidence(decision: Decision, *, environment: str, window: str, served: int, reference: str, limit: int = 20) -> str:
    """The evidence block of a drift commit: window, reference, thresholds, drifted features' figures."""
    t = decision.thresholds
    lines = [
        f"Environment: {environment}",
        f"Window: {window}",
        f"Samples: {decision.samples} rows in the window (of {served} served since the sample began)",
        f"Reference: {reference}",
        f"Thresholds ({environment} monitoring.drift): psi > {t.psi:g} or ks > {t.ks:g}, min_samples {t.min_samples}",
        "",
        f"Drifted features ({len(decision.drifted)} of {len(decision.features)}):",
    ]
    width = max((len(f.feature) for f in decision.drifted[:limit]), default=0)
    for f in decision.drifted[:limit]:
        lines.append(f"  {f.feature:<{width}}  psi {f.psi:.4f}  ks {f.ks:.4f}")
    if len(decision.drifted) > limit:
        lines.append(f"  ... and {len(decision.drifted) - limit} more")
    return "\n".join(lines)
