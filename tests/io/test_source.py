"""engine.io.source: the one table reader (files, directories, CSV text rules, errors)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from engine.errors import InputError
from engine.io.source import Source, read_table


def test_a_csv_scores_file_keeps_phones_and_addresses_as_text_and_ids_as_numbers(tmp_path):
    # given scores written as CSV with phones that look like numbers
    path = tmp_path / "scores.csv"
    path.write_text("user_id,phone,email,p_alive,timezone\n1,+15550001111,a@b.co,0.5,UTC\n"
                    "2,0044123,,0.25,\n")
    # when read back
    table = read_table(path, "scores")
    # then the phone keeps its '+' and leading zeros, empty fields are null, numbers stay numbers
    assert table["phone"].to_pylist() == ["+15550001111", "0044123"]
    assert table["email"].to_pylist() == ["a@b.co", None]
    assert table["timezone"].to_pylist() == ["UTC", None]
    assert table["user_id"].type == pa.int64() and table["p_alive"].type == pa.float64()


def test_every_format_and_a_directory_read_the_same_rows(tmp_path):
    t = pa.table({"user_id": pa.array([3, 1, 2], pa.int64()), "x": [0.5, 1.5, 2.5]})
    feather.write_feather(t, tmp_path / "t.arrow")
    pq.write_table(t, tmp_path / "t.parquet")
    pacsv.write_csv(t, tmp_path / "t.csv")
    d = tmp_path / "parts"
    d.mkdir()
    pq.write_table(t.slice(0, 2), d / "part-0.parquet")
    pq.write_table(t.slice(2), d / "part-1.parquet")
    (d / "_winback_plan.json").write_text("{}")  # sidecar files are not data
    for name in ("t.arrow", "t.parquet", "t.csv", "parts"):
        assert read_table(tmp_path / name).sort_by("user_id").to_pydict() == t.sort_by("user_id").to_pydict()


def test_schema_metadata_survives_an_arrow_file(tmp_path):
    t = pa.table({"a": [1]}).replace_schema_metadata({b"winback.plan": b'{"campaign_id": "c"}'})
    feather.write_feather(t, tmp_path / "p.arrow")
    assert read_table(tmp_path / "p.arrow").schema.metadata[b"winback.plan"] == b'{"campaign_id": "c"}'


def test_missing_and_unreadable_files_are_one_line_input_errors(tmp_path):
    with pytest.raises(InputError, match=r"^scores .*nope.arrow does not exist"):
        read_table(tmp_path / "nope.arrow", "scores")
    junk = tmp_path / "junk.arrow"
    junk.write_bytes(b"not arrow")
    with pytest.raises(InputError, match="cannot be read as ipc") as info:
        read_table(junk, "scores")
    assert "\n" not in str(info.value)


def test_source_batches_are_bounded(tmp_path):
    t = pa.table({"user_id": pa.array(range(10_000), pa.int64())})
    feather.write_feather(t, tmp_path / "t.arrow", chunksize=3_000)
    sizes = [b.num_rows for b in Source(tmp_path / "t.arrow", batch_rows=4_096).batches()]
    assert sum(sizes) == 10_000 and max(sizes) <= 4_096


def test_large_ipc_file_is_mapped_and_its_pages_handed_back(tmp_path, monkeypatch):
    """A file above the mapping limit is read through a mapping whose pages go back after each
    batch; the batches, and views of them kept after the release, hold the file's values."""
    import mmap

    import numpy as np

    from engine.io import source

    if not hasattr(mmap, "MADV_DONTNEED"):
        pytest.skip("no madvise on this platform: large files are read, not mapped")
    # given an events file of several batches, and a limit below its size
    n = 300_000
    table = pa.table({"user_id": pa.array(np.arange(n, dtype=np.int64)), "value": pa.array(np.arange(n) * 0.5)})
    path = tmp_path / "events.arrow"
    feather.write_feather(table, path, compression="uncompressed", chunksize=50_000)
    monkeypatch.setattr(source, "_MMAP_MAX_BYTES", 1024)
    src = source.Source(path, batch_rows=50_000)
    assert src._mm is not None
    kept = []
    # when every batch is released as soon as it has been seen
    for b in src.batches():
        kept.append(b.column(0).to_numpy())
        src.release(b)
    # then the values read back, after the release too, are the file's
    assert np.array_equal(np.concatenate(kept), np.arange(n))
    assert src.read_all().equals(table)


@pytest.mark.parametrize("fmt", ["arrow", "parquet", "csv", "dir", "table"])
def test_contract_columns_in_other_spellings_are_read_under_the_contract_name(tmp_path, fmt):
    """'User ID', 'EMAIL' and 'Phone' are user_id, email and phone (a CRM export's headers),
    in every format, selected by contract name; a column outside the contract keeps its name;
    the phone stays text in CSV."""
    from engine.io.readers import load_users

    t = pa.table({"User ID": pa.array([1, 2, 3], pa.int64()), "EMAIL": ["a@x.io", None, "c@x.io"],
                  "Phone": ["+14155550100", None, "+14155550102"], "First Name": ["A", "B", "C"]})
    if fmt == "arrow":
        feather.write_feather(t, tmp_path / "u.arrow"); src = tmp_path / "u.arrow"
    elif fmt == "parquet":
        pq.write_table(t, tmp_path / "u.parquet"); src = tmp_path / "u.parquet"
    elif fmt == "csv":
        pacsv.write_csv(t, tmp_path / "u.csv"); src = tmp_path / "u.csv"
    elif fmt == "dir":
        (tmp_path / "d").mkdir(); pq.write_table(t, tmp_path / "d" / "p.parquet"); src = tmp_path / "d"
    else:
        src = t
    s = Source(src, columns=["user_id", "email"], contract=("user_id", "email", "phone"))
    assert s.renamed == {"User ID": "user_id", "EMAIL": "email", "Phone": "phone"}
    assert s.read_all().column_names == ["user_id", "email"]
    assert [b.column_names for b in s.batches()] == [["user_id", "email"]]
    u = load_users(src)
    assert u.table["user_id"].to_pylist() == [1, 2, 3]
    assert u.table["phone"].to_pylist() == ["+14155550100", None, "+14155550102"]
    assert "First Name" in u.table.column_names
    assert "'EMAIL' as 'email'" in u.renamed and "rename them" in u.renamed


def test_two_spellings_of_one_contract_column_are_an_input_error(tmp_path):
    t = pa.table({"user_id": [1], "Email": ["a@x.io"], "EMAIL": ["b@x.io"]})
    feather.write_feather(t, tmp_path / "u.arrow")
    with pytest.raises(InputError, match="'Email' and 'EMAIL' both spell"):
        Source(tmp_path / "u.arrow", contract=("user_id", "email"))
    exact = pa.table({"user_id": [1], "email": ["a@x.io"], "EMAIL": ["b@x.io"]})
    assert Source(exact, contract=("user_id", "email")).renamed == {}  # the exact name wins, the other passes


def test_scores_say_which_columns_were_read_under_the_contract_name(tmp_path):
    from engine.scoring.pipeline import score, summary_of

    users = pa.table({"USER_ID": pa.array(range(1, 41), pa.int64())})
    ids = [u for u in range(1, 41) for _ in range(1 + u % 4)]
    events = pa.table({"user_id": pa.array(ids, pa.int64()),
                       "Timestamp": pa.array([1_790_000_000 + 86_400 * (k % 9) * (u % 5) for k, u in enumerate(ids)],
                                             pa.timestamp("s", tz="UTC")),
                       "ts": pa.array([1_790_000_000 + 86_400 * (k % 9) * (u % 5) for k, u in enumerate(ids)],
                                      pa.timestamp("s", tz="UTC")),
                       "Event": ["purchase"] * len(ids), "VALUE": [1.0] * len(ids)})
    pacsv.write_csv(events, tmp_path / "events.csv")
    s = score(users, tmp_path / "events.csv", as_of=1_794_000_000)
    warnings = summary_of(s)["warnings"]
    assert any("'USER_ID' as 'user_id'" in w for w in warnings)
    assert any("events.csv" in w and "'Event' as 'event'" in w and "'VALUE' as 'value'" in w for w in warnings)
    assert not any("Timestamp" in w for w in warnings)  # not a contract spelling: passed over
    assert s["monetary"].to_pylist()[0] == 1.0
