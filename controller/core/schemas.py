"""Published JSON Schemas of the release repo's documents, and the errors users read.

Place in the flow: pins.py and `releasectl validate` turn a document that pydantic refuses into
one line per problem (file, field path, rule) with these schemas. schemas/*.json are generated
from controller/core/models.py (`python -m controller.core.schemas --write schemas`, `make schemas`) and
checked in; tests fail when they drift. Validators are built once per process. Pure.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from controller.core.models import (
    DIGEST,
    DNS_LABEL,
    DURATION,
    EMAIL,
    GATE,
    GIT_SHA,
    SEMVER,
    SHA256_HEX,
    ModelPin,
    ModelStatus,
    PromotionPolicy,
)
from controller.core.yamlio import dump_yaml, load_yaml

SCHEMA_BASE = "https://releasectl.dev/schemas/v1/"
__all__ = [
    "Problem",
    "capped",
    "dump_yaml",
    "load_yaml",
    "printable",
    "quote",
    "schema_files",
    "schema_problems",
    "validator",
]

DOCUMENTS: dict[str, type[ModelPin] | type[PromotionPolicy] | type[ModelStatus]] = {
    "ModelPin": ModelPin,
    "PromotionPolicy": PromotionPolicy,
    "ModelStatus": ModelStatus,
}


def json_schema(kind: str) -> dict[str, Any]:
    model = DOCUMENTS[kind]
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{SCHEMA_BASE}{kind}.json",
        **schema,
    }


def schema_files() -> dict[str, str]:
    """File name -> text of every published schema, as checked in under schemas/."""
    return {f"{kind}.json": json.dumps(json_schema(kind), indent=2, sort_keys=True) + "\n" for kind in DOCUMENTS}


@cache
def validator(kind: str) -> Draft202012Validator:
    schema = json_schema(kind)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


# Bounded output: no input can make a message, a log line or a status body large.
MAX_QUOTED = 80  # characters of a value quoted in a message
MAX_FIELD = 120
MAX_MESSAGE = 400
MAX_PROBLEMS_PER_FILE = 10


def _escaped(char: str) -> str:
    return char.encode("unicode_escape").decode("ascii")


def printable(text: str, limit: int) -> str:
    """`text` with control, invisible and unprintable characters escaped (terminal escapes, bidi
    overrides, zero-width spaces, lone surrogates), cut to `limit` characters."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else _escaped(c) for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quote(value: object, limit: int = MAX_QUOTED) -> str:
    """A value as a message quotes it: repr, cut to about `limit` characters."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[: limit - 2]!r}… ({len(value):,} characters)"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one document: where, what, and which rule says so (bounded, printable)."""

    path: str
    field: str
    message: str
    rule: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", printable(self.path, MAX_FIELD + 80))
        object.__setattr__(self, "field", printable(self.field, MAX_FIELD))
        object.__setattr__(self, "message", printable(self.message, MAX_MESSAGE))
        object.__setattr__(self, "rule", printable(self.rule, 40))

    def line(self) -> str:
        where = f"{self.path}: {self.field}" if self.field else self.path
        return f"{where}: {self.message} [{self.rule}]"


def capped(problems: list[Problem], limit: int = MAX_PROBLEMS_PER_FILE) -> list[Problem]:
    """At most `limit` lines for one file: the first ones, then how many more there are."""
    if len(problems) <= limit:
        return problems
    rest = len(problems) - (limit - 1)
    return [*problems[: limit - 1], Problem(problems[0].path, "", f"… and {rest} more problem(s)", "more")]


# What a pattern means, said the way a person would say it.
PATTERNS = {
    SEMVER: "is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.4.0)",
    DNS_LABEL: "is not a DNS label (lowercase letters, digits and '-', at most 63, no leading or trailing '-')",
    SHA256_HEX: "is not a sha256 digest (64 lowercase hex digits)",
    DIGEST: "is not a digest like sha256:<64 lowercase hex digits>",
    GIT_SHA: "is not a full git commit sha (40 lowercase hex digits)",
    GATE: 'is not a gate like ">= 0.95" (operator >=, <=, >, < or == and a number)',
    DURATION: "is not a duration like 30s, 15m, 1h or 2d",
    EMAIL: "is not a plain ASCII email address (name@domain.tld)",
}


def _field(error: ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    if "propertyNames" in error.schema_path and isinstance(error.instance, str):
        parts.append(error.instance)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [r for r in error.validator_value if r not in error.instance]
        parts += missing[:1]
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(str(k) for k in error.instance if k not in allowed)  # keys may be any YAML scalar
        parts += extra[:1]
    return ".".join(parts)


def _message(error: ValidationError) -> str:
    if error.validator == "required":
        return "is required"
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"is not allowed here (allowed: {allowed})"
    if error.validator == "type" and error.validator_value == "string" and isinstance(error.instance, int | float):
        return f"{quote(error.instance)} was read as a number, not text: quote it in the YAML"
    if error.validator == "pattern":
        meaning = PATTERNS.get(str(error.validator_value), f"does not match {error.validator_value!r}")
        return f"{quote(error.instance)} {meaning}"
    if error.validator == "enum" and "propertyNames" in error.schema_path:
        return f"is not a known name (one of {', '.join(map(str, error.validator_value))})"
    if error.validator == "enum":
        return f"{quote(error.instance)} is not one of {', '.join(map(str, error.validator_value))}"
    if error.validator == "const":
        return f"{quote(error.instance)} must be {error.validator_value!r}"
    if error.validator == "maxLength":
        return f"{quote(error.instance)} is longer than {error.validator_value} characters"
    if error.validator == "type":
        return f"{quote(error.instance)} is not of type {quote(error.validator_value)}"
    return printable(str(error.message), MAX_MESSAGE)


def schema_problems(kind: str, path: str, doc: Any) -> list[Problem]:
    """Every schema violation of `doc`, deepest first, one Problem each."""
    errors: Iterator[ValidationError] = validator(kind).iter_errors(doc)
    problems: list[Problem] = []
    for error in sorted(errors, key=lambda e: (list(map(str, e.absolute_path)), str(e.validator))):
        leaves = _leaves(error)
        for leaf in leaves:
            problems.append(Problem(path, _field(leaf), _message(leaf), str(leaf.validator)))
    return capped(_dedupe(problems))


def _leaves(error: ValidationError) -> list[ValidationError]:
    """anyOf/oneOf errors say little; the branch that got furthest says what is wrong."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        non_null = [e for e in error.context if e.validator != "type" or e.validator_value != "null"]
        pool = non_null or list(error.context)
        deepest = max(len(e.absolute_path) for e in pool)
        return [e for e in pool if len(e.absolute_path) == deepest][:1]
    return [error]


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, str, str]] = set()
    out = []
    for p in problems:
        key = (p.field, p.message, p.rule)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controller.core.schemas", description=__doc__)
    parser.add_argument("--write", metavar="DIR", help="write the schemas into DIR")
    parser.add_argument("--check", metavar="DIR", help="exit 1 if DIR differs from the models")
    args = parser.parse_args(argv)
    files = schema_files()
    if args.write:
        out = Path(args.write)
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (out / name).write_text(text)
        return 0
    if args.check:
        stale = [
            n
            for n, t in files.items()
            if not (Path(args.check) / n).is_file() or (Path(args.check) / n).read_text() != t
        ]
        for name in stale:
            print(
                f"{args.check}/{name}: out of date with controller/core/models.py; run `make schemas`",
                file=sys.stderr,
            )
        return 1 if stale else 0
    sys.stdout.write(json.dumps({n: json.loads(t) for n, t in files.items()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
