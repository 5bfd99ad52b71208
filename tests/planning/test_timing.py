"""Send-time arithmetic: quiet-hour membership, moving instants out of quiet hours, capacity levelling."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from engine.planning import timing as pt
from engine.tz import offset_table
from tests import naive


def _utc(zone: str, *args) -> int:
    return int(dt.datetime(*args, tzinfo=zoneinfo.ZoneInfo(zone)).timestamp())


def test_in_quiet_handles_windows_across_midnight_empty_and_none():
    minutes = np.array([0, 7 * 60 + 59, 8 * 60, 12 * 60, 20 * 60 + 59, 21 * 60, 23 * 60 + 59])
    assert pt.in_quiet(minutes, (21 * 60, 8 * 60)).tolist() == [True, True, False, False, False, True, True]
    assert pt.in_quiet(minutes, (12 * 60, 13 * 60)).tolist() == [False, False, False, True, False, False, False]
    assert not pt.in_quiet(minutes, (9 * 60, 9 * 60)).any()
    assert not pt.in_quiet(minutes, None).any()
    assert pt.in_quiet(minutes, None).shape == minutes.shape


def test_apply_quiet_hours_moves_to_the_windows_end_in_the_users_zone():
    # given: quiet 21:00-08:00 local, users in New York and Berlin
    zones = ["America/New_York", "Europe/Berlin"]
    start = _utc("UTC", 2026, 6, 1)
    table, t0 = offset_table(zones, start - 86400, start + 10 * 86400)
    off = pt.OffsetLookup(table, t0)
    zone = np.array([0, 0, 1, 1], np.int64)
    t = np.array([
        _utc("America/New_York", 2026, 6, 2, 22, 30),  # evening: next morning 08:00
        _utc("America/New_York", 2026, 6, 3, 3, 0),    # small hours: same day 08:00
        _utc("Europe/Berlin", 2026, 6, 2, 12, 0),      # midday: untouched
        _utc("Europe/Berlin", 2026, 6, 2, 21, 0),      # the window's first minute: moved
    ], np.int64)
    # when
    got = pt.apply_quiet_hours(off, zone, t, (21 * 60, 8 * 60))
    # then
    assert got.tolist() == [
        _utc("America/New_York", 2026, 6, 3, 8, 0),
        _utc("America/New_York", 2026, 6, 3, 8, 0),
        t[2],
        _utc("Europe/Berlin", 2026, 6, 3, 8, 0),
    ]


def test_apply_quiet_hours_holds_across_dst_changes_checked_with_zoneinfo():
    # given every minute of the days clocks change in New York, London, Lord Howe (30 min)
    # and Chatham, and quiet windows that end inside the repeated or the skipped hour
    days = {"America/New_York": [(2026, 11, 1), (2027, 3, 14)], "Europe/London": [(2026, 3, 29), (2026, 10, 25)],
            "Australia/Lord_Howe": [(2026, 4, 5)], "Pacific/Chatham": [(2026, 4, 5)]}
    quiets = [(30, 90), (1320, 90), (105, 110), (120, 180), (170, 190), (21 * 60, 8 * 60)]
    for zone, dates in days.items():
        zi = zoneinfo.ZoneInfo(zone)
        for day in dates:
            start = _utc("UTC", *day) - 86400
            off = pt.OffsetLookup(*offset_table([zone], start - 2 * 86400, start + 6 * 86400))
            t = np.arange(start, start + 3 * 86400, 60, dtype=np.int64)
            for qs, qe in quiets:
                # when
                got = pt.apply_quiet_hours(off, np.zeros(len(t), np.int64), t, (qs, qe))
                # then no instant is left (or put) inside the window, as zoneinfo reads the
                # local time, and none moves backwards: the second pass of a repeated hour
                # used to keep its instants, the window's end "already" passed
                local = [dt.datetime.fromtimestamp(int(x), zi) for x in got]
                minute = np.array([x.hour * 60 + x.minute for x in local])
                inside = pt.in_quiet(minute, (qs, qe))
                assert not inside.any(), (zone, (qs, qe), str(local[int(np.argmax(inside))]))
                assert (got >= t).all()


def test_apply_quiet_hours_never_moves_backwards_and_none_is_identity():
    table, t0 = offset_table(["UTC"], 0, 20 * 86400)
    off = pt.OffsetLookup(table, t0)
    t = np.arange(0, 10 * 86400, 600, dtype=np.int64) + 86400
    zone = np.zeros(len(t), np.int64)
    assert pt.apply_quiet_hours(off, zone, t, None).tolist() == t.tolist()
    got = pt.apply_quiet_hours(off, zone, t, (22 * 60, 7 * 60))
    assert (got >= t).all()
    minute = (got % 86400) // 60
    assert not pt.in_quiet(minute, (22 * 60, 7 * 60)).any()
    assert len(got) == len(t)  # never drops an instant


@given(data=st.data())
def test_level_capacity_matches_its_naive_twin(data):
    """The numba levelling kernel and the dict-based reference place every message alike."""
    # given
    n = data.draw(st.integers(0, 40))
    zones = ["UTC", "Europe/Paris", "Asia/Kolkata"]
    t0 = 1_774_569_600  # 2026-03-27 00:00 UTC, before Europe's DST change
    table, tab_t0 = offset_table(zones, t0 - 2 * 86400, t0 + 10 * 86400)
    t = t0 + np.array(data.draw(st.lists(st.integers(0, 4 * 24), min_size=n, max_size=n)), np.int64) * 3600
    lower = t - np.array(data.draw(st.lists(st.integers(-5, 5), min_size=n, max_size=n)), np.int64) * 3600
    zone = np.array(data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)), np.int64)
    order = np.array(data.draw(st.permutations(list(range(n)))), np.int64)
    cap = data.draw(st.integers(1, 4))
    qs, qe = data.draw(st.sampled_from([(0, 0), (21 * 60, 8 * 60), (12 * 60, 13 * 60 + 30)]))
    h_base = t0 // 3600 - 48
    off = pt.OffsetLookup(table, tab_t0)

    def quiet(i, cand):
        minute = (off.local(zone[i:i + 1], np.array([cand]))[0] % 86400) // 60
        return bool(pt.in_quiet(np.array([minute]), (qs, qe))[0])
    # when
    fast = pt.level_capacity(t, order, zone, lower, cap, table, np.int64(tab_t0), qs, qe, 12,
                             np.zeros(24 * 14, np.int64), np.int64(h_base))
    slow = naive.level_capacity(t, order, lower, cap, quiet, 12, {})
    # then
    assert fast.tolist() == slow
    placed = fast[fast >= 0] // 3600
    assert (np.unique(placed, return_counts=True)[1] <= cap).all()


def test_level_capacity_empty_and_single():
    table, tab_t0 = offset_table(["UTC"], 0, 3 * 86400)
    empty = np.zeros(0, np.int64)
    assert pt.level_capacity(empty, empty, empty, empty, 1, table, np.int64(tab_t0), 0, 0, 12,
                             np.zeros(100, np.int64), np.int64(0)).tolist() == []
    one = np.array([86400 + 10 * 3600], np.int64)
    got = pt.level_capacity(one, np.zeros(1, np.int64), np.zeros(1, np.int64), one, 1, table, np.int64(tab_t0),
                            0, 0, 12, np.zeros(100, np.int64), np.int64(0))
    assert got.tolist() == one.tolist()
