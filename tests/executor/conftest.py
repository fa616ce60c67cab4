"""Fixtures for the LocalExecutor tests: executors on tmp homes, and Argo's schema for every manifest.

Place in the flow: tests only. Manifests are built with Hera from tests/executor/stepfns.py and
compiled with `.to_dict()`; `compiled()` also checks each one against Argo's own JSON Schema
(skipped with a one-line reason when ../shared/argo is absent and ARGO_SCHEMA_DIR is unset).
"""

from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from controller.adapters.local.executor import LocalExecutor

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
SCHEMA_FILE = (
    Path(os.environ.get("ARGO_SCHEMA_DIR", ROOT.parent / "shared" / "argo" / "v4.1.2")) / "workflow-jsonschema.json"
)
WORKFLOW_DEF = "io.argoproj.workflow.v1alpha1.Workflow"


@cache
def _validator(strict: bool) -> Draft202012Validator | None:
    if not SCHEMA_FILE.is_file():
        return None
    definitions = json.loads(SCHEMA_FILE.read_text())["definitions"]
    assert WORKFLOW_DEF in definitions
    if strict:  # unknown fields rejected: catches typos the published schema lets through
        definitions = copy.deepcopy(definitions)
        for d in definitions.values():
            if d.get("type") == "object" and "properties" in d:
                d.setdefault("additionalProperties", False)
    return Draft202012Validator({"$ref": f"#/definitions/{WORKFLOW_DEF}", "definitions": definitions})


def schema_errors(manifest: dict[str, Any], strict: bool = False) -> list[str]:
    v = _validator(strict)
    if v is None:
        pytest.skip(f"Argo's schema is not at {SCHEMA_FILE} (set ARGO_SCHEMA_DIR to a copy)")
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(manifest)]


def compiled(workflow: Any) -> dict[str, Any]:
    """The Hera workflow's manifest, after checking it against Argo's schema (strict variant)."""
    manifest: dict[str, Any] = workflow.to_dict()
    if _validator(True) is not None:
        assert schema_errors(manifest, strict=True) == []
    return manifest


@pytest.fixture(scope="module")
def warm_executor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalExecutor]:
    """One warm executor per test module: its worker imports Hera once for many workflows."""
    with LocalExecutor(tmp_path_factory.mktemp("warm-home"), max_parallel=2, warm=True) as ex:
        yield ex


@pytest.fixture
def cold_executor(tmp_path: Path) -> Iterator[LocalExecutor]:
    with LocalExecutor(tmp_path / "home", max_parallel=2, warm=False) as ex:
        yield ex
