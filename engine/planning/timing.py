"""Send-time arithmetic for the planner: local hours, quiet hours and capacity levelling.

All instants are int64 epoch seconds (UTC).  Local time is :mod:`engine.tz` (the one
implementation: exact transitions, a 15-minute offset table for the kernels); its
``OffsetLookup``, ``local_to_utc``, ``next_local_time`` and ``local_instants`` are
re-exported here for the planner.
"""

from __future__ import annotations

import numpy as np

from engine.jit import njit
from engine.tz import OFFSET_STEP, OffsetLookup, local_instants, local_to_utc, next_local_time

__all__ = ["OffsetLookup", "local_instants", "local_to_utc", "next_local_time", "in_quiet", "apply_quiet_hours",
           "level_capacity"]


def in_quiet(minute: np.ndarray, quiet: tuple[int, int] | None) -> np.ndarray:
    """True where local minute-of-day lies in the quiet window [start, end)."""
    if quiet is None:
        return np.zeros(np.shape(minute), bool)
    qs, qe = quiet
    if qs == qe:
        return np.zeros(np.shape(minute), bool)
    return (minute >= qs) | (minute < qe) if qs > qe else (minute >= qs) & (minute < qe)


def apply_quiet_hours(off: OffsetLookup, zone: np.ndarray, t: np.ndarray, quiet) -> np.ndarray:
    """Move instants inside local quiet hours to the end of the window (never drop them).

    When the window ends inside an hour that a DST change repeats (``01:30`` on the night
    clocks go back), an instant in the second pass of that hour moves to the second
    ``01:30``, the one after it, not the first (which is before it: still quiet).
    """
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
    again = q & (moved < t)  # the end's first occurrence is behind us: its later one, at t's offset
    if again.any():
        moved = np.where(again, target_local - off(zone, t), moved)
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
                hi = (cand - off_t0) // OFFSET_STEP
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
