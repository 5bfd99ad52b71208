"""engine.stats against published and hand-computed values, plus interval properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given

from tests.strategies import successes_of_trials
from engine.reporting import stats

# Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10 (hybrid score)
NEWCOMBE_TABLE_II = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0000)),
]


@pytest.mark.parametrize("counts, ci", NEWCOMBE_TABLE_II)
def test_newcombe_hybrid_score_matches_the_published_table(counts, ci):
    d, lo, hi = stats.newcombe_diff(*counts)
    k1, n1, k2, n2 = counts
    assert d == pytest.approx(k1 / n1 - k2 / n2)
    assert (lo, hi) == pytest.approx(ci, abs=1e-4)


def test_wilson_matches_hand_computation():
    # Newcombe (1998) Table I: 81/263 -> 0.2553 .. 0.3662
    assert stats.wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    # k = 0: lower 0, upper z^2 / (n + z^2)
    z2 = stats.Z95 ** 2
    assert stats.wilson(0, 10) == pytest.approx((0.0, z2 / (10 + z2)))
    assert stats.wilson(10, 10) == pytest.approx((10 / (10 + z2), 1.0))
    assert all(math.isnan(v) for v in stats.wilson(0, 0))


def test_relative_lift_katz_interval_by_hand():
    # 60/1000 vs 40/1000: RR 1.5, SE(log RR) = sqrt(1/60 - 1/1000 + 1/40 - 1/1000)
    se = math.sqrt(1 / 60 - 1 / 1000 + 1 / 40 - 1 / 1000)
    r, lo, hi = stats.relative_lift(60, 1000, 40, 1000)
    assert r == pytest.approx(0.5)
    assert lo == pytest.approx(1.5 * math.exp(-stats.Z95 * se) - 1)
    assert hi == pytest.approx(1.5 * math.exp(stats.Z95 * se) - 1)
    assert lo == pytest.approx(0.01522, abs=1e-5) and hi == pytest.approx(1.21626, abs=1e-5)


def test_undefined_cases_are_nan_not_errors():
    assert all(math.isnan(v) for v in stats.newcombe_diff(1, 0, 1, 10))
    assert all(math.isnan(v) for v in stats.relative_lift(5, 100, 0, 100))   # holdout rate 0
    assert all(math.isnan(v) for v in stats.relative_lift(0, 100, 5, 100))


counts = successes_of_trials


@given(counts, counts)
def test_intervals_hold_their_point_and_stay_in_range(a, b):
    (k1, n1), (k2, n2) = a, b
    lo1, hi1 = stats.wilson(k1, n1)
    assert 0.0 <= lo1 <= k1 / n1 + 1e-12 and k1 / n1 - 1e-12 <= hi1 <= 1.0
    d, lo, hi = stats.newcombe_diff(k1, n1, k2, n2)
    assert -1.0 - 1e-12 <= lo <= d + 1e-12 and d - 1e-12 <= hi <= 1.0 + 1e-12
    # swapping the arms mirrors the interval
    d2, lo2, hi2 = stats.newcombe_diff(k2, n2, k1, n1)
    assert (d2, lo2, hi2) == pytest.approx((-d, -hi, -lo), abs=1e-12)


def test_verdict_names_the_reason_a_difference_cannot_be_told():
    assert stats.verdict(150, 400, 0.01, 0.05, min_n=200, group="an arm", no_effect="x") == \
        "too small to tell: fewer than 200 users in an arm"
    assert stats.verdict(300, 400, -0.01, 0.05, min_n=200, group="an arm", no_effect="no effect") == "no effect"
    assert stats.verdict(300, 400, 0.01, 0.05, min_n=200, group="an arm", no_effect="no effect") == ""
    assert stats.verdict(300, 400, None, None, min_n=200, group="a group", no_effect="no effect") == ""
    assert stats.verdict(300, 400, float("nan"), float("nan"), min_n=200, group="a group", no_effect="n") == ""
