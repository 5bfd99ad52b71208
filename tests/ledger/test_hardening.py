"""The ledger under bad rows, other paths to the same file, and broken files."""

from __future__ import annotations

import asyncio
import os
import sqlite3

import numpy as np
import pyarrow as pa
import pytest

from engine.errors import DispatchError, InputError
from engine.ledger.store import Ledger, read_messages, read_suppressions
from engine.sending.dispatcher import dispatch
from engine.tz import from_epoch_seconds

T0 = 1_790_000_000


def plan(n=3):
    return pa.table({"message_id": [f"m{i}" for i in range(n)], "user_id": pa.array(range(n), pa.int64()),
                     "channel": ["email"] * n, "send_at": from_epoch_seconds(np.full(n, T0, np.int64)),
                     "to": [f"u{i}@example.com" for i in range(n)]})


def test_a_failed_write_is_rolled_back_and_the_ledger_stays_usable(tmp_path):
    path = tmp_path / "ledger.db"
    with Ledger(path) as led:
        led.load_plan(plan())
        with pytest.raises(sqlite3.Error):
            led.add_suppressions([{"channel": "email", "address": ["not", "text"], "reason": "hard_bounce"}])
        assert not led._con.in_transaction
        assert led.add_suppressions([{"channel": "email", "address": "c@example.com", "reason": "x"}]) == 1
        # another connection can write at once: no lock left behind
        other = sqlite3.connect(path, timeout=0.2)
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        other.close()
    assert read_suppressions(path)["address"].to_pylist() == ["c@example.com"]


# -- one sender whatever path names the ledger ----------------------------------------------------

class Slow:
    name, max_batch = "slow", 1

    def __init__(self, latency=0.3):
        self.latency, self.ids = latency, []

    async def send(self, batch):
        from engine.sending.protocol import SENT, Result
        await asyncio.sleep(self.latency)
        self.ids += [m.message_id for m in batch]
        return [Result(m.message_id, SENT, provider_id="p") for m in batch]

    async def aclose(self):
        pass


def push_plan(n):
    t = plan(n)
    return t.set_column(2, "channel", pa.array(["push"] * n))


@pytest.mark.parametrize("how", ["symlink", "hardlink", "dotdot", "relative"])
def test_a_second_sender_through_another_path_to_the_same_ledger_is_refused(tmp_path, how, monkeypatch):
    ledger = tmp_path / "a" / "ledger.db"
    ledger.parent.mkdir()
    (tmp_path / "b").mkdir()
    with Ledger(ledger):
        pass  # the file exists (a hard link needs one)
    if how == "symlink":
        other = tmp_path / "b" / "link.db"
        other.symlink_to(ledger)
    elif how == "hardlink":
        other = tmp_path / "b" / "hard.db"
        os.link(ledger, other)
    elif how == "dotdot":
        other = tmp_path / "b" / ".." / "a" / "ledger.db"
    else:
        monkeypatch.chdir(tmp_path / "a")
        other = "ledger.db"

    async def main():
        first = asyncio.ensure_future(dispatch(push_plan(3), {"push": Slow()}, ledger, now=True,
                                               handle_signals=False))
        await asyncio.sleep(0.15)
        second = Slow(0.0)
        with pytest.raises(DispatchError, match="another 'winback send' is using the ledger"):
            await dispatch(push_plan(3), {"push": second}, other, now=True, handle_signals=False)
        done = await first
        return done, second

    done, second = asyncio.run(main())
    assert done.sent == 3 and second.ids == []


# -- broken ledgers are refused with what to do ---------------------------------------
def test_a_zero_byte_ledger_is_refused_not_taken_for_new(tmp_path):
    ledger = tmp_path / "ledger.db"
    ledger.write_bytes(b"")
    sent = Slow(0.0)
    with pytest.raises(DispatchError, match=r"ledger .*ledger\.db is an empty file \(0 bytes\).*Restore it"):
        asyncio.run(dispatch(push_plan(5), {"push": sent}, ledger, now=True, handle_signals=False))
    assert sent.ids == [] and ledger.stat().st_size == 0


def test_garbage_and_foreign_files_are_refused(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(DispatchError, match="is not an SQLite file"):
        Ledger(junk)
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE notes (x)")
    con.commit()
    con.close()
    with pytest.raises(DispatchError, match="not a winback ledger"):
        Ledger(other)


def test_a_damaged_page_is_found_on_open(tmp_path):
    ledger = tmp_path / "ledger.db"
    with Ledger(ledger) as led:
        led.load_plan(plan(3000))
    con = sqlite3.connect(ledger)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = con.execute("PRAGMA page_size").fetchone()[0]
    pages = con.execute("PRAGMA page_count").fetchone()[0]
    con.close()
    with open(ledger, "r+b") as fh:  # garbage over the middle half of the pages (not the header page)
        fh.seek(page * (pages // 4))
        fh.write(bytes(range(256)) * (page // 256) * (pages // 2))
    with pytest.raises(DispatchError, match=r"ledger .*ledger\.db is damaged.*\.recover"):
        Ledger(ledger)
    # the other steps (plan, report, simulate) read it: one line too
    with pytest.raises(InputError, match=r"ledger .*ledger\.db cannot be read .*damaged.*\.recover"):
        read_messages(ledger)


def test_a_crash_while_creating_leaves_no_ledger_behind(tmp_path):
    # a new ledger is built beside its name and renamed into place: never a 0-byte ledger.db
    ledger = tmp_path / "new" / "ledger.db"
    with Ledger(ledger):
        pass
    assert sorted(p.name for p in ledger.parent.iterdir() if not p.name.startswith("ledger.db-")) == ["ledger.db"]
    with Ledger(ledger) as led:
        assert led._con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# -- Retry-After survives a crash ----------------------------------------------------------------
def test_messages_in_flight_at_a_crash_wait_for_the_channels_last_retry_after(tmp_path):
    import time as _time

    path = tmp_path / "ledger.db"
    now = _time.time()
    with Ledger(path) as led:
        led.load_plan(plan(4))
        rows = led.claim("email", 4, now=now, release_until=float("inf"))
        assert len(rows) == 4
        led.pause("email", now + 30)  # a 429 said "Retry-After: 30"; the kill came before the flush
        led.pause("email", now + 5)  # an older, shorter one does not shorten it
        led.pause("sms", now - 100)  # another channel's, long passed
    # the process died here: four messages in flight, the retry of the 429'd one never recorded
    with Ledger(path) as led:
        assert led.recover() == 4
        assert led.claim("email", 10, now=now + 1, release_until=float("inf")) == []
        assert led.next_due("email") >= now + 30
        assert len(led.claim("email", 10, now=now + 31, release_until=float("inf"))) == 4
