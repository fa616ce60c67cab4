"""The data catalog: content-addressed dataset snapshots (canonical CSV) and the train/test split.

Place in the flow: the validate-data, train, evaluate and deploy steps read their data from here.
A pin names a dataset and the sha256 of its snapshot (`training.dataset`); the catalog keeps
`<catalog>/<name>/<sha256>.csv` in a folder or under an `s3://` prefix (workflows/objects.py), and
`load` re-hashes the bytes, so a step never trains or evaluates on data other than the pinned
bytes. The datasets scikit-learn ships are built in and materialized on demand. `releasectl
datasets` lists them (rows, features, target, the full sha256 to pin); `python -m
workflows.datasets [CATALOG]` prints bare digests.

A user's own dataset is given by URI in the pin (`training.dataset.uri`: file:// or s3://, CSV or
Parquet, `target` naming the class column): `load_pinned` fetches it, checks its sha256 against
the pin, and keeps a copy in the catalog under its digest (with a small `.json` sidecar saying its
format and target), so a later drift check finds it as the reference by digest alone.
"""

import csv
import functools
import hashlib
import io
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from workflows.objects import Location, ObjectMissing, open_location
from workflows.steps.common import CheckFailed, check_label, check_sha256, short

TARGET = "target"
TEST_SIZE = 0.25
FORMATS = ("csv", "parquet")
CatalogLike = Path | str | Location


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


def parse_csv(
    name: str, data: bytes, target: str | None = None
) -> tuple[tuple[str, ...], NDArray[np.float64], NDArray[np.int64]]:
    """Snapshot bytes -> (feature names, X, y). A malformed file is the user's to fix.

    Without `target` the file is a canonical snapshot (the last column is `target`); with it, the
    column of that name (anywhere) holds the integer class labels and every other one a feature.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CheckFailed(f"dataset {name}: snapshot is not UTF-8 text ({exc})") from None
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    if not rows or not rows[0]:
        raise CheckFailed(f"dataset {name}: snapshot is empty")
    header = [h.strip() for h in rows[0]]
    if target is None:
        if header[-1] != TARGET or len(header) < 2:
            raise CheckFailed(f"dataset {name}: the last column must be {TARGET!r}, got {header[-1]!r}")
        column = len(header) - 1
    else:
        if header.count(target) != 1 or len(header) < 2:
            raise CheckFailed(
                f"dataset {name}: the target column {target!r} must appear once in the header "
                f"({', '.join(header[:20])}{', ...' if len(header) > 20 else ''})"
            )
        column = header.index(target)
    features = [i for i in range(len(header)) if i != column]
    X = np.empty((len(rows) - 1, len(header) - 1), dtype=np.float64)
    y = np.empty(len(rows) - 1, dtype=np.int64)
    for i, row in enumerate(rows[1:]):
        line = i + 2
        if len(row) != len(header):
            raise CheckFailed(f"dataset {name}: line {line} has {len(row)} fields, the header {len(header)}")
        values = [row[j] for j in features]
        try:
            X[i] = [float(v) for v in values]
        except ValueError:
            bad = next(v for v in values if not _is_float(v))
            raise CheckFailed(f"dataset {name}: line {line}: non-numeric feature value {bad!r}") from None
        label = _int_label(row[column])
        if label is None:
            raise CheckFailed(f"dataset {name}: line {line}: target {row[column]!r} is not an integer class label")
        y[i] = label
    return tuple(header[j] for j in features), X, y


def parse_parquet(
    name: str, data: bytes, target: str
) -> tuple[tuple[str, ...], NDArray[np.float64], NDArray[np.int64]]:
    """Parquet bytes -> (feature names, X, y): numeric feature columns, an integer target column."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise RuntimeError(
            f"dataset {name}: reading Parquet needs pyarrow (pip install 'releasectl[parquet]')"
        ) from None
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowInvalid, OSError) as exc:
        raise CheckFailed(f"dataset {name}: not a readable Parquet file ({exc})") from None
    names = [str(n) for n in table.column_names]
    if names.count(target) != 1:
        raise CheckFailed(f"dataset {name}: the target column {target!r} must appear once ({', '.join(names[:20])})")
    features = [n for n in names if n != target]
    if not features:
        raise CheckFailed(f"dataset {name}: no feature columns")
    for n in features:
        kind = table.schema.field(n).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
            raise CheckFailed(f"dataset {name}: feature {n!r} is {kind}, not numeric")
    kind = table.schema.field(target).type
    if not pa.types.is_integer(kind):
        raise CheckFailed(f"dataset {name}: the target column {target!r} is {kind}, not integer class labels")
    if table.column(target).null_count:
        raise CheckFailed(f"dataset {name}: the target column {target!r} has missing values")
    X = np.column_stack([table.column(n).to_numpy(zero_copy_only=False).astype(np.float64) for n in features]).reshape(
        table.num_rows, len(features)
    )
    y = table.column(target).to_numpy(zero_copy_only=False).astype(np.int64)
    return tuple(features), X, y


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


def snapshot_key(name: str, sha256: str, fmt: str = "csv") -> str:
    check_label(name, "dataset name")
    return f"{name}/{check_sha256(sha256, f'dataset {name}: sha256')}.{fmt}"


def snapshot_path(catalog_dir: Path | str, name: str, sha256: str) -> Path:
    return Path(catalog_dir) / snapshot_key(name, sha256)


def register(catalog_dir: CatalogLike, name: str, csv_bytes: bytes) -> str:
    """Store a snapshot under its own digest (idempotent); its sha256 hex."""
    sha = hashlib.sha256(csv_bytes).hexdigest()
    key = snapshot_key(name, sha)
    where = open_location(catalog_dir)
    if not (where.exists(key) and hashlib.sha256(where.get(key)).hexdigest() == sha):
        where.put(key, csv_bytes)
    return sha


def materialize(catalog_dir: CatalogLike, name: str) -> str:
    """Write the built-in snapshot of `name` into the catalog (idempotent); its sha256 hex."""
    check_label(name, "dataset name")
    return register(catalog_dir, name, builtin_bytes(_builtin_name(name)))


def ensure_builtins(catalog_dir: CatalogLike) -> dict[str, str]:
    return {name: materialize(catalog_dir, name) for name in sorted(BUILTINS)}


def _parse(name: str, data: bytes, fmt: str, target: str | None) -> tuple[tuple[str, ...], Any, Any]:
    if fmt == "parquet":
        return parse_parquet(name, data, target or TARGET)
    return parse_csv(name, data, target)


def _checked_bytes(name: str, data: bytes, want: str, what: str) -> bytes:
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        raise CheckFailed(f"dataset {name}: {what} sha256 {short(got)} does not match the pin's {short(want)}")
    return data


def load(catalog_dir: CatalogLike, name: str, sha256: str) -> Dataset:
    """The snapshot the pin names, after checking that its bytes still hash to the pin's digest.

    A canonical CSV snapshot, or a user's dataset kept in the catalog by `load_pinned` (a sidecar
    `<sha256>.json` says its format and target column).
    """
    key = snapshot_key(name, sha256)
    want = check_sha256(sha256, f"dataset {name}: sha256")
    where = open_location(catalog_dir)
    sidecar = f"{name}/{want}.json"
    if name not in BUILTINS and where.exists(sidecar):  # a user's dataset kept by load_pinned
        info = json.loads(where.get(sidecar))
        fmt, target = str(info.get("format", "csv")), info.get("target")
        data = _checked_bytes(name, where.get(f"{name}/{want}.{fmt}"), want, "snapshot file")
        feature_names, X, y = _parse(name, data, fmt, target)
        return Dataset(name=name, sha256=want, X=X, y=y, feature_names=feature_names)
    if not where.exists(key):
        if name in BUILTINS and builtin_digest(name) == want:
            materialize(where, name)
        else:
            known = sorted(k.rsplit("/", 1)[-1].split(".")[0] for k in where.keys(name) if k.endswith(".csv"))
            hint = f"; the catalog has {', '.join(short(k) for k in known)}" if known else ""
            if name in BUILTINS:  # in full: this is what the pin's author copies (`releasectl datasets`)
                hint += f"; the built-in snapshot is {builtin_digest(name)}"
            raise CheckFailed(f"dataset {name}: no snapshot with sha256 {short(want)} in {where.uri}/{name}{hint}")
    data = _checked_bytes(name, where.get(key), want, "snapshot file")
    feature_names, X, y = parse_csv(name, data)
    return Dataset(name=name, sha256=want, X=X, y=y, feature_names=feature_names)


def format_of(uri: str, fmt: str = "") -> str:
    """The pin's format, or the one the URI's suffix says (.csv, .parquet / .pq)."""
    if fmt:
        if fmt not in FORMATS:
            raise CheckFailed(f"dataset format {fmt!r} is not one of {', '.join(FORMATS)}")
        return fmt
    lower = uri.lower()
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith((".parquet", ".pq")):
        return "parquet"
    raise CheckFailed(f"dataset {uri}: say its format (csv or parquet); the name does not end in .csv or .parquet")


def fetch_uri(uri: str) -> bytes:
    """The bytes at a file:// or s3:// URI (ObjectMissing / StoreUnavailable are infrastructure)."""
    parent, _, leaf = uri.rstrip("/").rpartition("/")
    if not leaf or parent in ("file:", "s3:", "file://", "s3://"):
        raise CheckFailed(f"dataset uri {uri!r} must name a file")
    try:
        where = open_location(parent if parent != "file://" else "file:///")
    except ValueError as exc:
        raise CheckFailed(f"dataset uri: {exc}") from None
    try:
        return where.get(leaf)
    except ValueError as exc:
        raise CheckFailed(f"dataset uri {uri!r}: {exc}") from None


def load_pinned(
    catalog_dir: CatalogLike, name: str, sha256: str, uri: str = "", fmt: str = "", target: str = ""
) -> Dataset:
    """The pin's dataset: from the catalog, or from the user's URI (then kept in the catalog by digest)."""
    if not uri:
        return load(catalog_dir, name, sha256)
    want = check_sha256(sha256, f"dataset {name}: sha256")
    chosen = format_of(uri, fmt)
    where = open_location(catalog_dir)
    key = snapshot_key(name, want, chosen)
    try:
        data = _checked_bytes(name, where.get(key), want, "catalog copy")
    except (ObjectMissing, CheckFailed):
        try:
            data = fetch_uri(uri)
        except ObjectMissing as exc:
            raise ObjectMissing(f"dataset {name}: {exc}") from None
        data = _checked_bytes(name, data, want, f"file {uri}")
        where.put(key, data)
        where.put(
            f"{name}/{want}.json", json.dumps({"format": chosen, "target": target or TARGET, "uri": uri}).encode()
        )
    feature_names, X, y = _parse(name, data, chosen, target or TARGET)
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


def describe(name: str, sha256: str, data: bytes, source: str, target: str | None = None) -> dict[str, Any]:
    """One row of `releasectl datasets`: what a pin author needs to choose and pin a snapshot."""
    feature_names, X, y = parse_csv(name, data, target)
    return {
        "name": name,
        "rows": int(X.shape[0]),
        "features": len(feature_names),
        "classes": len(set(y.tolist())),
        "target": target or TARGET,
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
                sidecar = path.with_suffix(".json")  # a user's CSV kept by load_pinned: its own target column
                target = json.loads(sidecar.read_text()).get("target") if sidecar.is_file() else None
                rows.append(describe(key[0], key[1], path.read_bytes(), "catalog", target))
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
