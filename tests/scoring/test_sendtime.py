"""Send time: Dirichlet smoothing of the engagement hours toward the timezone population."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from engine.scoring import sendtime
from tests import naive

def test_users_without_evidence_get_their_zone_population_best_hour():
    # given zone 0 whose users engage at 19:00 and a silent user in that zone
    hour = np.zeros((4, 24))
    hour[0, 19] = 10
    hour[1, 19] = 6
    hour[2, 7] = 3
    wd = np.ones((4, 7))
    bt = sendtime.best_times(hour, wd, np.array([0, 0, 1, 0]), 2)
    assert bt["best_hour"][3] == 19
    assert bt["confidence"][3] == 0.0
    assert bt["pop_best_hour"].tolist() == [19, 7]


def test_own_evidence_overrides_the_prior_as_it_grows():
    hour = np.zeros((3, 24))
    hour[0, 20] = 200         # the population habit
    hour[1, 8] = 1            # one event at 08:00: the prior still wins
    hour[2, 8] = 30           # plenty of evidence: the user's own hour wins
    bt = sendtime.best_times(hour, np.ones((3, 7)), np.zeros(3, np.int64), 1, prior_weight=4.0)
    assert bt["best_hour"][1] == 20 and bt["best_hour"][2] == 8
    assert bt["confidence"][2] > bt["confidence"][1]


@given(st.integers(1, 12), st.integers(1, 3), st.floats(0.5, 20), st.data())
def test_best_times_matches_naive(n_users, n_zones, k, data):
    """Property: the one-pass kernel equals the per-user Dirichlet posterior (first maximum on ties)."""
    weights = st.sampled_from([0.0, 0.0, 0.25, 1.0, 2.5, 7.0])
    hour = np.array(data.draw(st.lists(st.lists(weights, min_size=24, max_size=24), min_size=n_users,
                                       max_size=n_users)), np.float32)
    wd = np.array(data.draw(st.lists(st.lists(weights, min_size=7, max_size=7), min_size=n_users,
                                     max_size=n_users)), np.float32)
    tz = np.array(data.draw(st.lists(st.integers(0, n_zones - 1), min_size=n_users, max_size=n_users)), np.int64)
    bt = sendtime.best_times(hour, wd, tz, n_zones, prior_weight=k)
    h, d, c = naive.best_times(hour, wd, tz, n_zones, k)
    assert bt["best_hour"].tolist() == h and bt["best_weekday"].tolist() == d
    np.testing.assert_allclose(bt["confidence"], c, rtol=1e-5, atol=1e-7)


def test_best_times_of_no_users():
    bt = sendtime.best_times(np.zeros((0, 24), np.float32), np.zeros((0, 7), np.float32), np.zeros(0, np.int64), 1)
    assert bt["best_hour"].size == 0 and bt["pop_best_hour"].tolist() == [sendtime.DEFAULT_HOUR]  # no time of day anywhere
