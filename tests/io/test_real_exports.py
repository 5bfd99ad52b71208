"""Exports as real systems write them (not as ``winback generate`` does): each is read exactly,
or refused in one line naming the file and column; never silently misread."""

from __future__ import annotations

import numpy as np
import numpy.testing as npt
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from tests.helpers import AS_OF, T0, events_table
from engine.errors import InputError
from engine.io.readers import UserIndex, iter_events


def _values(source) -> list[float]:
    return [v for b in iter_events(source, UserIndex(np.arange(1, 6, dtype=np.int64)), as_of=AS_OF)
            for v in b.value.tolist()]


# ------------------------------------------------------------------ directories
@pytest.mark.parametrize("first_has_value", [True, False])
def test_a_directory_whose_files_differ_in_columns_keeps_every_files_values(tmp_path, first_has_value):
    # given a directory of Parquet files where only one holds 'value' (as float32)
    d = tmp_path / "events"
    d.mkdir()
    t = events_table()
    with_value = t.slice(4).set_column(4, "value", t["value"].slice(4).cast(pa.float32()))
    without = t.slice(0, 4).drop_columns(["value"])
    pq.write_table(with_value if first_has_value else without, d / "a.parquet")
    pq.write_table(without if first_has_value else with_value, d / "b.parquet")
    # when read, then the purchase keeps its amount whichever file comes first
    values = _values(d)
    assert len(values) == 8 and [v for v in values if v == v] == [19.5]


def test_a_directory_where_one_file_has_an_all_null_column_keeps_the_others_values(tmp_path):
    # given a first file whose 'value' column is of the null type (an all-None column of pandas)
    d = tmp_path / "events"
    d.mkdir()
    t = events_table()
    pq.write_table(t.slice(0, 4).set_column(4, "value", pa.nulls(4)), d / "a.parquet")
    pq.write_table(t.slice(4), d / "b.parquet")
    # when read, then the second file's amounts are there
    assert [v for v in _values(d) if v == v] == [19.5]


def test_a_directory_keeps_its_files_schema_metadata(tmp_path):
    # given a partitioned output whose files carry winback's metadata, one file lacking a column
    from engine.io.source import read_table

    d = tmp_path / "scores"
    (d / "part=0").mkdir(parents=True)
    (d / "part=1").mkdir()
    meta = {b"winback.score": b'{"as_of": 1}'}
    pq.write_table(pa.table({"user_id": [1]}).replace_schema_metadata(meta), d / "part=0" / "part-0.parquet")
    pq.write_table(pa.table({"user_id": [2], "x": [0.5]}).replace_schema_metadata(meta), d / "part=1" / "part-0.parquet")
    # when read as one table, then the metadata, every column and the partition key are there
    t = read_table(d)
    assert t.schema.metadata[b"winback.score"] == b'{"as_of": 1}'
    assert t.column_names == ["user_id", "x", "part"] and t["x"].to_pylist() == [None, 0.5]


def test_a_directory_of_several_formats_is_refused_naming_them(tmp_path):
    # given half the events as Arrow and half as Parquet in one directory
    d = tmp_path / "events"
    d.mkdir()
    feather.write_feather(events_table().slice(0, 4), d / "a.arrow")
    pq.write_table(events_table().slice(4), d / "b.parquet")
    # when read, then one line names both kinds instead of reading the Parquet half only
    with pytest.raises(InputError, match=r"more than one format: Parquet \(b.parquet\), Arrow \(a.arrow\)") as info:
        _values(d)
    assert "\n" not in str(info.value)


def test_a_directory_whose_files_spell_a_column_differently_is_refused(tmp_path):
    # given two CSV files, the second with 'User_ID' for 'user_id'
    d = tmp_path / "events"
    d.mkdir()
    pacsv.write_csv(events_table().slice(0, 4), d / "a.csv")
    pacsv.write_csv(events_table().slice(4).rename_columns(["User_ID", "ts", "event", "channel", "value"]),
                    d / "b.csv")
    # when read, then the message names the file and both spellings (not 4 rows of null user_id)
    with pytest.raises(InputError, match=r"file b.csv names the column 'User_ID' where a.csv names it 'user_id'"):
        _values(d)


# ------------------------------------------------------------------ timestamps
@pytest.mark.parametrize("fmt,early", [(fmt, early) for fmt in ("arrow", "csv")
                                       for early in (0, -2_208_988_800, T0 // 1000)]
                         + [("arrow", -(2**62) // 1_000_000)])  # as text, year -146,000 is no ISO time
def test_placeholder_and_wrong_unit_timestamps_are_bad_rows(tmp_path, fmt, early):
    # given events where one row is at 1970-01-01 or 1900-01-01 (placeholders for "unknown"),
    # in January 1970 (epoch seconds read as milliseconds) or hundreds of millennia ago
    t = events_table()
    secs = t["ts"].cast(pa.int64()).to_pylist()
    secs[2] = early
    t = t.set_column(1, "ts", pa.array(secs, pa.int64()).cast(pa.timestamp("s", tz="UTC")))
    path = tmp_path / f"events.{fmt}"
    if fmt == "arrow":
        t = t.set_column(2, "event", t["event"].dictionary_encode())  # the decoder's types
        feather.write_feather(t, path)
    else:
        pacsv.write_csv(t, path)
    # when read, then that row is rejected as early_ts, naming the column, and the rest are good
    with pytest.raises(InputError, match=r"column 'ts': 1 row with a timestamp before 1971-01-01 .*\[early_ts\], "
                                         r"e\.g\. row 2 ") as info:
        list(iter_events(path, UserIndex(np.arange(1, 6, dtype=np.int64)), as_of=AS_OF))
    assert "1 of 8 events rows" in str(info.value)
    good = [b for b in iter_events(path, UserIndex(np.arange(1, 6, dtype=np.int64)), as_of=AS_OF,
                                   on_bad_rows="quarantine", quarantine=tmp_path / "q.arrow")]
    npt.assert_array_equal(np.concatenate([b.ts for b in good]), [s for i, s in enumerate(secs) if i != 2])


def test_validate_refuses_seconds_written_as_milliseconds(tmp_path, capsys):
    # given events whose epoch seconds were cast to a millisecond timestamp (every row in January 1970)
    from engine.cli import main

    users = tmp_path / "users.arrow"
    feather.write_feather(pa.table({"user_id": pa.array([1, 2, 3, 4, 5], pa.int64())}), users)
    t = events_table()
    t = t.set_column(1, "ts", t["ts"].cast(pa.int64()).cast(pa.timestamp("ms", tz="UTC")))
    feather.write_feather(t, tmp_path / "events.arrow")
    # when validated, then exit 2 with one line naming the rule, not "clean"
    code = main(["validate", str(users), str(tmp_path / "events.arrow"), "--as-of", "2026-11-01", "--no-progress"])
    out = capsys.readouterr()
    assert code == 2 and "clean" not in out.out
    assert out.err.count("\n") == 1 and "8 of 8 events rows" in out.err and "[early_ts]" in out.err
    assert "epoch seconds" in out.err


# ------------------------------------------------------------------ user ids
def test_float_ids_above_2_to_the_53_are_bad_not_merged(tmp_path):
    # given users with neighbouring large ids (as snowflake ids are) and events whose ids were
    # stored as float64 (pandas does so to a column with a missing value): 2**53 + 1 reads as 2**53
    from engine.io.readers import load_users

    big = 2**53
    users = load_users(pa.table({"user_id": pa.array([big, big + 1], pa.int64())}))
    events = pa.table({"user_id": pa.array([float(big + 1), 4.0e15], pa.float64()),
                       "ts": pa.array([T0, T0], pa.timestamp("s", tz="UTC")), "event": ["session", "session"]})
    # when read, then the float at 2**53 is a bad user id, not an event of user 2**53
    with pytest.raises(InputError, match=r"2 of 2 events rows .*\[bad_user_id\], e\.g\. row 0 ") as info:
        list(iter_events(events, users, as_of=AS_OF))
    assert "below 2^53" in str(info.value) and "unknown_user" in str(info.value)  # 4e15 is exact: only unknown
    # and a float id below 2**53 still reads as the whole number it holds
    assert load_users(pa.table({"user_id": pa.array([4.0e15, 12.0])})).table["user_id"].to_pylist() == [
        4_000_000_000_000_000, 12]


# ------------------------------------------------------------------ event and channel names
def test_event_names_in_other_case_are_refused_saying_how_to_write_them(tmp_path, capsys):
    # given a CSV whose event names are capitalised or padded, one misspelt, and a channel in capitals
    from engine.cli import main

    users = tmp_path / "users.csv"
    users.write_text("user_id\n1\n2\n")
    events = tmp_path / "events.csv"
    events.write_text("user_id,ts,event,channel\n1,2026-09-01T10:00:00Z,Session,\n2,2026-09-01T11:00:00Z,send ,email\n"
                      "1,2026-09-02T10:00:00Z,sesion,\n2,2026-09-02T10:00:00Z,send,EMAIL\n")
    # when validated
    code = main(["validate", str(users), str(events), "--as-of", "2026-11-01", "--no-progress"])
    err = capsys.readouterr().err
    # then one line says which names differ only in case or spaces, what they are, how to fix them
    assert code == 2 and err.count("\n") == 1
    assert ("'Session', 'send ' are 'session', 'send' in other case or with spaces, and names are matched "
            "exactly: write them in lower case without spaces (in SQL lower(trim(event))") in err
    assert "misspelt: 'sesion' (did you mean 'session'?)" in err
    assert "'EMAIL' is 'email' in other case" in err and "lower(trim(channel))" in err


def test_an_empty_channel_in_an_arrow_file_says_to_write_null(tmp_path):
    t = events_table().set_column(3, "channel", pa.array(["", "email", "email", "push", "", "sms", "email", "email"]))
    with pytest.raises(InputError, match=r"\[unknown_channel\].*; an empty channel is not a missing one .*write "
                                         r"null for none"):
        list(iter_events(t, UserIndex(np.arange(1, 6, dtype=np.int64)), as_of=AS_OF))


# ------------------------------------------------------------------ whole files
def test_a_header_only_csv_without_a_line_end_reads_as_no_rows(tmp_path):
    # given an export with no rows whose header line has no line end
    path = tmp_path / "events.csv"
    path.write_text("user_id,ts,event,channel,value")
    # when read, then it is an empty events file, as with the line end
    assert list(iter_events(path, UserIndex(np.arange(1, 6, dtype=np.int64)), as_of=AS_OF)) == []


def test_an_empty_csv_says_it_is_empty(tmp_path):
    path = tmp_path / "events.csv"
    path.write_bytes(b"")
    with pytest.raises(InputError, match=r"events.csv: the file is empty \(0 bytes, not even a header row\)"):
        list(iter_events(path, UserIndex(np.arange(1, 6, dtype=np.int64)), as_of=AS_OF))


@pytest.mark.parametrize("name,payload,says", [
    ("events.csv.gz", b"\x1f\x8b\x08\x00rest", "it is gzip-compressed; decompress it first"),
    ("events.xlsx", b"PK\x03\x04rest", "it is a ZIP archive (an Excel .xlsx workbook is one); export the sheet as CSV"),
    ("events.json", b'{"user_id": 1}\n', "it is text (CSV or JSON?)"),
    ("events.feather", b"FEA1" + b"\x00" * 40, "it is a Feather version 1 file"),
    ("events.arrow", b"PAR1" + b"\x00" * 40, "it is a Parquet file; name it .parquet"),
])
def test_a_file_of_another_format_says_which_it_is(tmp_path, name, payload, says):
    # given a compressed, spreadsheet, text, old Feather or Parquet file under a name read as Arrow
    path = tmp_path / name
    path.write_bytes(payload)
    # when read, then the one line says what the file is and what to do
    with pytest.raises(InputError, match="cannot be read as ipc") as info:
        list(iter_events(path, UserIndex(np.arange(1, 6, dtype=np.int64)), as_of=AS_OF))
    assert says in str(info.value) and "\n" not in str(info.value)


def test_a_null_name_in_a_dictionary_is_a_null_event_not_an_unknown_one():
    # given a categorical event column (pandas, Spark) whose dictionary holds a null name
    d = pa.array(["session", None, "send"], pa.string())
    events = events_table().set_column(2, "event", pa.DictionaryArray.from_arrays(
        pa.array([0, 1, 2, 0, 0, 0, 1, 0], pa.int8()), d)).set_column(3, "channel", pa.array(
            [None, "email", "email", None, None, None, "email", None]).dictionary_encode())
    # when read, then those rows have no event name (null_event), like a null index
    with pytest.raises(InputError) as info:
        list(iter_events(events, UserIndex(np.arange(1, 6, dtype=np.int64)), as_of=AS_OF))
    assert "2 rows with a null event name [null_event]" in str(info.value) and "unknown_event" not in str(info.value)


def test_a_users_file_with_no_rows_is_named_as_the_cause(tmp_path, capsys):
    # given a users CSV with its header only, and events
    from engine.cli import main

    users = tmp_path / "users.csv"
    users.write_text("user_id,email\n")
    events = tmp_path / "events.arrow"
    feather.write_feather(events_table(), events)
    # when validated, then the one line says the users table is empty, not only that 8 users are unknown
    code = main(["validate", str(users), str(events), "--as-of", "2026-11-01", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "[unknown_user]" in err
    assert "the users table has no rows at all" in err


def test_milliseconds_stored_as_seconds_show_their_real_year(tmp_path):
    # given epoch milliseconds cast to a seconds timestamp (year 57,902)
    t = events_table()
    t = t.set_column(1, "ts", pa.array([v * 1000 for v in t["ts"].cast(pa.int64()).to_pylist()], pa.int64())
                     .cast(pa.timestamp("s", tz="UTC")))
    # when read, then the examples show that year (Arrow's own text of it is a negative year)
    with pytest.raises(InputError, match=r"\[future_ts\], e\.g\. row 0 \{user_id: 1, ts: '5\d{4}-\d\d-\d\dT"):
        list(iter_events(t, UserIndex(np.arange(1, 6, dtype=np.int64)), as_of=AS_OF))


def test_ids_written_by_a_float_column_read_as_the_same_users(tmp_path):
    # given a users and an events CSV written from float id columns (pandas: '1.0'), the events with
    # one id past 2**53 that a float could not have held but the text holds exactly
    from engine.io.readers import load_users

    users = tmp_path / "users.csv"
    users.write_text("user_id,email\n1.0,a@example.com\n2.0,\n9007199254740993.0,\n")
    events = tmp_path / "events.csv"
    events.write_text("user_id,ts,event\n2.0,2026-09-01T10:00:00Z,session\n1,2026-09-01T11:00:00Z,session\n"
                      "9007199254740993.0,2026-09-01T12:00:00Z,session\n")
    # when read, then the ids are the whole numbers written, digit by digit
    loaded = load_users(users)
    assert loaded.table["user_id"].to_pylist() == [1, 2, 2**53 + 1]
    uidx = np.concatenate([b.uidx for b in iter_events(events, loaded, as_of=AS_OF)])
    assert uidx.tolist() == [1, 0, 2]


# ------------------------------------------------------------------ signup_at placeholders
def test_a_signup_before_1971_is_read_as_unknown_and_said(tmp_path, capsys):
    from engine.cli import main
    from engine.io.readers import load_users

    # given users whose signup_at holds placeholders (1970-01-01, 1900-01-01) beside a real date
    signup = pa.array([0, -2_208_988_800, T0 - 86400, None, 0], pa.timestamp("s", tz="UTC"))
    users = pa.table({"user_id": pa.array([1, 2, 3, 4, 5], pa.int64()), "signup_at": signup})
    feather.write_feather(users, tmp_path / "users.arrow")
    feather.write_feather(events_table(), tmp_path / "events.arrow")
    # when read, then the placeholders are unknown (null), the real date kept, and the count said
    u = load_users(tmp_path / "users.arrow")
    got = u.table["signup_at"].cast(pa.int64()).to_pylist()
    assert got[:2] == [None, None] and got[2] == (T0 - 86400) * 1_000_000 and got[3:] == [None, None]
    assert u.addresses["signup_at"]["not_an_address"] == 3
    # and validate (as score) says so in one line
    main(["validate", str(tmp_path / "users.arrow"), str(tmp_path / "events.arrow"), "--as-of", "2026-09-21"])
    out = capsys.readouterr().out
    assert "signup_at: 3 before 1971, read as unknown" in out and "1900-01-01T00:00:00Z" in out
