"""Scores columns as numpy arrays for the planner, with defaults for missing values."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.tz import to_epoch_seconds

__all__ = ["col"]


def col(table: pa.Table, name: str, default, dtype=None) -> np.ndarray:
    """A scores column as numpy, ``default`` where null or missing (timestamps: epoch s)."""
    # an all-null column (e.g. from CSV) has Arrow type null: treat it as missing
    if name not in table.column_names or pa.types.is_null(table[name].type):
        return np.full(table.num_rows, default, dtype=dtype)
    c = table[name]
    if pa.types.is_timestamp(c.type):
        return to_epoch_seconds(c)
    return c.fill_null(default).to_numpy(zero_copy_only=False).astype(dtype) if dtype else \
        c.fill_null(default).to_numpy(zero_copy_only=False)
