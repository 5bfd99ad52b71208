"""engine.io: reading events and users in every format, normalisation, bad rows, quarantine."""

from __future__ import annotations

import datetime as dt

import numpy as np
import numpy.testing as npt
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import AS_OF, FORMATS, T0, events_table, users_table, write  # noqa: F401
from engine.errors import InputError
from engine.io.readers import EventBatch, UserIndex, iter_events, load_users, read_table
from engine.schema import CHANNEL_CODE, EVENT_CODE

def collect(batches) -> dict[str, np.ndarray]:
    batches = list(batches)
    assert all(isinstance(b, EventBatch) for b in batches)
    fields = ("uidx", "ts", "event", "channel", "value")
    if not batches:
        return {f: np.array([]) for f in fields}
    return {f: np.concatenate([getattr(b, f) for b in batches]) for f in fields}


def index_of(n: int = 5) -> UserIndex:
    return UserIndex(np.arange(1, n + 1, dtype=np.int64))


# ------------------------------------------------------------------ round trips
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_reads_the_same_events(tmp_path, fmt):
    # given the same good events in one format
    path = write(events_table(), tmp_path, fmt)
    # when they stream through iter_events
    got = collect(iter_events(path, index_of(), as_of=AS_OF))
    # then codes, seconds, dense indexes and values match the contract
    npt.assert_array_equal(got["uidx"], [0, 1, 2, 3, 4, 0, 1, 2])
    npt.assert_array_equal(got["ts"], [T0 + 3600 * i for i in range(8)])
    npt.assert_array_equal(got["event"], [EVENT_CODE[e] for e in events_table()["event"].to_pylist()])
    npt.assert_array_equal(got["channel"], [-1, 0, 0, 2, -1, 1, 0, 0])
    npt.assert_array_equal(got["value"], [np.nan, np.nan, np.nan, np.nan, 19.5, np.nan, np.nan, np.nan])
    assert got["event"].dtype == np.int8 and got["channel"].dtype == np.int8
    assert got["uidx"].dtype == np.int64 and got["ts"].dtype == np.int64


@pytest.mark.parametrize("fmt", FORMATS)
def test_read_table_round_trips(tmp_path, fmt):
    # given a table written in one format / when read back / then the rows are the same
    table = events_table()
    back = read_table(write(table, tmp_path, fmt))
    assert back.num_rows == table.num_rows
    assert back["event"].to_pylist() == table["event"].to_pylist()
    assert [int(x) for x in back["user_id"].to_pylist()] == table["user_id"].to_pylist()


@pytest.mark.parametrize("index_type", [pa.int8(), pa.int16(), pa.uint32(), pa.int64()])
def test_dictionary_columns_of_any_index_type(tmp_path, index_type):
    # given event and channel as dictionaries with an unusual index type and dictionary order
    t = events_table()
    ev = pa.DictionaryArray.from_arrays(
        pa.array([7, 6, 5, 4, 3, 2, 1, 0], index_type),
        pa.array(t["event"].to_pylist()[::-1]),
    )
    ch = pa.array(t["channel"].to_pylist()).dictionary_encode()
    ch = pa.DictionaryArray.from_arrays(ch.indices.cast(index_type), ch.dictionary)
    t = t.set_column(2, "event", ev).set_column(3, "channel", ch)
    path = write(t, tmp_path, "feather")
    # when read / then the codes follow the names, not the dictionary positions
    got = collect(iter_events(path, index_of(), as_of=AS_OF))
    names = ev.to_pylist()
    npt.assert_array_equal(got["event"], [EVENT_CODE[n] for n in names])
    npt.assert_array_equal(got["channel"], [-1 if c is None else CHANNEL_CODE[c] for c in t["channel"].to_pylist()])


@pytest.mark.parametrize("ts_type", [pa.timestamp("s"), pa.timestamp("ms"), pa.timestamp("us", tz="UTC"),
                                     pa.timestamp("ns", tz="America/New_York")])
def test_timestamps_of_any_unit_and_zone_become_utc_seconds(tmp_path, ts_type):
    # given the same instants stored in another unit or zone (naive = UTC)
    seconds = np.array([T0, T0 + 1, T0 + 86_399], dtype=np.int64)
    scale = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[ts_type.unit]
    t = pa.table({"user_id": pa.array([1, 2, 3], pa.int32()),
                  "ts": pa.array(seconds * scale, ts_type),
                  "event": ["session"] * 3})
    # when read / then the seconds are unchanged, and the int32 ids were widened
    got = collect(iter_events(write(t, tmp_path, "parquet"), index_of(), as_of=AS_OF))
    npt.assert_array_equal(got["ts"], seconds)
    npt.assert_array_equal(got["uidx"], [0, 1, 2])


def test_iso_strings_with_offsets_are_converted_to_utc(tmp_path):
    # given ts as ISO 8601 text: naive, Z, offset, date only, fractional seconds
    t = pa.table({"user_id": [1, 1, 1, 1, 1], "event": ["session"] * 5,
                  "ts": ["2026-09-01 12:00:00", "2026-09-01T12:00:00Z", "2026-09-01T14:00:00+02:00",
                         "2026-09-01", "2026-09-01T12:00:00.75Z"]})
    got = collect(iter_events(write(t, tmp_path, "csv"), index_of(), as_of=AS_OF))
    noon = int(dt.datetime(2026, 9, 1, 12, tzinfo=dt.timezone.utc).timestamp())
    npt.assert_array_equal(got["ts"], [noon, noon, noon, noon - 12 * 3600, noon])


def test_missing_optional_columns_are_fine(tmp_path):
    # given events without channel or value columns
    t = pa.table({"user_id": [1, 2], "ts": pa.array([T0, T0], pa.timestamp("s")), "event": ["session", "purchase"]})
    got = collect(iter_events(write(t, tmp_path, "feather"), index_of(), as_of=AS_OF))
    npt.assert_array_equal(got["channel"], [-1, -1])
    assert np.isnan(got["value"]).all()


# ------------------------------------------------------------------ batch size
@given(
    rows=st.lists(st.tuples(st.integers(0, 7), st.sampled_from(["session", "send", "bogus", None]),
                            st.sampled_from(["email", None, "fax"]), st.integers(-5, 5)), max_size=40),
    batch_rows=st.integers(1, 17),
)
def test_results_do_not_depend_on_batch_size(tmp_path_factory, rows, batch_rows):
    """Good rows, their order and the bad-row counts are the same for any batch size."""
    path = tmp_path_factory.mktemp("b") / "events.arrow"
    table = pa.table({
        "user_id": pa.array([r[0] for r in rows], pa.int64()),
        "ts": pa.array([AS_OF + r[3] for r in rows], pa.timestamp("s")),
        "event": pa.array([r[1] for r in rows], pa.string()),
        "channel": pa.array([r[2] for r in rows], pa.string()),
    })
    # written as several record batches so re-batching is exercised
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
        for chunk in table.to_batches(max_chunksize=3):
            w.write_batch(chunk)
    qa, qb = path.with_name("a.rejected.arrow"), path.with_name("b.rejected.arrow")
    one = collect(iter_events(path, index_of(), as_of=AS_OF, on_bad_rows="quarantine", quarantine=qa,
                              batch_rows=1 << 20))
    many = collect(iter_events(path, index_of(), as_of=AS_OF, on_bad_rows="quarantine", quarantine=qb,
                               batch_rows=batch_rows))
    for key in one:
        npt.assert_array_equal(one[key], many[key])
    a, b = read_table(qa), read_table(qb)
    assert a["reason"].to_pylist() == b["reason"].to_pylist()
    assert a["row"].to_pylist() == b["row"].to_pylist()
    assert len(one["uidx"]) + a.num_rows == len(rows)


# ------------------------------------------------------------------ bad rows, per rule and format
def _mutate(kind: str) -> tuple[pa.Table, str]:
    """Events with row 3 broken by rule ``kind``; returns the table and the column named."""
    t = events_table().to_pydict()
    column = {"null_user_id": "user_id", "bad_user_id": "user_id", "unknown_user": "user_id",
              "null_event": "event", "unknown_event": "event", "null_ts": "ts", "bad_ts": "ts",
              "future_ts": "ts", "unknown_channel": "channel", "missing_channel": "channel",
              "bad_value": "value"}[kind]
    if kind == "null_user_id":
        t["user_id"][3] = None
    elif kind == "bad_user_id":
        t["user_id"] = [str(v) for v in t["user_id"]]
        t["user_id"][3] = "4x"
    elif kind == "unknown_user":
        t["user_id"][3] = 999
    elif kind == "null_event":
        t["event"][3] = None
    elif kind == "unknown_event":
        t["event"][3] = "sesion"
    elif kind == "null_ts":
        t["ts"][3] = None
    elif kind == "bad_ts":
        t["ts"] = [v.strftime("%Y-%m-%dT%H:%M:%SZ") for v in t["ts"]]
        t["ts"][3] = "yesterday"
    elif kind == "future_ts":
        t["ts"][3] = dt.datetime.fromtimestamp(AS_OF + 1, dt.timezone.utc)
    elif kind == "unknown_channel":
        t["channel"][3] = "fax"
    elif kind == "missing_channel":
        t["channel"][3] = None
    elif kind == "bad_value":
        t["value"] = [None if v is None else str(v) for v in t["value"]]
        t["value"][3] = "lots"
    types = {"ts": pa.timestamp("s", tz="UTC") if kind != "bad_ts" else pa.string()}
    return pa.table({k: pa.array(v, types.get(k)) for k, v in t.items()}), column


KINDS = ["null_user_id", "bad_user_id", "unknown_user", "null_event", "unknown_event", "null_ts", "bad_ts",
         "future_ts", "unknown_channel", "missing_channel", "bad_value"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", KINDS)
def test_each_bad_row_rule_raises_a_clear_error(tmp_path, fmt, kind):
    # given events whose row 3 breaks one rule
    table, column = _mutate(kind)
    path = write(table, tmp_path, fmt)
    # when all events are read in error mode
    seen = []
    with pytest.raises(InputError) as info:
        for batch in iter_events(path, index_of(), as_of=AS_OF):
            seen.append(len(batch))
    # then the good rows were streamed first and one paragraph names file, column, count and the row
    msg = str(info.value)
    assert sum(seen) == 7
    assert str(path) in msg and f"column '{column}'" in msg and f"[{kind}]" in msg
    assert "1 of 8 events rows" in msg and "1 row with" in msg
    assert "row 3 {" in msg
    assert "--on-bad-rows quarantine" in msg and "\n" not in msg


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", KINDS)
def test_each_bad_row_rule_is_quarantined_without_losing_rows(tmp_path, fmt, kind):
    # given events whose row 3 breaks one rule
    table, _ = _mutate(kind)
    path = write(table, tmp_path, fmt)
    out = tmp_path / "out" / "scores.rejected.arrow"
    # when read in quarantine mode
    got = collect(iter_events(path, index_of(), as_of=AS_OF, on_bad_rows="quarantine", quarantine=out))
    # then good + rejected = input, and the rejected row carries its reason and row number
    rejected = read_table(out)
    assert len(got["uidx"]) + rejected.num_rows == table.num_rows
    assert rejected["reason"].to_pylist() == [kind]
    assert rejected["row"].to_pylist() == [3]
    assert {"user_id", "ts", "event"} <= set(rejected.column_names)


def test_bad_rows_are_counted_over_the_whole_file(tmp_path):
    # given unknown events in the first and the last of three batches
    t = pa.table({"user_id": [1] * 9, "ts": pa.array([T0] * 9, pa.timestamp("s")),
                  "event": ["x"] + ["session"] * 7 + ["y"]})
    path = write(t, tmp_path, "parquet")
    # when read in batches of 3 / then one error counts both, with both examples
    with pytest.raises(InputError) as info:
        list(iter_events(path, index_of(), as_of=AS_OF, batch_rows=3))
    msg = str(info.value)
    assert "2 rows with an event name" in msg and "row 0 {" in msg and "row 8 {" in msg


def test_at_most_five_examples(tmp_path):
    t = pa.table({"user_id": [77] * 12, "ts": pa.array([T0] * 12, pa.timestamp("s")), "event": ["session"] * 12})
    with pytest.raises(InputError) as info:
        list(iter_events(write(t, tmp_path, "feather"), index_of(), as_of=AS_OF))
    msg = str(info.value)
    assert "12 rows" in msg and "row 4 {" in msg and "row 5 {" not in msg


def test_quarantine_csv_by_suffix_and_empty_file_when_clean(tmp_path):
    # given clean events and a .csv quarantine path holding a stale file
    out = tmp_path / "rejected.csv"
    out.write_text("stale")
    list(iter_events(write(events_table(), tmp_path, "feather"), index_of(), as_of=AS_OF,
                     on_bad_rows="quarantine", quarantine=out))
    # then the quarantine is replaced by an empty CSV with the header
    back = pacsv.read_csv(out)
    assert back.num_rows == 0 and "reason" in back.column_names


def test_abandoned_iteration_writes_no_quarantine(tmp_path):
    t = pa.table({"user_id": [1, 99] * 4, "ts": pa.array([T0] * 8, pa.timestamp("s")), "event": ["session"] * 8})
    out = tmp_path / "q.arrow"
    it = iter_events(write(t, tmp_path, "feather"), index_of(), as_of=AS_OF, on_bad_rows="quarantine",
                     quarantine=out, batch_rows=2)
    next(it)
    it.close()
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".q.arrow")]


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_read_ahead_gives_the_same_batches_and_the_same_error(tmp_path, depth):
    # given 40 events in batches of 3 with an unknown user in the last batch
    t = pa.table({"user_id": [1, 2, 3, 4, 5] * 7 + [1, 2, 3, 4, 99],
                  "ts": pa.array([T0 + i for i in range(40)], pa.timestamp("s")), "event": ["session"] * 40})
    path = write(t, tmp_path, "feather")
    # when read plainly and on a reader thread, each up to the error
    runs = []
    for ahead in (0, depth):
        seen = []
        with pytest.raises(InputError) as info:
            for b in iter_events(path, index_of(), as_of=AS_OF, batch_rows=3, read_ahead=ahead):
                seen.append(b)
        runs.append((collect(seen), str(info.value)))
    # then the batches before the error and the error itself are the same
    for f in ("uidx", "ts", "event"):
        npt.assert_array_equal(runs[0][0][f], runs[1][0][f])
    assert runs[0][1] == runs[1][1] and "unknown_user" in runs[1][1]


@pytest.mark.parametrize("fmt", ["feather", "csv"])
def test_decoding_batches_on_threads_gives_the_same_rows_bad_rows_and_quarantine(tmp_path, fmt):
    # given 200 events in batches of 7, a good row every few bad ones (unknown users, later
    # events, unknown names, nulls) scattered over the batches, some batches all bad
    rng = np.random.default_rng(5)
    n = 200
    uid = rng.choice([1, 2, 3, 4, 5, 99], n).astype(object)
    uid[rng.random(n) < 0.05] = None
    ts = [T0 + int(i) for i in rng.integers(-10, 5000, n)]
    ts = [AS_OF + 60 if rng.random() < 0.05 else t for t in ts]
    ev = rng.choice(["session", "open", "purchase", "nap"], n).astype(object)
    t = pa.table({"user_id": pa.array(list(uid), pa.int64()), "ts": pa.array(ts, pa.timestamp("s")),
                  "event": pa.array(list(ev)), "channel": pa.array(["email"] * n),
                  "value": pa.array(rng.normal(5, 10, n))})
    t = t.set_column(0, "user_id", pa.array([None if 60 <= i < 74 else v for i, v in enumerate(uid)], pa.int64()))
    path = write(t, tmp_path, fmt)
    runs = []
    for decoders in (1, 2, 3):
        # when read with 1, 2 and 3 decoding threads, behind the reader thread or not
        q = tmp_path / f"q{decoders}.arrow"
        seen = list(iter_events(path, index_of(), as_of=AS_OF, on_bad_rows="quarantine", quarantine=q,
                                batch_rows=7, read_ahead=decoders - 1, decoders=decoders))
        with pytest.raises(InputError) as info:
            list(iter_events(path, index_of(), as_of=AS_OF, batch_rows=7, decoders=decoders))
        runs.append((collect(seen), feather.read_table(q), str(info.value)))
    # then the good rows, the quarantined rows (with their reasons and row numbers) and the error are the same
    for got in runs[1:]:
        for f in ("uidx", "ts", "event", "channel", "value"):
            npt.assert_array_equal(runs[0][0][f], got[0][f])
        assert got[1].equals(runs[0][1]) and got[2] == runs[0][2]
    assert 0 < len(runs[0][0]["uidx"]) < n and runs[0][1].num_rows > 20


@pytest.mark.parametrize("decoders", [1, 2])
def test_then_runs_on_the_decoding_thread_and_pairs_its_result_with_each_batch(tmp_path, decoders):
    # given events in batches of 3 with bad rows (an unknown user) among them
    t = pa.table({"user_id": [1, 99, 2, 3, 1, 2, 99, 4, 5, 1], "ts": pa.array([T0 + i for i in range(10)], pa.timestamp("s")),
                  "event": ["session"] * 10})
    path = write(t, tmp_path, "feather")
    import threading

    where = []

    def then(eb):
        where.append(threading.current_thread().name)
        return eb.uidx.sum()

    # when read with a function run on each batch where it is decoded
    plain = list(iter_events(path, index_of(), as_of=AS_OF, on_bad_rows="quarantine", quarantine=tmp_path / "a.arrow",
                             batch_rows=3, decoders=decoders))
    pairs = list(iter_events(path, index_of(), as_of=AS_OF, on_bad_rows="quarantine", quarantine=tmp_path / "b.arrow",
                             batch_rows=3, read_ahead=1, decoders=decoders, then=then))
    # then each batch comes with its result, the batches are the same, and the work ran off the consumer's thread
    assert [len(b) for b, _ in pairs] == [len(b) for b in plain]
    for (b, r), p in zip(pairs, plain):
        npt.assert_array_equal(b.uidx, p.uidx)
        assert r == p.uidx.sum()
    assert where and threading.current_thread().name not in where
    assert all(n.startswith("winback-decode" if decoders > 1 else "winback-read") for n in where)


@pytest.mark.parametrize("decoders", [1, 2])
def test_abandoned_read_ahead_writes_no_quarantine_and_stops_its_threads(tmp_path, decoders):
    import threading

    t = pa.table({"user_id": [1, 99] * 40, "ts": pa.array([T0] * 80, pa.timestamp("s")), "event": ["session"] * 80})
    out = tmp_path / "q.arrow"
    it = iter_events(write(t, tmp_path, "feather"), index_of(), as_of=AS_OF, on_bad_rows="quarantine",
                     quarantine=out, batch_rows=2, read_ahead=2, decoders=decoders)
    next(it)
    it.close()
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".q.arrow")]
    assert not [th for th in threading.enumerate() if th.name.startswith(("winback-read", "winback-decode"))]


# ------------------------------------------------------------------ whole-file problems
@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_required_column_names_it_and_lists_found(tmp_path, fmt):
    path = write(events_table().drop_columns(["ts"]), tmp_path, fmt)
    # when opened / then the error comes at once, before any batch
    with pytest.raises(InputError) as info:
        iter_events(path, index_of(), as_of=AS_OF)
    msg = str(info.value)
    assert str(path) in msg and "'ts'" in msg and "user_id, event, channel, value" in msg


def test_column_of_an_impossible_type(tmp_path):
    t = events_table().set_column(2, "event", pa.array(range(8), pa.int64()))
    with pytest.raises(InputError, match=r"column 'event' has type int64"):
        list(iter_events(write(t, tmp_path, "feather"), index_of(), as_of=AS_OF))


def test_unreadable_and_missing_files(tmp_path):
    junk = tmp_path / "events.arrow"
    junk.write_bytes(b"not arrow at all")
    with pytest.raises(InputError, match="cannot be read as ipc"):
        iter_events(junk, index_of(), as_of=AS_OF)
    with pytest.raises(InputError, match="no such file"):
        read_table(tmp_path / "nope.parquet")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_duplicated_column_name_is_one_line_naming_it(tmp_path, fmt, capsys):
    from engine.cli import main

    # given events with a second 'ts' column (a join or a spreadsheet export gone wrong)
    t = events_table()
    t = pa.Table.from_arrays(t.columns + [t["ts"]], names=t.column_names + ["ts"])
    path = write(t, tmp_path, fmt)
    users = write(users_table(), tmp_path, "feather", name="users")

    # when validated, then one line names the file and the column, exit 2, no traceback
    code = main(["validate", str(users), str(path), "--as-of", "2026-11-01"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    named = path / "part-0.arrow" if fmt == "dir" else path  # in a directory: the file with the copies
    assert str(named) in err and "column 'ts' appears 2 times" in err
    # and a whole-table read says the same
    with pytest.raises(InputError, match="column 'ts' appears 2 times"):
        read_table(path, "events")


# ------------------------------------------------------------------ users
def test_load_users_normalises_and_passes_through(tmp_path):
    # given users with string consents, a dictionary timezone, int32 ids and a custom column
    t = pa.table({
        "user_id": pa.array([30, 10, 20], pa.int32()),
        "timezone": pa.array(["Europe/Paris", None, ""]).dictionary_encode(),
        "consent_email": ["yes", None, "0"],
        "signup_at": ["2026-01-01", "2026-01-02T00:00:00Z", None],
        "plan": ["pro", "free", "free"],
    })
    users = load_users(write(t, tmp_path, "parquet", "users"))
    out = users.table
    # then types follow the contract, missing optional columns exist, order and extras are kept
    assert out.schema.field("user_id").type == pa.int64()
    assert out["user_id"].to_pylist() == [30, 10, 20]
    assert out["timezone"].to_pylist() == ["Europe/Paris", None, None]
    assert out["consent_email"].to_pylist() == [True, False, False]
    assert out["consent_sms"].to_pylist() == [False, False, False]
    assert out.schema.field("signup_at").type == pa.timestamp("us", tz="UTC")
    assert out["plan"].to_pylist() == ["pro", "free", "free"]
    assert out["email"].null_count == 3
    npt.assert_array_equal(users.index.lookup(np.array([10, 20, 30, 40])), [1, 2, 0, -1])


# ------------------------------------------------------------------ edge inputs
def test_empty_events_and_users(tmp_path):
    # given files with the columns but no rows
    users = load_users(write(users_table().slice(0, 0), tmp_path, "feather", "users"))
    events = write(events_table().slice(0, 0), tmp_path, "parquet")
    out = tmp_path / "q.arrow"
    # when read / then nothing streams, the index is empty and the quarantine is an empty file
    assert list(iter_events(events, users, as_of=AS_OF, on_bad_rows="quarantine", quarantine=out)) == []
    assert len(users) == 0 and users.index.lookup(np.array([1])).tolist() == [-1]
    assert read_table(out).num_rows == 0


def test_directory_of_files_with_different_dictionaries(tmp_path):
    # given two IPC files whose event dictionaries differ in content and order
    d = tmp_path / "events"
    d.mkdir()
    for name, evs in (("a.arrow", ["session", "purchase"]), ("b.arrow", ["purchase", "session", "session"])):
        feather.write_feather(pa.table({"user_id": [1] * len(evs), "ts": pa.array([T0] * len(evs), pa.timestamp("s")),
                                        "event": pa.array(evs).dictionary_encode()}), d / name)
    # when read as one directory / then codes follow the names, in file order
    got = collect(iter_events(d, index_of(), as_of=AS_OF))
    npt.assert_array_equal(got["event"], [0, 1, 1, 0, 0])


def test_csv_directory(tmp_path):
    d = tmp_path / "events"
    d.mkdir()
    pacsv.write_csv(events_table().slice(0, 4), d / "part-0.csv")
    pacsv.write_csv(events_table().slice(4), d / "part-1.csv")
    got = collect(iter_events(d, index_of(), as_of=AS_OF))
    npt.assert_array_equal(got["uidx"], [0, 1, 2, 3, 4, 0, 1, 2])


def test_reads_partitioned_datasets_written_by_partition(tmp_path):
    # given users and events hash-partitioned into Parquet datasets
    from engine.io.partition import partition

    users = write(pa.table({"user_id": pa.array([1, 2, 3, 4, 5], pa.int64())}), tmp_path, "feather", "users")
    events = write(events_table(), tmp_path, "feather", "events")
    partition(users, events, tmp_path / "parts", partitions=3)
    # when read back from the directories / then every user and event is there once
    loaded = load_users(tmp_path / "parts" / "users")
    got = collect(iter_events(tmp_path / "parts" / "events", loaded, as_of=AS_OF))
    assert sorted(loaded.table["user_id"].to_pylist()) == [1, 2, 3, 4, 5]
    ids = loaded.index.ids[got["uidx"]]
    assert sorted(ids.tolist()) == sorted(events_table()["user_id"].to_pylist())


def test_directory_ignores_other_files(tmp_path):
    # given a directory of Parquet files beside a README and a hidden temp file
    d = tmp_path / "events"
    d.mkdir()
    pq.write_table(events_table(), d / "part-0.parquet")
    (d / "README.md").write_text("events exported nightly")
    (d / ".part-1.parquet.tmp").write_bytes(b"half-written")
    # when read / then only the data file counts
    assert len(collect(iter_events(d, index_of(), as_of=AS_OF))["uidx"]) == 8


def test_malformed_csv_is_an_input_error(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("user_id,ts,event\n1,2026-09-01,session\n2,2026-09-01\n")
    with pytest.raises(InputError, match=r"events.csv: cannot be read as csv .*Expected 3 columns"):
        list(iter_events(path, index_of(), as_of=AS_OF))


def _validate_err(users, events, capsys) -> str:
    from engine.cli import main

    code = main(["validate", str(users), str(events), "--as-of", "2026-11-01"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("encoding,what", [("utf-16", "UTF-16 text"), ("cp1252", "not UTF-8 text")])
def test_a_csv_header_that_is_not_utf8_says_how_to_re_save_it(tmp_path, capsys, encoding, what):
    # given a users CSV saved as Excel's "Unicode text" (UTF-16) or with a Windows-1252 header
    users = tmp_path / "users.csv"
    users.write_bytes("user_id,prénom\n1,Zoë\n".encode(encoding))
    events = write(events_table(), tmp_path, "feather")

    # when validated, then one line: the file, what its header is, how to fix it
    err = _validate_err(users, events, capsys)
    assert err.startswith(f"InputError: {users}: cannot be read as csv: its header row is {what}")
    assert "re-save the file as CSV UTF-8" in err


def test_a_binary_file_named_csv_gives_a_printable_line(tmp_path, capsys):
    # given an Arrow file saved under a .csv name
    users = tmp_path / "users.csv"
    feather.write_feather(users_table(50), users)
    events = write(events_table(), tmp_path, "feather")

    # when validated, then the one line holds no control bytes and stays short
    err = _validate_err(users, events, capsys)
    assert f"{users}: cannot be read as csv" in err
    assert all(c.isprintable() and c != "\ufffd" for c in err.rstrip("\n")) and len(err) < 600


@pytest.mark.parametrize("sep", [";", "\t"])
def test_a_csv_with_semicolons_is_named_as_such(tmp_path, capsys, sep):
    # given a users CSV exported with another separator
    users = tmp_path / "users.csv"
    users.write_text(f"user_id{sep}email\n1{sep}a@example.com\n")
    events = write(events_table(), tmp_path, "feather")

    # when validated, then the message says which separator it looks like and what winback reads
    err = _validate_err(users, events, capsys)
    assert f"the file looks {sep!r}-separated: winback reads comma-separated CSV" in err


def test_unwritable_quarantine_is_an_input_error(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(InputError, match="cannot write the quarantine file"):
        list(iter_events(write(events_table(), tmp_path, "feather"), index_of(), as_of=AS_OF,
                         on_bad_rows="quarantine", quarantine=blocker / "q.arrow"))


def test_directory_file_with_another_schema_is_named(tmp_path):
    d = tmp_path / "events"
    d.mkdir()
    pq.write_table(events_table(), d / "a.parquet")
    pq.write_table(events_table().set_column(0, "user_id", pa.array(["1"] * 8)).drop_columns(["ts"])
                   .append_column("ts", pa.array([True] * 8)), d / "b.parquet")
    with pytest.raises(InputError) as info:
        list(iter_events(d, index_of(), as_of=AS_OF))
    assert "b.parquet" in str(info.value) and "same columns and types" in str(info.value)


@pytest.mark.parametrize("text_type", [pa.large_string(), pa.string_view()])
def test_large_and_view_strings(tmp_path, text_type):
    t = events_table()
    for i, name in enumerate(t.column_names):
        if name in ("event", "channel"):
            t = t.set_column(i, name, t[name].cast(text_type))
    t = t.set_column(1, "ts", pa.array([d.date() for d in t["ts"].to_pylist()], pa.date32()))
    got = collect(iter_events(write(t, tmp_path, "feather"), index_of(), as_of=AS_OF))
    npt.assert_array_equal(got["channel"], [-1, 0, 0, 2, -1, 1, 0, 0])
    assert (got["ts"] % 86_400 == 0).all()


def test_arrow_ipc_stream_file(tmp_path):
    # given events written in the IPC *stream* format rather than the file format
    path = tmp_path / "events.arrows"
    table = events_table()
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    # when read / then the same events come out
    got = collect(iter_events(path, index_of(), as_of=AS_OF))
    npt.assert_array_equal(got["uidx"], [0, 1, 2, 3, 4, 0, 1, 2])


def test_later_events_can_be_skipped_instead_of_being_bad_rows(tmp_path):
    """Given events after as_of (one of them also for an unknown user) and a bad row before it,
    when read with later="ignore", then the later rows are neither good nor bad, and the bad
    row is reported with its row number in the file."""
    users = load_users(pa.table({"user_id": pa.array([1, 2], pa.int64())}))
    ts = pa.array([AS_OF - 50, AS_OF + 10, AS_OF - 40, AS_OF + 20, AS_OF - 30], pa.timestamp("s", "UTC"))
    ev = pa.table({"user_id": pa.array([1, 2, 1, 99, 98], pa.int64()), "ts": ts, "event": ["session"] * 5})
    path = write(ev, tmp_path, "feather")
    with pytest.raises(InputError) as err:
        list(iter_events(path, users, as_of=AS_OF))
    assert "3 of 5 events rows" in str(err.value)
    with pytest.raises(InputError) as err:
        list(iter_events(path, users, as_of=AS_OF, later="ignore"))
    assert "1 of 5 events rows" in str(err.value) and "row 4 {user_id: 98" in str(err.value)
    good = list(iter_events(write(ev.slice(0, 4), tmp_path, "feather", "e4"), users, as_of=AS_OF, later="ignore"))
    assert np.concatenate([b.ts for b in good]).tolist() == [AS_OF - 50, AS_OF - 40]
