"""Sunset: only after the whole sequence (or N messages), and 'winback sunset' writes the suppressions."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest

from engine.cli import main
from engine.ledger.store import Ledger, read_suppressions
from engine.reporting.sunset import apply_sunset, sunset_list


def _plan(policy: dict) -> pa.Table:
    """Three steps for users 1-4; users 2's later steps were stopped by the fatigue budget."""
    rows = []
    for u in (1, 2, 3, 4):
        for k in range(3):
            stopped = u == 2 and k > 0
            rows.append({"message_id": f"c-{u}-{k}", "user_id": u, "step_index": k, "step": "abc"[k],
                         "reason": "fatigue_budget" if stopped else None, "channel": None if stopped else "email"})
    meta = {"campaign_id": "c", "policy": {"sunset_after_steps": True, **policy},
            "steps": [{"name": s} for s in "abc"]}
    return pa.Table.from_pylist(rows).replace_schema_metadata({b"winback.plan": json.dumps(meta).encode()})


def _delivered(plan: pa.Table) -> pa.Table:
    return plan.filter(pa.compute.is_null(plan["reason"])).select(["user_id", "step", "channel"])


USERS = np.array([1, 2, 3, 4])
REENGAGED = np.array([False, False, True, False])   # user 3 came back
TREAT = np.array([True, True, True, False])         # user 4 is in the holdout


@pytest.mark.parametrize("policy,expected", [({}, [1]), ({"sunset_after": 1}, [1, 2]), ({"sunset_after_steps": False}, [])])
def test_a_user_is_sunset_only_after_the_whole_sequence_or_n_messages(policy, expected):
    # given user 1 got all three steps, user 2 only the first (the budget stopped the rest)
    p = _plan(policy)
    # when
    s = sunset_list(p, _delivered(p), USERS, REENGAGED, TREAT)
    # then
    assert s["user_id"].to_pylist() == expected
    assert set(s["channels"].to_pylist()) <= {"email"}


def test_winback_sunset_dry_runs_then_writes_suppressions_that_later_plans_honour(tmp_path, capsys):
    # given a report's sunset list on disk and a ledger
    p = _plan({})
    report = tmp_path / "report"
    report.mkdir()
    feather.write_feather(sunset_list(p, _delivered(p), USERS, REENGAGED, TREAT), report / "sunset.arrow")
    ledger = tmp_path / "ledger.db"
    Ledger(ledger).close()
    # when a dry run, then the real run, then the real run again
    assert main(["sunset", str(report), "--ledger", str(ledger), "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert read_suppressions(ledger).num_rows == 0
    assert main(["sunset", str(report), "--ledger", str(ledger)]) == 0
    again = apply_sunset(report, ledger)
    # then the dry run wrote nothing, the run suppressed user 1 on email, the rerun added nothing
    assert "dry run: 1 users, 1 new suppressions" in dry and "nothing written" in dry
    sup = read_suppressions(ledger).to_pylist()
    assert [(s["channel"], s["user_id"], s["reason"], s["address"]) for s in sup] == [("email", 1, "sunset", None)]
    assert again["new"] == 0
    # and a plan with that ledger leaves user 1 out
    from engine.planning.guard import suppressed_matrix

    scores = pa.table({"user_id": pa.array([1, 2], pa.int64()), "email": ["a@x", "b@x"]})
    assert suppressed_matrix(str(ledger), scores)[:, 0].tolist() == [True, False]


def test_a_missing_sunset_list_says_what_to_run(tmp_path, capsys):
    assert main(["sunset", str(tmp_path / "nope"), "--ledger", str(tmp_path / "l.db")]) == 2
    assert "run 'winback report' first" in capsys.readouterr().err


@pytest.mark.parametrize("what", ["plan", "scores"])
def test_a_plan_or_scores_file_given_as_the_sunset_list_suppresses_nobody(tmp_path, capsys, what):
    # given a real plan (or scores) file passed where the sunset list goes, and a ledger
    p = _plan({})
    path = tmp_path / f"{what}.arrow"
    table = p if what == "plan" else pa.table({"user_id": pa.array([1, 2, 3], pa.int64()), "email": ["a", "b", "c"]})
    feather.write_feather(table, path)
    ledger = tmp_path / "ledger.db"
    Ledger(ledger).close()
    # when sunset is run for real (it suppressed every user it listed, on every channel)
    code = main(["sunset", str(path), "--ledger", str(ledger)])
    # then one line says it is not a sunset list and names the missing columns; exit 2; nothing written
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"InputError: {path}: not a sunset list: no column ") and "'messages_received'" in err
    assert read_suppressions(ledger).num_rows == 0


def test_a_typo_in_the_ledger_path_writes_no_suppressions_anywhere(tmp_path, capsys):
    """The sunset users must be suppressed where the next plan and send look: a ledger path
    that does not exist is one line, exit 2, and no new ledger (it was created silently)."""
    p = _plan({})
    report = tmp_path / "report"
    report.mkdir()
    feather.write_feather(sunset_list(p, _delivered(p), USERS, REENGAGED, TREAT), report / "sunset.arrow")
    for dry in ([], ["--dry-run"]):
        assert main(["sunset", str(report), "--ledger", str(tmp_path / "ledgr.db"), *dry]) == 2
        err = capsys.readouterr().err
        assert "ledgr.db does not exist" in err and err.count("\n") == 1
    assert not (tmp_path / "ledgr.db").exists()


def _hand_edited_list(tmp_path, channels: list[str]):
    """A sunset.csv edited by hand (users 1.., one row each, ``channels`` as given) and a real ledger."""
    path = tmp_path / "sunset.csv"
    path.write_text("user_id,messages_received,channels,reason\n"
                    + "".join(f"{u},3,{c},x\n" for u, c in enumerate(channels, 1)))
    ledger = tmp_path / "ledger.db"
    Ledger(ledger).close()
    return path, ledger


def test_channels_written_with_another_case_or_spaces_are_the_channels_they_are(tmp_path, capsys):
    # given a hand-edited list whose channels are 'Email', 'email ' and ' SMS|Push'
    path, ledger = _hand_edited_list(tmp_path, ["Email", "email ", " SMS|Push"])
    # when written to the ledger
    code = main(["sunset", str(path), "--ledger", str(ledger)])
    out = capsys.readouterr().out
    # then the suppressions are on email, email, sms and push (which plans and sends match), and one
    # line says how the channels were read
    assert code == 0
    assert "read 2 channels as 'email', 1 as 'push', 1 as 'sms' (case/whitespace)" in out, out
    sup = sorted((s["user_id"], s["channel"]) for s in read_suppressions(ledger).to_pylist())
    assert sup == [(1, "email"), (2, "email"), (3, "push"), (3, "sms")]


@pytest.mark.parametrize("dry", [[], ["--dry-run"]])
def test_an_unknown_channel_in_the_list_is_one_error_and_nothing_is_written(tmp_path, capsys, dry):
    # given a hand-edited list with a good row first, then 'e-mail' and 'sms|pushh'
    path, ledger = _hand_edited_list(tmp_path, ["email", "e-mail", "sms|pushh"])
    # when written (or dry-run)
    code = main(["sunset", str(path), "--ledger", str(ledger), *dry])
    err = capsys.readouterr().err
    # then one line names the file, the column, the rows, the valid channels and the nearest ones;
    # exit 2; not even the good row was written
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"InputError: {path}: column 'channels': 2 rows with a channel that is not one of "
                          "email, sms, push: 'e-mail' (did you mean 'email'?), 'pushh' (did you mean 'push'?)"), err
    assert "row 1 {user_id: 2" in err and "row 2 {user_id: 3" in err and "nothing was written" in err
    assert read_suppressions(ledger).num_rows == 0
