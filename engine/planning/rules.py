"""Audience rules: a small, safe expression language compiled to vectorised Arrow compute.

Grammar (lowest to highest precedence)::

    expr     := or
    or       := and ("or" and)*
    and      := not ("and" not)*
    not      := "not" not | cmp
    cmp      := sum (("==" | "!=" | "<" | "<=" | ">" | ">=") sum
                 | "in" list | "not" "in" list | "is" "null" | "is" "not" "null")?
    sum      := prod (("+" | "-") prod)*
    prod     := unary (("*" | "/") unary)*
    unary    := "-" unary | atom
    atom     := NUMBER | STRING | "true" | "false" | "null" | IDENT | "(" expr ")"
    list     := "[" (atom ("," atom)*)? "]"

Identifiers are columns of the scores table, or presets (below).  Nothing is
evaluated with Python ``eval``; each node becomes one ``pyarrow.compute`` call over
the whole column.  Null semantics: a comparison with a null value is *false* for the
audience (a user with no ``days_inactive`` is not "inactive for 30 days"), so ``not``
of it is true; test ``x is null`` explicitly when that matters.

Presets (usable as bare names):

- ``no_engagement_last_5_emails``: the user's last 5 or more emails went unopened;
- ``inactive_7d``, ``inactive_10d``, ``inactive_30d``, ``inactive_90d``: no activity in
  that many days (users never active count as inactive);
- ``purchased``, ``never_purchased``, ``purchased_last_90d``;
- ``reachable_email``, ``reachable_sms``, ``reachable_push``: consent, address, not suppressed;
- ``contact_rating_at_most_N`` (N = 1..5): ``contact_rating <= N`` (Mailchimp's stars).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import RuleError

__all__ = ["compile_rule", "Rule", "PRESETS"]

PRESETS: dict[str, str] = {
    "no_engagement_last_5_emails": "email_unengaged_streak >= 5",
    "inactive_7d": "days_inactive >= 7 or days_inactive is null",
    "inactive_10d": "days_inactive >= 10 or days_inactive is null",
    "inactive_30d": "days_inactive >= 30 or days_inactive is null",
    "inactive_90d": "days_inactive >= 90 or days_inactive is null",
    "purchased": "purchases > 0",
    "never_purchased": "purchases == 0 or purchases is null",
    "purchased_last_90d": "days_since_purchase <= 90",
    "reachable_email": "consent_email and email is not null and not email_suppressed",
    "reachable_sms": "consent_sms and phone is not null and not sms_suppressed",
    "reachable_push": "consent_push and push_token is not null and not push_suppressed",
    # the ads channel's audience: who the owned channels no longer reach or move
    "reachable_ads": "consent_ads and (email is not null or phone is not null)",
    "unreachable_owned": "not reachable_email and not reachable_sms and not reachable_push",
}

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>==|!=|<=|>=|<|>|\+|-|\*|/|\(|\)|\[|\]|,)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
""", re.VERBOSE)
_KEYWORDS = {"and", "or", "not", "in", "is", "null", "true", "false"}


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise _error(text, pos, f"unexpected character {text[pos]!r}")
        kind = m.lastgroup
        if kind != "ws":
            tok = m.group()
            if kind == "ident" and tok.lower() in _KEYWORDS:
                kind, tok = "kw", tok.lower()
            out.append(_Tok(kind, tok, pos))
        pos = m.end()
    out.append(_Tok("end", "", len(text)))
    return out


def _error(text: str, pos: int, msg: str) -> RuleError:
    return RuleError(f"audience rule: {msg} at position {pos + 1}:\n    {text}\n    {' ' * pos}^")


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def accept(self, text: str) -> bool:
        if self.peek().text == text and self.peek().kind in ("op", "kw"):
            self.i += 1
            return True
        return False

    def expect(self, text: str) -> None:
        if not self.accept(text):
            tok = self.peek()
            raise _error(self.text, tok.pos, f"expected {text!r} but found {tok.text or 'the end'!r}")

    def parse(self):
        node = self.or_()
        tok = self.peek()
        if tok.kind != "end":
            raise _error(self.text, tok.pos, f"unexpected {tok.text!r} (missing 'and'/'or'?)")
        return node

    def or_(self):
        node = self.and_()
        while self.peek().text == "or" and self.peek().kind == "kw":
            pos = self.take().pos
            node = ("or", node, self.and_(), pos)
        return node

    def and_(self):
        node = self.not_()
        while self.peek().text == "and" and self.peek().kind == "kw":
            pos = self.take().pos
            node = ("and", node, self.not_(), pos)
        return node

    def not_(self):
        if self.peek().text == "not" and self.toks[self.i + 1].text != "in":
            pos = self.take().pos
            return ("not", self.not_(), pos)
        return self.cmp()

    def cmp(self):
        left = self.sum_()
        tok = self.peek()
        if tok.kind == "op" and tok.text in ("==", "!=", "<", "<=", ">", ">="):
            self.take()
            return ("cmp", tok.text, left, self.sum_(), tok.pos)
        if self.accept("in"):
            return ("in", left, self.list_(), tok.pos)
        if tok.text == "not" and self.toks[self.i + 1].text == "in":
            self.take(), self.take()
            return ("not", ("in", left, self.list_(), tok.pos))
        if self.accept("is"):
            negate = self.accept("not")
            self.expect("null")
            return ("isnull", left, negate)
        return left

    def list_(self):
        self.expect("[")
        items = []
        if not self.accept("]"):
            while True:
                items.append(self.atom())
                if self.accept("]"):
                    break
                self.expect(",")
        return items

    def sum_(self):
        node = self.prod()
        while self.peek().text in ("+", "-") and self.peek().kind == "op":
            op = self.take()
            node = ("arith", op.text, node, self.prod(), op.pos)
        return node

    def prod(self):
        node = self.unary()
        while self.peek().text in ("*", "/") and self.peek().kind == "op":
            op = self.take()
            node = ("arith", op.text, node, self.unary(), op.pos)
        return node

    def unary(self):
        if self.peek().text == "-" and self.peek().kind == "op":
            pos = self.take().pos
            return ("neg", self.unary(), pos)
        return self.atom()

    def atom(self):
        tok = self.take()
        if tok.kind == "num":
            return ("lit", float(tok.text) if any(ch in tok.text for ch in ".eE") else int(tok.text))
        if tok.kind == "str":
            return ("lit", bytes(tok.text[1:-1], "utf-8").decode("unicode_escape"))
        if tok.kind == "kw" and tok.text in ("true", "false"):
            return ("lit", tok.text == "true")
        if tok.kind == "kw" and tok.text == "null":
            return ("lit", None)
        if tok.kind == "ident":
            return ("col", tok.text, tok.pos)
        if tok.text == "(":
            node = self.or_()
            self.expect(")")
            return node
        raise _error(self.text, tok.pos, f"expected a value, column or '(' but found {tok.text or 'the end'!r}")


class Rule:
    """A compiled audience rule; call it on a table to get a boolean numpy mask."""

    def __init__(self, text: str):
        self.text = text.strip()
        self.ast = _Parser(self.text).parse() if self.text else ("lit", True)

    def __repr__(self) -> str:
        return f"Rule({self.text!r})"

    def columns(self) -> set[str]:
        out: set[str] = set()

        def walk(node):
            if isinstance(node, tuple):
                if node[0] == "col":
                    out.add(node[1])
                for child in node[1:]:
                    if isinstance(child, (tuple, list)):
                        walk(child) if isinstance(child, tuple) else [walk(c) for c in child]
        walk(self.ast)
        return out

    def __call__(self, table: pa.Table):
        """Evaluate over ``table``; returns a numpy bool array (null -> False)."""
        import numpy as np

        result = self._eval(self.ast, table, set())
        if isinstance(result, pa.Scalar) or not isinstance(result, (pa.Array, pa.ChunkedArray)):
            value = result.as_py() if isinstance(result, pa.Scalar) else result
            if not isinstance(value, bool):
                raise RuleError(f"audience rule {self.text!r} must be true/false for each user, not a {type(value).__name__}")
            return np.full(table.num_rows, value)
        if not pa.types.is_boolean(result.type):
            raise RuleError(f"audience rule {self.text!r} gives {result.type} values, not true/false; "
                            "compare it, e.g. 'days_inactive >= 30'")
        return result.fill_null(False).to_numpy(zero_copy_only=False)

    def _eval(self, node, table: pa.Table, seen: set):
        kind = node[0]
        if kind == "lit":
            return pa.scalar(node[1])
        if kind == "col":
            name, pos = node[1], node[2]
            if name in table.column_names:
                return table[name]
            preset = _preset(name)
            if preset is not None and name not in seen:
                sub = Rule(preset)
                try:
                    return sub._eval(sub.ast, table, seen | {name})
                except RuleError as exc:  # point at the preset's name in the rule the user wrote
                    inner = re.sub(r" at position \d+:$", "", str(exc).splitlines()[0]).removeprefix("audience rule: ")
                    raise _error(self.text, pos, f"preset {name} ({preset}): {inner}") from None
            close = difflib.get_close_matches(name, list(table.column_names) + list(PRESETS), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else \
                "; use a column of the scores table or a preset (see docs/campaigns.md)"
            raise _error(self.text, pos, f"unknown column {name!r}{hint}")
        if kind in ("and", "or"):
            a = self._bool(self._eval(node[1], table, seen), node)
            b = self._bool(self._eval(node[2], table, seen), node)
            a, b = pc.fill_null(a, False), pc.fill_null(b, False)
            return pc.and_(a, b) if kind == "and" else pc.or_(a, b)
        if kind == "not":
            return pc.invert(pc.fill_null(self._bool(self._eval(node[1], table, seen), node), False))
        if kind == "isnull":
            v = self._eval(node[1], table, seen)
            res = pc.is_null(v) if not isinstance(v, pa.Scalar) else pa.scalar(not v.is_valid)
            return pc.invert(res) if node[2] else res
        if kind == "cmp":
            op, pos = node[1], node[4]
            a, b = self._eval(node[2], table, seen), self._eval(node[3], table, seen)
            fn = {"==": pc.equal, "!=": pc.not_equal, "<": pc.less, "<=": pc.less_equal,
                  ">": pc.greater, ">=": pc.greater_equal}[op]
            try:
                return fn(a, b)
            except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
                raise _error(self.text, pos, f"cannot compare {_typename(a)} with {_typename(b)} using {op!r}") from None
        if kind == "in":
            v = self._eval(node[1], table, seen)
            values = [item[1] for item in node[2]]
            try:
                vs = pa.array(values)
                if pa.types.is_null(vs.type) or (pa.types.is_integer(vs.type) and pa.types.is_floating(v.type)):
                    vs = vs.cast(v.type)  # an empty list, or whole numbers tested against a float column
                return pc.is_in(v, value_set=vs)
            except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
                raise _error(self.text, node[3], f"cannot test {_typename(v)} against the list {values}") from None
        if kind == "arith":
            op, pos = node[1], node[4]
            a, b = self._eval(node[2], table, seen), self._eval(node[3], table, seen)
            fn = {"+": pc.add, "-": pc.subtract, "*": pc.multiply, "/": pc.divide}[op]
            try:
                if op == "/":
                    a = pc.cast(a, pa.float64())
                return fn(a, b)
            except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
                raise _error(self.text, pos, f"cannot apply {op!r} to {_typename(a)} and {_typename(b)}") from None
        if kind == "neg":
            v = self._eval(node[1], table, seen)
            try:
                return pc.negate(v)
            except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
                raise _error(self.text, node[2], f"cannot negate {_typename(v)}") from None
        raise RuleError(f"audience rule: internal node {kind!r}")  # pragma: no cover

    def _bool(self, value, node):
        t = value.type
        if not pa.types.is_boolean(t) and not pa.types.is_null(t):
            msg = f"'{node[0]}' needs true/false values, got {t}; compare the column, e.g. 'purchases > 0',"
            if len(node) > 2 and isinstance(node[-1], int):
                raise _error(self.text, node[-1], msg.rstrip(","))
            raise RuleError(f"audience rule {self.text!r}: {msg.rstrip(',')}")
        return value


def _preset(name: str) -> str | None:
    if name in PRESETS:
        return PRESETS[name]
    m = re.fullmatch(r"contact_rating_at_most_([1-5])", name)
    if m:
        return f"contact_rating <= {m.group(1)}"
    # every owned channel unreachable, or reachable but without an open or click in its last N sends
    m = re.fullmatch(r"unresponsive_owned_([1-9][0-9]?)", name)
    return " and ".join(f"(not reachable_{c} or {c}_unengaged_streak >= {m.group(1)})"
                        for c in ("email", "sms", "push")) if m else None


def _typename(v) -> str:
    return str(v.type)


def compile_rule(text: str, schema: pa.Schema | None = None) -> Rule:
    """Parse ``text``; with ``schema``, check its column names now (RuleError on unknowns)."""
    rule = Rule(text)
    if schema is not None:
        empty = schema.empty_table()
        rule(empty)
    return rule
