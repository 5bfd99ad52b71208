"""Send-time arithmetic for the planner: local hours, quiet hours and capacity levelling.

All instants are int64 epoch seconds (UTC).  Local time comes from an hourly UTC-offset
table per timezone (:func:`engine.sendtime.offset_table`), exact for zones whose
transitions fall on the hour.  Local-to-UTC conversion (:func:`local_to_utc`) picks
the first occurrence of a repeated local time and shifts a skipped one forward by the
size of the gap, the convention of ``zoneinfo`` with ``fold=0``.
"""

from __future__ import annotations

import numpy as np

from engine.jit import njit

__all__ = ["OffsetLookup", "local_instants", "local_to_utc", "next_local_time", "apply_quiet_hours", "level_capacity"]


class OffsetLookup:
    """UTC offset (seconds) of zone ``z`` at instant ``t``, vectorised."""

    def __init__(self, table: np.ndarray, t0: int):
        self.table = np.ascontiguousarray(table)
        self.t0 = int(t0)

    def __call__(self, zone: np.ndarray, t: np.ndarray) -> np.ndarray:
        h = np.clip((np.asarray(t, np.int64) - self.t0) // 3600, 0, self.table.shape[1] - 1)
        return self.table[zone, h].astype(np.int64)

    def local(self, zone, t):
        return np.asarray(t, np.int64) + self(zone, t)


def local_instants(table, at: np.ndarray, default: str = "UTC") -> np.ndarray:
    """Local wall time (naive epoch seconds) of each row's UTC instant ``at`` in its ``timezone``."""
    from engine.scoring.sendtime import offset_table, zone_index

    at = np.asarray(at, np.int64)
    if not len(at):
        return at.copy()
    zones, zone = zone_index(table, default)
    table_, t0 = offset_table(zones, int(at.min()) - 86400, int(at.max()) + 86400)
    return OffsetLookup(table_, t0).local(zone, at)


def local_to_utc(off: OffsetLookup, zone: np.ndarray, local: np.ndarray) -> np.ndarray:
    """UTC instants whose local wall time in ``zone`` is ``local`` (seconds, naive)."""
    local = np.asarray(local, np.int64)
    o_before = off(zone, local - 14 * 3600)
    o_after = off(zone, local + 14 * 3600)
    u_b = local - o_before
    u_a = local - o_after
    ok_b = off(zone, u_b) == o_before
    ok_a = off(zone, u_a) == o_after
    both = ok_b & ok_a
    out = np.where(ok_b, u_b, np.where(ok_a, u_a, u_b))  # neither: a gap -> shift forward (u_b)
    return np.where(both, np.minimum(u_a, u_b), out)


def next_local_time(off: OffsetLookup, zone: np.ndarray, after: np.ndarray, minute_of_day: np.ndarray) -> np.ndarray:
    """First instant >= ``after`` at local ``minute_of_day`` (0..1439) in each user's zone."""
    after = np.asarray(after, np.int64)
    loc = off.local(zone, after)
    day = loc // 86400
    cand = day * 86400 + np.asarray(minute_of_day, np.int64) * 60
    t = local_to_utc(off, zone, cand)
    later = t < after
    if later.any():
        t2 = local_to_utc(off, zone, cand + 86400)
        t = np.where(later, t2, t)
    later = t < after
    if later.any():  # a DST day can need one more day
        t = np.where(later, local_to_utc(off, zone, cand + 2 * 86400), t)
    return t


def in_quiet(minute: np.ndarray, quiet: tuple[int, int] | None) -> np.ndarray:
    """True where local minute-of-day lies in the quiet window [start, end)."""
    if quiet is None:
        return np.zeros(np.shape(minute), bool)
    qs, qe = quiet
    if qs == qe:
        return np.zeros(np.shape(minute), bool)
    return (minute >= qs) | (minute < qe) if qs > qe else (minute >= qs) & (minute < qe)


def apply_quiet_hours(off: OffsetLookup, zone: np.ndarray, t: np.ndarray, quiet) -> np.ndarray:
    """Move instants inside local quiet hours to the end of the window (never drop them)."""
    t = np.asarray(t, np.int64)
    if quiet is None:
        return t
    qs, qe = quiet
    loc = off.local(zone, t)
    minute = (loc % 86400) // 60
    q = in_quiet(minute, quiet)
    if not q.any():
        return t
    day = loc // 86400
    next_day = (qs > qe) & (minute >= qs)
    target_local = (day + next_day.astype(np.int64)) * 86400 + qe * 60
    moved = local_to_utc(off, zone, target_local)
    return np.where(q, np.maximum(moved, t), t)


@njit
def level_capacity(t, order, zone, lower, cap, off_table, off_t0, q_start, q_end, max_shift_hours, counts, h_base):
    """Assign each message an hour with room, in ``order`` (who keeps their hour first).

    ``t``: wanted instants; ``lower``: earliest allowed instant per message; ``counts``:
    messages already in each UTC hour (index ``hour - h_base``), updated in place.
    Tries the wanted hour, then +1, -1, +2, -2, ... up to ``max_shift_hours``, skipping
    hours before ``lower`` or inside local quiet hours.  Returns new instants, -1 where
    no hour had room.
    """
    n = t.shape[0]
    out = np.full(n, -1, np.int64)
    n_off = off_table.shape[1]
    n_buckets = counts.shape[0]
    for k in range(n):
        i = order[k]
        for step in range(2 * max_shift_hours + 1):
            shift = (step + 1) // 2
            if step % 2 == 0:
                shift = -shift
            cand = t[i] + shift * 3600
            if cand < lower[i]:
                continue
            b = cand // 3600 - h_base
            if b < 0 or b >= n_buckets:
                continue
            if counts[b] >= cap:
                continue
            if q_start != q_end:
                hi = (cand - off_t0) // 3600
                if hi < 0:
                    hi = 0
                elif hi >= n_off:
                    hi = n_off - 1
                minute = ((cand + off_table[zone[i], hi]) % 86400) // 60
                if q_start > q_end:
                    quiet = minute >= q_start or minute < q_end
                else:
                    quiet = minute >= q_start and minute < q_end
                if quiet:
                    continue
            counts[b] += 1
            out[i] = cand
            break
    return out
