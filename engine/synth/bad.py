"""Bad rows for the synthetic world: every kind of the data contract, counted.

Events: ``unknown_event`` ("pageview"), ``unknown_channel`` ("fax"), ``missing_channel``
(a send without one), ``future_ts`` (1 h to 30 days after as_of), ``unknown_user``
(negative ids no user has), ``null_user_id``.  Users: ``null_user_id``,
``duplicate_user_id`` (a copy of a real row) and ``unknown_timezone``
("Mars/Olympus_Mons").  The kinds carry the reason names ``winback validate`` reports.
Wrong column types are left out: one file cannot hold two types for a column.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.schema import CHANNELS, EVENT_CODE, EVENTS, SECONDS_PER_DAY, TIMESTAMP

__all__ = ["bad_events", "bad_users"]


def bad_events(rng, ids: np.ndarray, n_bad: int, as_of: int, dicts, schema: pa.Schema):
    """``n_bad`` bad event rows of every kind (``as_of`` in epoch s, UTC); returns (batch, counts by kind)."""
    kinds = ["unknown_event", "unknown_channel", "missing_channel", "future_ts", "unknown_user", "null_user_id"]
    k = len(kinds)
    owner = rng.integers(0, len(ids), n_bad * k)
    uid = ids[owner].astype(np.int64)
    ts = as_of - rng.integers(3600, 30 * SECONDS_PER_DAY, n_bad * k)
    ev = np.full(n_bad * k, EVENT_CODE["session"], np.int8)
    ch = np.full(n_bad * k, -1, np.int8)
    sl = {name: slice(i * n_bad, (i + 1) * n_bad) for i, name in enumerate(kinds)}
    ev[sl["unknown_event"]] = len(EVENTS)                    # "pageview"
    ev[sl["unknown_channel"]] = EVENT_CODE["open"]
    ch[sl["unknown_channel"]] = len(CHANNELS)                # "fax"
    ev[sl["missing_channel"]] = EVENT_CODE["send"]
    ts[sl["future_ts"]] = as_of + rng.integers(3600, 30 * SECONDS_PER_DAY, n_bad)
    uid[sl["unknown_user"]] = -1 - rng.integers(0, 10**6, n_bad)
    null_uid = np.zeros(n_bad * k, bool)
    null_uid[sl["null_user_id"]] = True
    batch = pa.RecordBatch.from_arrays([
        pa.array(uid, pa.int64(), mask=null_uid),
        pa.array(ts * 1_000_000, TIMESTAMP),
        pa.DictionaryArray.from_arrays(pa.array(ev, pa.int8()), dicts[0]),
        pa.DictionaryArray.from_arrays(pa.array(np.maximum(ch, 0), pa.int8(), mask=ch < 0), dicts[1]),
        pa.nulls(n_bad * k, pa.float64()),
    ], schema=schema)
    return batch, {name: n_bad for name in kinds}


def bad_users(rng, users: pa.Table, frac: float):
    """Append about ``frac`` of ``users.num_rows`` bad rows, a third each: null ids, duplicate ids,
    unknown timezones; returns (table, counts by kind)."""
    n_bad = max(1, int(round(frac * users.num_rows / 3)))
    dup = users.take(pa.array(rng.integers(0, users.num_rows, n_bad)))
    null_ids = users.take(pa.array(rng.integers(0, users.num_rows, n_bad)))
    null_ids = null_ids.set_column(0, "user_id", pa.nulls(n_bad, pa.int64()))
    bad_tz = users.take(pa.array(rng.integers(0, users.num_rows, n_bad)))
    new_ids = pa.array(-2_000_000 - np.arange(n_bad, dtype=np.int64))   # apart from unknown_user ids
    bad_tz = bad_tz.set_column(0, "user_id", new_ids)
    bad_tz = bad_tz.set_column(1, "timezone", pa.array(["Mars/Olympus_Mons"] * n_bad, pa.string()))
    out = pa.concat_tables([users, dup, null_ids, bad_tz])
    return out, {"null_user_id": n_bad, "duplicate_user_id": n_bad, "unknown_timezone": n_bad}
