"""The fused scoring pass equals its naive twin, whatever the event order or batch split."""

from __future__ import annotations

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.scoring import kernels, partition
from engine.io.readers import EventBatch
from engine.schema import DEFAULT_ACTIVITY, EVENT_CODE
from tests import naive
from tests.strategies import AS_OF, event_worlds

WINDOW = 365
IS_ACT = np.zeros(9, bool)
for name in DEFAULT_ACTIVITY:
    IS_ACT[EVENT_CODE[name]] = True
# two zones: UTC and a fixed +05:30, so local-hour bucketing is exercised
OFF_T0 = AS_OF - 500 * 86400
OFF_TABLE = np.zeros((2, 501 * 96), np.int32)  # 15-minute slots (engine.tz.OFFSET_STEP)
OFF_TABLE[1, :] = 19800


def _run(n_users, uidx, ts, ev, ch, val, splits, perm, partition=None, group_rows=0, precount=False, **kw):
    """The events (in order ``perm``, cut at ``splits``) through one Folder holding up to
    ``group_rows`` events at a time (0: each batch alone, through accumulate); ``precount``:
    each batch's block counts taken first (``Folder.counts``, as the reader's threads do)."""
    acc = kernels.Accumulators.zeros(n_users, WINDOW)
    day0 = AS_OF // 86400 - acc.day_bits.shape[1] * 64 + 1
    user_tz = (np.arange(n_users) % 2).astype(np.int32)
    uidx, ts, ev, ch, val = uidx[perm], ts[perm], ev[perm], ch[perm], val[perm]
    bounds = [0, *sorted(splits), len(uidx)]
    opts = dict(user_tz=user_tz, off_table=OFF_TABLE, off_t0=OFF_T0, as_of=AS_OF, is_activity=IS_ACT, day0=day0,
                window_days=WINDOW, half_life_days=60.0, partition=partition, **kw)
    with kernels.Folder(acc, group_rows=max(group_rows, 1), **opts) as folder:
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            b = EventBatch(uidx[lo:hi], ts[lo:hi], ev[lo:hi], ch[lo:hi], val[lo:hi])
            if group_rows:
                folder.add(b, folder.counts(b) if precount else None)
            else:
                kernels.accumulate(acc, b, **opts)
    return acc, day0, user_tz


def _none(v):
    return None if v in (kernels.NEVER, np.iinfo(np.int64).max) else int(v)


@given(event_worlds(), st.data())
def test_fused_pass_matches_naive_for_any_order_and_split(world, data):
    """Property: every accumulator equals the per-user reference, for any shuffle and batch split."""
    n_users, uidx, ts, ev, ch, val = world
    n = len(uidx)
    perm = np.array(data.draw(st.permutations(list(range(n))))) if n else np.arange(0)
    splits = data.draw(st.lists(st.integers(0, n), max_size=4)) if n else []
    partition = data.draw(st.sampled_from([None, True, False]))
    # small blocks, so that a few users make several blocks and the threads share them out
    kw = {"n_threads": data.draw(st.sampled_from([None, 1, 2, 3])), "block_shift": data.draw(st.integers(0, 3)),
          "group_rows": data.draw(st.sampled_from([0, 1, 50, 10_000]))}
    acc, day0, user_tz = _run(n_users, uidx, ts, ev, ch, val, splits, perm, partition, **kw)
    ref = naive.score_accumulate(n_users, uidx.tolist(), ts.tolist(), ev.tolist(), ch.tolist(), val.tolist(),
                                 AS_OF, IS_ACT, WINDOW,
                                 lambda u, t: 19800 if user_tz[u] == 1 else 0, 60.0)
    npt.assert_array_equal(kernels.frequency_from_bits(acc.day_bits), ref["days"])
    assert [_none(v) for v in acc.first_act_window] == ref["first_window"]
    assert [_none(v) for v in acc.first_act] == ref["first"]
    assert [_none(v) for v in acc.last_act] == ref["last"]
    npt.assert_array_equal(acc.purchases, ref["purchases"])
    npt.assert_array_equal(acc.valued, ref["valued"])
    npt.assert_allclose(acc.revenue, ref["revenue"], rtol=1e-9, atol=1e-9)
    assert [_none(v) for v in acc.last_purchase] == ref["last_purchase"]
    npt.assert_array_equal(acc.sends90, ref["sends90"])
    npt.assert_array_equal(acc.opens90, ref["opens90"])
    npt.assert_array_equal(acc.clicks90, ref["clicks90"])
    assert [[_none(v) for v in row] for row in acc.last_eng] == ref["last_eng"]
    npt.assert_array_equal(acc.suppressed, ref["suppressed"])
    npt.assert_array_equal(kernels.unengaged_streak(acc.recent_age, acc.last_eng, np.int64(AS_OF)), ref["streak"])
    npt.assert_array_equal(acc.sends7, ref["sends7"])
    npt.assert_array_equal(acc.sends30, ref["sends30"])
    npt.assert_allclose(acc.hour_hist, ref["hour"], rtol=1e-5, atol=1e-6)
    npt.assert_allclose(acc.wd_hist, ref["weekday"], rtol=1e-5, atol=1e-6)
    npt.assert_array_equal(acc.eng_count, ref["eng"])


def _grouped_partition(batches, shift, n_blocks, n_parts, serial=False):
    """The batches scattered together by block (partition.block_counts, group_offsets, scatter)."""
    count = partition.block_counts_serial if serial else partition.block_counts
    counts = [count(b[0], np.int64(shift), n_blocks, np.int64(n_parts)) for b in batches]
    offs, starts = partition.group_offsets(counts)
    n = sum(len(b[0]) for b in batches)
    out = tuple(np.empty(n, a.dtype) for a in batches[0])
    for b, o in zip(batches, offs):
        partition.scatter(*b, np.int64(shift), o, *out)
    return out, starts


@given(event_worlds(max_users=40, max_events=200), st.integers(0, 4), st.integers(1, 4), st.booleans(), st.data())
def test_grouped_partition_is_a_stable_grouping_by_user_block(world, shift, n_parts, serial, data):
    """Property: batches counted (on numba's threads or the caller's) and scattered together (any
    split, any number of slices) hold the events of their concatenation grouped by uidx >> shift,
    in input order within a block."""
    n_users, uidx, ts, ev, ch, val = world
    n = len(uidx)
    n_blocks = (n_users >> shift) + 1
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=3)))
    bounds = [0, *cuts, n]
    batches = [tuple(a[lo:hi] for a in (uidx, ts, ev, ch, val)) for lo, hi in zip(bounds[:-1], bounds[1:])]
    got, starts = _grouped_partition(batches, shift, n_blocks, n_parts, serial)
    order = naive.partition_by_block(uidx, shift)
    for a, b in zip(got, (uidx, ts, ev, ch, val)):
        npt.assert_array_equal(a, b[order])
    counts = np.bincount(uidx >> shift, minlength=n_blocks)
    npt.assert_array_equal(starts, np.concatenate(([0], np.cumsum(counts))))


@given(event_worlds(max_users=40, max_events=200), st.integers(0, 4), st.data())
def test_sort_block_orders_a_blocks_events_by_user_stably(world, shift, data):
    """Property: sort_block copies the events of a range, every column, in order of user index,
    ties in input order, to the front of the block buffers (and writes nothing past them)."""
    n_users, uidx, ts, ev, ch, val = world
    n = len(uidx)
    lo = data.draw(st.integers(0, n))
    hi = data.draw(st.integers(lo, n))
    mask = (1 << shift) - 1
    # (one block's events share uidx >> shift; sort_block sorts on the low bits only)
    low = uidx & mask
    cols = (low, ts, ev, ch, val)
    bufs = [np.full(n + 1, -1, a.dtype) for a in cols]
    partition.sort_block(*cols, np.int64(lo), np.int64(hi), np.int64(mask), np.empty(mask + 2, np.int64), *bufs)
    order = lo + np.array(naive.partition_by_block(low[lo:hi], 0), np.int64)
    for buf, a in zip(bufs, cols):
        npt.assert_array_equal(buf[:hi - lo], a[order])
        assert (buf[hi - lo:] == -1).all()


@given(st.lists(st.integers(0, 50), min_size=1, max_size=30), st.integers(1, 9))
def test_chunk_blocks_are_runs_of_whole_blocks(sizes, n_chunks):
    """Property: chunk_blocks starts at block 0, ends past the last block and only rises."""
    starts = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
    cuts = partition.chunk_blocks(starts, n_chunks)
    assert cuts[0] == 0 and cuts[-1] == len(sizes)
    assert (np.diff(cuts) > 0).all()


def _bits(acc):
    return [a.view(np.uint8).tobytes() for a in acc.arrays()]


@given(event_worlds(max_users=60, max_events=300), st.integers(0, 3), st.integers(2, 5), st.data())
def test_threads_give_bit_identical_accumulators(world, shift, n_threads, data):
    """Property: the partitioned pass on 2-5 threads equals the single-threaded one byte for byte."""
    n_users, uidx, ts, ev, ch, val = world
    n = len(uidx)
    perm = np.array(data.draw(st.permutations(list(range(n))))) if n else np.arange(0)
    one, _, _ = _run(n_users, uidx, ts, ev, ch, val, [], perm, True, n_threads=1, block_shift=shift)
    many, _, _ = _run(n_users, uidx, ts, ev, ch, val, [], perm, True, n_threads=n_threads, block_shift=shift)
    assert _bits(one) == _bits(many)


@given(event_worlds(max_users=60, max_events=300), st.integers(0, 3), st.integers(1, 400), st.integers(1, 3),
       st.booleans(), st.data())
def test_grouped_folds_give_bit_identical_accumulators(world, shift, group_rows, n_threads, precount, data):
    """Property: batches folded in groups of any size (sparse blocks in user order, block counts
    taken by the Folder or handed to it) equal the plain pass, one batch at a time in input
    order, byte for byte."""
    n_users, uidx, ts, ev, ch, val = world
    n = len(uidx)
    perm = np.array(data.draw(st.permutations(list(range(n))))) if n else np.arange(0)
    splits = data.draw(st.lists(st.integers(0, n), max_size=5)) if n else []
    plain, _, _ = _run(n_users, uidx, ts, ev, ch, val, splits, perm, False, n_threads=1)
    grouped, _, _ = _run(n_users, uidx, ts, ev, ch, val, splits, perm, True, group_rows=group_rows,
                         n_threads=n_threads, block_shift=shift, precount=precount)
    assert _bits(plain) == _bits(grouped)


def test_threads_and_partition_are_bit_identical_at_scale():
    # given 10 blocks of users and 400k events in random order, with heavy and idle users
    rng = np.random.default_rng(5)
    n_users = 10 << kernels.BLOCK_SHIFT
    n = 400_000
    uidx = np.minimum(rng.zipf(1.3, n) - 1 + rng.integers(0, n_users, n) // 7, n_users - 1).astype(np.int64)
    rng.shuffle(uidx)
    ts = (AS_OF - rng.integers(0, 400 * 86400, n)).astype(np.int64)
    ev = rng.integers(0, 8, n).astype(np.int8)
    ch = np.where(ev >= 2, rng.integers(0, 3, n), -1).astype(np.int8)
    val = np.where(rng.random(n) < 0.1, np.nan, rng.gamma(2.0, 10.0, n))
    splits = [150_000, 151_000]
    # when folded by one thread, by two and three, without the partition, and in groups of batches
    runs = [_run(n_users, uidx, ts, ev, ch, val, splits, np.arange(n), partition=p, n_threads=t, group_rows=g)[0]
            for p, t, g in ((True, 1, 0), (True, 2, 0), (True, 3, 0), (False, 1, 0), (True, 2, 300_000),
                            (True, 1, 1 << 22))]
    runs.append(_run(n_users, uidx, ts, ev, ch, val, splits, np.arange(n), partition=True, n_threads=2,
                     group_rows=300_000, precount=True)[0])  # block counts handed in, as the reader's threads do
    # then all of them hold the same bytes, the decayed float histograms included
    want = _bits(runs[0])
    for acc in runs[1:]:
        assert _bits(acc) == want


def test_partitioned_pass_equals_plain_pass_across_many_blocks():
    # given 3 blocks' worth of users and events scattered over all of them
    rng = np.random.default_rng(3)
    n_users = 3 << kernels.BLOCK_SHIFT
    n = 20_000
    uidx = rng.integers(0, n_users, n).astype(np.int64)
    ts = (AS_OF - rng.integers(0, 300 * 86400, n)).astype(np.int64)
    ev = rng.integers(0, 8, n).astype(np.int8)
    ch = np.where(ev >= 2, rng.integers(0, 3, n), -1).astype(np.int8)
    val = rng.gamma(2.0, 10.0, n)
    # when folded with and without the block partition
    plain, _, _ = _run(n_users, uidx, ts, ev, ch, val, [7000], np.arange(n), partition=False)
    blocked, _, _ = _run(n_users, uidx, ts, ev, ch, val, [7000], np.arange(n), partition=True)
    # then every accumulator agrees (float sums up to rounding)
    for a, b in zip(plain.arrays(), blocked.arrays()):
        if a.dtype.kind == "f":
            npt.assert_allclose(a, b, rtol=1e-5)
        else:
            npt.assert_array_equal(a, b)


def test_empty_batch_leaves_state_untouched():
    acc, _, _ = _run(3, *(np.zeros(0, t) for t in (np.int64, np.int64, np.int8, np.int8, np.float64)), [], np.arange(0))
    assert kernels.frequency_from_bits(acc.day_bits).tolist() == [0, 0, 0]
    assert (acc.last_act == kernels.NEVER).all()


def test_single_user_streak_counts_sends_after_last_open():
    # given three emails, an open after the first, then two more sends
    t = AS_OF - 10 * 86400
    uidx = np.zeros(4, np.int64)
    ts = np.array([t, t + 3600, t + 86400, t + 2 * 86400], np.int64)
    ev = np.array([EVENT_CODE["send"], EVENT_CODE["open"], EVENT_CODE["send"], EVENT_CODE["send"]], np.int8)
    ch = np.zeros(4, np.int8)
    acc, _, _ = _run(1, uidx, ts, ev, ch, np.full(4, np.nan), [], np.arange(4))
    # then the streak is the two sends after the open
    assert kernels.unengaged_streak(acc.recent_age, acc.last_eng, np.int64(AS_OF))[0, 0] == 2


def test_accumulators_fit_ten_million_users_in_budget():
    """10M users' state stays well inside 12 GiB (the 2-year model window)."""
    small = kernels.Accumulators.zeros(1000, 731)
    assert small.nbytes() / 1000 * 10_000_000 < 6 * 2**30


@given(st.integers(1, 3), st.integers(1, 400), st.data())
def test_day_offsets_agree_with_naive(zones, slots, data):
    """Property: each coarse entry is the offset its slots share, else the mixed marker."""
    # runs of equal offsets with changes anywhere, as a DST table has
    values = data.draw(st.lists(st.sampled_from([0, 3600, 19800, -18000]), min_size=zones * slots,
                                max_size=zones * slots))
    runs = data.draw(st.integers(1, 50))
    table = np.repeat(np.array(values, np.int32).reshape(zones, slots)[:, ::runs], runs, axis=1)[:, :slots].copy()
    npt.assert_array_equal(kernels.day_offsets(table),
                           naive.day_offsets(table, kernels.OFFSET_GROUP, kernels.MIXED_OFFSET))


@given(event_worlds(max_users=8, max_events=80), st.data())
def test_fused_pass_uses_each_instants_own_offset_across_dst(world, data):
    """Property: with real zones whose offsets change (DST, half-hour zones), every engagement
    lands in the local hour and weekday of its own instant's offset, on a change day too."""
    from engine.tz import OffsetLookup, offset_table

    n_users, uidx, ts, ev, ch, val = world
    # events crowded around the change days of 2026 (29 March, 25 October in Europe) as well
    near = data.draw(st.lists(st.integers(-2 * 86400, 2 * 86400), min_size=len(ts), max_size=len(ts)))
    change = np.where(np.arange(len(ts)) % 2 == 0, 1774746000, 1792890000)
    ts = np.where(np.arange(len(ts)) % 3 == 0, ts, change + np.array(near, np.int64)).astype(np.int64)
    zones = ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
    table, t0 = offset_table(zones, AS_OF - 500 * 86400, AS_OF)
    user_tz = (np.arange(n_users) % len(zones)).astype(np.int32)
    acc = kernels.Accumulators.zeros(n_users, WINDOW)
    day0 = AS_OF // 86400 - acc.day_bits.shape[1] * 64 + 1
    kernels.accumulate(acc, EventBatch(uidx, ts, ev, ch, val), user_tz=user_tz, off_table=table, off_t0=t0,
                       as_of=AS_OF, is_activity=IS_ACT, day0=day0, window_days=WINDOW, half_life_days=60.0,
                       partition=data.draw(st.booleans()), block_shift=1)
    lookup = OffsetLookup(table, t0)
    ref = naive.score_accumulate(n_users, uidx.tolist(), ts.tolist(), ev.tolist(), ch.tolist(), val.tolist(),
                                 AS_OF, IS_ACT, WINDOW,
                                 lambda u, t: int(lookup(np.array([user_tz[u]]), np.array([t]))[0]), 60.0)
    npt.assert_allclose(acc.hour_hist, ref["hour"], rtol=1e-5, atol=1e-6)
    npt.assert_allclose(acc.wd_hist, ref["weekday"], rtol=1e-5, atol=1e-6)
    npt.assert_array_equal(acc.eng_count, ref["eng"])


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(-3 * 86400, 3 * 86400), st.sampled_from([0, 3, 4])),
                max_size=40), st.sampled_from([False, True]))
def test_instants_before_the_epoch_bin_as_floor_division_does(rows, partition):
    """Property: sessions, opens and clicks on either side of 1970-01-01 land in the local hour
    and weekday of floor division (the pass divides non-negative instants as unsigned)."""
    # given engagement events around the epoch, in a zone at +05:30 and in UTC, weighed alike
    as_of = 10 * 86400
    n_users = 4
    uidx = np.array([r[0] for r in rows], np.int64)
    ts = np.array([r[1] for r in rows], np.int64)
    ev = np.array([r[2] for r in rows], np.int8)
    ch = np.where(ev == 0, -1, 0).astype(np.int8)
    val = np.full(len(rows), np.nan)
    user_tz = (np.arange(n_users) % 2).astype(np.int32)
    off_t0 = -5 * 86400
    table = np.zeros((2, 20 * 96), np.int32)
    table[1, :] = 19800
    acc = kernels.Accumulators.zeros(n_users, WINDOW)
    day0 = as_of // 86400 - acc.day_bits.shape[1] * 64 + 1
    # when folded
    kernels.accumulate(acc, EventBatch(uidx, ts, ev, ch, val), user_tz=user_tz, off_table=table, off_t0=off_t0,
                       as_of=as_of, is_activity=IS_ACT, day0=day0, window_days=WINDOW, half_life_days=1e9,
                       partition=partition,
                       block_shift=0)
    ref = naive.score_accumulate(n_users, uidx.tolist(), ts.tolist(), ev.tolist(), ch.tolist(), val.tolist(),
                                 as_of, IS_ACT, WINDOW,
                                 lambda u, t: 19800 if user_tz[u] == 1 else 0, 1e9)
    # then the histograms, counts and active days are the reference's
    npt.assert_allclose(acc.hour_hist, ref["hour"], rtol=1e-5, atol=1e-6)
    npt.assert_allclose(acc.wd_hist, ref["weekday"], rtol=1e-5, atol=1e-6)
    npt.assert_array_equal(acc.eng_count, ref["eng"])
    npt.assert_array_equal(kernels.frequency_from_bits(acc.day_bits), ref["days"])
    assert [_none(v) for v in acc.first_act_window] == ref["first_window"]


@given(event_worlds(max_users=60, max_events=300), st.integers(0, 3), st.integers(0, 400), st.booleans(),
       st.sampled_from([1, 3]), st.data())
def test_events_handed_to_also_give_the_fatigue_counts_of_every_batch(world, shift, group_rows, part, n_threads,
                                                                      data):
    """Property: the fatigue counts taken from the Folder's ``also`` (each event once, in
    block order when grouped, in the fold's chunks on several threads) equal
    fatigue_model.accumulate over the batches as read."""
    from engine.scoring import fatigue_model as fm

    n_users, uidx, ts, ev, ch, val = world
    n = len(uidx)
    perm = np.array(data.draw(st.permutations(list(range(n))))) if n else np.arange(0)
    splits = data.draw(st.lists(st.integers(0, n), max_size=5)) if n else []
    want = fm.FatigueAccumulators.zeros(n_users)
    bounds = [0, *sorted(splits), n]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        p = perm[lo:hi]
        fm.accumulate(want, EventBatch(uidx[p], ts[p], ev[p], ch[p], val[p]), AS_OF)
    got = fm.FatigueAccumulators.zeros(n_users)
    _run(n_users, uidx, ts, ev, ch, val, splits, perm, part, group_rows=group_rows, block_shift=shift,
         n_threads=n_threads, also=lambda u, t, e, bounds: fm.accumulate_arrays(got, u, t, e, AS_OF, bounds))
    assert np.array_equal(got.sends, want.sends) and np.array_equal(got.opens, want.opens)
    assert np.array_equal(got.stop_week, want.stop_week)


def test_active_days_stop_at_the_model_window_not_at_the_bitsets_rounding():
    """Given sessions exactly WINDOW days, WINDOW days + 1 s and WINDOW + 10 days before as_of
    (the last two still inside the bitset's 64-day words), when folded, then only the first
    counts as an active day and first activity in the window, as in the naive twin."""
    ages = [WINDOW * 86400, WINDOW * 86400 + 1, (WINDOW + 10) * 86400, 86400]
    uidx = np.array([0, 1, 2, 2], np.int64)
    ts = AS_OF - np.array(ages, np.int64)
    ev = np.full(4, EVENT_CODE["session"], np.int8)
    ch = np.full(4, -1, np.int8)
    val = np.full(4, np.nan)
    acc, _, _ = _run(3, uidx, ts, ev, ch, val, [], np.arange(4))
    assert acc.day_bits.shape[1] * 64 > WINDOW + 10
    assert kernels.frequency_from_bits(acc.day_bits).tolist() == [1, 0, 1]
    assert [_none(v) for v in acc.first_act_window] == [int(ts[0]), None, int(ts[3])]
    assert [_none(v) for v in acc.last_act] == [int(ts[0]), int(ts[1]), int(ts[3])]
    ref = naive.score_accumulate(3, uidx.tolist(), ts.tolist(), ev.tolist(), ch.tolist(), val.tolist(), AS_OF, IS_ACT,
                                 WINDOW, lambda u, t: 0, 60.0)
    assert ref["days"] == [1, 0, 1] and ref["first_window"] == [int(ts[0]), None, int(ts[3])]


def test_a_bitset_that_does_not_hold_the_window_is_refused():
    acc = kernels.Accumulators.zeros(2, 64)  # one word: 64 days, the window and as_of's day need 65
    with pytest.raises(ValueError, match="do not hold"):
        kernels.Folder(acc, user_tz=np.zeros(2, np.int32), off_table=OFF_TABLE, off_t0=OFF_T0, as_of=AS_OF,
                       is_activity=IS_ACT, day0=AS_OF // 86400 - 63, window_days=64, half_life_days=60.0)
