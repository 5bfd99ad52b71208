"""Time helpers: parse ``--as-of``, convert between epoch seconds and Arrow timestamps.

Inside the numeric core every instant is ``int64`` seconds since the Unix epoch, UTC.
"""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pyarrow as pa

from engine.errors import ConfigError
from engine.schema import TIMESTAMP

__all__ = ["parse_as_of", "to_epoch_seconds", "from_epoch_seconds"]


def parse_as_of(value: str | dt.datetime | int | float | None) -> int:
    """Return ``value`` as epoch seconds (UTC). ``None`` means now; naive means UTC.

    Accepts ISO 8601 strings (``2026-11-01``, ``2026-11-01T12:00:00Z``,
    ``2026-11-01T12:00:00+01:00``), datetimes and epoch seconds.
    """
    if value is None:
        return int(time.time())
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ConfigError(
                f"as-of {value!r} is not an ISO 8601 date or time; "
                "use e.g. 2026-11-01 or 2026-11-01T12:00:00Z"
            ) from None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return int(value.timestamp())


def to_epoch_seconds(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Arrow timestamps (any unit; naive read as UTC) to int64 epoch seconds; nulls become INT64_MIN."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    unit = arr.type.unit
    ints = arr.cast(pa.int64())
    out = ints.fill_null(np.iinfo(np.int64).min).to_numpy(zero_copy_only=False)
    div = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[unit]
    if div != 1:
        null = out == np.iinfo(np.int64).min
        out = np.floor_divide(out, div)
        out[null] = np.iinfo(np.int64).min
    return out


def from_epoch_seconds(seconds: np.ndarray, null_mask: np.ndarray | None = None) -> pa.Array:
    """int64 epoch seconds to ``timestamp[us, UTC]``; ``null_mask`` True marks nulls."""
    us = np.asarray(seconds, dtype=np.int64) * 1_000_000
    return pa.array(us, type=TIMESTAMP, mask=null_mask)
