"""Contact pressure from the ledger: every campaign's messages, sent and scheduled.

The promise of the policy (at most ``max_messages`` per user in any ``window_days``
window, across channels and per channel) holds across campaigns because planning
counts what the ledger already holds for each user, whatever campaign put it there:
messages ``sent`` (at ``sent_at``), and messages still to go (``planned``,
``in_flight``, ``failed`` with a retry pending, at their ``send_at`` /
``next_attempt_at``).  Skipped and dead messages never reached the user and do not count.

The check is exact for rolling windows: a new message at ``t`` fits when every window
``(s - W, s]`` that contains ``t`` holds fewer than ``cap`` other messages.  The
fullest such window ends at ``t`` or at one of the user's messages in ``[t, t + W)``,
so those ends are the only ones tested (:func:`max_in_windows`).
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.schema import CHANNELS, NEVER

__all__ = ["clear_of_contacts", "ledger_contacts", "max_in_windows", "over_other_caps", "NEVER"]

#: users per block of :func:`max_in_windows` (bounds its [block, K+1, K] temporary)
_BLOCK = 1 << 15
#: ledger states whose messages reach (or will reach) the user
COUNTED_STATES = ("sent", "planned", "in_flight", "failed")


def ledger_contacts(ledger, user_ids: np.ndarray, campaign_id: str | None, lo: int, hi: int,
                    gaps_before: int | None = None, caps: bool = False) -> tuple[np.ndarray, ...]:
    """The ledger's messages of other campaigns per user, between ``lo`` and ``hi`` (epoch s),
    and with ``gaps_before`` (the campaign's start) also those within the largest recorded
    ``min_gap_hours`` of any campaign before it (:func:`engine.ledger.read.read_contacts`).

    Returns ``(times, channels, gaps)``, each ``[len(user_ids), K]`` with K the most
    messages any user has there: instants (epoch s, UTC; :data:`NEVER` pads), channel
    codes (``-1`` pads) and each message's own campaign's ``min_gap_hours`` in seconds (0
    pads).  Messages of ``campaign_id`` itself are left out (a re-plan of the same campaign
    replaces them).  No ledger file: ``K = 0``.  ``caps``: also each message's campaign's
    ``max_messages`` and window in seconds, ``[n, K]`` (0 pads and unknown campaigns).
    """
    n = len(user_ids)
    empty = (np.full((n, 0), NEVER, np.int64), np.full((n, 0), -1, np.int8), np.zeros((n, 0), np.int64)) + \
        ((np.zeros((n, 0), np.int64), np.zeros((n, 0), np.int64)) if caps else ())
    if ledger is None or not os.path.exists(ledger):
        return empty
    from engine.ledger.read import read_contacts

    got = read_contacts(ledger, exclude_campaign=campaign_id, lo=lo, hi=hi, gaps_before=gaps_before, caps=caps)
    uid, channel, t, g = got[:4]
    extra = list(got[4:])
    if not len(uid):
        return empty
    ch = _channel_codes(pa.array(channel, pa.string()))
    order_users = np.argsort(user_ids, kind="stable")
    sorted_users = np.asarray(user_ids)[order_users]
    pos = np.searchsorted(sorted_users, uid)
    pos_c = np.minimum(pos, max(n - 1, 0))
    hit = (pos < n) & (sorted_users[pos_c] == uid) if n else np.zeros(len(uid), bool)
    rows = order_users[pos_c[hit]]
    t, ch, g = t[hit], ch[hit], g[hit]
    extra = [x[hit] for x in extra]
    if not len(rows):
        return empty
    order = np.lexsort((t, rows))
    rows, t, ch, g = rows[order], t[order], ch[order], g[order]
    extra = [x[order] for x in extra]
    counts = np.bincount(rows, minlength=n)
    k = int(counts.max())
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(len(rows)) - first[rows]
    times = np.full((n, k), NEVER, np.int64)
    chans = np.full((n, k), -1, np.int8)
    gaps = np.zeros((n, k), np.int64)
    times[rows, slot] = t
    chans[rows, slot] = ch
    gaps[rows, slot] = g
    out = (times, chans, gaps)
    for x in extra:
        m = np.zeros((n, k), np.int64)
        m[rows, slot] = x
        out += (m,)
    return out


def over_other_caps(own: np.ndarray, ext_t: np.ndarray, ext_cap: np.ndarray, ext_win: np.ndarray,
                    t: np.ndarray) -> np.ndarray:
    """bool per user: a message at ``t`` would break the cap of another campaign whose message
    (``ext_t``, with its campaign's ``ext_cap`` per ``ext_win`` seconds) lies in that campaign's
    window before ``t``: counting every message in ``(t - window, t]`` (``own``: this campaign's
    earlier steps, and ``ext_t``), one more must stay under its cap, whichever campaign sent first
    (the release check of ``winback send`` applies the same rule)."""
    out = np.zeros(len(t), bool)
    if not ext_t.shape[1]:
        return out
    every = np.concatenate([own, ext_t], axis=1)
    for cap, win in {(int(c), int(w)) for c, w in zip(ext_cap[ext_win > 0], ext_win[ext_win > 0])}:
        mine = (ext_cap == cap) & (ext_win == win) & (ext_t != NEVER) & (ext_t > t[:, None] - win) & \
            (ext_t <= t[:, None])
        has = mine.any(axis=1)
        if has.any():
            count = ((every != NEVER) & (every > t[:, None] - win) & (every <= t[:, None])).sum(axis=1)
            out |= has & (count >= cap)
    return out


def clear_of_contacts(times: np.ndarray, t: np.ndarray, gap, move) -> tuple[np.ndarray, np.ndarray]:
    """``(t, conflict)``: each instant ``t`` (epoch s) moved later until it is at least the gap
    from every one of the user's ``times`` ([n, K], :data:`NEVER` pads; before or after
    it), each move going to the latest conflicting contact + its gap and then through
    ``move`` (e.g. out of quiet hours); ``conflict`` is True where no such instant was found
    within K + 1 moves.  ``gap``: seconds, one for all or ``[n, K]``, one per contact (the
    larger of the two campaigns' ``min_gap_hours``)."""
    t = np.asarray(t, np.int64).copy()
    gap = np.broadcast_to(np.asarray(gap, np.int64), times.shape)
    if not times.shape[1] or not (gap > 0).any():
        return t, np.zeros(len(t), bool)
    real = (times != NEVER) & (gap > 0)
    for _ in range(times.shape[1] + 1):
        near = real & (np.abs(times - t[:, None]) < gap)
        hit = near.any(axis=1)
        if not hit.any():
            break
        latest = np.where(near, times + gap, NEVER).max(axis=1)
        t = np.where(hit, move(np.where(hit, latest, t)), t)
    conflict = (real & (np.abs(times - t[:, None]) < gap)).any(axis=1)
    return t, conflict


def _channel_codes(col) -> np.ndarray:
    codes = pc.index_in(pc.cast(col, pa.string()), value_set=pa.array(list(CHANNELS)))
    return codes.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int8)


def max_in_windows(times: np.ndarray, t: np.ndarray, window: int) -> np.ndarray:
    """Per user, the most of ``times`` (``[n, K]``, :data:`NEVER` pads) in any rolling
    window ``(s - window, s]`` containing ``t[i]`` (seconds).  A message at ``t`` keeps
    a cap ``c`` when this is ``< c``."""
    times = np.asarray(times, np.int64)
    t = np.asarray(t, np.int64)
    n, k = times.shape
    out = np.zeros(n, np.int64)
    if k == 0 or n == 0:
        return out
    for lo in range(0, n, _BLOCK):
        e = times[lo:lo + _BLOCK]
        tt = t[lo:lo + _BLOCK, None]
        later = (e >= tt) & (e < tt + window)
        ends = np.concatenate([tt, np.where(later, e, tt)], axis=1)        # [b, K+1]
        inside = (e[:, None, :] > ends[:, :, None] - window) & (e[:, None, :] <= ends[:, :, None])
        out[lo:lo + _BLOCK] = inside.sum(axis=2).max(axis=1)
    return out
