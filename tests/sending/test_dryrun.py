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


def test_a_dry_run_reads_the_events_and_says_how_many_later_steps_would_exit(tmp_path, capsys, monkeypatch):
    """Given a plan whose step-0 message opens the campaign and whose step-1 messages exit on
    activity, and an events file where two of those users came back after the start, when
    dry-run with --events, then it says 2 would be skipped, and a bad events file is refused
    as the send would refuse it; nothing is created either way."""
    import numpy as np
    import pyarrow.feather as feather

    from engine.cli import main
    from engine.tz import from_epoch_seconds
    from tests.helpers import PLAN_NOW, make_plan

    monkeypatch.setenv("WINBACK_TEST_PUSH_SECRET", "s")
    first = make_plan(1, prefix="a", send_at=PLAN_NOW[0] - 3600)
    later = make_plan(4, prefix="b", step_index=1, exit_on="activity")
    plan = tmp_path / "plan.arrow"
    feather.write_feather(pa.concat_tables([first, later]), plan)
    t = int(PLAN_NOW[0])
    feather.write_feather(pa.table({"user_id": pa.array([1, 2, 3], pa.int64()),
                                    "ts": from_epoch_seconds(np.array([t - 1800, t - 1800, t - 7200])),
                                    "event": ["session", "purchase", "session"]}), tmp_path / "ev.arrow")
    (tmp_path / "p.toml").write_text('[channels.push]\nadapter = "webhook"\nurl = "http://127.0.0.1:9/h"\n'
                                     'secret_env = "WINBACK_TEST_PUSH_SECRET"\n')
    args = ["send", str(plan), "--providers", str(tmp_path / "p.toml"), "--ledger", str(tmp_path / "l.db"),
            "--dry-run"]
    assert main([*args, "--events", str(tmp_path / "ev.arrow")]) == 0
    out = capsys.readouterr().out
    assert "--events: 2 later-step messages would be skipped (exited)" in out  # user 3 came back before the start
    feather.write_feather(pa.table({"user_id": [1], "event": ["session"]}), tmp_path / "bad.arrow")
    assert main([*args, "--events", str(tmp_path / "bad.arrow")]) == 2
    assert "no column 'ts'" in capsys.readouterr().err
    assert not (tmp_path / "l.db").exists()
