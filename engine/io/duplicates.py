"""Exact duplicate event rows, estimated from a sample of users as the events stream by.

An event log delivered at least once (a retried export, a file appended twice) holds rows
that repeat another row exactly: same ``user_id``, ``ts`` (to the second), ``event``,
``channel``, ``value`` and ``item_id``.  Each copy would count: twice the sends in
``sends_7d`` (a smaller fatigue budget), twice the opens in the send-time histogram (a
different ``best_hour_local``), twice the purchase in ``monetary``.  Active days, and so
BG/NBD and ``lapse_risk``, do not change.  Removing them exactly needs a sort of every
event; this module instead keeps every event of one user in ``stride`` (a power of two,
about :data:`SAMPLE_USERS` users in all; every user of a small file) and counts the
duplicates among them at the end: the fraction is an unbiased estimate for the file, since
duplicates are always of the same user.  Cost: a mask and a gather per batch, and one sort
of the sample (about 0.5 M rows at 1 M users, 0.1 s, beside the other statistics).

Genuine repeats exist (two equal purchases on a day in a date-only log: 0.3 % of CDNOW's
rows), so the scores' metadata always records the estimate and a warning is raised only at
:data:`WARN_FRACTION` or more.
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["DuplicateSample", "SAMPLE_USERS", "WARN_FRACTION", "duplicate_rows", "duplicates_warning"]

#: users whose events are kept (at least; the stride is a power of two)
SAMPLE_USERS = 4096
#: the fraction of duplicate rows in the sample from which the estimate is a warning
WARN_FRACTION = 0.01


def duplicate_rows(uidx, ts, event, channel, value, item=None) -> np.ndarray:
    """bool per row: True for a row equal in every field to an earlier row (all copies but one).

    ``value`` compares by its bits (NaN equals NaN); ``item`` None: no item column.  Rows are
    sorted by a 64-bit mix of their fields (one argsort, not a sort by six keys), then
    neighbours with equal mixes are compared field by field, so a collision is never a duplicate.
    """
    n = len(uidx)
    if n == 0:
        return np.zeros(0, bool)
    keys = [np.asarray(uidx, np.int64), np.asarray(ts, np.int64), np.asarray(event, np.int64),
            np.asarray(channel, np.int64), np.asarray(value, np.float64).view(np.int64)]
    if item is not None:
        keys.append(np.asarray(item, np.int64))
    h = np.zeros(n, np.uint64)
    with np.errstate(over="ignore"):
        for k in keys:  # splitmix64-style: multiply, xor-shift, per field
            h = (h ^ k.view(np.uint64)) * np.uint64(0x9E3779B97F4A7C15)
            h ^= h >> np.uint64(29)
    order = np.argsort(h, kind="stable")
    hs = h[order]
    cand = np.flatnonzero(hs[1:] == hs[:-1])  # neighbours whose mixes agree
    same = np.ones(len(cand), bool)
    for k in keys:
        s = k[order]
        same &= s[cand + 1] == s[cand]
    dup = np.zeros(n, bool)
    dup[order[cand[same] + 1]] = True
    return dup


class DuplicateSample:
    """Keeps the events of the users with ``uidx % stride == 0`` (``stride`` a power of two
    giving at least :data:`SAMPLE_USERS` users); :meth:`add` is safe on several threads."""

    def __init__(self, n_users: int, sample_users: int = SAMPLE_USERS):
        stride = 1
        while n_users // (stride * 2) >= sample_users:
            stride *= 2
        self.stride = stride
        self.users = -(-n_users // stride) if n_users else 0
        self._mask = np.int64(stride - 1)
        self._parts: list[tuple] = []
        self._lock = threading.Lock()
        self.rows_seen = 0

    def add(self, batch) -> None:
        """Keep ``batch``'s (an :class:`engine.io.readers.EventBatch`) rows of sampled users."""
        uidx = batch.uidx
        if self.stride == 1:
            part = (uidx, batch.ts, batch.event, batch.channel, batch.value, batch.item)
        else:
            keep = np.flatnonzero((uidx & self._mask) == 0)
            part = (uidx[keep], batch.ts[keep], batch.event[keep], batch.channel[keep], batch.value[keep],
                    None if batch.item is None else batch.item[keep])
        with self._lock:
            self._parts.append(part)
            self.rows_seen += len(uidx)

    def result(self) -> dict:
        """{"sampled_users", "sampled_rows", "duplicate_rows", "fraction", "example"}; ``example``:
        (user index, ts, event code, channel code) of one duplicated row, or None."""
        parts, self._parts = self._parts, []
        if not parts:
            return {"sampled_users": self.users, "sampled_rows": 0, "duplicate_rows": 0, "fraction": 0.0,
                    "example": None}
        cols = [np.concatenate([p[i] for p in parts]) for i in range(5)]
        items = None if any(p[5] is None for p in parts) else np.concatenate([p[5] for p in parts])
        dup = duplicate_rows(*cols, items)
        n, d = len(dup), int(dup.sum())
        first = int(np.argmax(dup)) if d else -1
        example = None if first < 0 else tuple(int(c[first]) for c in cols[:4])
        return {"sampled_users": self.users, "sampled_rows": n, "duplicate_rows": d,
                "fraction": d / n if n else 0.0, "example": example}


def duplicates_warning(result: dict, user_ids) -> str | None:
    """The warning for :meth:`DuplicateSample.result` (None under :data:`WARN_FRACTION`); ``user_ids``:
    the users' ids by index (an Arrow array or numpy), for the example row."""
    if result["fraction"] < WARN_FRACTION or not result["duplicate_rows"]:
        return None
    from engine.schema import CHANNELS, EVENTS
    from engine.tz import from_epoch_seconds

    u, t, e, c = result["example"]
    when = from_epoch_seconds(np.array([t])).to_pylist()[0].strftime("%Y-%m-%dT%H:%M:%SZ")
    what = f"{EVENTS[e]}{'' if c < 0 else ' ' + CHANNELS[c]}"
    sample = "" if result["sampled_users"] >= len(user_ids) else \
        f" (estimated from the events of {result['sampled_users']:,} users)"
    return (f"events: {result['fraction']:.1%} of event rows{sample} repeat another row exactly (same user_id, ts to "
            f"the second, event, channel, value, item_id), e.g. user {user_ids[u]} {what} at {when}; each copy "
            "counts in sends_7d, opens, best_hour_local and monetary (lapse_risk counts days, not rows); remove "
            "the copies upstream if the log was delivered twice, e.g. with duckdb: "
            "COPY (SELECT DISTINCT * FROM 'events.parquet') TO 'events_dedup.parquet'")
