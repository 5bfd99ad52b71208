"""The hierarchical send-time prior: kernel posterior equals its per-user twin; the spread is learned."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.scoring import sendtime
from tests import naive


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 3), st.floats(0.5, 4.0), st.floats(0.0, 1.0), st.floats(0.5, 8.0),
       st.data())
def test_kernel_best_hours_match_naive(n_users, n_zones, sigma, rho, k, data):
    """Property: the numba posterior mode and confidence equal the per-user twin (ties: first hour)."""
    hist = np.array(data.draw(st.lists(st.lists(st.sampled_from([0.0, 0.0, 0.5, 1.0, 2.0]), min_size=24,
                                                max_size=24), min_size=n_users, max_size=n_users)), np.float32)
    tz = np.array(data.draw(st.lists(st.integers(0, n_zones - 1), min_size=n_users, max_size=n_users)), np.int64)
    pop = np.array(data.draw(st.lists(st.lists(st.floats(0.01, 1.0), min_size=24, max_size=24),
                                      min_size=n_zones, max_size=n_zones)))
    pop = pop / pop.sum(axis=1, keepdims=True)
    spread = {"rho": rho, "sigma": sigma, "kernel": sendtime._kernel(sigma).tolist()}
    wd = np.zeros((n_users, 7), np.float32)
    pop_w = np.full((n_zones, 7), 1 / 7)
    plain = sendtime.best_times_given(hist, wd, tz, pop, pop_w, k)
    got = sendtime.best_times_given(hist, wd, tz, pop, pop_w, k, spread)
    want = naive.kernel_best_hours(hist, tz, pop, spread["kernel"], rho, k)
    for u, w in enumerate(want):
        if w is None:  # no evidence: the plain Dirichlet answer (the population's best hour)
            assert got["best_hour"][u] == plain["best_hour"][u]
        else:
            assert got["best_hour"][u] == w[0]
            assert got["confidence"][u] == pytest.approx(w[1], rel=1e-5)


def _users(n, pref, sd, on_share, events, seed):
    rng = np.random.default_rng(seed)
    hist = np.zeros((n, 24), np.float32)
    for u in range(n):
        on = rng.random(events) < on_share
        hours = np.where(on, np.round(pref[u] + rng.normal(0, sd, events)), rng.integers(0, 24, events))
        np.add.at(hist[u], hours.astype(int) % 24, 1.0)
    return hist


def test_spread_is_learned_from_rich_users_and_merges_exactly():
    rng = np.random.default_rng(3)
    pref = rng.integers(6, 23, 4000)
    hist = _users(4000, pref, 1.6, 0.7, 20, seed=4)
    whole = sendtime.mode_spread(hist)
    parts = [sendtime.mode_spread(hist[:1500]), sendtime.mode_spread(hist[1500:])]
    np.testing.assert_array_equal(whole, parts[0] + parts[1])
    s = sendtime.fit_spread(parts)
    assert s["sigma"] == pytest.approx(1.6, abs=0.5) and 0.4 < s["rho"] <= 1.0
    assert sendtime.fit_spread([sendtime.mode_spread(hist[:, :] * 0)]) is None


def test_sparse_users_land_between_their_engagements():
    # a user seen at 18:00 and 20:00 in a zone whose population peaks at 10:00
    pop = np.full((1, 24), 0.02)
    pop[0, 10] = 1 - 0.02 * 23
    hist = np.zeros((1, 24), np.float32)
    hist[0, 18] = hist[0, 20] = 1.0
    spread = {"rho": 0.7, "sigma": 1.6, "kernel": sendtime._kernel(1.6).tolist()}
    got = sendtime.best_times_given(hist, np.zeros((1, 7), np.float32), np.zeros(1, np.int64), pop,
                                    np.full((1, 7), 1 / 7), 4.0, spread)
    assert got["best_hour"][0] == 19


def test_prior_improves_hits_for_users_with_few_and_many_engagements():
    rng = np.random.default_rng(8)
    pref = np.clip(np.round(rng.normal(19, 3.5, 6000)), 0, 23).astype(int)
    pop_hist = _users(6000, pref, 1.6, 0.7, 30, seed=9)
    pop = (pop_hist.sum(axis=0) / pop_hist.sum())[None, :]
    spread = sendtime.fit_spread([sendtime.mode_spread(pop_hist)])
    for events, gain in ((4, 0.0), (12, 0.03)):
        hist = _users(6000, pref, 1.6, 0.7, events, seed=10 + events)
        args = (hist, np.zeros((6000, 7), np.float32), np.zeros(6000, np.int64), pop, np.full((1, 7), 1 / 7), 4.0)
        d_old = np.abs(sendtime.best_times_given(*args)["best_hour"] - pref) % 24
        d_new = np.abs(sendtime.best_times_given(*args, spread)["best_hour"] - pref) % 24
        old, new = (np.mean(np.minimum(d, 24 - d) <= 1) for d in (d_old, d_new))
        assert new >= old + gain, (events, old, new)
