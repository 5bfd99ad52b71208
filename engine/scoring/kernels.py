"""The fused scoring pass: one numba kernel per group of event batches updates every per-user accumulator.

Events arrive in any order and in any batch split; every accumulator is order- and
batch-independent (sums, counts, min/max, a bitset of active days, a fixed-size buffer
of the most recent sends), so the result is the same however the file is cut, except
for the float32 rounding of the decayed engagement histogram, whose sums follow the
input order (reordering a log moved ``send_time_confidence`` by at most 6e-8).

Units: instants are int64 seconds since the epoch (UTC); ``as_of`` likewise; days are
UTC calendar days (``ts // 86400``).  The active days and ``first_act_window`` count activity
0 .. ``window_days`` (the model window, 730) before ``as_of``; the bitset's rounding to 64-day
words (768 days) holds only empty days beyond it.  Memory is O(users):

=====================  ==========================  =====================
accumulator            shape / dtype               bytes per user
=====================  ==========================  =====================
active-day bitset      [n, W] uint64 (W*64 days)   8 W (96 at 2 years)
first/last activity    [n] int64 x 3               24
purchases, revenue     [n] int32 x2, f64, i64      24
per channel counts     [n, 3] int32 x 3            36
last engaged, flags    [n, 3] int64, uint8         27
recent sends buffer    [n, 3, K] uint32 (K = 8)    96
sends 7d / 30d         [n] int32 x 2               8
engagement histogram   [n, 24] + [n, 7] float32    124
=====================  ==========================  =====================

Purchases are counted twice: all of them, and those with a value (the denominator of
``monetary``, the mean of the known values).  About 0.45 KB per user (10M users: 4.5 GB).
The histogram keeps hour-of-day and weekday marginals (31 bins), not 168 hour-of-week bins:
5x less memory, and the hour (what ``next_send_at`` needs) pools all weekdays' evidence.
(Packing the fields one event touches into cache-line rows was measured: no gain.)  An
engagement at midnight UTC to the second (a date-only export) counts for its weekday only.

A :class:`Folder` folds a stream of batches: a few batches at a time, counting-sorted
together by user block into scratch arrays it keeps (:mod:`engine.scoring.partition`),
sparse blocks in user order.  In a time-ordered log every batch touches nearly every
user; grouping visits each user's state once per group instead of once per batch.
Measured on the 1M-user world (seed 7, 59.5M events, time-ordered copy; 2 shared cores,
load ~2): the pass 6.2 s wall / 10.7 s CPU per batch, 4.9-5.1 s / 8.3-8.7 s grouped,
page faults 470k -> 100-120k; the same bytes in every accumulator.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from numba import prange

from engine.jit import njit, pjit
from engine.scoring.partition import block_counts, block_counts_serial, chunk_blocks, group_offsets, scatter, sort_block
from engine.scoring.offsets import MIXED_OFFSET, OFFSET_GROUP, day_offsets
from engine.tz import OFFSET_STEP
from engine.schema import CLICK, COMPLAINT, BOUNCE, OPEN, PURCHASE, SEND, SESSION, UNSUBSCRIBE, NEVER

__all__ = ["Accumulators", "Folder", "accumulate", "unengaged_streak", "frequency_from_bits", "threads", "day_offsets",
           "RECENT_SENDS", "NEVER"]

#: How many most-recent sends per user and channel are kept to measure the unengaged streak.
RECENT_SENDS = 8
_EMPTY_AGE = np.uint32(0xFFFFFFFF)
SUPPRESS_UNSUB, SUPPRESS_BOUNCE, SUPPRESS_COMPLAINT = 1, 2, 4


@dataclass
class Accumulators:
    """Per-user state filled by :func:`accumulate`; see the module docstring for shapes."""

    day_bits: np.ndarray
    first_act: np.ndarray
    first_act_window: np.ndarray
    last_act: np.ndarray
    purchases: np.ndarray
    revenue: np.ndarray
    last_purchase: np.ndarray
    sends90: np.ndarray
    opens90: np.ndarray
    clicks90: np.ndarray
    last_eng: np.ndarray
    suppressed: np.ndarray
    recent_age: np.ndarray
    sends7: np.ndarray
    sends30: np.ndarray
    hour_hist: np.ndarray
    wd_hist: np.ndarray
    eng_count: np.ndarray
    valued: np.ndarray

    @classmethod
    def zeros(cls, n_users: int, window_days: int) -> "Accumulators":
        words = max(1, (window_days + 63) // 64)
        return cls(
            day_bits=np.zeros((n_users, words), np.uint64),
            first_act=np.full(n_users, np.iinfo(np.int64).max, np.int64),
            first_act_window=np.full(n_users, np.iinfo(np.int64).max, np.int64),
            last_act=np.full(n_users, NEVER, np.int64),
            purchases=np.zeros(n_users, np.int32),
            revenue=np.zeros(n_users, np.float64),
            last_purchase=np.full(n_users, NEVER, np.int64),
            sends90=np.zeros((n_users, 3), np.int32),
            opens90=np.zeros((n_users, 3), np.int32),
            clicks90=np.zeros((n_users, 3), np.int32),
            last_eng=np.full((n_users, 3), NEVER, np.int64),
            suppressed=np.zeros((n_users, 3), np.uint8),
            recent_age=np.full((n_users, 3, RECENT_SENDS), _EMPTY_AGE, np.uint32),
            sends7=np.zeros(n_users, np.int32),
            sends30=np.zeros(n_users, np.int32),
            hour_hist=np.zeros((n_users, 24), np.float32),
            wd_hist=np.zeros((n_users, 7), np.float32),
            eng_count=np.zeros(n_users, np.int32),
            valued=np.zeros(n_users, np.int32),
        )

    def arrays(self) -> tuple:
        return tuple(getattr(self, f.name) for f in fields(self))

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays())


@njit
def _fold(lo, hi, uidx, ts, ev, ch, user_tz, off_table, off_day, off_t0, as_of, is_activity, day0,
          window_s, decay_per_s, day_bits, first_act, first_act_window, last_act, purchases, revenue, last_purchase,
          sends90, opens90, clicks90, last_eng, suppressed, recent_age, sends7, sends30,
          hour_hist, wd_hist, eng_count, valued, val):
    """Events ``lo .. hi-1`` folded into the accumulators, in index order."""
    n_hours = off_table.shape[1]
    k = recent_age.shape[2]
    for i in range(lo, hi):
        u = uidx[i]
        t = ts[i]
        e = ev[i]
        c = ch[i]
        age = as_of - t
        if is_activity[e]:
            if t < first_act[u]:
                first_act[u] = t
            if t > last_act[u]:
                last_act[u] = t
            # the model window (0 .. window_s s old), not the bitset's 64-day words; each day has its bit (Folder)
            if age >= 0 and age <= window_s:
                d = (np.int64(np.uint64(t) // np.uint64(86400)) if t >= 0 else t // 86400) - day0
                day_bits[u, d >> 6] |= np.uint64(1) << np.uint64(d & 63)
                if t < first_act_window[u]:
                    first_act_window[u] = t
        if e == PURCHASE:
            purchases[u] += 1
            v = val[i]
            if v == v:
                revenue[u] += v
                valued[u] += 1
            if t > last_purchase[u]:
                last_purchase[u] = t
        elif e == SEND and c >= 0:
            if age <= 90 * 86400:
                sends90[u, c] += 1
            if age <= 30 * 86400:
                sends30[u] += 1
                if age <= 7 * 86400:
                    sends7[u] += 1
            a = np.uint32(min(age, 0xFFFFFFFE))
            if a < recent_age[u, c, 0]:
                # slot 0 always holds the oldest kept send (empty slots count as oldest), so
                # most sends cost one compare; on a replacement, the new oldest moves to slot 0
                recent_age[u, c, 0] = a
                worst = 0
                wv = a
                for j in range(1, k):
                    v = recent_age[u, c, j]
                    if v > wv:
                        wv = v
                        worst = j
                recent_age[u, c, worst] = a
                recent_age[u, c, 0] = wv
        elif (e == OPEN or e == CLICK) and c >= 0:
            if age <= 90 * 86400:
                if e == OPEN:
                    opens90[u, c] += 1
                else:
                    clicks90[u, c] += 1
            if t > last_eng[u, c]:
                last_eng[u, c] = t
        elif e == UNSUBSCRIBE and c >= 0:
            suppressed[u, c] |= SUPPRESS_UNSUB
        elif e == BOUNCE and c >= 0:
            suppressed[u, c] |= SUPPRESS_BOUNCE
        elif e == COMPLAINT and c >= 0:
            suppressed[u, c] |= SUPPRESS_COMPLAINT
        if e == OPEN or e == CLICK or e == SESSION:
            h = t - off_t0
            h = 0 if h < 0 else min(np.int64(np.uint64(h) // np.uint64(OFFSET_STEP)), n_hours - 1)
            z = user_tz[u]
            # small (cache-resident); the full table only on a change day
            o = off_day[z, np.uint64(h) // np.uint64(OFFSET_GROUP)]
            if o == MIXED_OFFSET:
                o = off_table[z, h]
            local = t + o
            w = np.float32(np.exp(-decay_per_s * age))
            # unsigned divisions where they may (a multiply and shift); a date-only event: weekday only
            if t % 86400 == 0:
                wd_hist[u, ((t // 86400) + 3) % 7] += w
            elif local >= 0:
                ul = np.uint64(local)
                hour_hist[u, (ul // np.uint64(3600)) % np.uint64(24)] += w
                wd_hist[u, (ul // np.uint64(86400) + np.uint64(3)) % np.uint64(7)] += w
            else:
                hour_hist[u, (local // 3600) % 24] += w
                wd_hist[u, ((local // 86400) + 3) % 7] += w
            eng_count[u] += 1


@njit
def _kernel(uidx, ts, ev, ch, user_tz, off_table, off_day, off_t0, as_of, is_activity, day0, window_s, decay_per_s,
            day_bits, first_act, first_act_window, last_act, purchases, revenue, last_purchase,
            sends90, opens90, clicks90, last_eng, suppressed, recent_age, sends7, sends30,
            hour_hist, wd_hist, eng_count, valued, val):
    """The whole batch on the calling thread, in input order."""
    _fold(0, uidx.shape[0], uidx, ts, ev, ch, user_tz, off_table, off_day, off_t0, as_of,
          is_activity, day0, window_s, decay_per_s, day_bits, first_act, first_act_window, last_act, purchases,
          revenue, last_purchase, sends90, opens90, clicks90, last_eng, suppressed, recent_age, sends7, sends30,
          hour_hist, wd_hist, eng_count, valued, val)


@njit
def _fold_blocks(b0, b1, starts, shift, sort_below, uidx, ts, ev, ch, user_tz, off_table, off_day, off_t0,
                 as_of, is_activity, day0, window_s, decay_per_s,
                 day_bits, first_act, first_act_window, last_act, purchases, revenue, last_purchase,
                 sends90, opens90, clicks90, last_eng, suppressed, recent_age, sends7, sends30,
                 hour_hist, wd_hist, eng_count, valued, val):
    """Blocks ``b0 .. b1-1`` of a batch partitioned by user block (block ``b``: events
    ``starts[b] .. starts[b+1]-1``), one block after the other.

    A block with fewer than ``sort_below`` events (a time-ordered log: about one event per
    user) is folded in order of user index (:func:`engine.scoring.partition.sort_block`
    copies it, stably, to a block-sized buffer), so its users' state is read front to back, once, instead of
    one jump per event; a dense block (a log grouped by user) stays in input order, which
    already touches each user's state in runs.  Either way every user's events are folded
    in input order.
    """
    mask = (np.int64(1) << shift) - 1
    cnt = np.empty(mask + 2, np.int64)
    m = max(np.int64(1), sort_below)
    bu, bt, be, bc, bv = np.empty(m, uidx.dtype), np.empty(m, ts.dtype), np.empty(m, ev.dtype), \
        np.empty(m, ch.dtype), np.empty(m, val.dtype)
    for b in range(b0, b1):
        lo = starts[b]
        hi = starts[b + 1]
        u, t, e, c, v = uidx, ts, ev, ch, val
        if hi - lo > 1 and hi - lo < sort_below:
            sort_block(uidx, ts, ev, ch, val, lo, hi, mask, cnt, bu, bt, be, bc, bv)
            lo, hi, u, t, e, c, v = 0, hi - lo, bu, bt, be, bc, bv
        _fold(lo, hi, u, t, e, c, user_tz, off_table, off_day, off_t0, as_of, is_activity, day0,
              window_s, decay_per_s, day_bits, first_act, first_act_window, last_act, purchases, revenue, last_purchase,
              sends90, opens90, clicks90, last_eng, suppressed, recent_age, sends7, sends30,
              hour_hist, wd_hist, eng_count, valued, v)


@pjit
def _kernel_blocks(cuts, starts, shift, sort_below, uidx, ts, ev, ch, user_tz, off_table, off_day, off_t0,
                   as_of, is_activity, day0, window_s, decay_per_s,
                   day_bits, first_act, first_act_window, last_act, purchases, revenue, last_purchase,
                   sends90, opens90, clicks90, last_eng, suppressed, recent_age, sends7, sends30,
                   hour_hist, wd_hist, eng_count, valued, val):
    """:func:`_fold_blocks` on every core: chunk ``c`` is blocks ``cuts[c] .. cuts[c+1]-1``.

    No two chunks touch the same user and every user's events are folded in input
    order, so the result is bit-identical to the single-threaded pass.
    """
    for c in prange(cuts.shape[0] - 1):
        _fold_blocks(cuts[c], cuts[c + 1], starts, shift, sort_below, uidx, ts, ev, ch, user_tz, off_table,
                     off_day, off_t0, as_of, is_activity, day0, window_s, decay_per_s,
                     day_bits, first_act, first_act_window, last_act, purchases, revenue, last_purchase,
                     sends90, opens90, clicks90, last_eng, suppressed, recent_age, sends7, sends30,
                     hour_hist, wd_hist, eng_count, valued, val)


#: Users per block: 2048 users' state (~0.45 KB each) is ~0.9 MB, one core's L2.
BLOCK_SHIFT = 11
#: A block with fewer events than this many per user is folded in user order (:func:`_fold_blocks`).
SORT_BELOW_PER_USER = 5
#: Events folded at once by a :class:`Folder`: this many per user, at most :data:`GROUP_MAX_ROWS`.
GROUP_ROWS_PER_USER = 4
GROUP_MAX_ROWS = 1 << 22


def threads() -> int:
    """Threads the parallel kernels use (numba's setting: ``NUMBA_NUM_THREADS``, default every core)."""
    import numba

    return int(numba.get_num_threads())


class Folder:
    """Folds a stream of :class:`engine.io.readers.EventBatch` es into ``acc``, in place.

    ``user_tz``: int index of each user's timezone into ``off_table`` ([zones, slots]
    UTC offsets in seconds per 15-minute slot, slot 0 = ``off_t0``: engine.tz.offset_table);
    ``is_activity``: bool per event code; ``day0``: first UTC day of the active-day
    bitset, which must hold the ``window_days`` days before ``as_of`` (the model window: older
    activity sets no bit, no ``first_act_window``); engagement weight ``2 ** (-age_days / half_life_days)``.

    Batches are held (not copied) until about ``group_rows`` events are waiting
    (default :data:`GROUP_ROWS_PER_USER` per user, at most :data:`GROUP_MAX_ROWS`, at
    least one batch), then counting-sorted together by blocks of ``2 ** block_shift``
    users (:mod:`engine.scoring.partition`) into scratch arrays kept from one group to
    the next, and folded block by block (:func:`_fold_blocks`): in a time-ordered log,
    where every batch touches nearly every user, each user's state is then visited once
    per group instead of once per batch.  :meth:`flush` folds what is waiting; ``acc``
    is complete only after it (``with Folder(...) as f:`` flushes on exit).

    ``partition``: ``None`` (default) partitions a batch when there are more than two
    blocks of users and it has at least 16 events per block; otherwise it is folded
    alone, in input order, after the ones waiting.  The sort and the fold run on
    ``n_threads`` threads (default :func:`threads`); no two threads touch one user.
    ``also(uidx, ts, event, bounds)``, when given, sees every event once: each batch folded alone
    (``bounds`` None), else a group's events in block order (so an accumulator whose result
    does not depend on the order of events, :func:`engine.scoring.fatigue_model.accumulate_arrays`,
    reads each block's users while they are close in memory), with ``bounds`` the event
    offsets of the fold's chunks (runs of whole blocks, which share no user; None on one thread).
    Every user's events are folded in input order whatever the threads, the groups and
    the partition, so the result is bit-identical (float sums included) for any
    ``n_threads``, ``partition``, ``group_rows`` and batch split.
    """

    def __init__(self, acc: Accumulators, *, user_tz: np.ndarray, off_table: np.ndarray, off_t0: int, as_of: int,
                 is_activity: np.ndarray, day0: int, window_days: int, half_life_days: float,
                 partition: bool | None = None, n_threads: int | None = None, block_shift: int = BLOCK_SHIFT,
                 group_rows: int | None = None, also=None):
        n_users = acc.first_act.shape[0]
        window_s = int(window_days) * 86400
        n_bits = acc.day_bits.shape[1] * 64
        if not day0 <= (as_of - window_s) // 86400 <= as_of // 86400 < day0 + n_bits:
            raise ValueError(f"bitset days {day0}..{day0 + n_bits - 1} do not hold {window_days} days to {as_of}")
        self._also = also
        self._shift = np.int64(block_shift)
        self._n_blocks = (n_users >> block_shift) + 1
        self._partition = partition
        self._n_threads = n_threads
        self._group_rows = (min(GROUP_MAX_ROWS, GROUP_ROWS_PER_USER * n_users) if group_rows is None
                            else int(group_rows))
        self._sort_below = np.int64(SORT_BELOW_PER_USER << block_shift)
        decay = np.log(2.0) / (half_life_days * 86400.0)
        self._args = (user_tz, off_table, day_offsets(off_table), np.int64(off_t0), np.int64(as_of), is_activity,
                      np.int64(day0), np.int64(window_s), decay,
                      acc.day_bits, acc.first_act, acc.first_act_window, acc.last_act, acc.purchases, acc.revenue,
                      acc.last_purchase, acc.sends90, acc.opens90, acc.clicks90, acc.last_eng, acc.suppressed,
                      acc.recent_age, acc.sends7, acc.sends30, acc.hour_hist, acc.wd_hist, acc.eng_count,
                      acc.valued)
        self._waiting: list[tuple[object, np.ndarray]] = []
        self._rows = 0
        self._scratch: tuple[np.ndarray, ...] | None = None

    def __repr__(self) -> str:
        return (f"Folder(blocks={self._n_blocks}, group_rows={self._group_rows}, waiting_batches={len(self._waiting)}, "
                f"waiting_rows={self._rows})")

    def __enter__(self) -> "Folder":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.flush()

    def _partitioned(self, n: int) -> bool:
        if self._partition is None:
            return self._n_blocks > 2 and n >= 16 * self._n_blocks
        return bool(self._partition)

    def _parts(self, n: int) -> np.int64:
        if self._n_threads is None:  # (asking numba starts its thread pool: only here, where it is used)
            self._n_threads = threads()
        return np.int64(max(1, min(int(self._n_threads), n >> 16)))

    def counts(self, batch) -> np.ndarray | None:
        """The block counts :meth:`add` needs for ``batch`` (None when it will be folded alone),
        on the calling thread: so that a reader's threads can count each batch beside the
        fold (``add(batch, counts)``).  Safe on any thread once one batch was added or
        ``n_threads`` was given."""
        n = len(batch)
        if n == 0 or not self._partitioned(n):
            return None
        return block_counts_serial(batch.uidx, self._shift, self._n_blocks, self._parts(n))

    def add(self, batch, counts: np.ndarray | None = None) -> None:
        """Fold ``batch`` (now or with the next group: see the class docstring); ``counts``:
        its :meth:`counts`, when they were taken already."""
        n = len(batch)
        if n == 0:
            return
        partition = self._partitioned(n)
        if not partition:
            self.flush()
            _kernel(batch.uidx, batch.ts, batch.event, batch.channel, *self._args, batch.value)
            if self._also is not None:
                self._also(batch.uidx, batch.ts, batch.event, None)
            return
        if counts is None:
            counts = block_counts(batch.uidx, self._shift, self._n_blocks, self._parts(n))
        elif counts.ndim != 2 or counts.shape[1] != self._n_blocks or int(counts.sum()) != n:
            raise ValueError(f"block counts of shape {counts.shape} for {n} events are not this Folder's counts(batch)")
        self._waiting.append((batch, counts))
        self._rows += n
        if self._rows >= self._group_rows:
            self.flush()

    def flush(self) -> None:
        """Fold every batch waiting."""
        if not self._waiting:
            return
        waiting, n = self._waiting, self._rows
        self._waiting, self._rows = [], 0
        offs, starts = group_offsets([c for _, c in waiting])
        if self._scratch is None or self._scratch[0].shape[0] < n:
            b = waiting[0][0]
            size = max(n, self._group_rows)
            self._scratch = (np.empty(size, b.uidx.dtype), np.empty(size, b.ts.dtype), np.empty(size, b.event.dtype),
                             np.empty(size, b.channel.dtype), np.empty(size, b.value.dtype))
        u2, t2, e2, c2, v2 = self._scratch
        for (b, _), o in zip(waiting, offs):
            scatter(b.uidx, b.ts, b.event, b.channel, b.value, self._shift, o, u2, t2, e2, c2, v2)
        del waiting
        n_threads = max(1, int(self._n_threads))
        cuts = chunk_blocks(starts, 4 * n_threads) if n_threads > 1 else None
        if self._also is not None:
            self._also(u2[:n], t2[:n], e2[:n], None if cuts is None else starts[cuts])
        if n_threads == 1:
            _fold_blocks(np.int64(0), np.int64(self._n_blocks), starts, self._shift, self._sort_below,
                         u2, t2, e2, c2, *self._args, v2)
            return
        import numba

        # chunks handed out one at a time (not an equal share per thread fixed in advance), so a
        # thread that the OS holds back on a busy machine does not hold up the others
        before = numba.set_parallel_chunksize(1)
        try:
            _kernel_blocks(cuts, starts, self._shift, self._sort_below,
                           u2, t2, e2, c2, *self._args, v2)
        finally:
            numba.set_parallel_chunksize(before)


def accumulate(acc: Accumulators, batch, **options) -> None:
    """Fold one :class:`engine.io.readers.EventBatch` into ``acc`` in place: a
    :class:`Folder` (its keyword options) given this one batch and flushed."""
    with Folder(acc, **options) as f:
        f.add(batch)


@njit
def _popcount(x):
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@njit
def frequency_from_bits(day_bits):
    """Distinct active days per user (int32) from the bitset."""
    n, w = day_bits.shape
    out = np.zeros(n, np.int32)
    for u in range(n):
        s = 0
        for j in range(w):
            s += _popcount(day_bits[u, j])
        out[u] = s
    return out


@njit
def unengaged_streak(recent_age, last_eng, as_of):
    """Sends after the last open/click, per user and channel (int16; capped at RECENT_SENDS).

    ``recent_age`` holds the ages (as_of - ts, seconds) of the most recent sends.
    """
    n, c, k = recent_age.shape
    out = np.zeros((n, c), np.int16)
    for u in range(n):
        for j in range(c):
            le = last_eng[u, j]
            s = 0
            for m in range(k):
                a = recent_age[u, j, m]
                if a != 0xFFFFFFFF and as_of - np.int64(a) > le:
                    s += 1
            out[u, j] = s
    return out
