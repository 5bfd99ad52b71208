"""Send time: DST-exact next_send_at, half-hour zones, Dirichlet smoothing toward the population."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from engine.scoring import sendtime
from engine.planning.timing import OffsetLookup, local_to_utc, next_local_time
from tests import naive

UTC = dt.timezone.utc


def _ts(y, m, d, h=0, mi=0):
    return int(dt.datetime(y, m, d, h, mi, tzinfo=UTC).timestamp())


def test_next_local_hour_across_new_york_spring_forward():
    # given as_of just before the 2026-03-08 spring-forward in New York
    after = _ts(2026, 3, 8, 5)  # 00:00 EST
    nxt = sendtime.next_local_hour(["America/New_York"], after)
    ny = zoneinfo.ZoneInfo("America/New_York")
    # 09:00 local that day is EDT (UTC-4): 13:00 UTC
    assert nxt[0, 9] == _ts(2026, 3, 8, 13)
    # 02:00 does not exist that day: shifted forward to 03:00 EDT = 07:00 UTC
    assert nxt[0, 2] == _ts(2026, 3, 8, 7)
    # every answer is strictly after as_of and reads the right local hour (or the hour after a gap)
    for h in range(24):
        local = dt.datetime.fromtimestamp(int(nxt[0, h]), ny)
        assert nxt[0, h] > after and local.hour in (h, h + 1)


def test_next_local_hour_across_new_york_fall_back_takes_first_occurrence():
    after = _ts(2026, 11, 1, 4)  # 00:00 EDT
    nxt = sendtime.next_local_hour(["America/New_York"], after)
    assert nxt[0, 1] == _ts(2026, 11, 1, 5)  # 01:00 EDT, the first of the two 01:00s


def test_half_and_quarter_hour_zones():
    after = _ts(2026, 11, 1, 0)
    nxt = sendtime.next_local_hour(["Asia/Kolkata", "Asia/Kathmandu", "Australia/Sydney"], after)
    assert nxt[0, 9] == _ts(2026, 11, 1, 3, 30)     # +05:30
    assert nxt[1, 9] == _ts(2026, 11, 1, 3, 15)     # +05:45
    assert nxt[2, 9] == _ts(2026, 11, 1, 22)        # +11:00 (AEDT): 09:00 on Nov 2 local


@given(st.sampled_from(["America/New_York", "Europe/Berlin", "Australia/Sydney", "Asia/Kolkata", "UTC"]),
       st.integers(_ts(2026, 1, 1), _ts(2027, 12, 1)), st.integers(0, 23))
def test_vectorised_local_to_utc_matches_zoneinfo(zone, after, hour):
    """Property: next_local_time equals a zoneinfo loop (fold=0, gaps shifted forward)."""
    table, t0 = sendtime.offset_table([zone], after - 3 * 86400, after + 5 * 86400)
    off = OffsetLookup(table, t0)
    got = next_local_time(off, np.array([0]), np.array([after]), np.array([hour * 60]))[0]
    tz = zoneinfo.ZoneInfo(zone)
    d = dt.datetime.fromtimestamp(after, tz).date()
    want = None
    for k in range(3):
        day = d + dt.timedelta(days=k)
        cand = int(dt.datetime(day.year, day.month, day.day, hour, tzinfo=tz).timestamp())
        if cand >= after:
            want = cand
            break
    assert got == want


def test_local_to_utc_round_trips_ordinary_times():
    table, t0 = sendtime.offset_table(["Europe/Berlin"], _ts(2026, 1, 1), _ts(2026, 12, 31))
    off = OffsetLookup(table, t0)
    t = np.arange(_ts(2026, 1, 2), _ts(2026, 12, 30), 86400 + 3607, dtype=np.int64)
    back = local_to_utc(off, np.zeros(len(t), np.int64), off.local(np.zeros(len(t), np.int64), t))
    assert np.array_equal(back, t)


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
    assert bt["best_hour"].size == 0 and bt["pop_best_hour"].tolist() == [0]


@given(st.sampled_from(["America/New_York", "Australia/Sydney", "Asia/Kathmandu", "Europe/London", "UTC"]),
       st.integers(_ts(2025, 1, 1), _ts(2026, 10, 1)), st.integers(0, 60 * 24))
def test_offset_table_matches_zoneinfo_every_hour(zone, start, hour):
    """Property: the per-hour offset the fused pass looks up equals zoneinfo's offset at that instant."""
    table, t0 = sendtime.offset_table([zone], start, start + 60 * 86400)
    hour = min(hour, table.shape[1] - 1)
    inst = dt.datetime.fromtimestamp(t0 + 3600 * hour, UTC)
    assert table[0, hour] == int(inst.astimezone(zoneinfo.ZoneInfo(zone)).utcoffset().total_seconds())
