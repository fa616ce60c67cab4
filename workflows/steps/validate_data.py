"""Step 1 of a deploy workflow: is the pinned data what the pin says, well formed, and not drifted?

Place in the flow: the DAG task `validate-data` (controller.core.contract.VALIDATE_DATA), before train.
It loads the snapshot the pin names from the data catalog (which re-hashes it against the pin's
digest), checks schema and completeness, and, when a reference snapshot is given (the data of
the version live in this environment), the population stability index of every feature against
it. Any "no" is a CheckFailed (exit 2, outcome Failed). Output `report`: a JSON summary.
"""

from typing import Annotated

import numpy as np
from hera.workflows import Parameter
from numpy.typing import NDArray

from workflows import datasets, sample
from workflows.steps.common import CheckFailed, check_sha256, checked, dumps

MIN_ROWS = 20
MIN_ROWS_PER_CLASS = 2  # the stratified held-out split needs two of each class
PSI_BINS = 10
PSI_EPSILON = 1e-4


def check_schema(data: datasets.Dataset) -> None:
    """Completeness and shape: what training and the split need, with the offending column named."""
    names = data.feature_names
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise CheckFailed(f"dataset {data.name}: duplicate feature names {', '.join(duplicates)}")
    if data.X.shape[1] == 0:
        raise CheckFailed(f"dataset {data.name}: no feature columns")
    if data.rows < MIN_ROWS:
        raise CheckFailed(f"dataset {data.name}: {data.rows} rows, at least {MIN_ROWS} are needed")
    bad = ~np.isfinite(data.X)
    if bad.any():
        column = int(np.argmax(bad.any(axis=0)))
        raise CheckFailed(
            f"dataset {data.name}: feature {names[column]!r} has {int(bad[:, column].sum())} "
            f"missing or non-finite values ({int(bad.sum())} in all)"
        )
    classes, counts = np.unique(data.y, return_counts=True)
    if len(classes) < 2:
        raise CheckFailed(f"dataset {data.name}: the target has {len(classes)} class; at least 2 are needed")
    if counts.min() < MIN_ROWS_PER_CLASS:
        rare = [str(c) for c, n in zip(classes, counts, strict=True) if n < MIN_ROWS_PER_CLASS]
        raise CheckFailed(f"dataset {data.name}: classes {', '.join(rare)} have fewer than {MIN_ROWS_PER_CLASS} rows")


def psi(reference: NDArray[np.float64], current: NDArray[np.float64]) -> float:
    """Population stability index of one feature, over 10 quantile bins of the reference."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, PSI_BINS + 1))[1:-1])
    ref_share = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1)
    cur_share = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1)
    p = np.maximum(ref_share / len(reference), PSI_EPSILON)
    q = np.maximum(cur_share / len(current), PSI_EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def drift(reference: datasets.Dataset, current: datasets.Dataset) -> tuple[float, str]:
    """(largest PSI, its feature) between two snapshots of the same schema."""
    if reference.feature_names != current.feature_names:
        missing = sorted(set(reference.feature_names) - set(current.feature_names))
        added = sorted(set(current.feature_names) - set(reference.feature_names))
        raise CheckFailed(
            f"dataset {current.name}: features differ from the reference snapshot "
            f"(missing: {', '.join(missing) or 'none'}; new: {', '.join(added) or 'none'}; or reordered)"
        )
    values = [psi(reference.X[:, i], current.X[:, i]) for i in range(current.X.shape[1])]
    worst = int(np.argmax(values))
    return values[worst], current.feature_names[worst]


@checked
def validate_data(
    dataset: str,
    dataset_sha256: str,
    data_uri: str,
    reference_sha256: str = "",
    max_drift_psi: float = 0.25,
    dataset_uri: str = "",
    dataset_format: str = "",
    target_column: str = "",
) -> Annotated[str, Parameter(name="report")]:
    catalog = data_uri
    # The user's file (or the catalog's snapshot) must hash to the pin's sha256: else Failed.
    data = datasets.load_pinned(catalog, dataset, dataset_sha256, dataset_uri, dataset_format, target_column)
    check_schema(data)
    report: dict[str, object] = {
        "dataset": dataset,
        "sha256": data.sha256,
        "rows": data.rows,
        "features": len(data.feature_names),
        "classes": len(np.unique(data.y)),
        "psi_max": None,
        "psi_feature": None,
        "reference": None,
    }
    if dataset_uri:
        report["uri"] = dataset_uri
    reference = reference_sha256.strip()
    if reference and check_sha256(reference, "reference_sha256") != data.sha256:
        ref = datasets.load(catalog, dataset, reference)
        worst, feature = drift(ref, data)
        report.update(psi_max=round(worst, 6), psi_feature=feature, reference=ref.sha256)
        if worst > max_drift_psi:
            raise CheckFailed(
                f"dataset {dataset}: feature {feature!r} drifted from the reference snapshot: "
                f"PSI {worst:.3f} > {max_drift_psi:g}"
            )
        print(f"drift against {ref.sha256[:12]}: largest PSI {worst:.3f} ({feature}) <= {max_drift_psi:g}")
    spec = sample.from_env()
    if spec is not None:  # a smoke manifest: train and evaluate will see only the sample
        small = sample.apply(data, spec)
        try:
            check_schema(small)
        except CheckFailed as exc:
            raise CheckFailed(f"the smoke sample ({small.rows} of {data.rows} rows): {exc}") from None
        report["sample"] = {"rows": small.rows, "of": data.rows, "fraction": spec.fraction, "seed": spec.seed}
    print(f"validated {dataset} {data.sha256[:12]}: {data.rows} rows, {len(data.feature_names)} features")
    return dumps(report)
