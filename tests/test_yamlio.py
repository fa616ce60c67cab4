"""load_yaml is yaml.safe_load, exactly: same values, same errors, on the fast path and off it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controller.core.yamlio import load_yaml

ROOT = Path(__file__).resolve().parent.parent

DOCUMENTS = {
    "pin": (ROOT / "environments/dev/tumor-classifier.yaml").read_text(),
    "scalars": "a: 1\nb: -2\nc: 0x1F\nd: 0o17\ne: 1_000\nf: 3.5\ng: .inf\nh: -.Inf\ni: .nan\nj: 1e3\nk: 6.02e+23\n",
    "yaml11-booleans-and-nulls": "a: yes\nb: No\nc: on\nd: OFF\ne: true\nf: ~\ng: null\nh:\ni: Null\n",
    "quoted-stays-text": "a: '1'\nb: \"true\"\nc: 'null'\nd: \"1.0.0\"\ne: '>= 0.95'\n",
    "block-scalars": "a: |\n  line one\n  line two\nb: >\n  folded\n  text\n",
    "flow": "a: {b: [1, 2, {c: d}], e: []}\nf: [x, 'y', 3.0]\n",
    "nested-sequences": "- - 1\n  - 2\n- a: b\n  c: [d]\n",
    "duplicate-keys-keep-the-last": "a: 1\na: 2\n",
    "numeric-and-bool-keys": "1: one\ntrue: yes\n2.5: x\n",
    "empty": "",
    "comment-only": "# nothing here\n",
    "plain-document": "just text\n",
    "timestamps (slow path)": "a: 2026-11-24\nb: 2026-11-24T10:00:00Z\n",
    "anchors and aliases (slow path)": "a: &x {b: 1}\nc: *x\n",
    "merge key (slow path)": "base: &b {x: 1}\nd:\n  <<: *b\n  y: 2\n",
    "explicit tags (slow path)": "a: !!str 3\nb: !!float 1\n",
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
    ["a: [1, 2\n", "a: b: c\n", "- a\nb: c\n", "a: 1\n---\nb: 2\n", "a: !!python/object:os.system x\n"],
    ids=["unclosed-flow", "nested-colon", "mixed-block", "two-documents", "python-tag"],
)
def test_same_errors_as_safe_load(text: str) -> None:
    with pytest.raises(yaml.YAMLError) as expected:
        yaml.load(text.encode(), Loader=yaml.CSafeLoader)  # safe_load's semantics, libyaml's messages
    with pytest.raises(yaml.YAMLError) as got:
        load_yaml(text.encode())
    assert type(got.value) is type(expected.value)
    assert str(got.value) == str(expected.value)
