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

from engine.campaign import load_campaign
from engine.cli import main
from engine.errors import ConfigError, PolicyError
from engine.plan import assignments, plan
from engine.schema import CHANNELS
from engine.timeutil import to_epoch_seconds

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
    }
    for c in CHANNELS:
        cols[f"consent_{c}"] = pa.array(maybe(0.7), mask=maybe(0.1))
        cols[f"{c}_suppressed"] = pa.array(maybe(0.1))
        cols[f"{c}_response_rate"] = pa.array(rng.random(n))
    return pa.table(cols)


def campaign_dict(policy: dict, holdout=0.2, steps=None) -> dict:
    return {
        "campaign": {"id": "prop-test", "timezone": "Europe/Paris", "holdout": holdout},
        "audience": {"where": "lapse_risk >= 0.2"},
        "policy": policy,
        "steps": steps or [
            {"name": "a", "delay_days": 0, "channels": ["push", "email", "sms"], "template": "t"},
            {"name": "b", "delay_days": 1, "channels": ["email", "sms"], "template": "t"},
            {"name": "c", "delay_days": 2, "channels": ["sms", "push"], "template": "t"},
        ],
        "templates": {"t": {"subject": "Hi {{ first_name | default(\"there\") }}", "body": "<p>{{ first_name }}</p>"}},
    }


policies = st.fixed_dictionaries({
    "max_messages": st.integers(1, 3),
    "window_days": st.sampled_from([7, 30]),
    "min_gap_hours": st.sampled_from([0, 8, 16, 30]),
    "quiet_hours": st.sampled_from([["21:00", "08:00"], ["12:00", "14:00"], []]),
    "channel_caps": st.sampled_from([{}, {"sms": 1}, {"email": 1, "push": 1}]),
    "capacity_per_hour": st.sampled_from([{}, {"email": 3, "push": 2, "sms": 1}, {"email": 1}]),
})


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
        assert not s[f"{c}_suppressed"]
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
    assert reasons <= {"not_in_audience", "holdout", "no_consent", "no_address", "suppressed", "channel_cap",
                       "fatigue_budget", "min_gap", "capacity", "broadcast_guard"}
    # message ids are deterministic and unique
    again = plan(scores, load_campaign(campaign_dict({})), as_of=START)
    assert p["message_id"].to_pylist() == again["message_id"].to_pylist()
    assert len(set(p["message_id"].to_pylist())) == p.num_rows
    assert json.loads(p.schema.metadata[b"winback.plan"])["campaign_id"] == "prop-test"


def test_broadcast_guard_refuses_the_whole_base_unless_approved():
    scores = scores_table(np.random.default_rng(2), 100)
    doc = campaign_dict({})
    doc["audience"] = {"where": ""}
    with pytest.raises(PolicyError, match="approved = true"):
        plan(scores, load_campaign(doc), as_of=START)
    doc["campaign"]["approved"] = True
    p = plan(scores, load_campaign(doc), as_of=START)
    assert json.loads(p.schema.metadata[b"winback.plan"])["broadcast"] is True


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
