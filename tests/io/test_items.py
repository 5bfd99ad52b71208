"""The catalogue: loading and checking items, categories as codes, trend scores, tables in metadata."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from engine.errors import InputError
from engine.io.items import NO_EXPIRY, decode_table, encode_table, item_stats_table, load_items, trend_score

ADDED = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)


def _items() -> pa.Table:
    return pa.table({
        "item_id": pa.array([30, 10, 20], pa.int64()),
        "title": ["Crime", "Cooking", "Both"],
        "category": [["books"], ["food", "books"], ["food"]],
        "added_at": pa.array([ADDED] * 3, pa.timestamp("us", tz="UTC")),
        "expires_at": pa.array([None, ADDED + dt.timedelta(days=30), None], pa.timestamp("us", tz="UTC")),
        "url": ["u30", "u10", "u20"],
    })


def test_items_keep_input_order_with_sorted_category_codes_and_no_expiry_for_null():
    it = load_items(_items())
    assert len(it) == 3 and it.categories == ("books", "food")
    assert [it.cat_idx[it.cat_ptr[i]:it.cat_ptr[i + 1]].tolist() for i in range(3)] == [[0], [0, 1], [1]]
    assert it.lookup(np.array([10, 20, 30, 40])).tolist() == [1, 2, 0, -1]
    assert it.expires.tolist() == [NO_EXPIRY, int((ADDED + dt.timedelta(days=30)).timestamp()), NO_EXPIRY]
    assert it.added.tolist() == [int(ADDED.timestamp())] * 3
    assert "url" in it.table.column_names and not it.editorial.any()


def test_csv_categories_are_separated_by_a_bar(tmp_path):
    t = _items().drop_columns(["category"]).append_column("category", pa.array(["books", "food|books", "food"]))
    pacsv.write_csv(t, tmp_path / "items.csv")
    it = load_items(tmp_path / "items.csv")
    assert [it.cat_idx[it.cat_ptr[i]:it.cat_ptr[i + 1]].tolist() for i in range(3)] == [[0], [0, 1], [1]]


def test_bad_items_are_refused_or_quarantined(tmp_path):
    t = _items()
    bad = pa.table({**{c: t[c] for c in t.column_names}, "title": pa.array(["Crime", None, "Both"])})
    with pytest.raises(InputError, match=r"column 'title': 1 row with a null or empty title \[null_title\]"):
        load_items(bad)
    it = load_items(bad, on_bad_rows="quarantine", quarantine=tmp_path / "q.arrow")
    assert len(it) == 2 and it.rejected == 1 and it.rows_read == 3
    with pytest.raises(InputError, match="no such items file"):
        load_items(tmp_path / "absent.arrow")


def test_trend_score_is_growth_in_poisson_standard_deviations():
    got = trend_score(np.array([3, 400, 0, 5]), np.array([0, 1200, 0, 20]))
    assert got.tolist() == pytest.approx([3.0, 100 / np.sqrt(301), 0.0, 0.0])


def test_item_stats_and_tables_survive_the_metadata_round_trip():
    it = load_items(_items())
    stats = item_stats_table(it, np.array([0.5, 0.2, 0.3]), np.array([1, 2, 3]), np.array([4, 8, 0]))
    assert stats["item_id"].to_pylist() == [30, 10, 20]
    assert stats["trend"].to_pylist() == pytest.approx(trend_score(np.array([1, 2, 3]), np.array([4, 8, 0])).tolist())
    raw = encode_table(stats)
    assert isinstance(raw, bytes) and decode_table(raw).equals(stats)
