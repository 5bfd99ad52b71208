"""Planning state across partitions: the horizon, the settled buyer value, and hourly capacity levelled globally."""

from __future__ import annotations

import numpy as np

from engine.planning.campaign import load_campaign
from engine.planning.steps import Leveller, horizon_of, value_fill
from engine.schema import PROVIDER_CHANNELS
from tests.helpers import campaign_dict, one_step

START = 1_793_491_200  # 2026-11-01 UTC


def test_horizon_is_the_summed_delays_plus_ten_days():
    cmp = load_campaign(campaign_dict({}))  # delays 0, 1, 2 days
    assert horizon_of(cmp, START) == START + 13 * 86400


def test_value_fill_is_the_median_over_all_partitions_or_one():
    assert value_fill([{"monetary": np.array([1.0, 9.0])}, {"monetary": np.array([4.0])}]) == 4.0
    assert value_fill([{"monetary": np.zeros(0)}]) == 1.0 and value_fill([]) == 1.0


def test_capacity_is_levelled_over_every_partition_confident_then_valuable_then_lower_id_first():
    cmp = load_campaign(one_step(quiet_hours=[], capacity_per_hour={"email": 1}))
    lev = Leveller(cmp, START, ["UTC"])
    email = PROVIDER_CHANNELS.index("email")
    t = START + 10 * 3600

    def part(uids, ev, confident):
        n = len(uids)
        return {email: {"t": np.full(n, t, np.int64), "zone": np.zeros(n, np.int64), "floor": np.full(n, t, np.int64),
                        "uid": np.array(uids, np.int64), "ev": np.array(ev, float),
                        "confident": np.array(confident, bool)}}

    # user 5 is confident; users 1 and 2 are not, 2 has the higher expected value
    out = lev.level([part([1, 5], [0.5, 0.1], [False, True]), part([2], [0.9], [False])])
    hours = {1: out[0][email][0], 5: out[0][email][1], 2: out[1][email][0]}
    assert (hours[5] - t, hours[2] - t, hours[1] - t) == (0, 3600, 7200)  # never before the floor
    # and the next step's messages see the hours already taken
    again = lev.level([part([9], [1.0], [True])])
    assert again[0][email][0] - t == 3 * 3600
