"""The pin's dataset: a catalog snapshot by name, or a user's own file by URI, pinned by sha256."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from controller.core.models import ModelPin
from controller.core.schemas import schema_problems

SHA = "75a1d74a59df9cb0a78ecc0a36085bf8a85239557f178d3b8d758e88b26416e1"


def pin(**dataset: Any) -> dict[str, Any]:
    return {
        "apiVersion": "releasectl/v1",
        "kind": "ModelPin",
        "model": "churn",
        "version": "1.0.0",
        "owner": "ml@example.com",
        "training": {"recipe": "logistic-regression", "dataset": {"name": "churn", "sha256": SHA, **dataset},
                     "params": {"seed": 1}},
    }  # fmt: skip


def test_a_catalog_pin_keeps_its_spec_digest() -> None:
    # Computed with the model as it was before uri/format/target existed: unset, they stay out of it.
    assert ModelPin.model_validate(pin()).spec_digest() == (
        "sha256:cff5a59b9bbd8f8bef6ad4011322e2b5133d25b19e68ade0b7e0c39cfd9ca589"
    )
    assert ModelPin.model_validate(pin()).training.dataset.model_dump() == {"name": "churn", "sha256": SHA}


@pytest.mark.parametrize(
    "dataset",
    [
        {"uri": "s3://team-data/churn/2026-11.csv", "target": "churned"},
        {"uri": "file:///shared/data/churn.parquet"},
        {"uri": "s3://team-data/churn/export", "format": "parquet", "target": "label"},
    ],
    ids=["s3-csv", "file-parquet", "format-given"],
)
def test_a_users_dataset_by_uri_is_a_valid_pin(dataset: dict[str, str]) -> None:
    parsed = ModelPin.model_validate(pin(**dataset))
    assert parsed.training.dataset.model_dump() == {"name": "churn", "sha256": SHA, **dataset}
    assert schema_problems("ModelPin", "environments/dev/churn.yaml", pin(**dataset)) == []
    assert parsed.spec_digest() != ModelPin.model_validate(pin()).spec_digest()  # the file is part of the spec


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ({"uri": "https://example.com/churn.csv"}, "String should match pattern"),
        ({"uri": "s3://Bad_Bucket/churn.csv"}, "String should match pattern"),
        ({"uri": "file://relative/churn.csv"}, "String should match pattern"),
        ({"uri": "s3://team-data/churn"}, "dataset.format must be given when dataset.uri does not end in"),
        ({"target": "label"}, "dataset.format and dataset.target need dataset.uri"),
        ({"uri": "s3://team-data/c.csv", "format": "xlsx"}, "Input should be 'csv' or 'parquet'"),
        ({"uri": "s3://team-data/c.csv", "target": "a,b"}, "String should match pattern"),
    ],
    ids=["https", "bucket-name", "relative-file", "no-format", "target-without-uri", "format", "target-comma"],
)
def test_bad_dataset_fields_are_rejected(dataset: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ModelPin.model_validate(pin(**dataset))
