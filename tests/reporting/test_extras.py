"""Report extras: feedback events added to the outcomes, and the ads removal export."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest

from engine.errors import InputError
from engine.ledger.store import Ledger
from engine.reporting.extras import ads_removal, with_feedback
from engine.tz import from_epoch_seconds

T0 = 1_793_491_200  # 2026-11-01 UTC


def _events(users, kind="open"):
    n = len(users)
    return pa.table({"user_id": pa.array(users, pa.int64()), "ts": from_epoch_seconds(np.full(n, T0, np.int64)),
                     "event": pa.array([kind] * n).dictionary_encode()})


def test_with_feedback_adds_the_receivers_parts_on_the_contract_columns(tmp_path):
    d = tmp_path / "feedback"
    d.mkdir()
    part = _events([7], "reason").append_column("reason", pa.array(["not_relevant"]))
    feather.write_feather(part, d / "part-00001.arrow")
    feather.write_feather(_events([]), d / "part-00002.arrow")  # an empty part is skipped
    (d / "notes.txt").write_text("not a part")
    got = with_feedback(_events([1, 2]), d)
    assert got["user_id"].to_pylist() == [1, 2, 7] and got["event"].to_pylist() == ["open", "open", "reason"]
    assert got["reason"].to_pylist() == [None, None, "not_relevant"] and got["message_id"].null_count == 3
    empty = tmp_path / "empty"
    empty.mkdir()
    assert with_feedback(_events([1]), empty).num_rows == 1
    with pytest.raises(InputError, match="does not exist; pass the output directory of 'winback receive'"):
        with_feedback(_events([1]), tmp_path / "absent")


def test_ads_removal_lists_users_who_came_back_opted_out_or_are_suppressed(tmp_path):
    # users 1-4 were put in the ad audience; 1 came back, 2 unsubscribed, 3 is suppressed, 4 still belongs
    users = np.arange(1, 6, dtype=np.int64)
    plan = pa.table({"message_id": [f"a{u}" for u in range(1, 5)] + ["e5"], "user_id": pa.array(users),
                     "to": [json.dumps({"email": f"u{u}@example.com"}) for u in range(1, 5)] + ["u5@example.com"]})
    msgs = pa.table({"message_id": plan["message_id"], "channel": ["ads"] * 4 + ["email"]})
    flags = {"reengaged": np.array([1, 0, 0, 0, 1], bool), "unsubscribed": np.array([0, 1, 0, 0, 0], bool)}
    ledger = tmp_path / "ledger.db"
    with Ledger(ledger) as led:
        led.add_suppressions([{"channel": "email", "user_id": 3, "reason": "complaint"}])
    summary, files = ads_removal(plan, msgs, users, flags, str(ledger))
    assert summary["audience"] == 4 and summary["remove"] == 3
    assert summary["by_reason"] == {"came_back": 1, "opted_out": 1, "suppressed": 1}
    assert set(files) == {"ads-removal-meta-00001.csv", "ads-removal-google-00001.csv"} == set(summary["files"])
    rows = list(csv.reader(io.StringIO(files["ads-removal-meta-00001.csv"].decode())))
    hashes = {r[0] for r in rows[1:]}
    assert hashes == {hashlib.sha256(f"u{u}@example.com".encode()).hexdigest() for u in (1, 2, 3)}
    assert ads_removal(plan, msgs.filter(pa.array([False] * 4 + [True])), users, flags, None) == ({}, {})
