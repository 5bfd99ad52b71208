"""engine.tz: exact local time (transitions, the 15-minute offset table, local <-> UTC),
next local hours, timezone checks; one implementation for generator, scoring and planning."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import ConfigError
from engine.synth.generator import DEFAULT_AS_OF, TIMEZONES
from engine.tz import (OFFSET_STEP, Offsets, OffsetLookup, check_timezone, is_timezone, local_instants, local_to_utc,
                       next_local_hour, next_local_time, offset_table, parse_as_of)

UTC = dt.timezone.utc


def _ts(y, m, d, h=0, mi=0):
    return int(dt.datetime(y, m, d, h, mi, tzinfo=UTC).timestamp())


def test_next_local_hour_across_new_york_spring_forward():
    # given as_of just before the 2026-03-08 spring-forward in New York
    after = _ts(2026, 3, 8, 5)  # 00:00 EST
    nxt = next_local_hour(["America/New_York"], after)
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
    nxt = next_local_hour(["America/New_York"], after)
    assert nxt[0, 1] == _ts(2026, 11, 1, 5)  # 01:00 EDT, the first of the two 01:00s


def test_half_and_quarter_hour_zones():
    after = _ts(2026, 11, 1, 0)
    nxt = next_local_hour(["Asia/Kolkata", "Asia/Kathmandu", "Australia/Sydney"], after)
    assert nxt[0, 9] == _ts(2026, 11, 1, 3, 30)     # +05:30
    assert nxt[1, 9] == _ts(2026, 11, 1, 3, 15)     # +05:45
    assert nxt[2, 9] == _ts(2026, 11, 1, 22)        # +11:00 (AEDT): 09:00 on Nov 2 local


@given(st.sampled_from(["America/New_York", "Europe/Berlin", "Australia/Sydney", "Asia/Kolkata", "UTC"]),
       st.integers(_ts(2026, 1, 1), _ts(2027, 12, 1)), st.integers(0, 23))
def test_vectorised_local_to_utc_matches_zoneinfo(zone, after, hour):
    """Property: next_local_time equals a zoneinfo loop (fold=0, gaps shifted forward)."""
    table, t0 = offset_table([zone], after - 3 * 86400, after + 5 * 86400)
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
    table, t0 = offset_table(["Europe/Berlin"], _ts(2026, 1, 1), _ts(2026, 12, 31))
    off = OffsetLookup(table, t0)
    t = np.arange(_ts(2026, 1, 2), _ts(2026, 12, 30), 86400 + 3607, dtype=np.int64)
    back = local_to_utc(off, np.zeros(len(t), np.int64), off.local(np.zeros(len(t), np.int64), t))
    assert np.array_equal(back, t)




@given(st.sampled_from(["America/New_York", "Australia/Sydney", "Asia/Kathmandu", "Europe/London", "UTC",
                        "Australia/Lord_Howe", "Pacific/Chatham", "America/St_Johns"]),
       st.integers(_ts(2025, 1, 1), _ts(2026, 10, 1)), st.integers(0, 60 * 96))
def test_offset_table_matches_zoneinfo_every_slot(zone, start, slot):
    """Property: the 15-minute offset the kernels look up equals zoneinfo's offset anywhere in the slot."""
    table, t0 = offset_table([zone], start, start + 60 * 86400)
    slot = min(slot, table.shape[1] - 1)
    for within in (0, OFFSET_STEP // 2, OFFSET_STEP - 1):
        inst = dt.datetime.fromtimestamp(t0 + OFFSET_STEP * slot + within, UTC)
        assert table[0, slot] == int(inst.astimezone(zoneinfo.ZoneInfo(zone)).utcoffset().total_seconds())


def test_offsets_agree_with_zoneinfo_at_every_instant_including_dst_changes():
    # given the generator's offset table for every zone it uses
    zones = [z for z, _ in TIMEZONES]
    as_of = parse_as_of(DEFAULT_AS_OF)
    offsets = Offsets(zones, (as_of // 86400 - 800) * 86400, (as_of // 86400 + 10) * 86400)
    # when asked at random instants and one second either side of real DST changes
    rng = np.random.default_rng(1)
    zone = rng.integers(0, len(zones), 3000)
    ts = rng.integers(as_of - 790 * 86400, as_of, 3000)
    changes = [("America/New_York", "2026-03-08T07:00:00Z"), ("America/New_York", "2025-11-02T06:00:00Z"),
               ("Europe/Berlin", "2026-03-29T01:00:00Z"), ("Australia/Sydney", "2026-04-04T16:00:00Z"),
               ("Australia/Sydney", "2025-10-04T16:00:00Z"), ("Pacific/Auckland", "2026-04-04T14:00:00Z")]
    for name, at in changes:
        t = parse_as_of(at)
        zone = np.append(zone, [zones.index(name)] * 3)
        ts = np.append(ts, [t - 1, t, t + 1])
    got = offsets.at(zone, ts)
    # then every offset is the one zoneinfo gives, to the second
    want = [dt.datetime.fromtimestamp(int(t), zoneinfo.ZoneInfo(zones[z])).utcoffset().total_seconds()
            for z, t in zip(zone, ts)]
    np.testing.assert_array_equal(got, np.array(want, dtype=np.int64))
    # and a local wall-clock time maps back to an instant showing that wall-clock time
    local = ts + got
    back = offsets.to_utc(zone, local)
    np.testing.assert_array_equal(back + offsets.at(zone, back), local)


def test_lord_howe_half_hour_dst_change_is_exact_in_the_table_and_the_planner():
    # Australia/Lord_Howe moves between +10:30 and +11:00 at 02:00 local standard time,
    # 2026-10-04 02:00 +10:30 = 2026-10-03 15:30 UTC: inside an hour, on a 15-minute slot
    change = _ts(2026, 10, 3, 15, 30)
    table, t0 = offset_table(["Australia/Lord_Howe"], change - 86400, change + 86400)
    off = OffsetLookup(table, t0)
    for t, want in ((change - 1, 37800), (change, 39600), (change + 1200, 39600), (change - 1200, 37800)):
        assert off(np.zeros(1, np.int64), np.array([t]))[0] == want
    # a wall time of 09:00 on the change day maps to 09:00 +11:00
    got = next_local_time(off, np.zeros(1, np.int64), np.array([change]), np.array([9 * 60]))[0]
    assert dt.datetime.fromtimestamp(int(got), zoneinfo.ZoneInfo("Australia/Lord_Howe")).strftime("%H:%M") == "09:00"


def test_local_instants_agree_with_zoneinfo_for_rows_of_a_table():
    zones = ["Australia/Lord_Howe", "America/New_York", None, "Asia/Kathmandu"]
    at = np.array([_ts(2026, 10, 3, 15, 40), _ts(2026, 3, 8, 7, 0), _ts(2026, 1, 1), _ts(2026, 6, 1, 12)], np.int64)
    got = local_instants(pa.table({"timezone": pa.array(zones, pa.string())}), at, default="Europe/Berlin")
    for z, t, g in zip(zones, at, got):
        tz = zoneinfo.ZoneInfo(z or "Europe/Berlin")
        assert g - t == dt.datetime.fromtimestamp(int(t), tz).utcoffset().total_seconds()


def test_one_timezone_check():
    assert is_timezone("Europe/Berlin") and is_timezone("UTC")
    for bad in ("Mars/Olympus", "", " Europe/Berlin", None, 5, "../../etc/passwd"):
        assert not is_timezone(bad)
    assert check_timezone("Asia/Kolkata", "campaign.timezone") == "Asia/Kolkata"
    try:
        check_timezone("Europe/Berln", "campaign.timezone")
    except ConfigError as exc:
        assert "campaign.timezone" in str(exc) and "IANA" in str(exc)
    else:
        raise AssertionError("no ConfigError")


def test_generator_and_planner_tables_agree_everywhere():
    # the generator's exact Offsets and the kernels' table are one implementation
    zones = [z for z, _ in TIMEZONES]
    start, end = _ts(2025, 1, 1), _ts(2026, 12, 31)
    offsets = Offsets(zones, start, end)
    table, t0 = offsets.table(start, end)
    rng = np.random.default_rng(3)
    zone = rng.integers(0, len(zones), 20_000)
    ts = rng.integers(start, end, 20_000)
    np.testing.assert_array_equal(OffsetLookup(table, t0)(zone, ts), offsets.at(zone, ts))


def test_every_change_is_found_where_changes_come_a_week_apart_and_the_table_is_at_per_slot():
    # given Brazil's October 2000 (DST began on the 8th and was undone on the 15th in these zones)
    zones = ["America/Recife", "America/Noronha", "Europe/Paris", "UTC"]
    start = int(dt.datetime(2000, 9, 20, tzinfo=dt.timezone.utc).timestamp())
    end = start + 40 * 86_400
    o = Offsets(zones, start, end)
    # then both changes are found, at the instants zoneinfo has
    for z, name in enumerate(zones):
        tz = zoneinfo.ZoneInfo(name)
        ts = np.arange(start, end, 1800, dtype=np.int64)
        want = [int(dt.datetime.fromtimestamp(int(t), tz).utcoffset().total_seconds()) for t in ts]
        assert o.at(np.full(len(ts), z), ts).tolist() == want, name
    assert (o.keys // (1 << 40) == 0).sum() == 3  # Recife: the start and its two changes
    # and the kernels' table is at() at every slot
    table, t0 = o.table(start, end)
    slots = t0 + OFFSET_STEP * np.arange(table.shape[1], dtype=np.int64)
    for z in range(len(zones)):
        np.testing.assert_array_equal(table[z], o.at(np.full(len(slots), z), slots))
