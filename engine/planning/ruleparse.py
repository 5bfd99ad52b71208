"""The audience rule language's parser: text -> a tree of tuples (see :mod:`engine.planning.rules`).

Every failure is a :class:`~engine.errors.RuleError` naming the position, with a caret
under it.  Trees: ``("lit", value[, pos])``, ``("col", name, pos)``, ``("and"|"or",
[children], [operator positions])``, ``("not", child, pos)``, ``("cmp", op, a, b, pos)``,
``("in", value, [lits], pos)``, ``("isnull", value, negate, pos)``, ``("arith", op, a, b,
pos)``, ``("neg", child, pos)``, ``("call", name, arg, pos)``.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

import numpy as np

from engine.errors import RuleError

__all__ = ["parse", "error_at", "MAX_DEPTH", "FUNCTIONS", "I64"]

#: deepest nesting of the rule's tree (parentheses, not, operators in one chain)
MAX_DEPTH = 64
#: the range of exact whole numbers
I64 = (-(1 << 63), (1 << 63) - 1)
#: function name -> what it takes
FUNCTIONS = {"days_since": "a timestamp or date column", "date": "an ISO 8601 text like '2026-10-01'"}

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>==|!=|<=|>=|<|>|\+|-|\*|/|\(|\)|\[|\]|,)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
""", re.VERBOSE | re.DOTALL)
_KEYWORDS = {"and", "or", "not", "in", "is", "null", "true", "false"}
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r"}


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int


def error_at(text: str, pos: int, msg: str) -> RuleError:
    """A RuleError for ``msg`` at ``pos`` of ``text``, showing the text with a caret."""
    pos = max(0, min(pos, len(text)))
    # the caret line shows at most 60 characters either side of the position
    lo = max(0, pos - 60)
    shown = text[lo:pos + 60].replace("\n", " ").replace("\t", " ")
    return RuleError(f"audience rule: {msg} at position {pos + 1}:\n    {shown}\n    {' ' * (pos - lo)}^")


def _unescape(text: str, body: str, pos: int) -> str:
    """A quoted string's body with its escapes decoded (UTF-8 text stays as it is)."""
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1] if i + 1 < len(body) else ""
        if nxt in _ESCAPES and nxt:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2:i + 6]):
            code = int(body[i + 2:i + 6], 16)
            if 0xD800 <= code <= 0xDFFF:
                raise error_at(text, pos + 1 + i, f"\\u{code:04x} is half of a surrogate pair, not a character")
            out.append(chr(code))
            i += 6
        else:
            raise error_at(text, pos + 1 + i, f"unknown escape {body[i:i + 2]!r} in a string; "
                         "use \\\\ \\' \\\" \\n \\t \\r or \\uXXXX")
    return "".join(out)


def _tokenize(text: str) -> list[_Tok]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            ch = text[pos]
            hint = " (unterminated string?)" if ch in "'\"" else ""
            raise error_at(text, pos, f"unexpected character {ch!r}{hint}")
        kind = m.lastgroup
        if kind != "ws":
            tok = m.group()
            if kind == "ident" and tok.lower() in _KEYWORDS:
                kind, tok = "kw", tok.lower()
            out.append(_Tok(kind, tok, pos))
        pos = m.end()
    out.append(_Tok("end", "", len(text)))
    return out


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self, ahead: int = 0) -> _Tok:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def is_(self, text: str, kind: str = "kw", ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok.text == text and tok.kind == kind

    def accept(self, text: str) -> bool:
        if self.peek().text == text and self.peek().kind in ("op", "kw"):
            self.i += 1
            return True
        return False

    def expect(self, text: str) -> None:
        if not self.accept(text):
            tok = self.peek()
            raise error_at(self.text, tok.pos, f"expected {text!r} but found {tok.text or 'the end'!r}")

    def enter(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise error_at(self.text, pos, f"the rule nests deeper than {MAX_DEPTH} levels; "
                         "split it or use 'in [...]' instead of long chains")

    def parse(self):
        node = self.or_()
        tok = self.peek()
        if tok.kind != "end":
            raise error_at(self.text, tok.pos, f"unexpected {tok.text!r} (missing 'and'/'or'?)")
        return node

    def _chain(self, word: str, sub):
        """``sub (word sub)*`` as one n-ary node: (word, [children], [operator positions])."""
        first = sub()
        kids, ops = [first], []
        while self.is_(word):
            ops.append(self.take().pos)
            kids.append(sub())
        return first if len(kids) == 1 else (word, kids, ops)

    def or_(self):
        return self._chain("or", self.and_)

    def and_(self):
        return self._chain("and", self.not_)

    def not_(self):
        if self.is_("not") and not self.is_("in", ahead=1):
            pos = self.take().pos
            self.enter(pos)
            node = ("not", self.not_(), pos)
            self.depth -= 1
            return node
        return self.cmp()

    def cmp(self):
        left = self.sum_()
        tok = self.peek()
        if tok.kind == "op" and tok.text in ("==", "!=", "<", "<=", ">", ">="):
            self.take()
            return ("cmp", tok.text, left, self.sum_(), tok.pos)
        if self.accept("in"):
            return ("in", left, self.list_(), tok.pos)
        if self.is_("not") and self.is_("in", ahead=1):
            self.take(), self.take()
            return ("not", ("in", left, self.list_(), tok.pos), tok.pos)
        if self.accept("is"):
            negate = self.accept("not")
            self.expect("null")
            return ("isnull", left, negate, tok.pos)
        return left

    def list_(self):
        self.expect("[")
        items = []
        if not self.accept("]"):
            while True:
                tok = self.peek()
                neg = tok.text == "-" and tok.kind == "op"
                if neg:
                    self.take()
                item = self.atom()
                number = item[0] == "lit" and isinstance(item[1], (int, float)) and not isinstance(item[1], bool)
                if item[0] != "lit" or (neg and not number):
                    raise error_at(self.text, tok.pos, "a list holds literal values only, like [1, 2] or ['a', 'b']")
                items.append(("lit", -item[1]) if neg else item)
                if self.accept("]"):
                    break
                self.expect(",")
        return items

    def _ops(self, ops: tuple[str, ...], sub):
        node = sub()
        n = 0
        while self.peek().text in ops and self.peek().kind == "op":
            op = self.take()
            n += 1
            self.enter(op.pos)  # a chain of n operators is a tree n deep
            node = ("arith", op.text, node, sub(), op.pos)
        self.depth -= n
        return node

    def sum_(self):
        return self._ops(("+", "-"), self.prod)

    def prod(self):
        return self._ops(("*", "/"), self.unary)

    def unary(self):
        if self.peek().text == "-" and self.peek().kind == "op":
            pos = self.take().pos
            if self.peek().kind == "num" and not any(ch in self.peek().text for ch in ".eE"):
                lit = self.atom()  # a negative literal, so -9223372036854775808 is exact
                return ("lit", -lit[1], pos)
            self.enter(pos)
            node = ("neg", self.unary(), pos)
            self.depth -= 1
            return node
        return self.atom()

    def atom(self):
        tok = self.take()
        if tok.kind == "num":
            if any(ch in tok.text for ch in ".eE"):
                value = float(tok.text)
                if not np.isfinite(value):
                    raise error_at(self.text, tok.pos, f"the number {tok.text} is too large")
                return ("lit", value)
            value = int(tok.text)
            if value > I64[1] + 1:  # +1: the literal of -9223372036854775808
                raise error_at(self.text, tok.pos, f"the whole number {tok.text[:30]} does not fit in 64 bits "
                             f"(at most {I64[1]})")
            return ("lit", value, tok.pos)
        if tok.kind == "str":
            return ("lit", _unescape(self.text, tok.text[1:-1], tok.pos))
        if tok.kind == "kw" and tok.text in ("true", "false"):
            return ("lit", tok.text == "true")
        if tok.kind == "kw" and tok.text == "null":
            return ("lit", None)
        if tok.kind == "ident" and self.is_("(", "op"):
            if tok.text not in FUNCTIONS:
                close = difflib.get_close_matches(tok.text, list(FUNCTIONS), n=1)
                raise error_at(self.text, tok.pos, f"unknown function {tok.text!r}"
                             + (f"; did you mean {close[0]}?" if close else f"; functions: {', '.join(FUNCTIONS)}"))
            self.take()
            self.enter(tok.pos)
            arg = self.or_()
            self.depth -= 1
            self.expect(")")
            return ("call", tok.text, arg, tok.pos)
        if tok.kind == "ident":
            return ("col", tok.text, tok.pos)
        if tok.text == "(" and tok.kind == "op":
            self.enter(tok.pos)
            node = self.or_()
            self.depth -= 1
            self.expect(")")
            return node
        raise error_at(self.text, tok.pos, f"expected a value, column or '(' but found {tok.text or 'the end'!r}")



def parse(text: str):
    """The tree of ``text`` (already stripped, not empty)."""
    return _Parser(text).parse()
