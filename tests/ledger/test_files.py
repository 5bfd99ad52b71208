"""Opening a ledger file: new ones are created whole, broken ones are refused with one line."""

from __future__ import annotations

import sqlite3

import pytest

from engine.errors import DispatchError
from engine.ledger import files

SCHEMA = "CREATE TABLE sent (message_id TEXT PRIMARY KEY, at INTEGER);"


def test_create_makes_a_whole_wal_sqlite_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "deep" / "ledger.db"
    files.create(path, SCHEMA)
    files.check_file(path)  # passes
    assert sorted(p.name for p in path.parent.iterdir()) == ["ledger.db"]
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert [r[0] for r in con.execute("SELECT name FROM sqlite_master")] == ["sent", "sqlite_autoindex_sent_1"]
        files.quick_check(con, path)  # passes
    finally:
        con.close()


def test_check_file_refuses_an_empty_file_with_one_line_saying_what_to_do(tmp_path):
    path = tmp_path / "ledger.db"
    path.write_bytes(b"")
    with pytest.raises(DispatchError, match=r"empty file \(0 bytes\).*Restore it from a backup") as err:
        files.check_file(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_check_file_refuses_garbage_and_a_directory(tmp_path):
    path = tmp_path / "ledger.db"
    path.write_bytes(b"message_id,at\nm1,1\n")
    with pytest.raises(DispatchError, match=r"is not an SQLite file \(it starts with b'message_'\)"):
        files.check_file(path)
    with pytest.raises(DispatchError, match=r"is a directory; give --ledger a file path"):
        files.check_file(tmp_path)


@pytest.mark.parametrize("text, says", [
    ("database or disk is full", "the disk is full or failing"),
    ("disk I/O error", "the disk is full or failing"),
    ("attempt to write a readonly database", "cannot be written"),
    ("unable to open database file", "cannot be written"),
    ("database disk image is malformed", "is damaged"),
    ("file is not a database", "is damaged"),
    ("something else\nentirely", "cannot use ledger"),
])
def test_ledger_error_is_one_line_naming_the_file_and_the_next_step(tmp_path, text, says):
    path = tmp_path / "ledger.db"
    err = files.ledger_error(path, sqlite3.OperationalError(text))
    assert isinstance(err, DispatchError)
    msg = str(err)
    assert says in msg and str(path) in msg and "\n" not in msg
    assert "--ledger" in msg or "run the same command again" in msg


def test_quick_check_refuses_a_damaged_page(tmp_path):
    # given: a ledger with enough rows to span pages, then 64 bytes inside one page overwritten
    path = tmp_path / "ledger.db"
    files.create(path, SCHEMA)
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=DELETE")
    con.executemany("INSERT INTO sent VALUES (?, ?)", [(f"m{i:06d}", i) for i in range(3000)])
    con.commit()
    page = con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    with open(path, "r+b") as fh:
        fh.seek(3 * page + 1000)
        fh.write(b"\x07" * 64)
    # when / then
    con = sqlite3.connect(path)
    try:
        with pytest.raises(DispatchError, match=r"is damaged .*\.recover"):
            files.quick_check(con, path)
    finally:
        con.close()
