"""The audience rule parser: text to a tree of tuples, and errors with a caret under the position."""

from __future__ import annotations

import pytest

from engine.errors import RuleError
from engine.planning.ruleparse import error_at, parse


def test_precedence_and_positions_of_the_tree():
    assert parse("a or b and c") == ("or", [("col", "a", 0), ("and", [("col", "b", 5), ("col", "c", 11)], [7])], [2])
    assert parse("-x + 2 * y") == (
        "arith", "+", ("neg", ("col", "x", 1), 0), ("arith", "*", ("lit", 2, 5), ("col", "y", 9), 7), 3)
    assert parse("days_inactive >= 14 and not email_suppressed") == (
        "and", [("cmp", ">=", ("col", "days_inactive", 0), ("lit", 14, 17), 14),
                ("not", ("col", "email_suppressed", 28), 24)], [20])


def test_in_lists_null_tests_and_string_escapes():
    assert parse("country in ['FR', 'DE']") == ("in", ("col", "country", 0), [("lit", "FR"), ("lit", "DE")], 8)
    assert parse("p_alive is not null") == ("isnull", ("col", "p_alive", 0), True, 8)
    assert parse("name == 'caf\\u00e9\\n'") == ("cmp", "==", ("col", "name", 0), ("lit", "café\n"), 5)


@pytest.mark.parametrize("text, message, pos", [
    ("x == 'abc", "unexpected character \"'\" (unterminated string?)", 6),
    ("x == '\\q'", "unknown escape '\\\\q' in a string", 7),
    ("days_inactive >= 14 and", "expected a value, column or '(' but found 'the end'", 24),
    ("abs(x) > 1", "unknown function 'abs'", 1),
    ("x == 1 1", "unexpected '1' (missing 'and'/'or'?)", 8),
    ('"\\ud800" == x', "half of a surrogate pair", 2),
])
def test_errors_name_the_position_with_a_caret_under_it(text, message, pos):
    with pytest.raises(RuleError) as err:
        parse(text)
    first, shown, caret = str(err.value).split("\n")
    assert first.startswith("audience rule: ") and message in first and first.endswith(f"at position {pos}:")
    assert shown == "    " + text
    assert caret == "    " + " " * (pos - 1) + "^"


def test_error_at_shows_at_most_sixty_characters_either_side_on_one_line():
    text = "a" * 100 + "\t!" + "b" * 100
    lines = str(error_at(text, 101, "bad")).split("\n")
    assert lines[1] == "    " + "a" * 59 + " !" + "b" * 59  # 60 before (the tab as a space), 60 from it
    assert lines[2].index("^") == 4 + 60
