"""The data catalog: content-addressed dataset snapshots (canonical CSV) and the train/test split.

Place in the flow: the validate-data, train, evaluate and deploy steps read their data from here.
A pin names a dataset and the sha256 of its snapshot (`training.dataset`); the catalog keeps
`<catalog>/<name>/<sha256>.csv`, and `load` re-hashes the file, so a step never trains or
evaluates on data other than the pinned bytes. The datasets scikit-learn ships are built in and
materialized on demand. `releasectl datasets` lists them (rows, features, target, the full sha256
to pin); `python -m workflows.datasets [CATALOG]` prints bare digests.
"""

import csv
import functools
import hashlib
import io
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from workflows.steps.common import CheckFailed, check_label, check_sha256, short, write_atomic

TARGET = "target"
TEST_SIZE = 0.25


def _sklearn_loader(name: str) -> Callable[[], Any]:
    def load() -> Any:
        from sklearn import datasets

        return getattr(datasets, name)()

    return load


BUILTINS: dict[str, Callable[[], Any]] = {
    "breast-cancer": _sklearn_loader("load_breast_cancer"),
    "wine": _sklearn_loader("load_wine"),
    "digits": _sklearn_loader("load_digits"),
    "iris": _sklearn_loader("load_iris"),
}


@dataclass(frozen=True)
class Dataset:
    """One loaded snapshot: features X (float64), integer class labels y, and the column names."""

    name: str
    sha256: str
    X: NDArray[np.float64]
    y: NDArray[np.int64]
    feature_names: tuple[str, ...]

    @property
    def rows(self) -> int:
        return int(self.X.shape[0])


def to_csv(feature_names: list[str] | tuple[str, ...], X: Any, y: Any) -> bytes:
    """The canonical snapshot: header, floats as repr(float(v)), target as int, `\\n` endings."""
    for name in feature_names:
        if not name or any(c in name for c in ',"\r\n') or name == TARGET:
            raise ValueError(f"feature name {name!r} cannot be written to a canonical snapshot")
    lines = [",".join([*feature_names, TARGET])]
    for row, label in zip(np.asarray(X, dtype=np.float64), np.asarray(y), strict=True):
        lines.append(",".join([*(repr(float(v)) for v in row), str(int(label))]))
    return ("\n".join(lines) + "\n").encode()


def parse_csv(name: str, data: bytes) -> tuple[tuple[str, ...], NDArray[np.float64], NDArray[np.int64]]:
    """Snapshot bytes -> (feature names, X, y). A malformed file is the user's to fix."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckFailed(f"dataset {name}: snapshot is not UTF-8 text ({exc})") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or not rows[0]:
        raise CheckFailed(f"dataset {name}: snapshot is empty")
    header = [h.strip() for h in rows[0]]
    if header[-1] != TARGET or len(header) < 2:
        raise CheckFailed(f"dataset {name}: the last column must be {TARGET!r}, got {header[-1]!r}")
    X = np.empty((len(rows) - 1, len(header) - 1), dtype=np.float64)
    y = np.empty(len(rows) - 1, dtype=np.int64)
    for i, row in enumerate(rows[1:]):
        line = i + 2
        if len(row) != len(header):
            raise CheckFailed(f"dataset {name}: line {line} has {len(row)} fields, the header {len(header)}")
        try:
            X[i] = [float(v) for v in row[:-1]]
        except ValueError:
            bad = next(v for v in row[:-1] if not _is_float(v))
            raise CheckFailed(f"dataset {name}: line {line}: non-numeric feature value {bad!r}") from None
        label = _int_label(row[-1])
        if label is None:
            raise CheckFailed(f"dataset {name}: line {line}: target {row[-1]!r} is not an integer class label")
        y[i] = label
    return tuple(header[:-1]), X, y


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _int_label(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value.is_integer() else None


def _builtin_name(name: str) -> str:
    if name not in BUILTINS:
        raise CheckFailed(f"dataset {name!r} is not built in (built in: {', '.join(sorted(BUILTINS))})")
    return name


@functools.cache
def builtin_bytes(name: str) -> bytes:
    """The canonical snapshot of a dataset scikit-learn ships (computed once per process)."""
    bunch = BUILTINS[_builtin_name(name)]()
    return to_csv([str(f) for f in bunch.feature_names], bunch.data, bunch.target)


@functools.cache
def builtin_digest(name: str) -> str:
    """sha256 (hex) of the canonical snapshot of a built-in dataset, without writing anything."""
    return hashlib.sha256(builtin_bytes(name)).hexdigest()


def snapshot_path(catalog_dir: Path | str, name: str, sha256: str) -> Path:
    check_label(name, "dataset name")
    return Path(catalog_dir) / name / f"{check_sha256(sha256, f'dataset {name}: sha256')}.csv"


def register(catalog_dir: Path | str, name: str, csv_bytes: bytes) -> str:
    """Store a snapshot under its own digest (idempotent); its sha256 hex."""
    sha = hashlib.sha256(csv_bytes).hexdigest()
    path = snapshot_path(catalog_dir, name, sha)
    if not (path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == sha):
        write_atomic(path, csv_bytes)
    return sha


def materialize(catalog_dir: Path | str, name: str) -> str:
    """Write the built-in snapshot of `name` into the catalog (idempotent); its sha256 hex."""
    check_label(name, "dataset name")
    return register(catalog_dir, name, builtin_bytes(_builtin_name(name)))


def ensure_builtins(catalog_dir: Path | str) -> dict[str, str]:
    return {name: materialize(catalog_dir, name) for name in sorted(BUILTINS)}


def load(catalog_dir: Path | str, name: str, sha256: str) -> Dataset:
    """The snapshot the pin names, after checking that its bytes still hash to the pin's digest."""
    path = snapshot_path(catalog_dir, name, sha256)
    want = check_sha256(sha256, f"dataset {name}: sha256")
    if not path.is_file():
        if name in BUILTINS and builtin_digest(name) == want:
            materialize(catalog_dir, name)
        else:
            known = sorted(p.stem for p in path.parent.glob("*.csv")) if path.parent.is_dir() else []
            hint = f"; the catalog has {', '.join(short(k) for k in known)}" if known else ""
            if name in BUILTINS:  # in full: this is what the pin's author copies (`releasectl datasets`)
                hint += f"; the built-in snapshot is {builtin_digest(name)}"
            raise CheckFailed(f"dataset {name}: no snapshot with sha256 {short(want)} in {path.parent}{hint}")
    data = path.read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        raise CheckFailed(f"dataset {name}: snapshot file sha256 {short(got)} does not match the pin's {short(want)}")
    feature_names, X, y = parse_csv(name, data)
    return Dataset(name=name, sha256=want, X=X, y=y, feature_names=feature_names)


def split(dataset: Dataset, seed: int) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any], NDArray[Any]]:
    """The held-out split every step shares: 25 % test, stratified, seeded by the pin's seed."""
    from sklearn.model_selection import train_test_split

    try:
        parts = train_test_split(dataset.X, dataset.y, test_size=TEST_SIZE, random_state=seed, stratify=dataset.y)
    except ValueError as exc:
        raise CheckFailed(f"dataset {dataset.name}: cannot make a stratified split ({exc})") from None
    X_train, X_test, y_train, y_test = parts
    return X_train, X_test, y_train, y_test


def describe(name: str, sha256: str, data: bytes, source: str) -> dict[str, Any]:
    """One row of `releasectl datasets`: what a pin author needs to choose and pin a snapshot."""
    feature_names, X, y = parse_csv(name, data)
    return {
        "name": name,
        "rows": int(X.shape[0]),
        "features": len(feature_names),
        "classes": len(set(y.tolist())),
        "target": TARGET,
        "source": source,
        "sha256": sha256,
    }


def catalog(catalog_dir: Path | str | None = None) -> list[dict[str, Any]]:
    """The built-in datasets, and with a catalog folder every snapshot registered there."""
    rows = [describe(n, builtin_digest(n), builtin_bytes(n), "built-in") for n in sorted(BUILTINS)]
    seen = {(r["name"], r["sha256"]) for r in rows}
    if catalog_dir is not None and Path(catalog_dir).is_dir():
        for path in sorted(Path(catalog_dir).glob("*/*.csv")):
            key = (path.parent.name, path.stem)
            if key not in seen:
                rows.append(describe(key[0], key[1], path.read_bytes(), "catalog"))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print `name sha256` for every built-in dataset; with a catalog folder, also write them."""
    args = sys.argv[1:] if argv is None else argv
    digests = ensure_builtins(args[0]) if args else {n: builtin_digest(n) for n in sorted(BUILTINS)}
    for name, sha in digests.items():
        print(f"{name} {sha}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
