"""The dry-run preview: counts per channel, step and UTC hour of planned rows, and masked samples."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from engine.schema import TIMESTAMP
from engine.sending.dryrun import dry_run_preview, mask_address


def test_mask_address_keeps_a_hint_never_the_address():
    assert mask_address("ann.lee@example.com") == "a***@example.com"
    assert mask_address("+15551234567") == "+15***67"
    assert mask_address("short") == "***"
    assert mask_address("") == "" and mask_address(None) == ""


def _at(h: int, m: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, 2, h, m, tzinfo=dt.timezone.utc)


def test_preview_counts_only_planned_rows_by_channel_step_and_hour():
    plan = pa.table({
        "message_id": [f"m{i}" for i in range(6)],
        "user_id": pa.array(range(6), pa.int64()),
        "channel": ["email", "email", "email", "sms", "sms", "email"],
        "step": ["a", "a", "a", "a", "a", "a"],
        "send_at": pa.array([_at(9), _at(9, 59), _at(10, 5), _at(9, 30), _at(9, 31), _at(9)], TIMESTAMP),
        "reason": [None, None, None, None, None, "holdout"],
        "to": ["ann@example.com", "bob@example.com", "cy@example.com", "+15551234567", "+15557654321",
               "held@example.com"],
    })
    counts, samples = dry_run_preview(plan, samples_per_channel=1)
    rows = [(r["channel"], r["step"], r["hour"].hour, r["messages"]) for r in counts.to_pylist()]
    assert rows == [("email", "a", 9, 2), ("sms", "a", 9, 2), ("email", "a", 10, 1)]
    assert [s["channel"] for s in samples] == ["email", "sms"]
    assert [s["to"] for s in samples] == ["a***@example.com", "+15***67"]
    assert all("held" not in s["to"] for s in samples)
    assert samples[0]["send_at"] == str(_at(9))
