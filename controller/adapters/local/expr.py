"""Small, safe expression languages of Argo that the local executor evaluates (never eval).

Place in the flow: step 4 of a pass, inside LocalExecutor. manifest.py parses a task's
`depends` and a template's `retryStrategy.expression` at submit time; run.py evaluates a
task's `when` once its `{{...}}` tags are substituted (tags.py), just before it would run.

Three dialects share one tokenizer, parser and evaluator:

- ``when`` (Argo evaluates it with govaluate after substitution): ``== != < > <= >=``, ``&& || !``,
  parentheses, numbers, single- or double-quoted strings, ``true``/``false``; any other bare
  word (``Succeeded``, ``abc``) is a string, as in Argo. ``==`` between different types is
  false; ordering needs two numbers or two strings. Other govaluate operators are errors.
- ``depends`` (Argo's enhanced depends logic): ``task`` or ``task.Result`` atoms with ``&& || !``
  and parentheses; a bare ``task`` means ``(task.Succeeded || task.Skipped || task.Daemoned)``.
- ``retry`` (``retryStrategy.expression``, expr-lang in Argo): the variables ``lastRetry.exitCode``,
  ``lastRetry.status``, ``lastRetry.duration``, ``lastRetry.message`` and ``retries`` (all strings,
  as Argo binds them), the functions ``asInt``, ``asFloat``, ``int``, ``float``, ``string``, and
  ``and or not in matches`` besides the operators above and ``[...]`` lists.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

Value = str | float | bool | tuple["Value", ...]
Dialect = Literal["when", "depends", "retry"]

# Results a `depends` atom may name, and those that need features the local executor lacks.
DEPENDS_RESULTS = frozenset({"Succeeded", "Failed", "Errored", "Skipped", "Omitted"})
_DEPENDS_UNSUPPORTED = {
    "Daemoned": "daemon templates are not supported by the local executor",
    "AnySucceeded": "it needs withItems/withParam, which the local executor does not support",
    "AllFailed": "it needs withItems/withParam, which the local executor does not support",
}
RETRY_VARIABLES = frozenset(
    {"lastRetry.exitCode", "lastRetry.status", "lastRetry.duration", "lastRetry.message", "retries"}
)
_RETRY_KEYWORDS = frozenset({"and", "or", "not", "in", "matches"})


class ExprError(ValueError):
    """An expression that does not parse or cannot be evaluated."""


@dataclass(frozen=True)
class _Tok:
    kind: str  # "op" | "str" | "num" | "word"
    text: str
    pos: int


_OPS = ("&&", "||", "==", "!=", "<=", ">=", "<", ">", "!", "(", ")", "[", "]", ",")
_NUM = re.compile(r"\d+(?:\.\d+)?")
_WORD = {
    "when": re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"),
    "retry": re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"),
    "depends": re.compile(r"[A-Za-z0-9_][-A-Za-z0-9_]*(?:\.[A-Za-z]+)?"),
}
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


def _tokenize(text: str, dialect: Dialect) -> list[_Tok]:
    toks: list[_Tok] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "'\"" and dialect != "depends":
            j, out = i + 1, []
            while j < len(text) and text[j] != ch:
                if text[j] == "\\" and j + 1 < len(text):
                    out.append(_ESCAPES.get(text[j + 1], text[j + 1]))
                    j += 2
                    continue
                out.append(text[j])
                j += 1
            if j >= len(text):
                raise ExprError(f"unterminated string starting at position {i}")
            toks.append(_Tok("str", "".join(out), i))
            i = j + 1
            continue
        op = next((o for o in _OPS if text.startswith(o, i)), None)
        if op is not None:
            toks.append(_Tok("op", op, i))
            i += len(op)
            continue
        negative = (
            ch == "-"
            and dialect != "depends"
            and _NUM.match(text, i + 1) is not None
            and (not toks or (toks[-1].kind == "op" and toks[-1].text not in (")", "]")))
        )
        if negative and (m := _NUM.match(text, i + 1)):
            toks.append(_Tok("num", "-" + m.group(), i))
            i = m.end()
            continue
        if dialect != "depends" and (m := _NUM.match(text, i)) and not _WORD[dialect].match(text, m.end()):
            toks.append(_Tok("num", m.group(), i))
            i = m.end()
            continue
        if m := _WORD[dialect].match(text, i):
            toks.append(_Tok("word", m.group(), i))
            i = m.end()
            continue
        hint = " (quote values that are not plain words or numbers)" if dialect == "when" else ""
        raise ExprError(f"unexpected {ch!r} at position {i}{hint}")
    return toks


# ---------------------------------------------------------------- the tree and its evaluation


class Node:
    def eval(self, env: Mapping[str, Value]) -> Value:
        raise NotImplementedError


@dataclass(frozen=True)
class Lit(Node):
    value: Value

    def eval(self, env: Mapping[str, Value]) -> Value:
        return self.value


@dataclass(frozen=True)
class Var(Node):
    name: str

    def eval(self, env: Mapping[str, Value]) -> Value:
        if self.name not in env:
            raise ExprError(f"unknown variable {self.name!r}")
        return env[self.name]


def _bool(v: Value, what: str) -> bool:
    if not isinstance(v, bool):
        raise ExprError(f"{what} needs a boolean, got {v!r}")
    return v


def _same_kind(a: Value, b: Value) -> bool:
    return type(a) is type(b)


def _equal(a: Value, b: Value) -> bool:
    return _same_kind(a, b) and a == b


@dataclass(frozen=True)
class Not(Node):
    arg: Node

    def eval(self, env: Mapping[str, Value]) -> Value:
        return not _bool(self.arg.eval(env), "'!'")


@dataclass(frozen=True)
class Bin(Node):
    op: str
    left: Node
    right: Node

    def eval(self, env: Mapping[str, Value]) -> Value:
        if self.op in ("&&", "||"):
            lv = _bool(self.left.eval(env), repr(self.op))
            if (self.op == "&&" and not lv) or (self.op == "||" and lv):
                return lv
            return _bool(self.right.eval(env), repr(self.op))
        a, b = self.left.eval(env), self.right.eval(env)
        if self.op == "==":
            return _equal(a, b)
        if self.op == "!=":
            return not _equal(a, b)
        if self.op == "matches":
            if not (isinstance(a, str) and isinstance(b, str)):
                raise ExprError("'matches' needs two strings")
            try:
                return re.search(b, a) is not None
            except re.error as exc:
                raise ExprError(f"bad regular expression {b!r}: {exc}") from None
        if isinstance(a, float) and isinstance(b, float):  # noqa: SIM114 - each branch narrows the types
            sign = (a > b) - (a < b)
        elif isinstance(a, str) and isinstance(b, str):
            sign = (a > b) - (a < b)
        else:
            raise ExprError(f"{a!r} {self.op} {b!r}: ordering needs two numbers or two strings")
        return {"<": sign < 0, ">": sign > 0, "<=": sign <= 0, ">=": sign >= 0}[self.op]


@dataclass(frozen=True)
class In(Node):
    item: Node
    options: Node
    negate: bool

    def eval(self, env: Mapping[str, Value]) -> Value:
        v, opts = self.item.eval(env), self.options.eval(env)
        if not isinstance(opts, tuple):
            raise ExprError("'in' needs a list on its right")
        found = any(_equal(v, o) for o in opts)
        return found != self.negate


@dataclass(frozen=True)
class ListOf(Node):
    items: tuple[Node, ...]

    def eval(self, env: Mapping[str, Value]) -> Value:
        return tuple(i.eval(env) for i in self.items)


def _as_number(v: Value, fn: str, integer: bool) -> float:
    if isinstance(v, bool | tuple):
        raise ExprError(f"{fn}() cannot convert {v!r}")
    try:
        return float(int(v)) if integer else float(v)
    except ValueError:
        raise ExprError(f"{fn}() cannot convert {v!r}") from None


def render_value(v: Value) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else repr(v)
    return str(v)


_FUNCS: dict[str, Callable[[Value], Value]] = {
    "asInt": lambda v: _as_number(v, "asInt", True),
    "int": lambda v: _as_number(v, "int", True),
    "asFloat": lambda v: _as_number(v, "asFloat", False),
    "float": lambda v: _as_number(v, "float", False),
    "string": render_value,
}


@dataclass(frozen=True)
class Call(Node):
    fn: str
    arg: Node

    def eval(self, env: Mapping[str, Value]) -> Value:
        return _FUNCS[self.fn](self.arg.eval(env))


# ---------------------------------------------------------------- the parser


class _Parser:
    def __init__(self, text: str, dialect: Dialect) -> None:
        self.text, self.dialect = text, dialect
        self.toks = _tokenize(text, dialect)
        self.i = 0
        self.atoms: set[str] = set()  # depends: the task names it mentions

    def peek(self, offset: int = 0) -> _Tok | None:
        j = self.i + offset
        return self.toks[j] if j < len(self.toks) else None

    def at(self, *texts: str) -> bool:
        t = self.peek()
        if t is None or t.kind not in ("op", "word"):
            return False
        if t.kind == "word" and (self.dialect != "retry" or t.text not in _RETRY_KEYWORDS):
            return False
        return t.text in texts

    def take(self) -> _Tok:
        t = self.peek()
        if t is None:
            raise ExprError("unexpected end of expression")
        self.i += 1
        return t

    def expect(self, text: str) -> None:
        t = self.take()
        if t.text != text or t.kind != "op":
            raise ExprError(f"expected {text!r} at position {t.pos}, found {t.text!r}")

    def parse(self) -> Node:
        if not self.toks:
            raise ExprError("empty expression")
        node = self.or_()
        if (t := self.peek()) is not None:
            raise ExprError(f"unexpected {t.text!r} at position {t.pos}")
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.at("||", "or"):
            self.take()
            node = Bin("||", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.cmp()
        while self.at("&&", "and"):
            self.take()
            node = Bin("&&", node, self.cmp())
        return node

    def cmp(self) -> Node:
        node = self.unary()
        if self.dialect == "depends":
            return node
        if self.at("==", "!=", "<", ">", "<=", ">=", "matches"):
            return Bin(self.take().text, node, self.unary())
        if self.at("in"):
            self.take()
            return In(node, self.unary(), negate=False)
        nxt = self.peek(1)
        if self.at("not") and nxt is not None and nxt.kind == "word" and nxt.text == "in":
            self.i += 2
            return In(node, self.unary(), negate=True)
        return node

    def unary(self) -> Node:
        if self.at("!", "not"):
            self.take()
            return Not(self.unary())
        return self.primary()

    def primary(self) -> Node:
        t = self.take()
        if t.kind == "op" and t.text == "(":
            node = self.or_()
            self.expect(")")
            return node
        if t.kind == "op" and t.text == "[" and self.dialect == "retry":
            items: list[Node] = []
            while not self.at("]"):
                items.append(self.or_())
                if not self.at("]"):
                    self.expect(",")
            self.take()
            return ListOf(tuple(items))
        if t.kind == "str":
            return Lit(t.text)
        if t.kind == "num":
            return Lit(float(t.text))
        if t.kind == "word":
            return self.word(t)
        raise ExprError(f"unexpected {t.text!r} at position {t.pos}")

    def word(self, t: _Tok) -> Node:
        if self.dialect == "depends":
            return self.depends_atom(t)
        if t.text in ("true", "false"):
            return Lit(t.text == "true")
        if self.dialect == "when":
            return Lit(t.text)  # govaluate variables become strings in Argo's `when`
        if t.text in _FUNCS and self.at("("):
            self.take()
            arg = self.or_()
            self.expect(")")
            return Call(t.text, arg)
        if t.text not in RETRY_VARIABLES:
            known = ", ".join(sorted(RETRY_VARIABLES))
            raise ExprError(f"unknown name {t.text!r} (the local executor knows {known})")
        return Var(t.text)

    def depends_atom(self, t: _Tok) -> Node:
        task, _, result = t.text.partition(".")
        self.atoms.add(task)
        if not result:
            return Bin(
                "||",
                Bin("||", Var(f"{task}.Succeeded"), Var(f"{task}.Skipped")),
                Var(f"{task}.Daemoned"),
            )
        if result in _DEPENDS_UNSUPPORTED:
            raise ExprError(f"'{t.text}': .{result} is not supported: {_DEPENDS_UNSUPPORTED[result]}")
        if result not in DEPENDS_RESULTS:
            raise ExprError(f"'{t.text}': unknown task result .{result}")
        return Var(t.text)


def parse(text: str, dialect: Dialect) -> Node:
    """Parse an expression of the given dialect; ExprError says why it does not parse."""
    return _Parser(text, dialect).parse()


def parse_depends(text: str) -> tuple[Node, frozenset[str]]:
    """A `depends` expression and the task names it mentions."""
    p = _Parser(text, "depends")
    return p.parse(), frozenset(p.atoms)


def dependencies_node(names: list[str]) -> Node:
    """The `depends` equivalent of the list form `dependencies: [a, b]`: `a && b`."""
    node: Node | None = None
    for n in names:
        atom = _Parser(n, "depends").parse()
        node = atom if node is None else Bin("&&", node, atom)
    if node is None:
        raise ExprError("empty dependencies")
    return node


def depends_env(phases: Mapping[str, str]) -> dict[str, Value]:
    """The evaluation scope of a `depends` expression from the phases of the tasks it names."""
    results = {"Succeeded": "Succeeded", "Failed": "Failed", "Errored": "Error"}
    results |= {"Skipped": "Skipped", "Omitted": "Omitted"}
    env: dict[str, Value] = {}
    for task, phase in phases.items():
        for result, wanted in results.items():
            env[f"{task}.{result}"] = phase == wanted
        env[f"{task}.Daemoned"] = False
    return env


def evaluate_bool(node: Node, env: Mapping[str, Value], what: str) -> bool:
    value = node.eval(env)
    if not isinstance(value, bool):
        raise ExprError(f"{what} evaluated to {value!r}, not to a boolean")
    return value


def evaluate_when(text: str) -> bool:
    """Evaluate an already substituted `when` expression as Argo's govaluate would."""
    return evaluate_bool(parse(text, "when"), {}, "'when'")
