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
