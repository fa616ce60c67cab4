"""Argo's own JSON Schema (v4.1.2), permissive as published and strict (unknown fields rejected).

CI has ../shared/argo beside the project; a user's clone may not: then the tests that need it skip
with a one-line reason, unless ARGO_SCHEMA_DIR points at a downloaded copy.
"""

from __future__ import annotations

import copy
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = Path(os.environ.get("ARGO_SCHEMA_DIR", ROOT.parent / "shared" / "argo" / "v4.1.2"))
SCHEMA_FILE = SCHEMA_DIR / "workflow-jsonschema.json"
WORKFLOW = "io.argoproj.workflow.v1alpha1.Workflow"


@cache
def _schema() -> dict[str, Any]:
    if not SCHEMA_FILE.is_file():
        pytest.skip(f"Argo's schema is not at {SCHEMA_FILE} (set ARGO_SCHEMA_DIR to a copy of it)")
    return dict(json.loads(SCHEMA_FILE.read_text()))


@cache
def validator(strict: bool = False) -> Draft202012Validator:
    definitions = copy.deepcopy(_schema()["definitions"])
    if strict:
        for definition in definitions.values():
            if definition.get("type") == "object" and "properties" in definition:
                definition.setdefault("additionalProperties", False)
    return Draft202012Validator({"$ref": f"#/definitions/{WORKFLOW}", "definitions": definitions})


def errors(manifest: dict[str, Any], strict: bool = False) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(strict).iter_errors(manifest)]
