"""Audience rules: the language, presets, null semantics and errors that point at the position."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import RuleError
from engine.rules import compile_rule
from engine.templates import html_escape, render

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
