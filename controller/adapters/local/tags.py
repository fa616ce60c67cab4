"""Argo's `{{...}}` tags for the local executor: find them in a manifest, substitute them at run time.

Place in the flow: step 4 of a pass, inside LocalExecutor. manifest.py checks at submit
that every tag names something the executor can resolve; run.py and step.py
substitute them just before a task runs (one pass, like Argo: a value is never re-expanded).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


def tags(text: str) -> list[str]:
    """The names inside the `{{...}}` tags of a string, trimmed as Argo trims them."""
    return [m.group(1).strip() for m in _TAG.finditer(text)]


class MissingTag(KeyError):
    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.tag = tag


def render(text: str, values: Mapping[str, str]) -> str:
    """Substitute every `{{name}}`; MissingTag for the first name without a value."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1).strip()
        if name not in values:
            raise MissingTag(name)
        return values[name]

    return _TAG.sub(one, text)
