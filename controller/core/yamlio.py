"""YAML in and out, safely and fast: libyaml's parser, plain Python values, bounded, nothing else.

Place in the flow: under everything that reads a pin, the policy or a status file (pins.py,
trail.py), and under what the controller writes. `load_yaml` reads the strict subset of YAML that
release files need: block and flow mappings and sequences of plain or quoted scalars (strings,
ints, floats, booleans, nulls, and timestamps), one document, UTF-8. It refuses, with a rule and
the field path, whatever can make a small file mean something large or something else than it
shows: anchors, aliases and merge keys (the "billion laughs"), explicit tags (`!!python/...`),
duplicate keys at any depth (YAML would silently keep the last), complex keys, nesting deeper
than MAX_DEPTH, documents over MAX_DOCUMENT_BYTES, binary (NUL) and non-UTF-8 bytes. What it
accepts it returns with exactly `yaml.safe_load`'s values: the values are built straight from
libyaml's event stream (about twice as fast as PyYAML's node graph, which is what a start-up
scan of thousands of pins is made of); a document with timestamps is scanned in full first and
then handed to the C safe loader. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Parser: Any = getattr(yaml, "CBaseLoader", yaml.BaseLoader)
_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_constructor = yaml.constructor.SafeConstructor()

# A pin is about 1 KB and a status file a few; these bound what any release file may cost.
MAX_DOCUMENT_BYTES = 64 * 1024
MAX_DEPTH = 32

_TYPED = {
    "tag:yaml.org,2002:int": _constructor.construct_yaml_int,
    "tag:yaml.org,2002:float": _constructor.construct_yaml_float,
    "tag:yaml.org,2002:bool": _constructor.construct_yaml_bool,
    "tag:yaml.org,2002:null": _constructor.construct_yaml_null,
}
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_RESOLVERS: dict[str | None, list[tuple[str, re.Pattern[str]]]] = dict(Resolver.yaml_implicit_resolvers)


@dataclass(frozen=True)
class TooLarge:
    """A blob that was not read because it is bigger than MAX_DOCUMENT_BYTES (its size, in bytes)."""

    size: int


class YamlRefused(yaml.YAMLError):
    """Valid YAML, perhaps, but not what a release file may hold: the rule, where, and why."""

    def __init__(self, rule: str, message: str, field: str = "", line: int | None = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.field = field
        self.line = line

    def __str__(self) -> str:
        return self.message


def too_large(size: int) -> YamlRefused:
    return YamlRefused(
        "size", f"is {size:,} bytes; release files are at most {MAX_DOCUMENT_BYTES:,} bytes (refused unread)"
    )


def check_bytes(data: bytes | str | TooLarge) -> bytes | str:
    """What is refused before any parsing: size, NUL bytes, bytes that are not UTF-8."""
    if isinstance(data, TooLarge):
        raise too_large(data.size)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise too_large(len(data))
    if isinstance(data, bytes):
        nul = data.find(b"\0")
        if nul >= 0:
            raise YamlRefused("binary", f"is binary (a NUL byte at offset {nul}), not YAML text")
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise YamlRefused("utf-8", f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line})") from None
    return data


class _Slow(Exception):
    """A timestamp: the C safe loader builds it, once the whole stream has passed every check."""


def _plain(value: str) -> Any:
    for tag, pattern in _RESOLVERS.get(value[:1] if value else "", ()):
        if pattern.match(value):
            construct = _TYPED.get(tag)
            if construct is None:
                if tag == _TIMESTAMP:
                    raise _Slow
                return value  # merge (`<<`) and `=` are only meaningful as keys: refused there
            try:
                return construct(ScalarNode(tag, value))
            except ValueError:  # an int of more digits than Python converts (a hostile file)
                raise YamlRefused("yaml", f"number {_cut(value)} is too long") from None
    return value


def _cut(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _where(stack: list[Any], keys: list[Any]) -> str:
    parts: list[str] = []
    for container, key in zip(stack, keys, strict=True):
        if type(container) is list:
            parts.append(str(len(container)))
        elif key is not _NO_KEY:
            parts.append(str(key))
    return ".".join(parts)


def _refuse(event: Any, stack: list[Any], keys: list[Any], rule: str, message: str) -> YamlRefused:
    line = event.start_mark.line + 1 if event.start_mark is not None else None
    return YamlRefused(rule, f"{message} (line {line})", _where(stack, keys), line)


def _marked(event: Any, stack: list[Any], keys: list[Any]) -> YamlRefused:
    """An anchor, an alias or an explicit tag: what makes a small file mean something else or large."""
    if event.anchor is not None:
        mark = "*" if type(event) is AliasEvent else "&"
        return _refuse(
            event, stack, keys, "yaml-alias", f"{mark}{_cut(event.anchor)[1:-1]}: anchors and aliases are not allowed"
        )
    return _refuse(
        event, stack, keys, "yaml-tag", f"tag {_cut(event.tag, 80)}: explicit tags are not allowed; quote the value"
    )


def _scan(data: bytes | str) -> Any:
    """The document's value, or _Slow after a complete scan found nothing to refuse."""
    parser = _Parser(data)
    slow = False
    try:
        stack: list[Any] = []
        keys: list[Any] = []
        result: Any = None
        documents = 0
        while True:
            event = parser.get_event()
            kind = type(event)

            if kind is ScalarEvent:
                if event.anchor is not None or (event.tag is not None and event.tag != "!"):
                    raise _marked(event, stack, keys)
                try:
                    value: Any = _plain(event.value) if event.implicit[0] else event.value
                except _Slow:
                    slow, value = True, event.value
                except YamlRefused as exc:
                    raise _refuse(event, stack, keys, exc.rule, exc.message) from None
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                if event.anchor is not None or event.tag is not None:
                    raise _marked(event, stack, keys)
                if len(stack) >= MAX_DEPTH:
                    raise _refuse(event, stack, keys, "depth", f"nests deeper than {MAX_DEPTH} levels")
                stack.append({} if kind is MappingStartEvent else [])
                keys.append(_NO_KEY)
                continue
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                value = stack.pop()
                keys.pop()
            elif kind is AliasEvent:
                raise _marked(event, stack, keys)
            elif kind is DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise _refuse(event, stack, keys, "yaml", "holds more than one YAML document (a second ---)")
                continue
            elif kind is StreamStartEvent or kind is DocumentEndEvent:
                continue
            elif kind is StreamEndEvent:
                if slow:
                    raise _Slow
                return result
            else:  # pragma: no cover - libyaml has no other events
                raise _refuse(event, stack, keys, "yaml", f"unexpected {kind.__name__}")
            if not stack:
                result = value
                continue
            top = stack[-1]
            if type(top) is list:
                top.append(value)
            elif keys[-1] is _NO_KEY:
                if type(value) in (dict, list):
                    raise _refuse(event, stack, keys, "yaml-key", "a mapping or sequence as a key is not allowed")
                if value == "<<" and event.implicit[0]:
                    raise _refuse(event, stack, keys, "yaml-alias", "merge keys (<<) are not allowed")
                if value in top:
                    keys[-1] = value  # the field path ends with the repeated key
                    raise _refuse(
                        event, stack, keys, "duplicate-key", "appears twice in one mapping (YAML keeps the last)"
                    )
                keys[-1] = value
            else:
                top[keys[-1]] = value
                keys[-1] = _NO_KEY
    finally:
        parser.dispose()


_NO_KEY = object()


def load_yaml(data: bytes | str | TooLarge) -> Any:
    """One release file -> plain values; YamlRefused (a yaml.YAMLError) for what is not allowed.

    A document it accepts gives exactly `yaml.safe_load(data)`.
    """
    checked = check_bytes(data)
    try:
        return _scan(checked)
    except _Slow:
        return yaml.load(checked, Loader=_SafeLoader)  # noqa: S506 - the safe loader, after a full scan


def dump_yaml(doc: Any) -> str:
    return str(yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True))
