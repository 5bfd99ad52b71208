"""Purchase values that are not finite, huge or negative, and text that is not UTF-8, are bad rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest

from engine.errors import InputError
from engine.io.readers import iter_events, load_users

AS_OF = 1_790_000_000
T0 = AS_OF - 86_400 * 30


def users(n=4):
    return pa.table({"user_id": pa.array(range(1, n + 1), pa.int64())})


def events_csv(path: Path, rows: list[bytes]) -> Path:
    path.write_bytes(b"user_id,ts,event,channel,value\n" + b"\n".join(rows) + b"\n")
    return path


def test_non_finite_huge_and_negative_purchases_are_bad_rows_with_their_reasons(tmp_path):
    ts = b"2026-08-01T00:00:00Z"
    path = events_csv(tmp_path / "events.csv", [
        b"1," + ts + b",purchase,,12.5",
        b"2," + ts + b",purchase,,inf",
        b"3," + ts + b",purchase,,1e308",
        b"4," + ts + b",purchase,,-5",
        b"1," + ts + b",purchase,,nan",
        b"2," + ts + b",session,,",
    ])
    idx = load_users(users()).index
    with pytest.raises(InputError) as info:
        list(iter_events(path, idx, as_of=AS_OF))
    msg = str(info.value)
    assert "3 of 6 events rows" in msg, msg
    assert "[bad_value]" in msg and "[negative_value]" in msg and "column 'value'" in msg
    q = tmp_path / "q.arrow"
    good = list(iter_events(path, idx, as_of=AS_OF, on_bad_rows="quarantine", quarantine=q))
    values = np.concatenate([b.value for b in good])
    assert np.nanmax(values) == 12.5 and len(values) == 3  # nan is "no value", not a bad one
    rej = feather.read_table(q)
    assert sorted(rej["reason"].to_pylist()) == ["bad_value", "bad_value", "negative_value"]


@pytest.mark.parametrize("fmt", ["csv", "arrow"])
def test_one_bad_byte_is_one_bad_row_not_a_bad_file(tmp_path, fmt):
    ts = "2026-08-01T00:00:00Z"
    if fmt == "csv":
        path = events_csv(tmp_path / "events.csv", [
            f"1,{ts},session,,".encode(), f"2,{ts},sess\xff\xfeion,,".encode("latin-1"),
            f"3,{ts},session,,".encode()])
    else:
        bad = pa.array([b"session", b"sess\xffion", b"session"], pa.binary()).view(pa.string())
        path = tmp_path / "events.arrow"
        feather.write_feather(pa.table({"user_id": pa.array([1, 2, 3], pa.int64()), "ts": pa.array(
            [T0] * 3, pa.timestamp("s", tz="UTC")), "event": bad}), path)
    idx = load_users(users()).index
    with pytest.raises(InputError) as info:
        list(iter_events(path, idx, as_of=AS_OF))
    msg = str(info.value)
    assert "1 of 3 events rows" in msg and "[bad_utf8]" in msg and "column 'event'" in msg, msg
    q = tmp_path / "q.arrow"
    good = list(iter_events(path, idx, as_of=AS_OF, on_bad_rows="quarantine", quarantine=q))
    assert sum(len(b) for b in good) == 2
    rej = feather.read_table(q)
    assert rej["reason"].to_pylist() == ["bad_utf8"] and "\ufffd" in rej["event"][0].as_py()


def test_a_bad_byte_in_a_passed_through_users_column_never_reaches_plan(tmp_path):
    path = tmp_path / "users.csv"
    path.write_bytes(b"user_id,nickname\n1,ann\n2,b\xe9a\n3,cy\n")
    with pytest.raises(InputError, match=r"column 'nickname': 1 row with text that is not valid UTF-8"):
        load_users(path)
    q = tmp_path / "q.arrow"
    u = load_users(path, on_bad_rows="quarantine", quarantine=q)
    assert u.table["user_id"].to_pylist() == [1, 3]
    u.table.validate(full=True)  # what later steps read is valid UTF-8
