"""Audience rules: the language, presets, null semantics and errors that point at the position."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import RuleError
from engine.planning.rules import compile_rule
from engine.planning.templates import html_escape, render

T = pa.table({
    "days_inactive": pa.array([5.0, 40.0, None, 100.0]),
    "lapse_risk": pa.array([0.1, 0.7, 0.9, 0.65]),
    "plan": pa.array(["free", "pro", None, "enterprise"]),
    "purchases": pa.array([0, 2, 0, 1], pa.int32()),
    "email_unengaged_streak": pa.array([0, 6, 5, 1], pa.int16()),
    "email_suppressed": pa.array([False, False, True, False]),
    "contact_rating": pa.array([5, 2, 1, 3], pa.int8()),
    "first_name": pa.array(["Ann", "<Bob & 'Co'>", None, "Zoë"]),
})


@pytest.mark.parametrize("rule,expected", [
    ("lapse_risk >= 0.6 and days_inactive >= 30 and not email_suppressed", [False, True, False, True]),
    ("plan in ['pro', 'enterprise']", [False, True, False, True]),
    ("plan not in ['pro']", [True, False, True, True]),          # null is not in the list
    ("days_inactive is null", [False, False, True, False]),
    ("not days_inactive >= 30", [True, False, True, False]),       # null comparison is false, so not -> true
    ("purchases * 2 + 1 > 2", [False, True, False, True]),
    ("-lapse_risk < -0.5 or contact_rating <= 1", [False, True, True, True]),
    ("inactive_30d and never_purchased", [False, False, True, False]),
    ("no_engagement_last_5_emails", [False, True, True, False]),
    ("(lapse_risk > 0.6) == true", [False, True, True, True]),
    ("", [True, True, True, True]),
])
def test_rules_select_the_expected_users(rule, expected):
    assert compile_rule(rule, T.schema)(T).tolist() == expected


@pytest.mark.parametrize("rule,fragment,pos", [
    ("lapse_rsk > 1", "did you mean lapse_risk", 1),
    ("days_inactive >= ", "expected a value", 17),
    ("plan > 3", "cannot compare string with int64", 6),
    ("(lapse_risk > 1", "expected ')'", 16),
    ("lapse_risk > 1 days_inactive", "unexpected 'days_inactive'", 16),
    ("lapse_risk $ 1", "unexpected character '$'", 12),
])
def test_errors_point_at_the_position(rule, fragment, pos):
    with pytest.raises(RuleError) as err:
        compile_rule(rule, T.schema)(T)
    text = str(err.value)
    assert fragment in text and f"position {pos}" in text
    caret_line = text.splitlines()[-1]
    assert caret_line.index("^") - 4 == pos - 1


def test_non_boolean_rule_is_refused():
    with pytest.raises(RuleError, match="true/false"):
        compile_rule("lapse_risk + 1")(T)


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=30), st.floats(-1e6, 1e6, allow_nan=False))
def test_comparison_equals_numpy(values, threshold):
    """Property: a compiled comparison equals the numpy one, row by row."""
    t = pa.table({"x": pa.array(values)})
    got = compile_rule(f"x >= {threshold!r}")(t)
    assert got.tolist() == (np.array(values) >= threshold).tolist()


def test_templates_escape_html_for_email_only():
    body = render("Hi {{ first_name | default(\"there\") }}!", T, escape=True)
    assert body.to_pylist() == ["Hi Ann!", "Hi &lt;Bob &amp; &#x27;Co&#x27;&gt;!", "Hi there!", "Hi Zoë!"]
    plain = render("Hi {{ first_name }}", T, escape=False)
    assert plain.to_pylist()[1] == "Hi <Bob & 'Co'>"


def test_template_unknown_field_lists_what_exists():
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown field .*first_nam.*available fields: .*first_name"):
        render("{{ first_nam }}", T)


def test_html_escape_escapes_ampersand_first():
    assert html_escape(pa.array(["<&>"])).to_pylist() == ["&lt;&amp;&gt;"]


def test_contact_rating_presets_for_each_star_count():
    # when
    two = compile_rule("contact_rating_at_most_2", T.schema)(T)
    five = compile_rule("contact_rating_at_most_5 and not contact_rating_at_most_1", T.schema)(T)
    # then
    assert two.tolist() == [False, True, True, False]
    assert five.tolist() == [True, True, False, True]
    with pytest.raises(RuleError, match="unknown column 'contact_rating_at_most_9'"):
        compile_rule("contact_rating_at_most_9", T.schema)


# --- property: the compiled rule equals a per-row evaluation with the documented null rules

NUMS = {"a": [1.5, None, -2.0, 0.0, 7.25, None], "b": [3, 0, None, -1, 3, 2]}
FLAGS = {"f": [True, None, False, True, False, None]}
TEXT = {"s": ["x", "y", None, "x", "zz", "y"]}
P = pa.table({**{k: pa.array(v, pa.float64() if k == "a" else pa.int64()) for k, v in NUMS.items()},
              "f": pa.array(FLAGS["f"]), "s": pa.array(TEXT["s"])})


@st.composite
def numeric(draw, depth=0):
    """(text, per-row function) of a numeric expression; None stands for null."""
    if depth > 1 or draw(st.booleans()):
        if draw(st.booleans()):
            name = draw(st.sampled_from(sorted(NUMS)))
            return name, lambda i, name=name: NUMS[name][i]
        k = draw(st.integers(-3, 3))
        return f"({k})", lambda i, k=k: k
    (lt, lf), (rt, rf) = draw(numeric(depth + 1)), draw(numeric(depth + 1))
    op = draw(st.sampled_from(["+", "-", "*"]))
    fn = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y}[op]
    return f"({lt} {op} {rt})", lambda i: None if lf(i) is None or rf(i) is None else fn(lf(i), rf(i))


@st.composite
def boolean(draw, depth=0):
    """(text, per-row function) of a boolean expression; functions return True/False/None."""
    kind = draw(st.sampled_from(["cmp", "in", "null", "flag"] + (["and", "or", "not"] if depth < 3 else [])))
    if kind == "cmp":
        (lt, lf), (rt, rf) = draw(numeric()), draw(numeric())
        op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
        fn = {"==": float.__eq__, "!=": float.__ne__, "<": float.__lt__, "<=": float.__le__,
              ">": float.__gt__, ">=": float.__ge__}[op]
        return f"{lt} {op} {rt}", lambda i: None if lf(i) is None or rf(i) is None else fn(float(lf(i)), float(rf(i)))
    if kind == "in":
        items = draw(st.lists(st.sampled_from(["x", "y", "zz", "w"]), max_size=3))
        neg = draw(st.booleans())
        text = f"s {'not in' if neg else 'in'} [{', '.join(repr(x) for x in items)}]"
        return text, lambda i: (TEXT["s"][i] in items) != neg if TEXT["s"][i] is not None else neg
    if kind == "null":
        name = draw(st.sampled_from(["a", "b", "s", "f"]))
        neg = draw(st.booleans())
        col = {**NUMS, **TEXT, **FLAGS}[name]
        return f"{name} is {'not ' if neg else ''}null", lambda i: (col[i] is None) != neg
    if kind == "flag":
        return "f", lambda i: FLAGS["f"][i]
    if kind == "not":
        t, f = draw(boolean(depth + 1))
        return f"not ({t})", lambda i: not bool(f(i))
    (lt, lf), (rt, rf) = draw(boolean(depth + 1)), draw(boolean(depth + 1))
    if kind == "and":
        return f"({lt}) and ({rt})", lambda i: bool(lf(i)) and bool(rf(i))
    return f"({lt}) or ({rt})", lambda i: bool(lf(i)) or bool(rf(i))


@given(boolean())
def test_compiled_rule_equals_per_row_evaluation(expr):
    """Property: any rule selects exactly the rows a per-row evaluation selects, where a
    comparison with null is false (so 'not' of it is true) and null is never 'in' a list."""
    # given
    text, fn = expr
    # when
    got = compile_rule(text, P.schema)(P).tolist()
    # then
    assert got == [bool(fn(i)) for i in range(P.num_rows)], text


def test_in_with_an_empty_list_or_whole_numbers_on_a_float_column():
    assert compile_rule("plan in []", T.schema)(T).tolist() == [False] * 4
    assert compile_rule("plan not in []", T.schema)(T).tolist() == [True] * 4
    assert compile_rule("days_inactive in [5, 100]", T.schema)(T).tolist() == [True, False, False, True]


def test_a_preset_missing_its_column_points_at_the_preset_name():
    # given: scores without email_suppressed
    t = pa.table({"consent_email": [True], "email": ["a@x"], "days_inactive": [3.0]})
    # when
    with pytest.raises(RuleError) as err:
        compile_rule("days_inactive > 2 and reachable_email", t.schema)
    # then
    text = str(err.value)
    assert "preset reachable_email" in text and "unknown column 'email_suppressed'" in text
    assert "position 23" in text and text.splitlines()[-1].index("^") - 4 == 22


@pytest.mark.parametrize("rule,pos", [("lapse_risk > 0.5 and purchases", 18), ("not purchases", 1),
                                      ("purchases or lapse_risk > 0.5", 11)])
def test_and_or_not_on_numbers_point_at_the_operator(rule, pos):
    with pytest.raises(RuleError) as err:
        compile_rule(rule, T.schema)
    assert "needs true/false values" in str(err.value) and f"position {pos}" in str(err.value)


# --- what marketers say: text, exact numbers, dates, relative days, Mailchimp presets ---------
import datetime as _dt  # noqa: E402
import json as _json  # noqa: E402

_UTC = _dt.timezone.utc
S = pa.table({
    "country": pa.array(["España", "France", "日本", None]),
    "n": pa.array([9223372036854775807, 1, -9223372036854775808, None], pa.int64()),
    "last_active_at": pa.array([_dt.datetime(2026, 10, 31, 23, tzinfo=_UTC), _dt.datetime(2026, 9, 1, tzinfo=_UTC),
                                None, _dt.datetime(2026, 10, 2, tzinfo=_UTC)], pa.timestamp("us", tz="UTC")),
    "signup": pa.array([_dt.date(2026, 1, 1), _dt.date(2025, 1, 1), None, _dt.date(2026, 10, 1)], pa.date32()),
    **{f"{c}_last_engaged_at": pa.array([_dt.datetime(2026, 10, 29, tzinfo=_UTC), _dt.datetime(2026, 9, 15, tzinfo=_UTC),
                                         None, _dt.datetime(2026, 7, 1, tzinfo=_UTC)], pa.timestamp("us", tz="UTC"))
       for c in ("email", "sms", "push")},
    "sms_unengaged_streak": pa.array([0, 5, 7, None], pa.int16()),
}).replace_schema_metadata({b"winback.score": _json.dumps({"as_of": "2026-11-01T00:00:00+00:00"}).encode()})


@pytest.mark.parametrize("rule,expected", [
    ("country == 'España'", [True, False, False, False]),
    ('country in ["日本", "France"]', [False, True, True, False]),
    ("country == 'Espa\\u00f1a'", [True, False, False, False]),
    ("n == 9223372036854775807", [True, False, False, False]),
    ("n == -9223372036854775808", [False, False, True, False]),
    ("n + 0 == 9223372036854775807", [True, False, False, False]),
    ("last_active_at >= '2026-10-01'", [True, False, False, True]),
    ("last_active_at < date('2026-10-31T23:00:00+01:00')", [False, True, False, True]),
    ("signup >= '2026-01-01' and signup < last_active_at", [True, False, False, True]),
    ("days_since(last_active_at) >= 30", [False, True, False, True]),
    ("days_since(last_active_at) < 1", [True, False, False, False]),
    ("no_email_engagement_last_30d", [False, True, True, True]),
    ("no_email_engagement_last_7d", [False, True, True, True]),
    ("no_email_engagement_last_90d", [False, False, True, True]),
    ("no_engagement_last_10d", [False, True, True, True]),
    ("no_sms_engagement_last_60d", [False, False, True, True]),
    ("no_engagement_last_5_sms", [False, True, True, False]),
])
def test_utf8_exact_int64_dates_and_relative_days(rule, expected):
    assert compile_rule(rule, S.schema)(S).tolist() == expected


@pytest.mark.parametrize("rule,fragment", [
    ("n + 1 > 0", "overflows 64-bit"),
    ("n * 2 > 0", "overflows 64-bit"),
    ("-n > 0", "overflow"),
    ("n == 99999999999999999999999", "does not fit in 64 bits"),
    ("country == 'a\\qb'", "unknown escape"),
    ("last_active_at > '2026-13-45'", "not an ISO 8601 date"),
    ("days_since(country) > 1", "takes a timestamp or date column"),
    ("dayz_since(last_active_at) > 1", "did you mean days_since"),
    ("(" * 100 + "n > 0" + ")" * 100, "nests deeper than 64"),
])
def test_overflow_and_bad_literals_are_rule_errors_with_a_position(rule, fragment):
    with pytest.raises(RuleError) as err:
        compile_rule(rule, S.schema)(S)
    assert fragment in str(err.value) and "position" in str(err.value)


def test_days_since_counts_to_the_given_as_of_when_the_table_has_none():
    # given: a table without the scores' metadata
    t = S.replace_schema_metadata(None)
    rule = compile_rule("days_since(last_active_at) >= 30")
    # then
    with pytest.raises(RuleError, match="needs an as-of"):
        rule(t)
    as_of = int(_dt.datetime(2026, 12, 1, tzinfo=_UTC).timestamp())
    assert rule(t, as_of=as_of).tolist() == [True, True, False, True]
