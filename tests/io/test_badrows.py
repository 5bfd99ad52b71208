"""Bad-row bookkeeping: one reason per row, counts and examples in one message, the quarantine file."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pytest

from engine.errors import InputError
from engine.io.badrows import EVENTS_REASONS, ITEMS_REASONS, MAX_EXAMPLES, USERS_REASONS, BadRows, \
    default_quarantine


def _batch(n: int) -> pa.Table:
    return pa.table({"user_id": pa.array(range(n), pa.int64()), "event": pa.array(["x"] * n).dictionary_encode()})


def test_the_first_reason_marked_wins_and_counts_add_up():
    bad = BadRows(_batch(0), "events", on_bad_rows=None)
    reason = np.zeros(4, np.int16)
    bad.mark(reason, np.array([True, True, False, False]), "null_user_id")
    bad.mark(reason, np.array([False, True, True, False]), "unknown_event")
    bad.record(_batch(4), reason, 0)
    assert bad.counts == {"null_user_id": 2, "unknown_event": 1}
    assert (bad.rows_read, bad.total, bad.good) == (4, 3, 1)
    assert bad.finish() is None  # counting only: no error, no file


def test_error_mode_raises_one_message_with_counts_and_at_most_five_examples():
    bad = BadRows("events.csv", "events")
    reason = np.zeros(12, np.int16)
    bad.mark(reason, np.ones(12, bool), "unknown_event")
    bad.record(_batch(12), reason, 100)
    with pytest.raises(InputError) as err:
        bad.finish()
    msg = str(err.value)
    assert msg.startswith("events.csv: 12 of 12 events rows break the data contract; column 'event': 12 rows")
    assert "[unknown_event]" in msg and "--on-bad-rows quarantine" in msg
    assert msg.count("row 1") == MAX_EXAMPLES and "row 100 {user_id: 0, event: 'x'}" in msg
    assert "row 105" not in msg


def test_quarantine_writes_rejected_rows_with_reason_and_input_row(tmp_path):
    out = tmp_path / "q.arrow"
    bad = BadRows("events.arrow", "events", on_bad_rows="quarantine", quarantine=out)
    for offset in (0, 3):
        reason = np.zeros(3, np.int16)
        bad.mark(reason, np.array([False, True, False]), "future_ts")
        bad.record(_batch(3), reason, offset)
    assert not out.exists()  # moved into place only at the end
    assert bad.finish() == out and bad.finish() == out
    q = feather.read_table(out)
    assert q.column_names == ["user_id", "event", "reason", "row"]
    assert q["row"].to_pylist() == [1, 4] and q["reason"].to_pylist() == ["future_ts", "future_ts"]
    assert q.schema.field("event").type == pa.string()  # dictionaries written plain


def test_an_empty_quarantine_file_replaces_a_stale_one_and_csv_works(tmp_path):
    out = tmp_path / "q.csv"
    out.write_text("stale\n")
    bad = BadRows("events.arrow", "events", on_bad_rows="quarantine", quarantine=out)
    bad.record(_batch(2), np.zeros(2, np.int16), 0)
    bad.finish()
    assert pacsv.read_csv(out).num_rows == 0


def test_abort_leaves_no_quarantine_file(tmp_path):
    out = tmp_path / "q.arrow"
    bad = BadRows("events.arrow", "events", on_bad_rows="quarantine", quarantine=out)
    reason = np.ones(2, np.int16)
    bad.record(_batch(2), reason, 0)
    bad.abort()
    assert list(tmp_path.iterdir()) == []


def test_bad_settings_and_the_default_quarantine_path(tmp_path):
    with pytest.raises(InputError, match="on_bad_rows must be 'error' or 'quarantine', not 'skip'"):
        BadRows("e.csv", "events", on_bad_rows="skip")
    with pytest.raises(InputError, match="needs a file to put them in: pass quarantine=PATH"):
        BadRows(_batch(1), "users", on_bad_rows="quarantine")
    (tmp_path / "events.csv.gz").write_text("")
    assert default_quarantine(tmp_path / "events.csv.gz") == tmp_path / "events.rejected.arrow"
    assert default_quarantine(tmp_path) == tmp_path.with_name(f"{tmp_path.name}.rejected.arrow")


def test_reason_tables_name_a_column_and_say_what_is_wrong():
    for table in (USERS_REASONS, EVENTS_REASONS, ITEMS_REASONS):
        for name, (column, what) in table.items():
            assert name == name.lower() and column and what
