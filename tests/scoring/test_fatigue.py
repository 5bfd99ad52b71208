"""Fatigue budget and the marketer's labels equal their per-user twins; fixed cases by hand."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from engine.scoring import fatigue
from engine.schema import LIFECYCLE
from tests import naive

counts = st.integers(0, 12)


@given(st.lists(st.tuples(counts, st.tuples(counts, counts, counts), st.tuples(st.booleans(), st.booleans(),
                                                                              st.booleans()), st.booleans()),
                max_size=30), st.one_of(st.integers(0, 5), st.integers(100, 1000)))
def test_fatigue_budget_matches_naive(rows, cap):
    """Property: the vectorised budget equals the per-user rule for any sends, streaks, reach, complaints."""
    sends = np.array([r[0] for r in rows], np.int64)
    streaks = np.array([r[1] for r in rows], np.int64).reshape(-1, 3)
    reach = np.array([r[2] for r in rows], bool).reshape(-1, 3)
    comp = np.array([r[3] for r in rows], bool)
    got = fatigue.fatigue_budget(sends, streaks, reach, comp, cap)
    assert got.tolist() == naive.fatigue_budget(sends, streaks, reach, comp, cap)
    assert ((got >= 0) & (got <= cap)).all()


def test_fatigue_budget_fixed_cases():
    # given: fresh user; two sends this week; quiet on every reachable channel; a complainer
    sends = np.array([0, 2, 0, 0, 0])
    streaks = np.array([[0, 0, 0], [0, 0, 0], [3, 9, 0], [9, 9, 9], [0, 0, 0]])
    reach = np.array([[1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 0, 0]], bool)
    comp = np.array([False, False, False, False, True])
    # when
    got = fatigue.fatigue_budget(sends, streaks, reach, comp, cap=3)
    # then: 3; 3-2; 3-1 (min streak 3 over reachable email/sms); at most 1 after 9 unanswered; 0
    assert got.tolist() == [3, 1, 2, 1, 0]


def test_fatigue_budget_empty():
    assert fatigue.fatigue_budget(np.zeros(0), np.zeros((0, 3)), np.zeros((0, 3), bool), np.zeros(0, bool)).size == 0


floats_or_nan = st.one_of(st.floats(0, 400, allow_nan=False), st.just(float("nan")))


@given(st.lists(st.tuples(floats_or_nan, st.floats(0, 1)), max_size=40))
def test_lifecycle_matches_naive(rows):
    """Property: stages follow the documented days_inactive ladder, with p_alive < 0.5 demoting 'active'."""
    d = np.array([r[0] for r in rows], float)
    p = np.array([r[1] for r in rows], float)
    assert fatigue.lifecycle(d, p).tolist() == naive.lifecycle(d, p)


def test_lifecycle_boundaries_and_names():
    d = np.array([0, 14, 14.01, 30, 31, 90, 91, 180, 181, np.nan])
    stage = fatigue.lifecycle(d, np.ones(len(d)))
    assert fatigue.lifecycle_names(stage).tolist() == [
        "active", "active", "at_risk", "at_risk", "lapsing", "lapsing", "lapsed", "lapsed", "dormant", "dormant"]
    assert fatigue.lifecycle(np.array([3.0]), np.array([0.2])).tolist() == [LIFECYCLE.index("at_risk")]


@given(st.lists(st.tuples(counts, counts, counts), max_size=40))
def test_contact_rating_matches_naive(rows):
    """Property: stars equal the documented rate ladder, 1..5."""
    s, o, c = (np.array([r[i] for r in rows], np.int64) for i in range(3))
    got = fatigue.contact_rating(s, o, c)
    assert got.tolist() == naive.contact_rating(s, o, c)
    assert ((got >= 1) & (got <= 5)).all()


def test_contact_rating_fixed_cases():
    # given: no sends (unknown -> 3), (1 open + 2x1 click) / 4 sends = 0.75, 1 open in 10, nothing after 5, nothing after 2
    got = fatigue.contact_rating(np.array([0, 4, 10, 5, 2]), np.array([0, 1, 1, 0, 0]), np.array([0, 1, 0, 0, 0]))
    assert got.tolist() == [3, 5, 3, 1, 2]


@given(st.lists(floats_or_nan, max_size=40), st.booleans())
def test_quintiles_match_naive(values, higher):
    """Property: quintile = 1 + 5 * (#strictly worse) // #values; ties share; NaN -> 1."""
    v = np.array(values, float)
    assert fatigue.quintiles(v, higher_is_better=higher).tolist() == naive.quintiles(v, higher)


def test_quintiles_of_ten_distinct_values():
    v = np.arange(10.0)
    assert fatigue.quintiles(v).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert fatigue.quintiles(v, higher_is_better=False).tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert fatigue.quintiles(np.zeros(0)).tolist() == []
