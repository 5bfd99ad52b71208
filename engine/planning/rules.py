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
    atom     := NUMBER | STRING | "true" | "false" | "null" | IDENT | IDENT "(" expr ")" | "(" expr ")"
    list     := "[" (atom ("," atom)*)? "]"

Identifiers are columns of the scores table, or presets (below).  Nothing is
evaluated with Python ``eval``; each node becomes one ``pyarrow.compute`` call over
the whole column.  Null semantics: a comparison with a null value is *false* for the
audience (a user with no ``days_inactive`` is not "inactive for 30 days"), so ``not``
of it is true; test ``x is null`` explicitly when that matters.

Values: whole numbers are exact int64 (a literal outside int64, or arithmetic that
overflows, is an error, never a silent wrap); ``/`` is float division.  Strings are
UTF-8 in single or double quotes with the escapes ``\\\\ \\' \\" \\n \\t \\r \\uXXXX``.
A string compared with a timestamp (or date) column is read as an ISO 8601 instant
(``last_active_at >= '2026-10-01'``, UTC when no offset is given), and so is
``date('2026-10-01T12:00Z')``.

Functions:

- ``days_since(col)``: days (float) from ``col`` (a timestamp or date column) to the
  scores' ``as_of`` (the instant ``days_inactive`` counts to; without it, the as-of the
  caller gives, the campaign start); null where ``col`` is null.
- ``date(text)``: the instant ``text`` (ISO 8601, UTC when no offset).

Presets (usable as bare names), the segments a Mailchimp user knows:

- ``no_email_engagement_last_Nd`` (N = 7, 10, 30, 90 or any whole number of days up to
  3650): no opens or clicks by email in the last N days (never engaged counts), likewise
  ``no_sms_engagement_last_Nd``, ``no_push_engagement_last_Nd`` and
  ``no_engagement_last_Nd`` (no channel);
- ``no_engagement_last_5_emails``, ``no_engagement_last_5_sms``,
  ``no_engagement_last_5_push``: none of the user's last 5 messages on that channel was
  opened or clicked (the scores' ``<channel>_unengaged_streak``);
- ``inactive_7d``, ``inactive_10d``, ``inactive_30d``, ``inactive_90d``: no activity in
  that many days (users never active count as inactive);
- ``purchased``, ``never_purchased``, ``purchased_last_90d``;
- ``reachable_email``, ``reachable_sms``, ``reachable_push``: consent, address, not suppressed;
- ``contact_rating_at_most_N`` (N = 1..5): ``contact_rating <= N`` (Mailchimp's stars).

Limits: a rule is at most :data:`MAX_LENGTH` characters and nests at most
:data:`MAX_DEPTH` levels (parentheses, ``not``, operators).  Every failure, while parsing
or evaluating, is a :class:`~engine.errors.RuleError` naming the position.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.io.meta import SCORE, read_meta
from engine.errors import RuleError
from engine.planning.ruleparse import FUNCTIONS, I64, MAX_DEPTH, error_at, parse

__all__ = ["compile_rule", "Rule", "PRESETS", "FUNCTIONS", "MAX_LENGTH", "MAX_DEPTH"]

#: longest rule text, in characters
MAX_LENGTH = 20_000
_TS = pa.timestamp("us", tz="UTC")

PRESETS: dict[str, str] = {
    "no_engagement_last_5_emails": "email_unengaged_streak >= 5",
    "no_engagement_last_5_sms": "sms_unengaged_streak >= 5",
    "no_engagement_last_5_push": "push_unengaged_streak >= 5",
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
for _n in (7, 10, 30, 90):  # the documented Mailchimp windows; any N works (see _preset)
    for _c in ("email", "sms", "push"):
        PRESETS[f"no_{_c}_engagement_last_{_n}d"] = \
            f"{_c}_last_engaged_at is null or days_since({_c}_last_engaged_at) >= {_n}"
    PRESETS[f"no_engagement_last_{_n}d"] = " and ".join(
        f"({c}_last_engaged_at is null or days_since({c}_last_engaged_at) >= {_n})" for c in ("email", "sms", "push"))


def _as_of_of(table: pa.Table) -> int | None:
    """The scores' ``as_of`` (epoch s) from the ``winback.score`` metadata, or None."""
    value = read_meta(table, SCORE).get("as_of")
    try:
        return _instant(str(value)) if value is not None else None
    except (ValueError, AttributeError, TypeError):
        return None


def _instant(text: str) -> int:
    """Epoch microseconds of an ISO 8601 text (UTC when naive); ValueError when it is not one."""
    t = text.strip()
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    value = dt.datetime.fromisoformat(t)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _is_time(t: pa.DataType) -> bool:
    return pa.types.is_timestamp(t) or pa.types.is_date(t)


class Rule:
    """A compiled audience rule; call it on a table to get a boolean numpy mask.

    Construction parses (a :class:`RuleError` with the position for any bad text);
    calling evaluates, and every failure there is a :class:`RuleError` too.
    """

    def __init__(self, text: str):
        if not isinstance(text, str):
            raise RuleError(f"audience rule must be text, not {type(text).__name__}")
        if len(text) > MAX_LENGTH:
            raise RuleError(f"audience rule is {len(text):,} characters long; at most {MAX_LENGTH:,} are allowed "
                            "(use 'in [...]' for long lists of values, or a column computed upstream)")
        self.text = text.strip()
        try:
            self.ast = parse(self.text) if self.text else ("lit", True)
        except RuleError:
            raise
        except RecursionError:
            raise RuleError(f"audience rule nests too deeply (at most {MAX_DEPTH} levels)") from None

    def __repr__(self) -> str:
        return f"Rule({self.text!r})"

    def columns(self) -> set[str]:
        """The identifiers the rule names (columns or presets)."""
        out: set[str] = set()
        stack = [self.ast]
        while stack:
            node = stack.pop()
            if isinstance(node, list):
                stack.extend(node)
            elif isinstance(node, tuple):
                if node[0] == "col":
                    out.add(node[1])
                elif node[0] != "lit":
                    stack.extend(c for c in node[1:] if isinstance(c, (tuple, list)))
        return out

    def __call__(self, table: pa.Table, as_of: int | None = None) -> np.ndarray:
        """Evaluate over ``table``; returns a numpy bool array (null -> False).

        ``as_of`` (epoch seconds, UTC) is the instant ``days_since`` counts to when the
        table's ``winback.score`` metadata has none."""
        meta = _as_of_of(table)
        ctx = {"as_of_us": meta if meta is not None else (None if as_of is None else int(as_of) * 1_000_000),
               "table": table}
        try:
            result = self._eval(self.ast, ctx, frozenset())
            if isinstance(result, pa.Scalar) or not isinstance(result, (pa.Array, pa.ChunkedArray)):
                value = result.as_py() if isinstance(result, pa.Scalar) else result
                if value is None:
                    value = False
                if not isinstance(value, bool):
                    raise RuleError(f"audience rule {self.text[:80]!r} must be true/false for each user, "
                                    f"not a {type(value).__name__}")
                return np.full(table.num_rows, value)
            if pa.types.is_null(result.type):
                return np.zeros(table.num_rows, bool)
            if not pa.types.is_boolean(result.type):
                raise RuleError(f"audience rule {self.text[:80]!r} gives {result.type} values, not true/false; "
                                "compare it, e.g. 'days_inactive >= 30'")
            return np.asarray(pc.fill_null(result, False).to_numpy(zero_copy_only=False), bool)
        except RuleError:
            raise
        except RecursionError:
            raise RuleError(f"audience rule nests too deeply (at most {MAX_DEPTH} levels)") from None
        except Exception as exc:  # the guarantee: a rule never fails with anything but RuleError
            raise RuleError(f"audience rule {self.text[:80]!r} cannot be evaluated: "
                            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None

    # -- evaluation ----------------------------------------------------------------------------
    def _eval(self, node, ctx: dict, seen: frozenset):
        kind = node[0]
        if kind == "lit":
            v = node[1]
            if isinstance(v, int) and not isinstance(v, bool):
                if not I64[0] <= v <= I64[1]:
                    raise error_at(self.text, node[2], f"the whole number {v} does not fit in 64 bits")
                return pa.scalar(v, pa.int64())
            return pa.scalar(v)
        if kind == "col":
            return self._column(node, ctx, seen)
        if kind in ("and", "or"):
            kids, ops = node[1], node[2]
            fn = pc.and_ if kind == "and" else pc.or_
            acc = None
            for i, child in enumerate(kids):
                v = pc.fill_null(self._bool(self._eval(child, ctx, seen), kind, ops[max(i - 1, 0)]), False)
                acc = v if acc is None else fn(acc, v)
            return acc
        if kind == "not":
            return pc.invert(pc.fill_null(self._bool(self._eval(node[1], ctx, seen), "not", node[2]), False))
        if kind == "isnull":
            v = self._eval(node[1], ctx, seen)
            res = pc.is_null(v) if not isinstance(v, pa.Scalar) else pa.scalar(not v.is_valid)
            return pc.invert(res) if node[2] else res
        if kind == "cmp":
            op, pos = node[1], node[4]
            a, b = self._pair(self._eval(node[2], ctx, seen), self._eval(node[3], ctx, seen), pos)
            fn = {"==": pc.equal, "!=": pc.not_equal, "<": pc.less, "<=": pc.less_equal,
                  ">": pc.greater, ">=": pc.greater_equal}[op]
            try:
                return fn(a, b)
            except (pa.ArrowException, OverflowError, TypeError, ValueError):
                raise error_at(self.text, pos, f"cannot compare {_typename(a)} with {_typename(b)} using {op!r}") from None
        if kind == "in":
            return self._in(node, ctx, seen)
        if kind == "arith":
            op, pos = node[1], node[4]
            a, b = self._eval(node[2], ctx, seen), self._eval(node[3], ctx, seen)
            for v in (a, b):
                if not (pa.types.is_integer(v.type) or pa.types.is_floating(v.type) or pa.types.is_null(v.type)):
                    raise error_at(self.text, pos, f"cannot apply {op!r} to {_typename(a)} and {_typename(b)}")
            fn = {"+": pc.add_checked, "-": pc.subtract_checked, "*": pc.multiply_checked, "/": pc.divide}[op]
            try:
                if op == "/":
                    a, b = pc.cast(a, pa.float64()), pc.cast(b, pa.float64())
                return fn(a, b)
            except pa.ArrowInvalid as exc:
                what = "overflows 64-bit whole numbers" if "overflow" in str(exc).lower() else str(exc).splitlines()[0]
                raise error_at(self.text, pos, f"{op!r} {what}; compare smaller values or divide first "
                             "('/' works in floating point)") from None
            except (pa.ArrowException, OverflowError, TypeError, ValueError):
                raise error_at(self.text, pos, f"cannot apply {op!r} to {_typename(a)} and {_typename(b)}") from None
        if kind == "neg":
            v = self._eval(node[1], ctx, seen)
            if not (pa.types.is_integer(v.type) or pa.types.is_floating(v.type) or pa.types.is_null(v.type)):
                raise error_at(self.text, node[2], f"cannot negate {_typename(v)}")
            try:
                return pc.negate_checked(v)
            except pa.ArrowInvalid:
                raise error_at(self.text, node[2], "negating this value overflows 64-bit whole numbers") from None
            except (pa.ArrowException, OverflowError, TypeError, ValueError):
                raise error_at(self.text, node[2], f"cannot negate {_typename(v)}") from None
        if kind == "call":
            return self._call(node, ctx, seen)
        raise RuleError(f"audience rule: internal node {kind!r}")  # pragma: no cover

    def _column(self, node, ctx: dict, seen: frozenset):
        table = ctx["table"]
        name, pos = node[1], node[2]
        if name in table.column_names:
            return table[name]
        preset = _preset(name)
        if preset is not None and name not in seen:
            sub = Rule(preset)
            try:
                return sub._eval(sub.ast, ctx, seen | {name})
            except RuleError as exc:  # point at the preset's name in the rule the user wrote
                inner = re.sub(r" at position \d+:$", "", str(exc).splitlines()[0]).removeprefix("audience rule: ")
                raise error_at(self.text, pos, f"preset {name} ({preset}): {inner}") from None
        close = difflib.get_close_matches(name, list(table.column_names) + list(PRESETS), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else \
            "; use a column of the scores table or a preset (see docs/campaigns.md)"
        raise error_at(self.text, pos, f"unknown column {name!r}{hint}")

    def _pair(self, a, b, pos):
        """Make a timestamp/date side and a text or date side comparable (both timestamp[us, UTC])."""
        if _is_time(a.type) or _is_time(b.type):
            return self._time(a, pos), self._time(b, pos)
        return a, b

    def _time(self, v, pos):
        """``v`` as timestamp[us, UTC]: text literals parsed as ISO 8601, dates at midnight UTC."""
        t = v.type
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            if not isinstance(v, pa.Scalar):
                raise error_at(self.text, pos, "cannot compare a text column with a timestamp; compare with a "
                             "date literal like '2026-10-01'")
            if not v.is_valid:
                return pa.scalar(None, _TS)
            try:
                return pa.scalar(_instant(v.as_py()), _TS)
            except (ValueError, OverflowError):
                raise error_at(self.text, pos, f"{v.as_py()[:40]!r} is not an ISO 8601 date or instant "
                             "like '2026-10-01' or '2026-10-01T12:00:00Z'") from None
        if pa.types.is_null(t):
            return pa.scalar(None, _TS) if isinstance(v, pa.Scalar) else pc.cast(v, _TS)
        if pa.types.is_date(t):
            return pc.cast(pc.cast(v, pa.timestamp("us")), _TS) if not isinstance(v, pa.Scalar) else \
                pa.scalar(None if not v.is_valid else _instant(v.as_py().isoformat()), _TS)
        if pa.types.is_timestamp(t):
            if t.tz is None:  # naive timestamps are UTC, as everywhere in winback
                v = pc.assume_timezone(pc.cast(v, pa.timestamp("us")), timezone="UTC")
            return pc.cast(v, _TS)
        raise error_at(self.text, pos, f"cannot compare {_typename(v)} with a timestamp")

    def _in(self, node, ctx: dict, seen: frozenset):
        v = self._eval(node[1], ctx, seen)
        values = [item[1] for item in node[2]]
        pos = node[3]
        try:
            if _is_time(v.type):
                v = self._time(v, pos)
                vs = pa.array([self._time(pa.scalar(x), pos).value for x in values], _TS)
            else:
                if any(isinstance(x, int) and not isinstance(x, bool) and not I64[0] <= x <= I64[1] for x in values):
                    raise error_at(self.text, pos, "a list value does not fit in 64 bits")
                vs = pa.array(values)
                if pa.types.is_null(vs.type) or (pa.types.is_integer(vs.type) and pa.types.is_floating(v.type)):
                    vs = vs.cast(v.type)  # an empty list, or whole numbers tested against a float column
            if isinstance(v, pa.Scalar):
                return pa.scalar(bool(v.is_valid and v.as_py() in values)) if not _is_time(v.type) else \
                    pc.is_in(pa.array([v], v.type), value_set=vs)[0]
            return pc.is_in(v, value_set=vs)
        except RuleError:
            raise
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            raise error_at(self.text, pos, f"cannot test {_typename(v)} against the list {str(values)[:60]}") from None

    def _call(self, node, ctx: dict, seen: frozenset):
        name, pos = node[1], node[3]
        arg = self._eval(node[2], ctx, seen)
        if name == "date":
            if not (pa.types.is_string(arg.type) and isinstance(arg, pa.Scalar)):
                raise error_at(self.text, pos, "date() takes a text like date('2026-10-01')")
            return self._time(arg, pos)
        # days_since
        if not (_is_time(arg.type) or pa.types.is_null(arg.type) or
                (pa.types.is_string(arg.type) and isinstance(arg, pa.Scalar))):
            raise error_at(self.text, pos, f"days_since() takes a timestamp or date column, not {_typename(arg)}")
        if ctx["as_of_us"] is None:
            raise error_at(self.text, pos, "days_since() needs an as-of instant: pass the output of "
                         "'winback score' (it records its as_of) or give the rule an as_of")
        t = self._time(arg, pos)
        micros = pc.cast(t, pa.int64())
        try:
            return pc.divide(pc.cast(pc.subtract_checked(pa.scalar(ctx["as_of_us"], pa.int64()), micros),
                                     pa.float64()), 86_400e6)
        except pa.ArrowInvalid:
            raise error_at(self.text, pos, "days_since() of this instant overflows") from None

    def _bool(self, value, word: str, pos: int):
        t = value.type
        if not pa.types.is_boolean(t) and not pa.types.is_null(t):
            raise error_at(self.text, pos, f"'{word}' needs true/false values, got {t}; compare the column, "
                         "e.g. 'purchases > 0'")
        return value


_WINDOW = re.compile(r"no_(?:(email|sms|push)_)?engagement_last_(\d{1,4})d")


def _preset(name: str) -> str | None:
    if name in PRESETS:
        return PRESETS[name]
    m = re.fullmatch(r"contact_rating_at_most_([1-5])", name)
    if m:
        return f"contact_rating <= {m.group(1)}"
    # every owned channel unreachable, or reachable but without an open or click in its last N sends
    m = re.fullmatch(r"unresponsive_owned_([1-9][0-9]?)", name)
    if m:
        return " and ".join(f"(not reachable_{c} or {c}_unengaged_streak >= {m.group(1)})"
                            for c in ("email", "sms", "push"))
    m = _WINDOW.fullmatch(name)
    if m and 1 <= int(m.group(2)) <= 3650:
        chans = [m.group(1)] if m.group(1) else ["email", "sms", "push"]
        return " and ".join(f"({c}_last_engaged_at is null or days_since({c}_last_engaged_at) >= {int(m.group(2))})"
                            for c in chans)
    return None


def _typename(v) -> str:
    return str(v.type)


def compile_rule(text: str, schema: pa.Schema | None = None) -> Rule:
    """Parse ``text``; with ``schema``, check its column names now (RuleError on unknowns)."""
    rule = Rule(text)
    if schema is not None:
        empty = schema.empty_table()
        rule(empty, as_of=0)
    return rule
