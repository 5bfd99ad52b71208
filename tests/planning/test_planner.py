"""Planning never breaks a rule: consent, caps, gaps, quiet hours, capacity, holdout."""

from __future__ import annotations


import datetime as dt
import json
import zoneinfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import NO_SENDS, campaign_dict, one_step, reachable_users
from tests.strategies import policies
from engine.planning.campaign import load_campaign
from engine.cli import main
from engine.errors import ConfigError, PolicyError
from engine.ledger.store import Ledger
from engine.planning.assign import assignments
from engine.planning.planner import plan as _plan
from engine.schema import CHANNELS, PLAN_SCHEMA
from engine.tz import to_epoch_seconds

ZONES = ["America/New_York", "Europe/Berlin", "Australia/Sydney", "Asia/Kolkata", "UTC", None]
# 2026-03-07: the weekend before the US spring-forward, so plans cross a DST change
START = int(dt.datetime(2026, 3, 7, 12, tzinfo=dt.timezone.utc).timestamp())


def scores_table(rng: np.random.Generator, n: int) -> pa.Table:
    def maybe(p):
        return rng.random(n) < p

    cols = {
        "user_id": pa.array(rng.choice(10**9, n, replace=False).astype(np.int64)),
        "timezone": pa.array([ZONES[i] for i in rng.integers(0, len(ZONES), n)], pa.string()),
        "email": pa.array([f"u{i}@x.com" if ok else None for i, ok in enumerate(maybe(0.8))], pa.string()),
        "phone": pa.array([f"+1555{i:07d}" if ok else None for i, ok in enumerate(maybe(0.5))], pa.string()),
        "push_token": pa.array([f"t{i}" if ok else None for i, ok in enumerate(maybe(0.5))], pa.string()),
        "first_name": pa.array(["<b>Ann</b>" if ok else None for ok in maybe(0.5)], pa.string()),
        "plan": pa.array(["free"] * n, pa.string()),
        "lapse_risk": pa.array(rng.random(n)), "p_alive": pa.array(rng.random(n)),
        "days_inactive": pa.array(rng.uniform(0, 200, n)),
        "monetary": pa.array(rng.uniform(5, 100, n), mask=maybe(0.5)),
        "best_hour_local": pa.array(rng.integers(0, 24, n).astype(np.int8)),
        "send_time_confidence": pa.array(rng.random(n).astype(np.float32)),
        "fatigue_budget": pa.array(rng.integers(0, 4, n).astype(np.int8)),
        "sends_7d": pa.array(np.zeros(n, np.int32)), "sends_30d": pa.array(np.zeros(n, np.int32)),
        "complained": pa.array(maybe(0.02)),
    }
    for c in CHANNELS:
        cols[f"consent_{c}"] = pa.array(maybe(0.7), mask=maybe(0.1))
        cols[f"{c}_suppressed"] = pa.array(maybe(0.1))
        cols[f"{c}_response_rate"] = pa.array(rng.random(n))
    return pa.table(cols)


#: a ledger path with no earlier sends (never created): test campaigns reach most of their
#: tiny bases, so they are approved broadcasts, and an approved broadcast needs a ledger


def plan(scores, campaign, **kw):
    """The planner, with the ledger of no earlier sends unless the test gives one."""
    kw.setdefault("ledger", NO_SENDS)
    return _plan(scores, campaign, **kw)


@settings(max_examples=40)
@given(st.integers(0, 2**31), policies)
def test_no_plan_ever_breaks_a_rule(seed, policy):
    """Property: whatever the scores and policy, every planned message obeys every rule."""
    rng = np.random.default_rng(seed)
    scores = scores_table(rng, 60)
    cmp = load_campaign(campaign_dict(policy))
    p = plan(scores, cmp, as_of=START)
    by_user = {u: i for i, u in enumerate(scores["user_id"].to_pylist())}
    ok = p.filter(pc.is_null(p["reason"]))
    at = to_epoch_seconds(ok["send_at"])
    rows = ok.to_pylist()
    per_user: dict[int, list] = {}
    for r, t in zip(rows, at):
        i = by_user[r["user_id"]]
        c = r["channel"]
        s = scores.slice(i, 1).to_pylist()[0]
        # consent, address, not suppressed
        assert s[f"consent_{c}"] is True
        assert s[{"email": "email", "sms": "phone", "push": "push_token"}[c]] is not None
        assert not s[f"{c}_suppressed"] and not s["complained"]
        assert not r["holdout"]
        # not in quiet hours, in the user's local time (zoneinfo, DST included)
        tz = zoneinfo.ZoneInfo(s["timezone"] or "Europe/Paris")
        local = dt.datetime.fromtimestamp(int(t), tz)
        minute = local.hour * 60 + local.minute
        q = policy["quiet_hours"]
        if q:
            qs, qe = (int(x[:2]) * 60 + int(x[3:]) for x in q)
            inside = (minute >= qs or minute < qe) if qs > qe else (qs <= minute < qe)
            assert not inside, (local, q)
        assert t >= START
        per_user.setdefault(i, []).append((int(t), c))
        # email bodies are HTML-escaped
        if c == "email" and s["first_name"]:
            assert "&lt;b&gt;" in r["body"]
    window = policy["window_days"] * 86400
    for i, msgs in per_user.items():
        msgs.sort()
        times = [t for t, _ in msgs]
        for a, b in zip(times, times[1:]):
            assert b - a >= policy["min_gap_hours"] * 3600
        for t0, _ in msgs:
            in_win = [(t, c) for t, c in msgs if t0 <= t < t0 + window]
            assert len(in_win) <= policy["max_messages"]
            for c, cap in policy["channel_caps"].items():
                assert sum(1 for _, cc in in_win if cc == c) <= cap
        first = [t for t in times if t - START < window]
        assert len(first) <= max(0, scores["fatigue_budget"][i].as_py())
    for c, cap in policy["capacity_per_hour"].items():
        hours = at[np.array([r["channel"] == c for r in rows], bool)] // 3600
        if len(hours):
            assert np.bincount(hours - hours.min()).max() <= cap


def test_holdout_share_is_binomial_and_stable():
    # given 20,000 users and a 10 % holdout
    ids = np.random.default_rng(3).choice(10**12, 20_000, replace=False).astype(np.int64)
    cmp = load_campaign(campaign_dict({}, holdout=0.1))
    h1, v1 = assignments(ids, cmp)
    h2, v2 = assignments(ids, cmp)
    # then the share is within 4 standard errors and a rerun picks the same users
    se = (0.1 * 0.9 / 20_000) ** 0.5
    assert abs(h1.mean() - 0.1) < 4 * se
    assert np.array_equal(h1, h2) and np.array_equal(v1, v2)
    # and another campaign id reshuffles
    other = load_campaign({**campaign_dict({}, holdout=0.1), "campaign": {"id": "other", "holdout": 0.1}})
    assert not np.array_equal(h1, assignments(ids, other)[0])


def test_reasons_explain_every_user():
    rng = np.random.default_rng(1)
    scores = scores_table(rng, 300)
    p = plan(scores, load_campaign(campaign_dict({})), as_of=START)
    assert p.num_rows == 3 * 300
    reasons = set(p["reason"].drop_null().to_pylist())
    assert {"not_in_audience", "holdout"} <= reasons
    sunset = json.loads(p.schema.metadata[b"winback.plan"])["sunset"]
    assert sunset["enabled"] is True
    assert sunset["candidates"] == len(set(p.filter(pc.is_null(p["reason"]))["user_id"].to_pylist()))
    assert reasons <= {"not_in_audience", "holdout", "complaint", "no_consent", "no_address", "suppressed", "channel_cap",
                       "fatigue_budget", "min_gap", "capacity", "broadcast_guard"}
    # message ids are deterministic and unique
    again = plan(scores, load_campaign(campaign_dict({})), as_of=START)
    assert p["message_id"].to_pylist() == again["message_id"].to_pylist()
    assert len(set(p["message_id"].to_pylist())) == p.num_rows
    assert json.loads(p.schema.metadata[b"winback.plan"])["campaign_id"] == "prop-test"


def test_broadcast_guard_refuses_the_whole_base_unless_approved(tmp_path):
    scores = scores_table(np.random.default_rng(2), 100)
    doc = campaign_dict({})
    doc["audience"] = {"where": ""}
    doc["campaign"]["approved"] = False
    with pytest.raises(PolicyError, match="approved = true"):
        plan(scores, load_campaign(doc), as_of=START)
    doc["campaign"]["approved"] = True
    with pytest.raises(PolicyError, match="needs the ledger"):
        plan(scores, load_campaign(doc), as_of=START, ledger=None)
    p = plan(scores, load_campaign(doc), as_of=START, ledger=str(tmp_path / "new-ledger.db"))
    assert json.loads(p.schema.metadata[b"winback.plan"])["broadcast"] is True


def test_the_broadcast_share_is_80_percent_by_default_and_configurable(tmp_path):
    # given an audience of about 85 % of the reachable base (which a 98 % threshold let through)
    scores = scores_table(np.random.default_rng(2), 400)
    doc = campaign_dict({})
    ids = sorted(scores["user_id"].to_pylist())
    doc["audience"] = {"where": f"user_id >= {ids[len(ids) * 15 // 100]}"}
    doc["campaign"]["approved"] = False
    # then it is a broadcast by default, and not with a share of 95 %
    with pytest.raises(PolicyError, match="broadcast share 80%"):
        plan(scores, load_campaign(doc), as_of=START)
    doc["policy"]["broadcast_share"] = 0.95
    p = plan(scores, load_campaign(doc), as_of=START)
    assert json.loads(p.schema.metadata[b"winback.plan"])["broadcast"] is False


def test_campaign_errors_name_the_key():
    doc = campaign_dict({})
    doc["steps"][1]["channels"] = ["email", "fax"]
    with pytest.raises(ConfigError, match=r"steps\[1\]\.channels\[1\]"):
        load_campaign(doc)
    doc = campaign_dict({"quiet_hours": ["25:00", "08:00"]})
    with pytest.raises(ConfigError, match=r"policy\.quiet_hours\[0\]"):
        load_campaign(doc)


def test_plan_cli_writes_plan_and_summary(tmp_path, capsys):
    scores = scores_table(np.random.default_rng(5), 200)
    feather.write_feather(scores, tmp_path / "scores.arrow")
    code = main(["plan", str(tmp_path / "scores.arrow"), "examples/winback_lapsing.toml",
                 "--as-of", "2026-11-01", "-o", str(tmp_path / "plan.arrow")])
    assert code == 0
    out = capsys.readouterr().out
    assert "planned" in out and "not messaged" in out
    assert feather.read_table(tmp_path / "plan.arrow").num_rows == 600
    # and a bad campaign path is one clear line, no output
    code = main(["plan", str(tmp_path / "scores.arrow"), str(tmp_path / "nope.toml"), "-o", str(tmp_path / "p2.arrow")])
    assert code == 2 and "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "p2.arrow").exists()


def test_a_start_before_the_scores_is_refused_and_old_scores_are_flagged(tmp_path, capsys):
    from engine.io.meta import SCORE, with_meta

    scores = with_meta(scores_table(np.random.default_rng(5), 200), SCORE, {"as_of": "2026-11-01T00:00:00+00:00"})
    feather.write_feather(scores, tmp_path / "scores.arrow")
    args = ["plan", str(tmp_path / "scores.arrow"), "examples/winback_lapsing.toml", "-o", str(tmp_path / "plan.arrow")]
    # a start before the scores' as_of (a typo in the year, say): exit 2, one line, no plan
    assert main(args + ["--as-of", "2025-11-01"]) == 2
    err = capsys.readouterr().err
    assert "before the scores' as_of 2026-11-01T00:00:00Z" in err and "Traceback" not in err
    assert not (tmp_path / "plan.arrow").exists()
    # the same day, and a day later: not stale (a schedule already past the wall clock is another warning)
    for day in ("2026-11-01T09:00:00Z", "2026-11-02"):
        assert main(args + ["--as-of", day]) == 0
        assert "older than the campaign's start" not in capsys.readouterr().err
    # three weeks later: planned, with a warning on stderr and in the plan's summary
    assert main(args + ["--as-of", "2026-11-22"]) == 0
    assert "the scores are 21 days older than the campaign's start" in capsys.readouterr().err
    from engine.io.meta import PLAN, read_meta

    assert "21 days older" in read_meta(feather.read_table(tmp_path / "plan.arrow"), PLAN)["summary"]["warnings"][0]


# --- fixed cases: one rule at a time, on hand-built users ----------------------------------


SPRING = "2026-03-27T00:00:00Z"  # Europe springs forward on 2026-03-29


def test_empty_and_single_user_scores():
    # given
    doc = campaign_dict({})
    doc["campaign"]["approved"] = True
    cmp = load_campaign(doc)
    # when
    empty = plan(reachable_users(0), cmp, as_of=SPRING)
    single = plan(reachable_users(1), cmp, as_of=SPRING)
    # then
    assert empty.num_rows == 0
    assert single["user_id"].to_pylist() == [1000] * 3


def test_drip_delay_keeps_the_local_hour_across_spring_forward():
    """A Paris user with best hour 09 gets 09:00 local before and after the DST change."""
    # given
    scores = reachable_users(1, timezone=pa.array(["Europe/Paris"]), best_hour_local=pa.array([9], pa.int8()))
    doc = one_step()
    doc["steps"].append({"name": "b", "delay_days": 3, "channels": ["email"], "template": "t"})
    # when
    p = plan(scores, load_campaign(doc), as_of=SPRING)
    # then
    local = [t.astimezone(zoneinfo.ZoneInfo("Europe/Paris")) for t in p["send_at"].to_pylist()]
    assert [(x.day, x.hour, x.minute) for x in local] == [(27, 9, 0), (30, 9, 0)]
    assert [x.utcoffset() for x in local] == [dt.timedelta(hours=1), dt.timedelta(hours=2)]


def test_quiet_hours_move_the_message_to_the_end_edge_not_drop_it():
    # given: users whose best hour (23:00) is inside quiet hours 21:00-08:00
    scores = reachable_users(3, best_hour_local=pa.array([23] * 3, pa.int8()))
    # when
    p = plan(scores, load_campaign(one_step()), as_of=SPRING)
    # then
    assert p["reason"].null_count == 3
    assert {(t.hour, t.minute) for t in p["send_at"].to_pylist()} == {(8, 0)}


def test_channel_is_the_reachable_one_with_the_best_response_rate():
    # given: push answers better, but the second user gave no push consent
    scores = reachable_users(2, push_response_rate=[0.9, 0.9], email_response_rate=[0.2, 0.2],
                             consent_push=[True, False])
    # when
    p = plan(scores, load_campaign(one_step(channels=("email", "push"))), as_of=SPRING)
    # then
    assert p["channel"].to_pylist() == ["push", "email"]
    assert p["to"].to_pylist() == ["push-0", "email-1"]


def test_reasons_for_consent_address_and_suppression_from_scores_ledger_and_table(tmp_path):
    # given: no consent, no address, suppressed in scores, in the ledger, in a suppressions table
    scores = reachable_users(5, consent_email=[False, True, True, True, True],
                             email=pa.array(["a@x", None, "c@x", "d@x", "e@x"]),
                             email_suppressed=[False, False, True, False, False])
    ledger = tmp_path / "ledger.db"
    with Ledger(ledger) as led:
        led.add_suppressions([{"channel": "email", "address": "d@x", "reason": "bounce"}])
    extra = pa.table({"channel": ["email"], "address": [None], "user_id": pa.array([1004], pa.int64())})
    # when
    p = plan(scores, load_campaign(one_step()), as_of=SPRING, ledger=str(ledger), suppressions=extra)
    # then
    assert p["reason"].to_pylist() == ["no_consent", "no_address", "suppressed", "suppressed", "suppressed"]


def test_capacity_keeps_confident_then_high_value_users():
    # given: 6 users want 10:00, email capacity 2/hour, and only 10:00-11:00 is outside quiet hours
    scores = reachable_users(6, send_time_confidence=[0.9, 0.1, 0.1, 0.1, 0.1, 0.1],
                             p_alive=[0.1, 0.9, 0.8, 0.2, 0.3, 0.4])
    doc = one_step(quiet_hours=["11:00", "10:00"], capacity_per_hour={"email": 2})
    # when
    p = plan(scores, load_campaign(doc), as_of=SPRING)
    # then
    assert p["reason"].to_pylist() == [None, None, "capacity", "capacity", "capacity", "capacity"]


def test_fatigue_budget_and_recent_sends_bound_the_campaign():
    # given: budget 1; 3 recent sends against a cap of 3 (tired this week); budget 3; and budget 0 with
    # no recent sends (not worth one message at all)
    scores = reachable_users(4, fatigue_budget=[1, 3, 3, 0], sends_7d=[0, 3, 0, 0])
    doc = campaign_dict({"quiet_hours": [], "min_gap_hours": 1}, holdout=0.0, steps=[
        {"name": "a", "delay_days": 0, "channels": ["email"], "template": "t"},
        {"name": "b", "delay_days": 1, "channels": ["email"], "template": "t"}])
    doc["campaign"]["approved"] = True
    # when
    p = plan(scores, load_campaign(doc), as_of=SPRING)
    # then the first user gets one message in the window; the tired one starts the whole sequence
    # after the window instead of losing its first step; the third gets both; the last none
    reasons = {(r["user_id"], r["step"]): r["reason"] for r in p.to_pylist()}
    at = {(r["user_id"], r["step"]): r["send_at"] for r in p.to_pylist()}
    uid = scores["user_id"].to_pylist()
    assert [reasons[(u, "a")] for u in uid] == [None, None, None, "fatigue_budget"]
    assert [reasons[(u, "b")] for u in uid] == ["fatigue_budget", None, None, "fatigue_budget"]
    start = dt.datetime.fromisoformat(SPRING.replace("Z", "+00:00"))
    assert at[(uid[1], "a")] >= start + dt.timedelta(days=7)  # the window its budget covered is over
    assert at[(uid[1], "b")] - at[(uid[1], "a")] >= dt.timedelta(days=1) - dt.timedelta(hours=1)  # spacing kept
    assert at[(uid[2], "a")] < start + dt.timedelta(days=1)


def test_a_deferred_sequence_keeps_a_budget_in_its_own_first_window():
    # given a user held at 0 this week after 1 recent send (so at most 1 in a window with no load),
    # and a three-step drip inside one week
    scores = reachable_users(1, fatigue_budget=[0], sends_7d=[1])
    doc = campaign_dict({"quiet_hours": [], "min_gap_hours": 1, "max_messages": 3}, holdout=0.0, steps=[
        {"name": s, "delay_days": d, "channels": ["email"], "template": "t"} for s, d in (("a", 0), ("b", 1), ("c", 1))])
    doc["campaign"]["approved"] = True
    # when
    p = plan(scores, load_campaign(doc), as_of=SPRING)
    # then the sequence starts after the first window and gets at most budget + recent sends (1) there
    assert p["reason"].to_pylist() == [None, "fatigue_budget", "fatigue_budget"]
    start = dt.datetime.fromisoformat(SPRING.replace("Z", "+00:00"))
    assert p["send_at"][0].as_py() >= start + dt.timedelta(days=7)


def test_broadcast_guard_remembers_approved_broadcasts_for_90_days(tmp_path):
    # given: an approved whole-base campaign and a ledger holding a broadcast 10 days ago
    scores = reachable_users(20)
    doc = one_step()
    doc["audience"] = {"where": ""}
    ledger = tmp_path / "ledger.db"
    now = dt.datetime.now(dt.timezone.utc)
    with Ledger(ledger) as led:
        led.record_broadcast("earlier", now.timestamp() - 10 * 86400)
    # when / then
    with pytest.raises(PolicyError, match="90 days"):
        plan(scores, load_campaign(doc), as_of=now.isoformat(), ledger=str(ledger))


@pytest.mark.parametrize("change,fragment", [
    ({"user_id": pa.array([1, None, 3], pa.int64())}, "'user_id' is null in 1 rows (e.g. rows [1])"),
    ({"user_id": pa.array([7, 7, 3], pa.int64())}, "'user_id' repeats 1 ids (e.g. [7])"),
    ({"timezone": pa.array(["UTC", "Mars/Base", "Mars/Base"])},
     "2 rows with unknown IANA timezones (e.g. user_id, timezone: [(1001, 'Mars/Base'), (1002, 'Mars/Base')])"),
])
def test_bad_scores_are_refused_with_the_column_count_and_examples(tmp_path, capsys, change, fragment):
    # given
    scores = reachable_users(3, **change)
    feather.write_feather(scores, tmp_path / "scores.arrow")
    (tmp_path / "c.toml").write_text('[campaign]\nid = "x"\n[[steps]]\nname = "a"\nchannels = ["email"]\n')
    # when
    code = main(["plan", str(tmp_path / "scores.arrow"), str(tmp_path / "c.toml"), "--as-of", SPRING,
                 "-o", str(tmp_path / "plan.arrow")])
    err = capsys.readouterr().err
    # then
    assert code != 0 and not (tmp_path / "plan.arrow").exists()
    assert err.startswith("InputError: scores ") and "scores.arrow" in err and fragment in err
    assert len(err.strip().splitlines()) == 1

# --- property: drips with random delays, fatigue budgets and recent sends ------------------

DST_ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", None]


def random_users(n: int, seed: int = 0, *, zones=DST_ZONES, p_consent=0.7, p_address=0.9, p_supp=0.1,
                 sends_7d_max=3) -> pa.Table:
    """A hand-built scores table with the columns plan reads, random but reproducible."""
    rng = np.random.default_rng(seed)
    cols = {"user_id": pa.array(np.arange(1000, 1000 + n, dtype=np.int64)),
            "timezone": pa.array([zones[i] for i in rng.integers(0, len(zones), n)], pa.string())}
    for c, addr in (("email", "email"), ("sms", "phone"), ("push", "push_token")):
        cols[f"consent_{c}"] = pa.array(rng.random(n) < p_consent)
        has = rng.random(n) < p_address
        cols[addr] = pa.array([f"{c}-{i}" if h else None for i, h in enumerate(has)], pa.string())
        cols[f"{c}_suppressed"] = pa.array(rng.random(n) < p_supp)
        cols[f"{c}_response_rate"] = pa.array(rng.random(n))
        cols[f"{c}_unengaged_streak"] = pa.array(rng.integers(0, 9, n))
    cols |= {
        "days_inactive": pa.array(rng.integers(0, 200, n).astype(np.float64)),
        "lapse_risk": pa.array(rng.random(n)), "p_alive": pa.array(rng.random(n)),
        "monetary": pa.array(np.where(rng.random(n) < 0.5, np.nan, rng.random(n) * 100), from_pandas=True),
        "purchases": pa.array(rng.integers(0, 4, n)),
        "best_hour_local": pa.array(rng.integers(0, 24, n).astype(np.int8)),
        "send_time_confidence": pa.array(rng.random(n)),
        "sends_7d": pa.array(rng.integers(0, sends_7d_max + 1, n)),
        "sends_30d": pa.array(rng.integers(0, 3 * sends_7d_max + 1, n)),
        "fatigue_budget": pa.array(rng.integers(0, 4, n)),
        "contact_rating": pa.array(rng.integers(1, 6, n)),
        "complained": pa.array(np.zeros(n, bool)),
        "first_name": pa.array([f"<b>{i}</b>" if i % 3 else None for i in range(n)], pa.string()),
    }
    return pa.table(cols)


def drip_doc(**policy) -> dict:
    pol = {"max_messages": 3, "window_days": 7, "min_gap_hours": 16, "quiet_hours": ["21:00", "08:00"],
           "channel_caps": {"sms": 1}, "capacity_per_hour": {"email": 50, "push": 50, "sms": 5}} | policy
    return {
        "campaign": {"id": "wb-test", "holdout": 0.1, "approved": True, "as_of": SPRING},
        "audience": {"where": "days_inactive >= 0"},
        "policy": pol,
        "steps": [
            {"name": "miss-you", "delay_days": 0, "channels": ["push", "email"], "template": "t"},
            {"name": "whats-new", "delay_days": 1, "channels": ["email", "sms"], "template": "t"},
            {"name": "last", "delay_days": 3, "channels": ["sms", "push", "email"], "template": "t"},
        ],
        "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 3}],
        "templates": {"t": {"subject": "Hi {{ first_name | default(\"there\") }}",
                            "body": "<p>{{ first_name | default(\"there\") }}</p>"}},
    }


def _local_minute(send_at: pa.Array, tz: list[str], default_tz: str) -> list[int]:
    out = []
    for t, z in zip(send_at.to_pylist(), tz):
        loc = t.astimezone(zoneinfo.ZoneInfo(z or default_tz))
        out.append(loc.hour * 60 + loc.minute)
    return out


drip_policies = st.fixed_dictionaries({
    "max_messages": st.integers(1, 4),
    "window_days": st.sampled_from([7, 30]),
    "min_gap_hours": st.sampled_from([0, 4, 16, 30]),
    "quiet_hours": st.sampled_from([[], ["21:00", "08:00"], ["22:30", "07:15"], ["12:00", "14:00"]]),
    "channel_caps": st.dictionaries(st.sampled_from(["email", "sms", "push"]), st.integers(0, 2), max_size=2),
    "capacity_per_hour": st.dictionaries(st.sampled_from(["email", "sms", "push"]), st.integers(1, 3), max_size=3),
})


@given(n=st.integers(1, 60), seed=st.integers(0, 2**31), policy=drip_policies,
       delays=st.lists(st.sampled_from([0, 0.5, 1, 3, 6.5, 7]), min_size=1, max_size=3))
def test_no_drip_ever_breaks_a_rule(n, seed, policy, delays):
    """Property: for random users, policies and step delays (up to a week, so capacity
    levelling meets the edge of the first policy window), every planned message respects
    consent, address, suppression, the scored fatigue budget in the first window, the
    cross-channel and per-channel caps, the minimum gap, local quiet hours (across
    Europe's spring-forward) and the hourly capacity per channel."""
    # given
    scores = random_users(n, seed)
    doc = drip_doc(**policy)
    doc["steps"] = [s | {"delay_days": d} for s, d in zip(doc["steps"], delays)]
    camp = load_campaign(doc)
    # when
    p = plan(scores, camp)
    # then
    assert p.num_rows == n * len(delays)
    assert p.schema.names[:len(PLAN_SCHEMA)] == PLAN_SCHEMA.names
    rows = p.to_pylist()
    srows = {r["user_id"]: r for r in scores.to_pylist()}
    start = dt.datetime.fromisoformat(SPRING.replace("Z", "+00:00"))
    window = dt.timedelta(days=policy["window_days"])
    per_user: dict[int, list] = {}
    per_hour: dict[tuple, int] = {}
    for r in rows:
        if r["reason"] is not None:
            assert r["send_at"] is None and r["channel"] is None
            continue
        s, c = srows[r["user_id"]], r["channel"]
        addr = {"email": "email", "sms": "phone", "push": "push_token"}[c]
        assert s[f"consent_{c}"] and s[addr] is not None and not s[f"{c}_suppressed"]
        assert r["to"] == s[addr]
        assert c in doc["steps"][r["step_index"]]["channels"]
        assert not r["holdout"]
        per_user.setdefault(r["user_id"], []).append((r["send_at"], c))
        key = (c, r["send_at"].replace(minute=0, second=0, microsecond=0))
        per_hour[key] = per_hour.get(key, 0) + 1
        assert r["send_at"] >= start
        if c == "email":
            assert "<b>" not in r["body"]
    for (c, _), count in per_hour.items():
        assert count <= policy["capacity_per_hour"].get(c, 10**9)
    recent = "sends_7d" if policy["window_days"] == 7 else "sends_30d"
    for uid, msgs in per_user.items():
        msgs.sort()
        for (a, _), (b, _) in zip(msgs, msgs[1:]):
            assert b - a >= dt.timedelta(hours=policy["min_gap_hours"])
        # a step never comes sooner than its delay after the user's previous planned one (in wall
        # time: an hour less across the spring-forward night)
        steps = sorted((r["step_index"], r["send_at"]) for r in rows if r["user_id"] == uid and r["reason"] is None)
        for (k0, a), (k1, b) in zip(steps, steps[1:]):
            assert b - a >= dt.timedelta(days=delays[k1]) - dt.timedelta(hours=1), (k0, k1, a, b)
        for t, c in msgs:
            in_win = [m for m in msgs if t - window < m[0] <= t]
            hist = srows[uid][recent] if t - start < window else 0
            assert hist + len(in_win) <= policy["max_messages"]
            cap = policy["channel_caps"].get(c)
            if cap is not None:
                assert sum(1 for m in in_win if m[1] == c) <= cap
        assert len([m for m in msgs if m[0] - start < window]) <= srows[uid]["fatigue_budget"]
    quiet = policy["quiet_hours"]
    if quiet:
        qs, qe = (int(x[:2]) * 60 + int(x[3:]) for x in quiet)
        planned = p.filter(pc.is_null(p["reason"]))
        tz = [srows[u]["timezone"] for u in planned["user_id"].to_pylist()]
        for m in _local_minute(planned["send_at"], tz, "UTC"):
            assert not ((m >= qs or m < qe) if qs > qe else (qs <= m < qe))


@pytest.mark.parametrize("command,options", [
    ("plan", ["--output", "--as-of", "--ledger"]),
    ("explain", ["--plan", "--scores", "--json"]),
])
def test_cli_help_explains_every_option_with_an_example(command, options, capsys):
    # when
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    out = capsys.readouterr().out
    # then
    assert done.value.code == 0
    assert all(opt in out for opt in options)
    assert "example" in out and f"winback {command} " in out


@pytest.mark.parametrize("mode,planned", [("all", [True, False, False, True]), ("channel", [True, True, True, True])])
def test_a_complaint_on_email_stops_sms_and_push_unless_configured(tmp_path, mode, planned):
    # given: users 1001 and 1002 complained on email (1001 in the scores, 1002 in the ledger by user id),
    # and a campaign sending on sms and push only
    scores = reachable_users(4, complained=[False, True, False, False], email_suppressed=[False, True, True, False])
    ledger = tmp_path / "ledger.db"
    with Ledger(ledger) as led:
        led.add_suppressions([{"channel": "email", "address": "email-2", "user_id": 1002, "reason": "complaint"}])
    doc = one_step(channels=("sms", "push"), complaint_suppresses=mode)
    # when
    p = plan(scores, load_campaign(doc), as_of=SPRING, ledger=str(ledger))
    # then
    assert [r is None for r in p["reason"].to_pylist()] == planned
    summary = json.loads(p.schema.metadata[b"winback.plan"])["summary"]
    assert summary["by_reason"].get("complaint", 0) == planned.count(False)



def test_capacity_levelling_never_brings_a_step_closer_than_its_delay(tmp_path):
    # given a generated world and a drip with tight hourly capacity (3 per channel) and min_gap under the delays
    from engine.scoring.pipeline import score
    from engine.synth.generator import generate

    generate(3000, seed=1, out_dir=tmp_path / "w")
    scores = score(tmp_path / "w/users.arrow", tmp_path / "w/events.arrow", as_of="2026-11-01T00:00:00Z")
    doc = {"campaign": {"id": "p30", "timezone": "Asia/Kolkata", "holdout": 0.1},
           "audience": {"where": "days_inactive >= 3 and days_inactive < 60 and (reachable_email or reachable_push "
                                 "or reachable_sms)"},
           "policy": {"max_messages": 4, "window_days": 7, "min_gap_hours": 16, "quiet_hours": [],
                      "capacity_per_hour": {"email": 3, "push": 3, "sms": 3}},
           "steps": [{"name": n, "delay_days": d, "channels": c, "template": "t", "exit_on": "none"}
                     for n, d, c in (("s0", 1, ["push"]), ("s1", 1, ["email", "push"]), ("s2", 5, ["push"]),
                                     ("s3", 3, ["email"]))],
           "templates": {"t": {"subject": "hi", "body": "hello"}}}
    delays = [1, 1, 5, 3]
    # when planned (levelling moves messages up to 12 h either way to find room)
    p = plan(scores, load_campaign(doc)).filter(pc.is_null(pc.field("reason")))
    by_user: dict = {}
    for r in p.to_pylist():
        by_user.setdefault(r["user_id"], []).append((r["step_index"], r["send_at"]))
    # then no step comes sooner than its delay after the user's previous planned one
    close = [(u, a, b) for u, v in by_user.items() for (_, a), (k, b) in zip(sorted(v), sorted(v)[1:])
             if b - a < dt.timedelta(days=delays[k])]
    assert len(by_user) > 100 and close == []
