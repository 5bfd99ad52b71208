"""engine.io.meta: the one reader and writer of ``winback.*`` schema metadata."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from engine.io.meta import PLAN, SCORE, read_meta, with_meta


def test_round_trip_keeps_other_metadata_unless_asked():
    t = pa.table({"a": [1]}).replace_schema_metadata({b"other": b"x"})
    t2 = with_meta(t, SCORE, {"as_of": 5, "r": np.float64(0.25)}, default=float)
    assert read_meta(t2, SCORE) == {"as_of": 5, "r": 0.25}
    assert t2.schema.metadata[b"other"] == b"x"
    t3 = with_meta(t2, PLAN, {"at": dt.date(2026, 11, 1)}, keep=False)
    assert read_meta(t3, PLAN) == {"at": "2026-11-01"} and read_meta(t3, SCORE) == {}


def test_absent_broken_or_non_object_metadata_reads_as_empty():
    t = pa.table({"a": [1]})
    assert read_meta(t, PLAN) == {}
    assert read_meta(t.replace_schema_metadata({PLAN: b"{not json"}), PLAN) == {}
    assert read_meta(t.replace_schema_metadata({PLAN: b"[1, 2]"}).schema, PLAN) == {}
