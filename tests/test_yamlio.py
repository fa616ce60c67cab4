"""load_yaml is yaml.safe_load on the subset release files use, and refuses the rest with a rule.

Same values and same errors as safe_load for what it accepts (on the fast path and off it);
anchors, aliases, merge keys, tags, duplicate keys, deep nesting, big, binary and non-UTF-8 files
are refused with the rule, the field path and the line.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controller.core.yamlio import MAX_DOCUMENT_BYTES, TooLarge, YamlRefused, load_yaml

ROOT = Path(__file__).resolve().parent.parent

DOCUMENTS = {
    "pin": (ROOT / "environments/dev/tumor-classifier.yaml").read_text(),
    "scalars": "a: 1\nb: -2\nc: 0x1F\nd: 0o17\ne: 1_000\nf: 3.5\ng: .inf\nh: -.Inf\ni: .nan\nj: 1e3\nk: 6.02e+23\n",
    "yaml11-booleans-and-nulls": "a: yes\nb: No\nc: on\nd: OFF\ne: true\nf: ~\ng: null\nh:\ni: Null\n",
    "quoted-stays-text": "a: '1'\nb: \"true\"\nc: 'null'\nd: \"1.0.0\"\ne: '>= 0.95'\n",
    "block-scalars": "a: |\n  line one\n  line two\nb: >\n  folded\n  text\n",
    "flow": "a: {b: [1, 2, {c: d}], e: []}\nf: [x, 'y', 3.0]\n",
    "nested-sequences": "- - 1\n  - 2\n- a: b\n  c: [d]\n",
    "numeric-and-bool-keys": "1: one\nfalse: yes\n2.5: x\n",
    "empty": "",
    "comment-only": "# nothing here\n",
    "plain-document": "just text\n",
    "timestamps (slow path)": "a: 2026-11-24\nb: 2026-11-24T10:00:00Z\n",
    "quoted merge key is text": "'<<': 1\n",
    "sexagesimal": "a: 1:30\nb: 1:30.5\n",
    "unicode": "name: tümor\nemoji: '✓'\n",
}


@pytest.mark.parametrize("text", list(DOCUMENTS.values()), ids=list(DOCUMENTS))
def test_same_values_as_safe_load(text: str) -> None:
    expected = yaml.safe_load(text)
    got = load_yaml(text.encode())
    assert got == expected
    assert type(got) is type(expected)
    if isinstance(expected, dict):
        assert [type(v) for v in got.values()] == [type(v) for v in expected.values()]


@pytest.mark.parametrize(
    "text",
    ["a: [1, 2\n", "a: b: c\n", "- a\nb: c\n", "a: 1\n- b\n"],
    ids=["unclosed-flow", "nested-colon", "mixed-block", "sequence-after-mapping"],
)
def test_same_errors_as_safe_load(text: str) -> None:
    with pytest.raises(yaml.YAMLError) as expected:
        yaml.load(text.encode(), Loader=yaml.CSafeLoader)  # safe_load's semantics, libyaml's messages
    with pytest.raises(yaml.YAMLError) as got:
        load_yaml(text.encode())
    assert type(got.value) is type(expected.value)
    assert str(got.value) == str(expected.value)


REFUSED = {
    "duplicate top-level key": (b"version: 0.4.0\nversion: 0.5.0\n", "duplicate-key", "version", 2),
    "duplicate deep key": (b"a:\n  b:\n    c: 1\n    c: 2\n", "duplicate-key", "a.b.c", 4),
    "duplicate key in a flow mapping": (b"params: {seed: 1, seed: 2}\n", "duplicate-key", "params.seed", 1),
    "duplicate key in a list item": (b"l:\n- {x: 1}\n- {y: 1, y: 2}\n", "duplicate-key", "l.1.y", 3),
    "duplicate key quoted and plain": (b"a: 1\n'a': 2\n", "duplicate-key", "a", 2),
    "keys Python would merge (1 and true)": (b"1: one\ntrue: yes\n", "duplicate-key", "True", 2),
    "anchor": (b"a: &x {b: 1}\n", "yaml-alias", "a", 1),
    "alias": (b"a: 1\nc: *x\n", "yaml-alias", "c", 2),
    "merge key": (b"d:\n  <<: {x: 1}\n", "yaml-alias", "d", 2),
    "python tag": (b"a: !!python/object/apply:os.system [id]\n", "yaml-tag", "a", 1),
    "str tag": (b"a: !!str 3\n", "yaml-tag", "a", 1),
    "local tag": (b"a: !shell rm\n", "yaml-tag", "a", 1),
    "complex key": (b"? [a, b]\n: 1\n", "yaml-key", "", 1),
    "two documents": (b"a: 1\n---\nb: 2\n", "yaml", "", 2),
    "too deep": (b"[" * 40 + b"]" * 40, "depth", "0." * 31 + "0", 1),
    "a number too long for int()": (b"a: " + b"7" * 5000 + b"\n", "yaml", "a", 1),
    "NUL byte": (b"a: 1\n\0\n", "binary", "", None),
    "latin-1": ("owner: jos\xe9@example.com\n".encode("latin-1"), "utf-8", "", None),
    "UTF-16 with a BOM": ("a: 1\n".encode("utf-16"), "binary", "", None),
    "over the size limit": (b"# " + b"x" * MAX_DOCUMENT_BYTES + b"\n", "size", "", None),
}


@pytest.mark.parametrize(("data", "rule", "field", "line"), list(REFUSED.values()), ids=list(REFUSED))
def test_refused_with_rule_field_and_line(data: bytes, rule: str, field: str, line: int | None) -> None:
    with pytest.raises(YamlRefused) as refused:
        load_yaml(data)
    assert (refused.value.rule, refused.value.field, refused.value.line) == (rule, field, line)
    assert len(str(refused.value)) < 200


def test_billion_laughs_is_refused_at_its_first_anchor_without_expanding() -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    with pytest.raises(YamlRefused) as refused:
        load_yaml(("\n".join(lines) + "\n").encode())
    assert (refused.value.rule, refused.value.field, refused.value.line) == ("yaml-alias", "a0", 1)


def test_a_file_that_was_never_read_is_refused_by_its_size() -> None:
    with pytest.raises(YamlRefused) as refused:
        load_yaml(TooLarge(10**9))
    assert refused.value.rule == "size"
    assert str(refused.value) == "is 1,000,000,000 bytes; release files are at most 65,536 bytes (refused unread)"
