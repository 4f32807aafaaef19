"""A small, safe subset of CEL (Common Expression Language) for workload identity pools:
attribute conditions (``assertion.sub.startsWith('repo:org/')``) and attribute mappings
(``google.subject = assertion.sub``).

Supported, and nothing else (anything else is a :class:`CelSyntaxError` when the pool is
created, never at exchange time):

* literals: strings in single or double quotes (``\\\\``, ``\\'``, ``\\"`` escapes),
  ``true``, ``false``, lists ``['a', 'b']``;
* names: ``assertion``, ``attribute``, ``google``, then ``.field`` or ``['field']``;
* ``==``, ``!=``, ``in`` (an item of a list or a key of a map), ``&&``, ``||``, ``!``,
  parentheses, ``+`` (string or list concatenation);
* methods on strings: ``startsWith``, ``endsWith``, ``contains``.

Evaluation never runs Python code: the expression is parsed into a tree of tuples and
walked.  A missing field or a type mismatch is a :class:`CelEvalError` (Google fails the
exchange then, as the emulator does).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["CelError", "CelEvalError", "CelSyntaxError", "Expr", "evaluate", "parse"]

MAX_LENGTH = 4096
MAX_DEPTH = 40
ROOTS = ("assertion", "attribute", "google")
METHODS = ("startsWith", "endsWith", "contains")

Expr = tuple[Any, ...]


class CelError(ValueError):
    """A CEL expression could not be parsed or evaluated."""


class CelSyntaxError(CelError):
    """The expression is not in the supported subset."""


class CelEvalError(CelError):
    """Evaluation failed (a missing field, a type mismatch)."""


_TOKEN = re.compile(r"""
    \s*(?:
      (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<op>==|!=|&&|\|\||[!().,\[\]+])
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    )""", re.VERBOSE)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise CelSyntaxError(f"unsupported syntax at character {pos + 1}: "
                                 f"{text[pos:pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
    return out


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            want = f"{value!r}" if value is not None else "more"
            got = "the end" if tok is None else repr(tok[1])
            raise CelSyntaxError(f"expected {want}, found {got}")
        self.i += 1
        return tok

    def at(self, value: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] != "str" and tok[1] == value

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise CelSyntaxError("expression nested too deeply")

    def expr(self) -> Expr:
        self.nest()
        left = self.and_()
        while self.at("||"):
            self.take()
            left = ("or", left, self.and_())
        self.depth -= 1
        return left

    def and_(self) -> Expr:
        left = self.unary()
        while self.at("&&"):
            self.take()
            left = ("and", left, self.unary())
        return left

    def unary(self) -> Expr:
        if self.at("!"):
            self.take()
            self.nest()
            inner = self.unary()
            self.depth -= 1
            return ("not", inner)
        return self.relation()

    def relation(self) -> Expr:
        left = self.additive()
        for op in ("==", "!=", "in"):
            if self.at(op):
                self.take()
                return (op, left, self.additive())
        return left

    def additive(self) -> Expr:
        left = self.postfix()
        while self.at("+"):
            self.take()
            left = ("+", left, self.postfix())
        return left

    def postfix(self) -> Expr:
        node = self.primary()
        while True:
            if self.at("."):
                self.take()
                kind, name = self.take()
                if kind != "ident":
                    raise CelSyntaxError(f"expected a field or method name, found {name!r}")
                if self.at("("):
                    if name not in METHODS:
                        raise CelSyntaxError(f"unsupported method {name!r} (supported: "
                                             f"{', '.join(METHODS)})")
                    self.take("(")
                    arg = self.expr()
                    self.take(")")
                    node = ("call", name, node, arg)
                else:
                    node = ("get", node, ("lit", name))
            elif self.at("["):
                self.take()
                key = self.expr()
                self.take("]")
                node = ("get", node, key)
            else:
                return node

    def primary(self) -> Expr:
        kind, value = self.take()
        if kind == "str":
            return ("lit", _unquote(value))
        if kind == "ident":
            if value in ("true", "false"):
                return ("lit", value == "true")
            if value in ROOTS:
                return ("root", value)
            raise CelSyntaxError(f"unknown name {value!r} (use assertion, attribute or "
                                 "google)")
        if value == "(":
            inner = self.expr()
            self.take(")")
            return inner
        if value == "[":
            items: list[Expr] = []
            while not self.at("]"):
                items.append(self.expr())
                if not self.at("]"):
                    self.take(",")
            self.take("]")
            return ("list", *items)
        raise CelSyntaxError(f"unexpected {value!r}")


def parse(text: str) -> Expr:
    """Parse ``text``; raise :class:`CelSyntaxError` outside the supported subset."""
    if not isinstance(text, str) or not text.strip():
        raise CelSyntaxError("empty expression")
    if len(text) > MAX_LENGTH:
        raise CelSyntaxError(f"expression longer than {MAX_LENGTH} characters")
    p = _Parser(text)
    tree = p.expr()
    if p.peek() is not None:
        raise CelSyntaxError(f"unexpected {p.peek()[1]!r} after the expression")  # type: ignore[index]
    return tree


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise CelEvalError("a condition must be a boolean")
    return value


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise CelEvalError(f"{what} needs a string")
    return value


def evaluate(tree: Expr, env: Mapping[str, Any]) -> Any:
    """Evaluate a parsed expression with ``env`` (``assertion``, ``attribute``, ``google``)."""
    op = tree[0]
    if op == "lit":
        return tree[1]
    if op == "root":
        return env.get(tree[1], {})
    if op == "list":
        return [evaluate(t, env) for t in tree[1:]]
    if op == "get":
        base, key = evaluate(tree[1], env), evaluate(tree[2], env)
        if not isinstance(base, Mapping) or not isinstance(key, str):
            raise CelEvalError("field access on a value that is not a map")
        if key not in base:
            raise CelEvalError(f"no such key: {key}")
        return base[key]
    if op == "or":
        return _bool(evaluate(tree[1], env)) or _bool(evaluate(tree[2], env))
    if op == "and":
        return _bool(evaluate(tree[1], env)) and _bool(evaluate(tree[2], env))
    if op == "not":
        return not _bool(evaluate(tree[1], env))
    if op in ("==", "!="):
        left, right = evaluate(tree[1], env), evaluate(tree[2], env)
        if type(left) is not type(right):
            raise CelEvalError("no matching overload for comparing different types")
        return (left == right) if op == "==" else (left != right)
    if op == "in":
        item, container = evaluate(tree[1], env), evaluate(tree[2], env)
        if not isinstance(container, (list, Mapping)):
            raise CelEvalError("'in' needs a list or a map")
        return item in container
    if op == "+":
        left, right = evaluate(tree[1], env), evaluate(tree[2], env)
        if isinstance(left, list) and isinstance(right, list):
            return left + right
        return _str(left, "+") + _str(right, "+")
    if op == "call":
        name, target, arg = tree[1], evaluate(tree[2], env), evaluate(tree[3], env)
        target, arg = _str(target, name), _str(arg, name)
        if name == "startsWith":
            return target.startswith(arg)
        if name == "endsWith":
            return target.endswith(arg)
        return arg in target
    raise CelEvalError(f"unknown node {op!r}")  # pragma: no cover - the parser makes none
