"""CDNOW as winback users/events tables (shared by the lapse and backtest tests).

``tests/data/cdnow_sample.txt`` is the 2,357-customer CDNOW sample that ships with
lifetimes (columns: customer id, sample id, date YYYYMMDD, CDs, dollars): every line
becomes one ``purchase`` event at 12:00 UTC of its day.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

SAMPLE = Path(__file__).parent / "data" / "cdnow_sample.txt"
AS_OF = "1997-10-01T00:00:00Z"


def purchases(path: Path = SAMPLE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(customer id int64, epoch seconds int64, dollars float64) per line."""
    raw = np.loadtxt(path, dtype=np.float64)
    ymd = raw[:, 2].astype(np.int64)
    days = np.array([f"{d // 10000:04d}-{d // 100 % 100:02d}-{d % 100:02d}" for d in ymd], "datetime64[D]")
    return raw[:, 0].astype(np.int64), days.astype("datetime64[s]").astype(np.int64) + 12 * 3600, raw[:, 4]


def tables(before: int | None = None) -> tuple[pa.Table, pa.Table]:
    """users (every customer, UTC) and purchase events (those before ``before`` epoch seconds, if given)."""
    ids, ts, value = purchases()
    keep = np.ones(len(ids), bool) if before is None else ts < before
    uid = np.unique(ids)
    users = pa.table({"user_id": uid, "timezone": pa.array(["UTC"] * len(uid))})
    events = pa.table({"user_id": ids[keep], "ts": pa.array(ts[keep], pa.timestamp("s", tz="UTC")),
                       "event": pa.array(["purchase"] * int(keep.sum())), "value": value[keep]})
    return users, events
