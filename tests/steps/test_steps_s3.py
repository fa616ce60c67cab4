"""Artifacts and a user's datasets in object storage: the steps against a real S3 API on loopback.

moto's server mode runs as a child process (tests/s3_support.py) and checks signatures, so the
credentials the steps read from the standard AWS variables really matter.
"""

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from step_support import SPEC

from tests.s3_support import S3Server, moto_server
from workflows import datasets, objects, store
from workflows.steps.evaluate import evaluate
from workflows.steps.train import train
from workflows.steps.validate_data import validate_data

BC = "breast-cancer"
PARAMS = json.dumps({"C": 1.0, "max_iter": 500, "seed": 7})
STORE = "s3://artifacts/prod/artifacts"
CATALOG = "s3://artifacts/prod/datasets"
NO_USER_DATA = dict.fromkeys(["dataset_uri", "dataset_format", "target_column"], "")


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with moto_server() as server:
        yield server


@pytest.fixture
def aws(s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3Server:
    """The step's environment: the AWS variables of its Secret, and Hera's outputs folder."""
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("hera__outputs_directory", str(tmp_path / "outputs"))
    return s3


def verdict(tmp_path: Path) -> dict[str, str]:
    loaded: dict[str, str] = json.loads((tmp_path / "outputs" / "parameters" / "verdict").read_text())
    return loaded


def _user_csv() -> bytes:
    """A team's own CSV: the label column in the middle, a header with spaces, CRLF line ends."""
    bunch = datasets.BUILTINS["wine"]()
    X, y = bunch.data[:, :5], (bunch.target == 0).astype(int)
    header = ["alcohol", "malic acid", "label", "ash", "alcalinity", "magnesium"]
    lines = [",".join(header)]
    for row, label in zip(X, y, strict=True):
        lines.append(
            ",".join([repr(float(row[0])), repr(float(row[1])), str(label), *(repr(float(v)) for v in row[2:])])
        )
    return ("\r\n".join(lines) + "\r\n").encode()


def test_artifacts_round_trip_through_s3_by_digest(aws: S3Server, tmp_path: Path) -> None:
    sha = datasets.builtin_digest(BC)
    data = {"dataset": BC, "dataset_sha256": sha, "data_uri": CATALOG, **NO_USER_DATA}
    artifact, _report = train(
        model="tumor", version="1.0.0", spec_digest=SPEC, recipe="logistic-regression", params=PARAMS,
        store_uri=STORE, **data,
    )  # fmt: skip
    client = aws.client()
    body = client.get_object(Bucket="artifacts", Key=f"prod/artifacts/sha256/{artifact[7:]}.skops")["Body"].read()
    assert "sha256:" + hashlib.sha256(body).hexdigest() == artifact and body[:2] == b"PK"  # skops, not pickle
    meta = json.loads(
        client.get_object(Bucket="artifacts", Key=f"prod/artifacts/sha256/{artifact[7:]}.json")["Body"].read()
    )
    assert meta["artifact"] == artifact and meta["dataset"] == {"name": BC, "sha256": sha}
    # The built-in snapshot was materialized into the S3 catalog, under its digest.
    assert client.head_object(Bucket="artifacts", Key=f"prod/datasets/{BC}/{sha}.csv")["ContentLength"] > 0
    found, _, passed, echoed = evaluate(
        artifact=artifact, store_uri=STORE, params=PARAMS, gates=json.dumps({"roc_auc": ">= 0.95"}),
        max_regression="{}", **data,
    )  # fmt: skip
    assert echoed == artifact and passed == "true" and json.loads(found)["roc_auc"] > 0.95
    assert verdict(tmp_path) == {"verdict": "Succeeded", "reason": ""}


def test_a_users_csv_dataset_round_trips_through_s3_and_trains(aws: S3Server, tmp_path: Path) -> None:
    raw = _user_csv()
    sha = hashlib.sha256(raw).hexdigest()
    aws.client().put_object(Bucket="datasets", Key="team/wine-class0.csv", Body=raw)
    user = {"dataset_uri": "s3://datasets/team/wine-class0.csv", "dataset_format": "", "target_column": "label"}
    data = {"dataset": "wine-class0", "dataset_sha256": sha, "data_uri": CATALOG, **user}
    report = json.loads(validate_data(**data))
    assert report == {
        "dataset": "wine-class0", "uri": user["dataset_uri"], "sha256": sha, "rows": 178, "features": 5,
        "classes": 2, "psi_max": None, "psi_feature": None, "reference": None,
    }  # fmt: skip
    artifact, _report = train(
        model="wine", version="1.0.0", spec_digest=SPEC, recipe="logistic-regression", params=PARAMS,
        store_uri=STORE, **data,
    )  # fmt: skip
    estimator = store.get(STORE, artifact)
    assert estimator.n_features_in_ == 5 and sorted(estimator.classes_.tolist()) == [0, 1]
    assert store.meta(STORE, artifact)["feature_names"] == ["alcohol", "malic acid", "ash", "alcalinity", "magnesium"]
    found, _, passed, _ = evaluate(
        artifact=artifact, store_uri=STORE, params=PARAMS, gates=json.dumps({"accuracy": ">= 0.8"}),
        max_regression="{}", **data,
    )  # fmt: skip
    assert passed == "true", found
    # The catalog keeps the user's bytes under their digest, so a later drift check finds them by digest.
    copy = datasets.load(CATALOG, "wine-class0", sha)
    assert copy.feature_names[2] == "ash" and copy.rows == 178


def test_a_users_dataset_whose_digest_differs_from_the_pin_is_failed(aws: S3Server, tmp_path: Path) -> None:
    aws.client().put_object(Bucket="datasets", Key="team/changed.csv", Body=_user_csv())
    pinned = "1" * 64
    with pytest.raises(SystemExit) as info:
        validate_data(
            dataset="changed", dataset_sha256=pinned, data_uri=CATALOG,
            dataset_uri="s3://datasets/team/changed.csv", target_column="label",
        )  # fmt: skip
    assert info.value.code == 2
    got = hashlib.sha256(_user_csv()).hexdigest()
    assert verdict(tmp_path) == {
        "verdict": "Failed",
        "reason": f"dataset changed: file s3://datasets/team/changed.csv sha256 {got[:12]}… "
        f"does not match the pin's {pinned[:12]}…",
    }


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"AWS_SECRET_ACCESS_KEY": "not-the-secret"}, "SignatureDoesNotMatch"),
        ({"AWS_ACCESS_KEY_ID": "AKIAUNKNOWN0000000"}, "InvalidAccessKeyId"),
    ],
    ids=["wrong-secret", "unknown-key"],
)
def test_wrong_credentials_are_errored_with_a_clear_reason(
    aws: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overrides: dict[str, str], code: str
) -> None:
    for key, value in overrides.items():
        monkeypatch.setenv(key, value)
    sha = datasets.builtin_digest("iris")
    advice = "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    with pytest.raises(objects.StoreUnavailable) as info:
        objects.open_location(STORE).get("sha256/x.skops")
    assert str(info.value) == f"{STORE}/sha256/x.skops: the S3 server refused the credentials ({code}); {advice}"
    with pytest.raises(objects.StoreUnavailable):
        validate_data(dataset="iris", dataset_sha256=sha, data_uri=CATALOG, **NO_USER_DATA)
    # The step's first call is a HEAD, whose 403 has no body to name the code: the status says it.
    assert verdict(tmp_path) == {
        "verdict": "Errored",
        "reason": f"StoreUnavailable: {CATALOG}/iris/{sha}.csv: the S3 server refused the credentials (403); {advice}",
    }


def test_a_missing_artifact_is_errored_never_failed(aws: S3Server, tmp_path: Path) -> None:
    missing = "sha256:" + "0" * 64
    with pytest.raises(store.ArtifactMissing):
        evaluate(
            artifact=missing, dataset=BC, dataset_sha256=datasets.builtin_digest(BC), data_uri=CATALOG,
            store_uri=STORE, params=PARAMS, gates="{}", max_regression="{}", **NO_USER_DATA,
        )  # fmt: skip
    assert verdict(tmp_path) == {
        "verdict": "Errored",
        "reason": f"ArtifactMissing: artifact {missing} is not in the artifact store {STORE}: the status trail "
        "names it, so another controller with its own store built it, or this store lost it (run one controller "
        "per release repo, or share its store)",
    }


def test_a_missing_bucket_is_errored(aws: S3Server, tmp_path: Path) -> None:
    with pytest.raises(
        objects.StoreUnavailable,
        match=r"^s3://no-such-bucket/x/sha256/0+\.skops: the bucket no-such-bucket does not exist$",
    ):
        store.read_bytes("s3://no-such-bucket/x", "sha256:" + "0" * 64)


def test_a_users_parquet_dataset_from_a_file_uri(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    table = pa.table({"f1": X[:, 0], "f2": X[:, 1], "outcome": y, "f3": X[:, 2].astype(np.float32)})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    path = tmp_path / "team" / "data.parquet"
    path.parent.mkdir()
    path.write_bytes(buffer.getvalue())
    sha = hashlib.sha256(buffer.getvalue()).hexdigest()
    loaded = datasets.load_pinned(tmp_path / "catalog", "mine", sha, path.as_uri(), "", "outcome")
    assert loaded.feature_names == ("f1", "f2", "f3") and loaded.y.tolist() == y.tolist()
    assert np.allclose(loaded.X[:, :2], X[:, :2])
    assert (tmp_path / "catalog" / "mine" / f"{sha}.parquet").is_file()
    assert datasets.load(tmp_path / "catalog", "mine", sha).rows == 60  # found again by digest alone
    with pytest.raises(
        datasets.CheckFailed, match=r"the target column 'label' must appear once \(f1, f2, outcome, f3\)"
    ):
        datasets.load_pinned(tmp_path / "other", "mine", sha, path.as_uri(), "parquet", "label")
