"""Scores that would make a plan message the wrong people, or plan nothing, without a word:
missing or blank opt-out columns, unknown response rates, negative counts, empty and past plans."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401 (pa.compute)
import pyarrow.compute as pc
import pyarrow.feather as feather
import pytest

from engine.cli import main
from engine.errors import InputError
from engine.planning.campaign import load_campaign
from engine.planning.planner import plan
from tests.helpers import NO_SENDS, one_step, reachable_users

START = "2026-11-02T00:00:00Z"
CAMPAIGN = ('[campaign]\nid = "x"\nholdout = 0\napproved = true\n[audience]\nwhere = ""\n'
            '[[steps]]\nname = "one"\nchannels = ["email", "push"]\n')


def _plan_cli(tmp_path, capsys, scores: pa.Table, *extra, campaign: str = CAMPAIGN) -> tuple[int, str, str]:
    """Write ``scores`` and ``campaign``, run ``winback plan``: (exit code, stdout, stderr)."""
    from engine.ledger.store import Ledger

    feather.write_feather(scores, tmp_path / "scores.arrow")
    (tmp_path / "c.toml").write_text(campaign)
    Ledger(tmp_path / "ledger.db").close()  # an empty ledger: the broadcast guard's 90-day check
    capsys.readouterr()
    code = main(["plan", str(tmp_path / "scores.arrow"), str(tmp_path / "c.toml"), "-o", str(tmp_path / "plan.arrow"),
                 "--ledger", str(tmp_path / "ledger.db"), *extra])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _summary(p: pa.Table) -> dict:
    return json.loads(p.schema.metadata[b"winback.plan"])["summary"]


@pytest.mark.parametrize("drop", [["email_suppressed"], ["complained"], ["push_suppressed", "complained"]])
def test_scores_without_the_opt_out_columns_of_the_campaigns_channels_are_refused(tmp_path, capsys, drop):
    # given: scores without an opt-out column an email+push campaign needs (a re-saved or hand-made table)
    scores = reachable_users(3).drop_columns(drop)
    # when: planned from the CLI
    code, out, err = _plan_cli(tmp_path, capsys, scores, "--as-of", START)
    # then: exit 2, one line naming the file and every missing column and what to do, no plan written
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "scores.arrow" in err and all(repr(c) in err for c in drop) and "winback score" in err
    assert not (tmp_path / "plan.arrow").exists()


def test_only_the_campaigns_channels_need_their_column_and_a_per_channel_complaint_rule_needs_no_complained():
    # given: scores without sms_suppressed and complained, an email-only campaign whose complaints
    # are per channel (complaint_suppresses = "channel": they are in email_suppressed)
    scores = reachable_users(2).drop_columns(["sms_suppressed", "complained"])
    doc = one_step(channels=("email",), complaint_suppresses="channel")
    # when
    p = plan(scores, load_campaign(doc), as_of=START, ledger=NO_SENDS)
    # then: planned; the default rule (a complaint stops every channel) does need complained
    assert p.filter(pc.is_null(p["reason"])).num_rows == 2
    with pytest.raises(InputError, match="'complained'"):
        plan(scores, load_campaign(one_step(channels=("email",))), as_of=START, ledger=NO_SENDS)


def test_a_blank_opt_out_counts_as_suppressed_and_is_said_in_the_summary():
    # given: user 1000 clear, 1001 with a blank email_suppressed, 1002 with a blank complained
    scores = reachable_users(3, email_suppressed=pa.array([False, None, False], pa.bool_()),
                             complained=pa.array([False, False, None], pa.bool_()))
    # when: planned on email and push (1001 still has push)
    p = plan(scores, load_campaign(one_step(channels=("email", "push"))), as_of=START, ledger=NO_SENDS)
    rows = {r["user_id"]: r for r in p.to_pylist()}
    # then: nobody is sent where it is not known they did not opt out
    assert rows[1000]["reason"] is None
    assert rows[1001]["reason"] is None and rows[1001]["channel"] == "push"
    assert rows[1002]["reason"] == "suppressed" and rows[1002]["channel"] is None
    # and a blank on the only channel is suppressed too
    only_email = plan(scores, load_campaign(one_step(channels=("email",))), as_of=START, ledger=NO_SENDS)
    assert only_email.filter(pc.is_null(only_email["reason"]))["user_id"].to_pylist() == [1000]
    assert only_email.filter(pc.equal(only_email["user_id"], 1001))["reason"].to_pylist() == ["suppressed"]
    # and the summary says how many blanks were counted as suppressed
    [warning] = [w for w in _summary(p).get("warnings", []) if "blank opt-out" in w]
    assert "email_suppressed 1" in warning and "complained 1" in warning


def test_an_all_blank_opt_out_column_suppresses_everyone_on_it():
    # given: an email_suppressed column with no value at all (an empty CSV column reads as type null)
    scores = reachable_users(2, email_suppressed=pa.nulls(2))
    # when
    p = plan(scores, load_campaign(one_step(channels=("email",))), as_of=START, ledger=NO_SENDS)
    # then
    assert p["reason"].to_pylist() == ["suppressed", "suppressed"]
    assert any("email_suppressed 2" in w for w in _summary(p)["warnings"])


@pytest.mark.parametrize("bad", [float("nan"), None])
def test_an_unknown_response_rate_still_ranks_the_channel_and_is_never_suppressed(bad):
    # given: user 1001's email response rate is NaN (a pandas export) or null; push is unreachable for all
    rates = pa.array([0.3, bad, 0.3], pa.float64(), from_pandas=False)
    scores = reachable_users(3, email_response_rate=rates, consent_push=[False] * 3)
    # when
    p = plan(scores, load_campaign(one_step(channels=("email", "push"))), as_of=START, ledger=NO_SENDS)
    # then: every user is planned on email, none labelled suppressed
    assert p["reason"].to_pylist() == [None, None, None]
    assert p["channel"].to_pylist() == ["email"] * 3
    # and the unknown rate ranks as the prior (0.1): a known better channel still wins
    scores = reachable_users(1, email_response_rate=pa.array([bad], pa.float64()), push_response_rate=[0.2])
    p = plan(scores, load_campaign(one_step(channels=("email", "push"))), as_of=START, ledger=NO_SENDS)
    assert p["channel"].to_pylist() == ["push"]


@pytest.mark.parametrize("column", ["sends_7d", "sends_30d", "fatigue_budget", "email_sends_90d"])
def test_a_negative_count_or_budget_is_refused_naming_the_column_and_rows(tmp_path, capsys, column):
    # given: a negative value for users 1001 and 1003 (a negative recent-send count loosens the cap)
    scores = reachable_users(4, **{column: pa.array([0, -5, 1, -1], pa.int64())})
    # when
    code, out, err = _plan_cli(tmp_path, capsys, scores, "--as-of", START)
    # then: one line naming the file, the column and the users, exit 2, no plan
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "scores.arrow" in err and repr(column) in err and "negative in 2 rows" in err
    assert "(1001, -5)" in err and "(1003, -1)" in err
    assert not (tmp_path / "plan.arrow").exists()


def test_a_response_rate_above_one_is_refused():
    # given: a response rate of 5 (a percentage, not a probability)
    scores = reachable_users(2, email_response_rate=[0.3, 5.0])
    # when / then
    with pytest.raises(InputError, match=r"'email_response_rate' is outside 0-1 in 1 rows.*1001, 5.0"):
        plan(scores, load_campaign(one_step(channels=("email",))), as_of=START, ledger=NO_SENDS)


def test_a_plan_of_no_message_says_so(tmp_path, capsys):
    # given: an audience nobody is in (days_inactive null for everyone, as from a broken export)
    scores = reachable_users(3, days_inactive=pa.array([np.nan] * 3))
    # when
    code, out, err = _plan_cli(tmp_path, capsys, scores, "--as-of", "2099-01-01T00:00:00Z",
                               campaign=CAMPAIGN.replace('where = ""', 'where = "days_inactive >= 14"'))
    # then: planned (exit 0), with one warning line saying nothing will be sent and why
    assert code == 0 and "planned 0 messages" in out
    [line] = [ln for ln in err.splitlines() if "plans no message" in ln]
    assert line.startswith("warning: ") and "not_in_audience 3" in line and "send nothing" in line


def test_a_plan_whose_every_send_time_is_past_says_send_will_skip_it(tmp_path, capsys):
    # given: a plan started in 2020 (a backtest), and one started far ahead
    scores = reachable_users(3)
    code, out, err = _plan_cli(tmp_path, capsys, scores, "--as-of", "2020-01-01T00:00:00Z")
    # then: planned, with one warning line that send will skip every message as too_late
    assert code == 0 and "planned 3 messages" in out
    [line] = [ln for ln in err.splitlines() if "already past" in ln]
    assert line.startswith("warning: ") and "too_late" in line and "2020-01-01" in line
    # and a plan in the future has no such warning
    code, out, err = _plan_cli(tmp_path, capsys, scores, "--as-of", "2099-01-01T00:00:00Z")
    assert code == 0 and "already past" not in err and "plans no message" not in err


def test_the_past_schedule_check_reads_the_latest_send_and_compares_it_with_now(tmp_path):
    # given: a written plan whose last message goes at 2020-01-01 10:00 UTC
    from engine.cli.plan import send_warnings

    p = plan(reachable_users(2), load_campaign(one_step(channels=("email",))), as_of="2020-01-01T00:00:00Z", ledger=NO_SENDS)
    feather.write_feather(p, tmp_path / "plan.arrow")
    s = _summary(p)
    last = int(pc.max(p["send_at"]).as_py().timestamp())
    # when / then: one hour before it nothing is said; one second after, the warning
    assert send_warnings(s, tmp_path / "plan.arrow", now=last - 3600) == []
    [w] = send_warnings(s, tmp_path / "plan.arrow", now=last + 1)
    assert "too_late" in w


def test_explain_reads_a_null_opt_out_and_a_nan_rate_as_the_planner_does():
    # given a user whose email_suppressed is null and whose push rate is NaN, planned on email or push
    from engine.planning.campaign import load_campaign
    from engine.planning.explain import explain
    from engine.planning.planner import plan
    from tests.helpers import one_step, reachable_users

    scores = reachable_users(5, email_suppressed=pa.array([None, False, False, False, False], pa.bool_()),
                             push_response_rate=pa.array([float("nan"), 0.3, 0.3, 0.3, 0.3]),
                             lapse_risk=pa.array([0.9, 0.1, 0.1, 0.1, 0.1]))  # an audience of one of five
    p = plan(scores, load_campaign(one_step(channels=("email", "push"))), as_of="2026-03-27T00:00:00Z")
    p = p.filter(pa.compute.equal(p["user_id"], 1000))
    # when explained
    ranking = explain(1000, p, scores)["channels"][0]["ranking"]
    # then email is suppressed, as the plan has it, and push (unknown rate) is the channel chosen
    assert [r["channel"] for r in ranking] == ["push", "email"]
    assert ranking[1]["suppressed"] and not ranking[1]["reachable"] and ranking[0]["response_rate"] is None
    assert p["channel"].to_pylist() == ["push"]
