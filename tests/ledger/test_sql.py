"""The ledger's SQL: its schema, the claim columns, and multi-row statements of every size."""

from __future__ import annotations

import sqlite3
import time

import pytest

from engine.ledger.sql import CLAIM_COLUMNS, _statement_sizes
from engine.ledger.store import Ledger
from tests.helpers import make_plan


def test_the_schema_has_the_tables_and_the_claim_columns_are_message_columns(tmp_path):
    with Ledger(tmp_path / "ledger.db"):
        pass
    con = sqlite3.connect(tmp_path / "ledger.db")
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"messages", "suppressions", "broadcasts", "pauses"} <= tables
        cols = {r[1] for r in con.execute("PRAGMA table_info(messages)")}
    finally:
        con.close()
    assert set(CLAIM_COLUMNS) - {"rowid"} <= cols
    assert CLAIM_COLUMNS[-1] == "rowid" and len(set(CLAIM_COLUMNS)) == len(CLAIM_COLUMNS)


@pytest.mark.parametrize("n", [0, 1, 63, 64, 65, 203])
def test_statement_sizes_cover_every_row_in_few_distinct_sizes(n):
    sizes = list(_statement_sizes(n))
    assert sum(sizes) == n
    assert all(k == 64 or (k & (k - 1)) == 0 for k in sizes)  # 64s, then powers of two
    assert len(sizes) <= n // 64 + 7


@pytest.mark.parametrize("n", [1, 203])
def test_loaded_rows_are_claimed_and_sent_whole_in_claim_column_order(tmp_path, n):
    now = time.time()
    with Ledger(tmp_path / "ledger.db") as led:
        assert led.load_plan(make_plan(n, send_at=now - 60)) == n
        rows = led.claim("push", 1000, now=now, release_until=now)
        assert len(rows) == n
        got = dict(zip(CLAIM_COLUMNS, rows[0]))
        assert got["channel"] == "push" and got["attempts"] == 1 and got["to_addr"].startswith("tok")
        for r in rows:
            led.sent(r[CLAIM_COLUMNS.index("rowid")], "p-" + r[0], now)
        led.flush()
        assert led.counts()["push"] == {"sent": n}
