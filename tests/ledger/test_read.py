"""Reading a ledger read-only: messages, suppressions, one user, contacts in a window, what was sent."""

from __future__ import annotations

import sqlite3

import pytest

from engine.errors import InputError
from engine.ledger.read import planned_as_sent, read_broadcasts, read_contacts, read_messages, read_suppressions, \
    read_user
from engine.ledger.store import Ledger
from engine.schema import TIMESTAMP
from tests.helpers import make_plan

NOW = 1_793_534_400.0  # 2026-11-01 12:00 UTC


def _ledger(tmp_path):
    path = tmp_path / "ledger.db"
    with Ledger(path) as led:
        plan = make_plan(3, send_at=NOW)
        led.load_plan(plan)
        rows = led.claim("push", 1, now=NOW, release_until=NOW)
        led.sent(rows[0][-1], "p0", NOW + 5)
        led.flush()
        led.add_suppressions([{"channel": "push", "user_id": 2, "reason": "unsubscribe", "at": NOW}])
        led.record_broadcast("c1", NOW)
    return path, plan


def test_tables_come_back_in_insertion_order_with_utc_instants(tmp_path):
    path, _ = _ledger(tmp_path)
    m = read_messages(path)
    assert m["message_id"].to_pylist() == ["m0", "m1", "m2"]
    assert m["state"].to_pylist() == ["sent", "planned", "planned"] and m["provider_id"][0].as_py() == "p0"
    assert m.schema.field("sent_at").type == TIMESTAMP and m["sent_at"][0].as_py().timestamp() == NOW + 5
    s = read_suppressions(path)
    assert (s["user_id"].to_pylist(), s["reason"].to_pylist()) == ([2], ["unsubscribe"])
    assert read_broadcasts(path)["campaign_id"].to_pylist() == ["c1"]
    msgs, sups = read_user(path, 2)
    assert msgs["message_id"].to_pylist() == ["m2"] and sups.num_rows == 1
    assert read_user(path, 99)[0].num_rows == 0


def test_contacts_in_a_window_count_sent_and_pending_of_other_campaigns(tmp_path):
    path, _ = _ledger(tmp_path)
    uid, ch, at, gap = read_contacts(path, exclude_campaign=None, lo=NOW - 1, hi=NOW + 10)
    assert sorted(uid.tolist()) == [0, 1, 2] and set(ch.tolist()) == {"push"}
    assert dict(zip(uid.tolist(), at.tolist()))[0] == NOW + 5  # a sent message counts at sent_at
    assert gap.tolist() == [0, 0, 0]  # a ledger never sent from records no campaign policy
    assert len(read_contacts(path, exclude_campaign="c1", lo=NOW - 1, hi=NOW + 10)[0]) == 0
    assert len(read_contacts(path, exclude_campaign=None, lo=NOW + 10, hi=NOW + 20)[0]) == 0


def test_planned_as_sent_keeps_what_the_ledger_sent(tmp_path):
    path, plan = _ledger(tmp_path)
    assert planned_as_sent(plan, str(path))["message_id"].to_pylist() == ["m0"]
    assert planned_as_sent(plan, None).num_rows == 3
    with pytest.raises(InputError, match="does not exist; pass the ledger 'winback send' wrote"):
        planned_as_sent(plan, str(tmp_path / "absent.db"))


def test_a_missing_or_foreign_file_is_one_input_error(tmp_path):
    with pytest.raises(InputError, match=r"does not exist\. Pass the --ledger file"):
        read_messages(tmp_path / "absent.db")
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE notes (x)")
    con.close()
    with pytest.raises(InputError, match="is not a winback ledger"):
        read_suppressions(other)
