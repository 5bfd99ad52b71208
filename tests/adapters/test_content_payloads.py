"""The planner's content (theme, items) travels through the ledger to the providers' custom fields."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pyarrow as pa

from engine.sending.protocol import Message, Result, content_fields
from adapters.fcm import FcmAdapter
from adapters.sendgrid import SendGridAdapter
from adapters.webhook import _json_doc, message_json
from engine.sending.dispatcher import send
from engine.ledger.store import Ledger
from tests.helpers import make_plan


class Keeper:
    """An adapter that keeps every Message it is given."""

    max_batch = 10

    def __init__(self):
        self.messages: list[Message] = []

    async def send(self, batch):
        self.messages.extend(batch)
        return [Result(m.message_id, "sent", provider_id="p-" + m.message_id) for m in batch]

    async def aclose(self):
        pass


def _themed(n: int) -> pa.Table:
    plan = make_plan(n)
    plan = plan.append_column("theme", pa.array([None if i % 4 == 0 else "trending" for i in range(n)], pa.string()))
    return plan.append_column("items", pa.array([[10 + i, 20 + i] if i % 3 else [] for i in range(n)],
                                                pa.list_(pa.int64())))


def test_content_reaches_the_adapter_with_each_message(tmp_path):
    keeper = Keeper()
    summary = send(_themed(40), {"push": keeper}, tmp_path / "l.db", now=True)
    assert summary.sent == 40
    by_id = {m.message_id: m for m in keeper.messages}
    for i in range(40):
        m = by_id[f"m{i}"]
        if i % 4 == 0:
            assert m.content is None and content_fields(m) == {}
        else:
            assert json.loads(m.content) == {"theme": "trending", "items": [10 + i, 20 + i] if i % 3 else []}
            assert content_fields(m)["theme"] == "trending"


def test_provider_bodies_carry_the_content():
    m = Message("m1", 7, "push", "s", "v", "tok", "Subj", "Body", 1.79e9, "tpl", "c",
                '{"theme":"leaving_soon","items":[5,6]}')
    body = json.loads(message_json(m))
    assert body["content"] == {"theme": "leaving_soon", "items": [5, 6]}
    assert message_json(m) == json.dumps(_json_doc(m), separators=(",", ":"), ensure_ascii=False).encode()
    sg = json.loads(SendGridAdapter("http://127.0.0.1:1", "key", sender="a@b.c").payload([m]))
    assert sg["personalizations"][0]["custom_args"] == {"message_id": "m1", "theme": "leaving_soon", "items": "5,6"}
    plain = m._replace(content=None)
    assert "content" not in json.loads(message_json(plain))
    assert content_fields(plain) == {}
    assert FcmAdapter  # the FCM adapter puts the same string fields in message.data (see adapters/fcm.py)


def test_a_ledger_of_an_older_version_gains_the_content_column(tmp_path):
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.executescript("""CREATE TABLE messages (message_id TEXT PRIMARY KEY, campaign_id TEXT,
        user_id INTEGER NOT NULL, step TEXT, step_index INTEGER NOT NULL DEFAULT 0, variant TEXT,
        channel TEXT NOT NULL, to_addr TEXT, subject TEXT, body TEXT, template TEXT, exit_on TEXT,
        send_at REAL NOT NULL, state TEXT NOT NULL DEFAULT 'planned', attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL, provider_id TEXT, last_error TEXT, sent_at REAL, updated_at REAL);""")
    con.close()
    with Ledger(path) as ledger:
        assert ledger.load_plan(_themed(5)) == 5
    cols = [r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(messages)")]
    assert "content" in cols
    assert np.sum([r[0] is not None for r in sqlite3.connect(path).execute("SELECT content FROM messages")]) == 3  # rows 0 and 4 have no theme
