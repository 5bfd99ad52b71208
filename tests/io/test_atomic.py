"""Atomic output: a temporary beside the target, renamed on success, gone on failure."""

from __future__ import annotations

import errno
import json

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from engine.errors import ConfigError, StorageError
from engine.io.atomic import atomic_dir, atomic_path, storage_error, write_table


def test_atomic_path_renames_on_success_and_leaves_the_old_file_on_failure(tmp_path):
    final = tmp_path / "out" / "plan.csv"
    with atomic_path(final) as tmp:
        assert tmp.parent == final.parent and tmp.name.startswith(".plan.csv.") and not final.exists()
        tmp.write_text("v1")
    assert final.read_text() == "v1"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(final) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert final.read_text() == "v1"
    assert sorted(p.name for p in final.parent.iterdir()) == ["plan.csv"]


def test_atomic_dir_swaps_a_whole_directory_or_nothing(tmp_path):
    final = tmp_path / "parts"
    with atomic_dir(final) as tmp:
        (tmp / "a.arrow").write_text("1")
    with atomic_dir(final) as tmp:
        (tmp / "b.arrow").write_text("2")
    assert sorted(p.name for p in final.iterdir()) == ["b.arrow"]  # replaced, not merged
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(final) as tmp:
            (tmp / "c.arrow").write_text("3")
            raise KeyboardInterrupt
    assert sorted(p.name for p in final.iterdir()) == ["b.arrow"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parts"]


def test_write_table_follows_the_suffix(tmp_path):
    t = pa.table({"user_id": pa.array([1, 2], pa.int64()), "category": [["a", "b"], ["c"]]})
    assert feather.read_table(write_table(t, tmp_path / "t.arrow")).equals(t)
    assert pq.read_table(write_table(t, tmp_path / "t.parquet")).equals(t)
    assert pacsv.read_csv(write_table(t, tmp_path / "t.csv"))["category"].to_pylist() == ["a|b", "c"]
    lines = (write_table(t, tmp_path / "t.jsonl")).read_text().splitlines()
    assert [json.loads(x) for x in lines] == [{"user_id": 1, "category": ["a", "b"]}, {"user_id": 2, "category": ["c"]}]
    with pytest.raises(ConfigError, match=r"t.xlsx: the suffix '.xlsx' is no table format; end the output in .arrow"):
        write_table(t, tmp_path / "t.xlsx")
    assert not (tmp_path / "t.xlsx").exists()


def test_a_csv_output_writes_nested_binary_and_view_columns_as_text(tmp_path):
    """Given pass-through columns CSV has no type for (a struct, a map, a list of structs or of lists,
    bytes that are not UTF-8, string_view), when written as .csv, then the file is written: nested
    values as JSON text, bytes as hex, nulls empty; the other columns as before."""
    t = pa.table({
        "user_id": pa.array([1, 2], pa.int64()),
        "meta": pa.array([{"k": 1, "s": "é"}, None]),
        "attrs": pa.array([[("a", 1)], []], pa.map_(pa.string(), pa.int64())),
        "orders": pa.array([[{"id": 7}], None]),
        "grid": pa.array([[[1, 2], [3]], [[]]]),
        "blob": pa.array([b"\x00\xff", None], pa.binary()),
        "tag": pa.array(["x", None], pa.string_view()),
        "category": [["a", "b"], ["c"]],
    })
    back = pacsv.read_csv(write_table(t, tmp_path / "t.csv"), convert_options=pacsv.ConvertOptions(
        column_types={name: pa.string() for name in t.column_names[1:]}, strings_can_be_null=True))
    assert back["user_id"].to_pylist() == [1, 2]
    assert [json.loads(v) if v else v for v in back["meta"].to_pylist()] == [{"k": 1, "s": "é"}, None]
    assert back["attrs"].to_pylist() == ['[["a", 1]]', "[]"]
    assert back["orders"].to_pylist() == ['[{"id": 7}]', None]
    assert back["grid"].to_pylist() == ["[[1, 2], [3]]", "[[]]"]
    assert back["blob"].to_pylist() == ["00ff", None]
    assert back["tag"].to_pylist() == ["x", None]
    assert back["category"].to_pylist() == ["a|b", "c"]


@pytest.mark.parametrize("code, says", [
    (errno.ENOSPC, "the disk is full"),
    (errno.EROFS, "read-only or not writable"),
    (errno.EACCES, "read-only or not writable"),
    (errno.EFBIG, "larger than this filesystem or a limit"),
])
def test_storage_error_is_one_line_naming_the_file(code, says):
    err = storage_error(OSError(code, "x"), "out/plan.arrow")
    assert isinstance(err, StorageError) and err.exit_code == 7
    msg = str(err)
    assert msg.startswith("cannot write out/plan.arrow: ") and says in msg and "\n" not in msg
    assert "Nothing was half-written" in msg


def test_other_errors_are_not_storage_errors():
    assert storage_error(OSError(errno.ENOENT, "No such file or directory")) is None
    assert storage_error(ValueError("no space left")) is None
    assert storage_error(OSError("No space left on device")) is not None  # matched by its text
