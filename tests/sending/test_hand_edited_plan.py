"""A plan whose ``winback.plan`` metadata was edited by hand is refused by ``winback send``
with one line naming the plan file and the key, exit 2, before the ledger is created;
never a traceback half-way through the send, and never a silent "no rule".

Each case writes a real plan.arrow and runs the real command; the providers file points
the push channel at a closed port on 127.0.0.1, so nothing can be delivered either way.
"""

from __future__ import annotations

import datetime as dt
import time

import pyarrow.feather as feather
import pytest

from engine.cli import main
from engine.errors import InputError
from engine.io.meta import PLAN, with_meta
from engine.io.planmeta import check_plan_meta
from tests.helpers import make_plan


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat()


def _meta() -> dict:
    """Metadata shaped like what ``winback plan`` writes, for a campaign that began an hour ago."""
    now = time.time()
    return {"campaign_id": "c1", "id": "c1", "as_of": _iso(now - 3600), "ends_at": _iso(now + 10 * 86400),
            "timezone": "Europe/Berlin", "broadcast": False,
            "steps": [{"name": "step0", "delay_days": 0.0}, {"name": "step1", "delay_days": 3.0}],
            "policy": {"max_messages": 3, "window_days": 7, "min_gap_hours": 16.0, "quiet_hours": [1260, 480],
                       "channel_caps": {"push": 2}, "complaint_suppresses": "all"},
            "ledger": {"path": None, "id": None}}


def _plan_file(tmp_path, meta) -> str:
    table = make_plan(5, send_at=time.time() - 1800)  # due: the release checks would run at once
    if isinstance(meta, bytes):
        table = table.replace_schema_metadata({PLAN: meta})
    elif meta is not None:
        table = with_meta(table, PLAN, meta)
    path = tmp_path / "plan.arrow"
    feather.write_feather(table, path)
    return str(path)


def _send(tmp_path, monkeypatch, plan: str) -> int:
    monkeypatch.setenv("WINBACK_TEST_PUSH_SECRET", "s")
    providers = tmp_path / "providers.toml"
    providers.write_text('[channels.push]\nadapter = "webhook"\nurl = "http://127.0.0.1:9/hooks/push"\n'
                         'secret_env = "WINBACK_TEST_PUSH_SECRET"\nmax_attempts = 1\ntimeout_seconds = 1\n')
    return main(["send", plan, "--providers", str(providers), "--ledger", str(tmp_path / "l.db"),
                 "--no-progress", "--max-seconds", "5"])


CASES = [
    ("policy.quiet_hours", ["21:00", "08:00"]),  # the campaign's spelling typed into the plan
    ("policy.quiet_hours", [1260]),
    ("policy.quiet_hours", [1260, None]),
    ("policy.quiet_hours", [99999, 480]),
    ("policy.max_messages", "three"),
    ("policy.max_messages", -1),
    ("policy.window_days", "7d"),
    ("policy.window_days", 0),
    ("policy.min_gap_hours", "16h"),
    ("policy.channel_caps", ["push"]),
    ("policy.channel_caps.push", "two"),
    ("policy.complaint_suppresses", "everything"),
    ("policy", "strict"),
    ("timezone", "Mars/Olympus"),
    ("as_of", "yesterday"),
    ("ends_at", "never"),
    ("steps", [1, 2]),
    ("steps.0.delay_days", "three"),
    ("campaign_id", ["c1"]),
    ("campaign_id", "another-campaign"),
    ("ledger", "ledger.db"),
]


@pytest.mark.parametrize("key,value", CASES, ids=[f"{k}={v!r}" for k, v in CASES])
def test_a_hand_edited_key_is_one_line_exit_2_and_no_ledger(tmp_path, monkeypatch, capsys, key, value):
    # given a plan whose metadata has one key edited into something a send cannot apply
    meta = _meta()
    at = meta
    parts = key.split(".")
    for k in parts[:-1]:
        at = at[int(k)] if k.isdigit() else at[k]
    at[int(parts[-1]) if parts[-1].isdigit() else parts[-1]] = value
    plan = _plan_file(tmp_path, meta)

    # when it is sent
    code = _send(tmp_path, monkeypatch, plan)

    # then one line names the plan and the key, exit 2, and the ledger was never created
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(f"InputError: {plan}: plan metadata winback.plan key {key.split('.0.')[0]}"), err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "re-plan with 'winback plan'" in err
    assert not (tmp_path / "l.db").exists()


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]"])
def test_unreadable_metadata_is_refused_not_read_as_no_policy(tmp_path, monkeypatch, capsys, raw):
    # given a plan whose metadata is not a JSON object (it would have meant: no quiet hours, no end)
    plan = _plan_file(tmp_path, raw)

    # when it is sent, then it is refused with one line and no ledger
    code = _send(tmp_path, monkeypatch, plan)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"InputError: {plan}: plan metadata winback.plan ") and err.count("\n") == 1
    assert not (tmp_path / "l.db").exists()


def test_the_metadata_winback_plan_writes_and_no_metadata_both_pass(tmp_path):
    # given the metadata of a real plan, empty quiet hours, and a hand-made plan without any
    table = make_plan(3)
    meta = _meta()
    assert check_plan_meta(with_meta(table, PLAN, meta), "p") == meta
    meta["policy"]["quiet_hours"] = []
    assert check_plan_meta(with_meta(table, PLAN, meta), "p")["policy"]["quiet_hours"] == []
    assert check_plan_meta(table, "p") == {}
    # and a wrong value in the library call is the same InputError
    meta["policy"]["quiet_hours"] = ["21:00", "08:00"]
    with pytest.raises(InputError, match=r"p: plan metadata winback.plan key policy.quiet_hours"):
        check_plan_meta(with_meta(table, PLAN, meta), "p")


@pytest.mark.parametrize("command", ["simulate", "report", "explain"])
@pytest.mark.parametrize("key,value", [("steps", [1, 2]), ("variants", "control"), ("policy", "strict"),
                                       ("policy.quiet_hours", ["21:00", "08:00"])])
def test_simulate_report_and_explain_refuse_the_same_edits(tmp_path, capsys, command, key, value):
    # given a hand-edited plan, and the other inputs each command needs (real, empty files)
    meta = _meta()
    if "." in key:
        meta["policy"]["quiet_hours"] = value
    else:
        meta[key] = value
    plan = _plan_file(tmp_path, meta)
    other = tmp_path / "other.arrow"
    feather.write_feather(make_plan(1), other)
    argv = {"simulate": ["simulate", plan, "--truth", str(other), "-o", str(tmp_path / "out")],
            "report": ["report", plan, str(other), "-o", str(tmp_path / "out")],
            "explain": ["explain", "1", "--plan", plan]}[command]

    # when the command reads it, then one line names the plan and the key, exit 2, no output
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(f"InputError: {plan}: plan metadata winback.plan key {key}") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
