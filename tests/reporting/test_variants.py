"""Variants against each other: differences with Newcombe intervals, a winner call, Thompson shares."""

from __future__ import annotations

import numpy as np
import pytest

from engine.reporting import stats, variants

def flags_of(n, rates_by_arm, arm, seed=0):
    rng = np.random.default_rng(seed)
    re = np.zeros(n, bool)
    for name, p in rates_by_arm.items():
        m = arm == name
        re[m] = rng.random(m.sum()) < p
    z = np.zeros(n, bool)
    return {"reengaged": re, "converted": z, "clicked": z, "unsubscribed": z}


def test_a_large_difference_is_a_clear_winner_and_none_is_not():
    n = 20_000
    arm = np.where(np.arange(n) % 2 == 0, "a", "b").astype(object)
    treat = np.ones(n, bool)
    big = variants.compare_variants(flags_of(n, {"a": 0.10, "b": 0.16}, arm), treat, arm, ["a", "b"])
    assert big["winner"] == "b" and big["vs_first"][0]["ci"][0] > 0
    assert big["suggested_weights"]["b"] > 0.9
    even = flags_of(n, {}, arm)
    even["reengaged"] = (np.arange(n) // 2) % 10 == 0                 # exactly 10 % in both arms
    same = variants.compare_variants(even, treat, arm, ["a", "b"])
    assert same["winner"] is None and same["winner_note"].startswith("no clear winner")


def test_the_difference_is_newcombes_interval_of_the_two_arms():
    n = 4000
    arm = np.where(np.arange(n) < 1000, "a", "b").astype(object)
    f = flags_of(n, {"a": 0.2, "b": 0.25}, arm, seed=1)
    got = variants.compare_variants(f, np.ones(n, bool), arm, ["a", "b"])["vs_first"][0]
    k1, k2 = int(f["reengaged"][arm == "b"].sum()), int(f["reengaged"][arm == "a"].sum())
    d, lo, hi = stats.newcombe_diff(k1, 3000, k2, 1000)
    assert got["difference"] == pytest.approx(d) and got["ci"] == [pytest.approx(lo), pytest.approx(hi)]


def test_thompson_shares_sum_to_one_and_favour_the_better_arm():
    s = variants.thompson_shares(np.array([100, 140, 100]), np.array([1000, 1000, 1000]), seed=1)
    assert s.sum() == pytest.approx(1.0) and s.argmax() == 1 and s.min() >= 0.05 - 1e-12
