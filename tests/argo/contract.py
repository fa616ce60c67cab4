"""The Argo Server's published contract, as the tests hold the double to it.

Place in the flow: test support. `Swagger` reads ../shared/argo/v4.1.2/swagger.json (Swagger 2.0)
and checks one request (path template, method, path and query parameters with their types, the
Bearer header the API's security names, the JSON body against the body parameter's schema with
every `$ref` resolved) and one answer (its JSON against the response schema of that status, or
the `default` error schema). `workflow_problems` validates a submitted Workflow against Argo's
JSON Schema, as published and strict (tests/argo_schema.py). Without ../shared the tests skip.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from jsonschema import Draft4Validator

from tests.argo_schema import SCHEMA_DIR, errors

SWAGGER_FILE = SCHEMA_DIR / "swagger.json"


@dataclass(frozen=True)
class Operation:
    template: str
    method: str
    spec: dict[str, Any]
    params: dict[str, Any]  # path and query parameters by name


def _swagger_doc() -> dict[str, Any]:
    if not SWAGGER_FILE.is_file():
        pytest.skip(f"Argo's swagger is not at {SWAGGER_FILE} (set ARGO_SCHEMA_DIR to a copy of it)")
    return dict(json.loads(Path(SWAGGER_FILE).read_text()))


class Swagger:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.definitions = doc["definitions"]
        routes = []
        for template, ops in doc["paths"].items():
            pattern = re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$")
            routes.append((template.count("{"), template, pattern, ops))
        self.routes = sorted(routes)  # literal segments win over parameters (`.../lint` before `.../{name}`)
        self._validators: dict[str, Draft4Validator] = {}

    def _validator(self, key: str, schema: dict[str, Any]) -> Draft4Validator:
        if key not in self._validators:
            self._validators[key] = Draft4Validator({**schema, "definitions": self.definitions})
        return self._validators[key]

    def operation(self, method: str, path: str) -> Operation | None:
        for _, template, pattern, ops in self.routes:
            if pattern.match(path) and method.lower() in ops:
                spec = ops[method.lower()]
                return Operation(template, method.lower(), spec, {p["name"]: p for p in spec.get("parameters", [])})
        return None

    def check_request(self, method: str, target: str, headers: dict[str, str], body: bytes) -> list[str]:
        parts = urlsplit(target)
        op = self.operation(method, parts.path)
        where = f"{method} {parts.path}"
        if op is None:
            return [f"{where}: no such operation in the swagger"]
        problems = []
        query = parse_qs(parts.query, keep_blank_values=True)
        for name, values in query.items():
            param = op.params.get(name)
            if param is None or param.get("in") != "query":
                problems.append(f"{where}: query parameter {name!r} is not declared")
                continue
            for value in values:
                problems += [f"{where}: {name}: {p}" for p in _scalar(param, value)]
            if len(values) > 1 and param.get("type") != "array":
                problems.append(f"{where}: query parameter {name!r} given {len(values)} times")
        segments = dict(zip(op.template.split("/"), parts.path.split("/"), strict=True))
        for name, param in op.params.items():
            if param.get("in") == "path":
                value = segments.get("{" + name + "}", "")
                if not value:
                    problems.append(f"{where}: path parameter {name} is empty")
            if param.get("required") and param.get("in") == "query" and name not in query:
                problems.append(f"{where}: required query parameter {name} is missing")
        if self.doc.get("security") and not headers.get("authorization", "").startswith("Bearer "):
            problems.append(f"{where}: no 'Authorization: Bearer' header (the API's security)")
        body_param = next((p for p in op.params.values() if p.get("in") == "body"), None)
        if body_param is None:
            if body:
                problems.append(f"{where}: a body where the operation takes none")
            return problems
        if headers.get("content-type", "").split(";")[0].strip() != "application/json":
            problems.append(f"{where}: body without Content-Type: application/json")
        try:
            doc = json.loads(body or b"null")
        except ValueError as exc:
            return [*problems, f"{where}: body is not JSON: {exc}"]
        if doc is None and body_param.get("required"):
            return [*problems, f"{where}: the required body is missing"]
        validator = self._validator(f"{op.template} {op.method} body", body_param["schema"])
        problems += [f"{where}: body.{_path(e)}: {e.message}" for e in validator.iter_errors(doc)]
        return problems

    def check_response(self, method: str, target: str, status: int, doc: Any, stream: bool = False) -> list[str]:
        path = urlsplit(target).path
        op = self.operation(method, path)
        if op is None:
            return []  # already reported with the request
        responses = op.spec["responses"]
        key = str(status) if str(status) in responses else "default"
        schema = responses[key].get("schema")
        if schema is None:
            return []
        validator = self._validator(f"{op.template} {op.method} {key}", schema)
        where = f"{method} {path} -> {status}{' (stream message)' if stream else ''}"
        return [f"{where}: {_path(e)}: {e.message}" for e in validator.iter_errors(doc)]


def _scalar(param: dict[str, Any], value: str) -> list[str]:
    kind, fmt = param.get("type"), param.get("format")
    if kind == "boolean" and value not in ("true", "false"):
        return [f"{value!r} is not a boolean"]
    if fmt in ("int64", "int32") and not re.fullmatch(r"-?\d+", value):
        return [f"{value!r} is not an {fmt}"]
    if "enum" in param and value not in param["enum"]:
        return [f"{value!r} is not one of {param['enum']}"]
    return []


def _path(error: Any) -> str:
    return ".".join(map(str, error.absolute_path)) or "<root>"


@cache
def swagger() -> Swagger:
    return Swagger(_swagger_doc())


def workflow_problems(workflow: dict[str, Any]) -> list[str]:
    """Argo's JSON Schema for a Workflow, as published and strict (additionalProperties: false)."""
    return [f"schema: {e}" for e in errors(workflow)] + [f"strict schema: {e}" for e in errors(workflow, strict=True)]
