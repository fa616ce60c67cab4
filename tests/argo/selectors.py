"""What the Argo double filters with: Kubernetes label selectors and Argo's `fields` parameter.

Place in the flow: test support for tests/argo/double.py (list and the workflow-events stream).
"""

from __future__ import annotations

import copy
from typing import Any


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """Kubernetes equality-based label selectors: `k=v`, `k==v`, `k!=v`, `k`, `!k`, comma = and."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def trim(doc: dict[str, Any], fields: str) -> dict[str, Any]:
    """Argo's `fields` parameter: `a.b,c` keeps only those paths, `-a.b,c` drops them."""
    if not fields:
        return doc
    exclude = fields.startswith("-")
    paths = [p.split(".") for p in fields.removeprefix("-").split(",") if p]
    if exclude:
        out = copy.deepcopy(doc)
        for path in paths:
            node: Any = out
            for key in path[:-1]:
                node = node.get(key) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node.pop(path[-1], None)
        return out
    kept: dict[str, Any] = {}
    for path in paths:
        src: Any = doc
        dst = kept
        for i, key in enumerate(path):
            if not isinstance(src, dict) or key not in src:
                break
            if i == len(path) - 1:
                dst[key] = copy.deepcopy(src[key])
            else:
                src, dst = src[key], dst.setdefault(key, {})
    return kept
