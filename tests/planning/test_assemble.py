"""Assembling the plan table from the planning state: ids, labels, addresses and rendered text."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.planning.assemble import assemble
from engine.planning.campaign import load_campaign
from engine.schema import PLAN_SCHEMA, PROVIDER_CHANNELS, SKIP_REASONS
from tests.helpers import one_step, reachable_users

START = 1_793_491_200  # 2026-11-01 UTC


def test_rows_carry_ids_labels_the_address_and_text_of_planned_messages_only():
    # given two users: 1000 planned on email at START + 1 h, 1001 held out
    cmp = load_campaign(one_step())
    scores = reachable_users(2, first_name=pa.array(["Ann", None]))
    uid = scores["user_id"].to_numpy()
    email = PROVIDER_CHANNELS.index("email")
    cols = {"reason": [np.array([0, SKIP_REASONS.index("holdout")], np.int8)],
            "channel": [np.array([email, email], np.int8)],
            "send_at": [np.array([START + 3600, 0], np.int64)],
            "ev": [np.array([0.4, 0.0])]}
    # when
    t = assemble(scores, cmp, uid, np.array([False, True]), np.zeros(2, np.int64), cols, START,
                 np.zeros(2, np.int64), ["UTC"])
    # then
    assert t.schema.names[:len(PLAN_SCHEMA)] == PLAN_SCHEMA.names
    rows = t.to_pylist()
    assert [r["message_id"] for r in rows] == [f"{cmp.id}-1000-0", f"{cmp.id}-1001-0"]
    assert [r["reason"] for r in rows] == [None, "holdout"] and [r["holdout"] for r in rows] == [False, True]
    assert rows[0]["send_at"].timestamp() == START + 3600 and rows[1]["send_at"] is None
    assert [r["channel"] for r in rows] == ["email", "email"] and rows[0]["to"] == "email-0"
    assert rows[0]["subject"] == "Hi Ann" and rows[0]["body"] == "<p>Ann</p>"
    assert rows[1]["subject"] is None and rows[1]["body"] is None  # nothing rendered for an unsent row
    assert [r["step"] for r in rows] == ["a", "a"] and [r["timezone"] for r in rows] == ["UTC", "UTC"]
    assert [r["expected_value"] for r in rows] == [0.4, 0.0]
