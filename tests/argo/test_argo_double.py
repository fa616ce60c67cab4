"""The Argo double holds requests to the contract: a request that breaks it is caught, not served silently.

These send raw requests (http.client), so a check that passes everything would show here.
"""

from __future__ import annotations

import copy
import http.client
import json
from pathlib import Path
from typing import Any

import pytest

from tests.argo.conftest import NAMESPACE, compiled
from tests.argo.contract import Swagger
from tests.argo.double import TOKEN, ArgoDouble
from tests.argo.selectors import selector_matches, trim


def _send(double: ArgoDouble, method: str, path: str, body: Any = None, token: str | None = TOKEN) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", double.port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    status = conn.getresponse().status
    conn.close()
    return status


@pytest.fixture
def bare(contract: Swagger) -> Any:
    double = ArgoDouble(contract).start()
    yield double
    double.close()


def test_a_misspelt_workflow_field_is_a_strict_schema_violation(tmp_path: Path, bare: ArgoDouble) -> None:
    workflow = copy.deepcopy(compiled(tmp_path))
    workflow["spec"]["templates"][0]["retryStrategy"]["limitt"] = "2"
    assert _send(bare, "POST", f"/api/v1/workflows/{NAMESPACE}", {"workflow": workflow}) == 200
    strict = "POST /api/v1/workflows/releasectl: workflow: strict schema: spec.templates.0.retryStrategy"
    assert any(v.startswith(strict) for v in bare.violations)
    assert not any(": schema: " in v for v in bare.violations)  # the published schema lets it through


WF = f"/api/v1/workflows/{NAMESPACE}"


@pytest.mark.parametrize(
    ("method", "path", "body", "token", "expected"),
    [
        ("GET", f"{WF}?listOptions.labelSelectr=a%3Db", None, TOKEN, "'listOptions.labelSelectr' is not declared"),
        ("GET", f"{WF}?listOptions.watch=yes", None, TOKEN, "'yes' is not a boolean"),
        ("GET", f"{WF}?listOptions.limit=ten", None, TOKEN, "'ten' is not an int64"),
        ("GET", WF, None, None, "no 'Authorization: Bearer' header"),
        ("PUT", f"{WF}/x/stop", {"name": 5}, TOKEN, "body.name: 5 is not of type 'string'"),
        ("POST", WF, {"workflow": {"metadata": {}}}, TOKEN, "'spec' is a required property"),
        ("PATCH", f"{WF}/x", {}, TOKEN, "no such operation in the swagger"),
    ],
    ids=["unknown-query", "bad-boolean", "bad-int64", "no-token", "stop-body", "create-without-spec", "no-such-op"],
)
def test_requests_are_checked_against_the_swagger(
    bare: ArgoDouble, method: str, path: str, body: Any, token: str | None, expected: str
) -> None:
    _send(bare, method, path, body, token)
    assert any(expected in v for v in bare.violations), bare.violations


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ("a=b", {"a": "b"}, True),
        ("a=b,c=d", {"a": "b"}, False),
        ("a==b", {"a": "b", "c": "d"}, True),
        ("a!=b", {"a": "c"}, True),
        ("a", {"a": ""}, True),
        ("!a", {"a": "x"}, False),
        ("", {}, True),
    ],
    ids=["equal", "and", "double-equal", "not-equal", "exists", "not-exists", "empty"],
)
def test_selector_matches(selector: str, labels: dict[str, str], matches: bool) -> None:
    assert selector_matches(selector, labels) is matches


def test_fields_trim_excludes_and_includes() -> None:
    doc = {"result": {"type": "ADDED", "object": {"metadata": {"name": "w"}, "spec": {"x": 1}, "status": {"p": 1}}}}
    without_spec = {"type": "ADDED", "object": {"metadata": {"name": "w"}, "status": {"p": 1}}}
    assert trim(doc, "-result.object.spec") == {"result": without_spec}
    only = {"object": {"metadata": {"name": "w"}}, "type": "ADDED"}
    assert trim(doc, "result.object.metadata.name,result.type") == {"result": only}
    assert doc["result"]["object"]["spec"] == {"x": 1}  # the original is untouched
