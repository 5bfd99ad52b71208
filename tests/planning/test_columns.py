"""Scores columns as numpy for the planner: defaults where null or missing, timestamps as epoch seconds."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from engine.planning.columns import col


def test_col_fills_nulls_and_missing_columns_with_the_default():
    t = pa.table({"sends_7d": pa.array([1, None, 3], pa.int64()), "blank": pa.nulls(3)})
    assert col(t, "sends_7d", 0).tolist() == [1, 0, 3]
    assert col(t, "sends_7d", 0, np.int8).dtype == np.int8
    assert col(t, "absent", 2.5).tolist() == [2.5, 2.5, 2.5]
    assert col(t, "blank", -1, np.int64).tolist() == [-1, -1, -1]  # an all-null CSV column is missing


def test_col_gives_timestamps_as_utc_epoch_seconds():
    at = dt.datetime(2026, 11, 1, 12, 30, tzinfo=dt.timezone.utc)
    t = pa.table({"last_active": pa.array([at], pa.timestamp("us", tz="UTC"))})
    assert col(t, "last_active", 0).tolist() == [int(at.timestamp())]
