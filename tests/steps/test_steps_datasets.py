"""The data catalog: canonical snapshots, digests, digest checks, the shared split."""

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workflows import datasets
from workflows.steps.common import CheckFailed

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(datasets.BUILTINS))
def test_builtin_digest_is_the_sha_of_the_materialized_file(tmp_path: Path, name: str) -> None:
    sha = datasets.materialize(tmp_path, name)
    path = tmp_path / name / f"{sha}.csv"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha == datasets.builtin_digest(name)
    assert datasets.materialize(tmp_path, name) == sha  # idempotent
    assert sorted(p.name for p in (tmp_path / name).iterdir()) == [f"{sha}.csv"]


def test_canonical_csv_format() -> None:
    text = datasets.builtin_bytes("iris").decode()
    lines = text.split("\n")
    assert "\r" not in text and text.endswith("\n")
    assert lines[0] == "sepal length (cm),sepal width (cm),petal length (cm),petal width (cm),target"
    assert lines[1] == "5.1,3.5,1.4,0.2,0"
    assert len(lines) == 152  # header, 150 rows, the empty string after the last newline


def test_python_m_prints_the_builtin_digests() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "workflows.datasets"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    assert out.splitlines() == [f"{n} {datasets.builtin_digest(n)}" for n in sorted(datasets.BUILTINS)]


def test_ensure_builtins(tmp_path: Path) -> None:
    assert datasets.ensure_builtins(tmp_path) == {n: datasets.builtin_digest(n) for n in datasets.BUILTINS}


def test_load_checks_the_digest(tmp_path: Path) -> None:
    sha = datasets.materialize(tmp_path, "wine")
    path = tmp_path / "wine" / f"{sha}.csv"
    data = datasets.load(tmp_path, "wine", sha)
    assert data.X.shape == (178, 13) and data.y.shape == (178,) and len(data.feature_names) == 13
    assert sorted(set(data.y.tolist())) == [0, 1, 2]
    tampered = path.read_bytes().replace(b"\n1", b"\n2", 1)
    path.write_bytes(tampered)
    got = hashlib.sha256(tampered).hexdigest()
    with pytest.raises(CheckFailed) as info:
        datasets.load(tmp_path, "wine", sha)
    assert str(info.value) == (f"dataset wine: snapshot file sha256 {got[:12]}… does not match the pin's {sha[:12]}…")


def test_missing_builtin_snapshot_is_materialized(tmp_path: Path) -> None:
    sha = datasets.builtin_digest("iris")
    assert datasets.load(tmp_path, "iris", "sha256:" + sha).rows == 150
    assert (tmp_path / "iris" / f"{sha}.csv").is_file()


def test_missing_snapshot_says_what_exists(tmp_path: Path) -> None:
    wanted = "0" * 64
    with pytest.raises(CheckFailed, match=r"dataset iris: no snapshot with sha256 000000000000… in .*the built-in"):
        datasets.load(tmp_path, "iris", wanted)
    with pytest.raises(CheckFailed, match="dataset unknown-data: no snapshot with sha256 000000000000…"):
        datasets.load(tmp_path, "unknown-data", wanted)


@pytest.mark.parametrize("name", ["../etc", "Wine", "a/b", "wine.csv", "-x", ""])
def test_names_are_dns_labels(tmp_path: Path, name: str) -> None:
    with pytest.raises(CheckFailed, match="is not a DNS label"):
        datasets.load(tmp_path, name, "0" * 64)
    with pytest.raises(CheckFailed, match="is not a DNS label"):
        datasets.register(tmp_path, name, b"a,target\n1.0,0\n")
    assert list(tmp_path.iterdir()) == []


def test_bad_digest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckFailed, match="is not a sha256 digest"):
        datasets.load(tmp_path, "wine", "../../etc/passwd")


def test_register_custom_snapshot_and_parse_errors(tmp_path: Path) -> None:
    sha = datasets.register(tmp_path, "tiny", b"a,b,target\n1.0,2.5,0\n3.0,4.0,1\n")
    data = datasets.load(tmp_path, "tiny", sha)
    assert data.feature_names == ("a", "b")
    assert data.X.tolist() == [[1.0, 2.5], [3.0, 4.0]] and data.y.tolist() == [0, 1]
    bad = datasets.register(tmp_path, "tiny", b"a,b,target\n1.0,abc,0\n")
    with pytest.raises(CheckFailed, match=r"dataset tiny: line 2: non-numeric feature value 'abc'"):
        datasets.load(tmp_path, "tiny", bad)
    no_target = datasets.register(tmp_path, "tiny", b"a,b\n1.0,2.0\n")
    with pytest.raises(CheckFailed, match="the last column must be 'target'"):
        datasets.load(tmp_path, "tiny", no_target)


def test_split_is_stratified_and_deterministic(tmp_path: Path) -> None:
    data = datasets.load(tmp_path, "breast-cancer", datasets.builtin_digest("breast-cancer"))
    X_train, X_test, _, y_test = datasets.split(data, 7)
    assert len(X_train) == 426 and len(X_test) == 143
    assert abs(y_test.mean() - data.y.mean()) < 0.01
    again = datasets.split(data, 7)
    assert np.array_equal(again[1], X_test)
    assert not np.array_equal(datasets.split(data, 8)[1], X_test)
