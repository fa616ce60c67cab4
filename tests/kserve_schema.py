"""KServe's InferenceService CRD (v0.20.0, config/crd/full): its openAPIV3Schema as a validator.

Strict as the API server is: the CRD is structural, so fields it does not list are pruned (lost)
by a real cluster; here they are errors, unless the schema says x-kubernetes-preserve-unknown-fields.
CI has ../shared/kserve beside the project; elsewhere the tests skip with a one-line reason unless
KSERVE_SCHEMA_DIR points at a copy.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = Path(os.environ.get("KSERVE_SCHEMA_DIR", ROOT.parent / "shared" / "kserve" / "v0.20.0"))
CRD_FILE = SCHEMA_DIR / "serving.kserve.io_inferenceservices.yaml"


def _strict(node: Any) -> None:
    if isinstance(node, dict):
        if (
            node.get("type") == "object"
            and "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        for value in node.values():
            _strict(value)
    elif isinstance(node, list):
        for value in node:
            _strict(value)


@cache
def validator() -> Draft7Validator:
    if not CRD_FILE.is_file():
        pytest.skip(f"KServe's CRD is not at {CRD_FILE} (set KSERVE_SCHEMA_DIR to a copy of it)")
    crd = yaml.load(CRD_FILE.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta1")
    schema = version["schema"]["openAPIV3Schema"]
    _strict(schema)
    # metadata is the API server's (ObjectMeta); the CRD leaves it open.
    schema["properties"]["metadata"] = {"type": "object"}
    return Draft7Validator(schema)


def errors(obj: dict[str, Any]) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator().iter_errors(obj)]
