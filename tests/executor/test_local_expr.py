"""The local executor's small expression languages: `when`, `depends`, `retryStrategy.expression`.

Place in the flow: tests of step 4 (the executor's safe evaluators; nothing is ever eval'ed).
"""

from __future__ import annotations

import pytest

from controller.adapters.local import expr as ex
from controller.adapters.local import tags as tg


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5 == 5", True),
        ("5 == 5.0", True),
        ("5 == '5'", False),  # different types are never equal (govaluate)
        ("true", True),
        ("false == false", True),
        ("true == 'true'", False),
        ("abc == abc", True),  # bare words are strings, as in Argo
        ("Succeeded != Failed", True),
        ("\"a b\" == 'a b'", True),
        ("0.95 >= 0.9 && 2 < 10", True),
        ("'b' > 'a'", True),
        ("!(1 == 2) || x == y", True),
        ("-1 < 0", True),
        ("(1 == 1) && !(2 == 2)", False),
    ],
)
def test_when(text: str, expected: bool) -> None:
    assert ex.evaluate_when(text) is expected


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("rc-dev == x", "unexpected '-' at position 2 (quote values that are not plain words or numbers)"),
        ("a == ", "unexpected end of expression"),
        ("abc < 1", "'abc' < 1.0: ordering needs two numbers or two strings"),
        ("1 && true", "'&&' needs a boolean, got 1.0"),
        ("'open", "unterminated string starting at position 0"),
        ("abc", "'when' evaluated to 'abc', not to a boolean"),
        ("__import__('os')", "unexpected '(' at position 10"),
    ],
)
def test_when_errors(text: str, error: str) -> None:
    with pytest.raises(ex.ExprError) as caught:
        ex.evaluate_when(text)
    assert str(caught.value) == error


def test_depends_expands_bare_names_and_reads_phases() -> None:
    node, names = ex.parse_depends("(a-1 || b.Failed) && !c.Errored")
    assert names == {"a-1", "b", "c"}
    env = ex.depends_env({"a-1": "Skipped", "b": "Succeeded", "c": "Error"})
    assert ex.evaluate_bool(node, env, "depends") is False
    env = ex.depends_env({"a-1": "Skipped", "b": "Succeeded", "c": "Failed"})
    assert ex.evaluate_bool(node, env, "depends") is True  # a bare name is Succeeded || Skipped || Daemoned
    omitted = ex.depends_env({"a-1": "Omitted", "b": "Omitted", "c": "Failed"})
    assert ex.evaluate_bool(node, omitted, "depends") is False
    both = ex.dependencies_node(["x", "y"])
    assert ex.evaluate_bool(both, ex.depends_env({"x": "Succeeded", "y": "Skipped"}), "d") is True


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "a.Daemoned",
            "'a.Daemoned': .Daemoned is not supported: daemon templates are not supported by the local executor",
        ),
        ("a.Bogus", "'a.Bogus': unknown task result .Bogus"),
        ("a == b", "unexpected '==' at position 2"),
    ],
)
def test_depends_errors(text: str, error: str) -> None:
    with pytest.raises(ex.ExprError) as caught:
        ex.parse_depends(text)
    assert str(caught.value) == error


def test_retry_expression() -> None:
    node = ex.parse(
        "asInt(lastRetry.exitCode) != 2 and lastRetry.status in ['Failed', 'Error'] "
        "and not (lastRetry.message matches 'fatal')",
        "retry",
    )
    scope: dict[str, ex.Value] = {"lastRetry.status": "Failed", "lastRetry.message": "oops"}
    assert ex.evaluate_bool(node, scope | {"lastRetry.exitCode": "1"}, "e") is True
    assert ex.evaluate_bool(node, scope | {"lastRetry.exitCode": "2"}, "e") is False
    assert ex.evaluate_bool(node, scope | {"lastRetry.exitCode": "1", "lastRetry.message": "fatal: x"}, "e") is False
    with pytest.raises(ex.ExprError, match=r"unknown name 'os\.system'"):
        ex.parse("os.system('x')", "retry")


def test_tags_and_render() -> None:
    assert tg.tags("a {{ workflow.name }} {{inputs.parameters.x}}") == ["workflow.name", "inputs.parameters.x"]
    assert tg.render("{{ a }}-{{b}}", {"a": "1", "b": "{{a}}"}) == "1-{{a}}"  # no second pass
    with pytest.raises(tg.MissingTag) as caught:
        tg.render("{{nope}}", {})
    assert caught.value.tag == "nope"
