"""score() end to end: hand-computed users, metadata, accuracy on the generator's truth, CLI."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest

from engine.cli import main
from engine.synth.generator import generate
from engine.scoring.pipeline import score, summary_of
from tests import naive

AS_OF = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)


def _ts(days_ago, hour=12):
    return AS_OF - dt.timedelta(days=days_ago) + dt.timedelta(hours=hour - 12)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("w")
    generate(3000, seed=4, out_dir=d)
    return d


def test_hand_computed_user(world):
    # given the generated world plus one hand-made user with a known history
    users = feather.read_table(world / "users.arrow")
    events = feather.read_table(world / "events.arrow")
    me = pa.table({"user_id": pa.array([42, 43], pa.int64()), "timezone": ["Asia/Kolkata", "Asia/Kolkata"],
                   "email": ["me@example.com", None], "consent_email": [True, True],
                   "signup_at": pa.array([_ts(200), _ts(50)], pa.timestamp("us", tz="UTC"))})
    users = pa.concat_tables([users.select(me.column_names).cast(me.schema), me])
    rows = [(42, _ts(100), "session", None, None), (42, _ts(40), "purchase", None, 30.0),
            (42, _ts(40), "session", None, None), (42, _ts(10), "session", None, None),
            (42, _ts(20), "send", "email", None), (42, _ts(19), "open", "email", None),
            (42, _ts(5), "send", "email", None), (42, _ts(3), "send", "email", None)]
    mine = pa.table({"user_id": pa.array([r[0] for r in rows], pa.int64()),
                     "ts": pa.array([r[1] for r in rows], pa.timestamp("us", tz="UTC")),
                     "event": [r[2] for r in rows], "channel": pa.array([r[3] for r in rows], pa.string()),
                     "value": pa.array([r[4] for r in rows], pa.float64())})
    ev = pa.concat_tables([events.select(["user_id", "ts", "event", "channel", "value"]).cast(pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")),
                                                  ("event", pa.string()), ("channel", pa.string()),
                                                  ("value", pa.float64())])), mine])
    s = score(users, ev, as_of=AS_OF, lapse_model="closed_form")  # the BG/NBD forms checked below
    row = s.filter(pa.compute.equal(s["user_id"], 42)).to_pylist()[0]
    # then: active days 100, 40, 10 days ago -> frequency 2, recency 90, tenure 100
    assert row["frequency"] == 2 and row["recency_days"] == 90.0 and row["tenure_days"] == pytest.approx(100.0)
    assert row["days_inactive"] == pytest.approx(10.0)
    assert row["purchases"] == 1 and row["monetary"] == 30.0
    assert row["email_sends_90d"] == 3 and row["email_opens_90d"] == 1
    assert row["email_unengaged_streak"] == 2 and row["sends_7d"] == 2 and row["sends_30d"] == 3
    assert row["lifecycle"] == "active" or row["lifecycle"] == "at_risk"
    # lapse_risk: P(no activity in the next 30 days) = 1 - p_alive + p_alive ((alpha+T)/(alpha+T+30))^(r+x)
    m = summary_of(s)["model"]
    stay = ((m["alpha"] + 100.0) / (m["alpha"] + 130.0)) ** (m["r"] + 2)
    assert 0 < row["p_alive"] <= 1 and row["lapse_risk"] == pytest.approx(1 - row["p_alive"] * (1 - stay), rel=1e-9)
    # the learned budget: the further messages (cap 3 minus 2 recent sends at most) worth their unsubscribe risk
    from engine.scoring import fatigue_model

    fat = summary_of(s)["fatigue"]
    assert fat["model"] == "learned" and row["fatigue_sensitivity"] == pytest.approx(fat["beta"], abs=0.5)
    assert row["fatigue_budget"] == fatigue_model.budget(
        np.array([row["fatigue_sensitivity"]]), np.array([row["fatigue_response"]]), np.array([2]),
        np.array([False]), cap=3, window_days=7, u0=fat["unsubscribe_per_message"])[0]
    rule = score(users, ev, as_of=AS_OF, fatigue="rule")
    assert rule.filter(pa.compute.equal(rule["user_id"], 42))["fatigue_budget"][0].as_py() == 1  # cap 3 - 2 sends
    # next_send_at is after as_of, at the best hour in Kolkata (+05:30)
    nxt = row["next_send_at"]
    assert nxt > AS_OF and (nxt.hour * 60 + nxt.minute + 330) % 1440 == row["best_hour_local"] * 60
    # p_alive is FHL 2005 eq. 13 with the fitted parameters at (x, t_x, T) = (2, 90, 100)
    p = summary_of(s)["model"]
    assert row["p_alive"] == pytest.approx(naive.bgnbd_p_alive(2, 90.0, 100.0, p["r"], p["alpha"], p["a"], p["b"]),
                                           rel=1e-9)
    # given user 43, signed up 50 days ago and never seen since
    quiet = s.filter(pa.compute.equal(s["user_id"], 43)).to_pylist()[0]
    # then: no activity columns, dormant, the first-day dropout p_alive with T = 50 days since signup
    assert quiet["last_active_at"] is None and quiet["days_inactive"] is None and quiet["frequency"] == 0
    assert quiet["lifecycle"] == "dormant" and quiet["monetary"] is None and quiet["purchases"] == 0
    want = 1.0 / (1.0 + p["a"] / p["b"] * ((p["alpha"] + 50.0) / p["alpha"]) ** p["r"])
    assert quiet["p_alive"] == pytest.approx(want, rel=1e-9)
    # no history: the population's fatigue and response level; the send hour is Kolkata's population hour
    assert quiet["fatigue_sensitivity"] == pytest.approx(fat["beta"]) and quiet["send_time_confidence"] == 0.0
    assert quiet["fatigue_budget"] == fatigue_model.budget(
        np.array([fat["beta"]]), np.array([fat["response"]]), np.array([0]), np.array([False]), cap=3,
        window_days=7, u0=fat["unsubscribe_per_message"])[0]
    pop = summary_of(s)["send_time"]["population_best_hour"]["Asia/Kolkata"]
    assert quiet["best_hour_local"] == pop


def test_metadata_holds_the_model_fit(world):
    s = score(world / "users.arrow", world / "events.arrow", as_of=AS_OF)
    meta = summary_of(s)
    assert set(meta["model"]) >= {"r", "alpha", "a", "b", "log_likelihood", "users", "unique_rows", "iterations"}
    assert meta["users"] == 3000 and sum(meta["lifecycle"].values()) == 3000
    assert json.loads(s.schema.metadata[b"winback.score"])["as_of"].startswith("2026-11-01")
    for col in ("p_alive", "lapse_risk", "expected_active_days_30d", "send_time_confidence"):
        assert not np.isnan(s[col].to_numpy()).any(), col


def test_lapse_risk_ranks_gone_users_and_best_hour_beats_the_population(world):
    s = score(world / "users.arrow", world / "events.arrow", as_of=AS_OF)
    truth = feather.read_table(world / "truth.arrow")
    gone = ~truth["alive"].to_numpy(zero_copy_only=False)
    risk = s["lapse_risk"].to_numpy()
    from scipy.stats import rankdata

    r = rankdata(risk)
    auc = (r[gone].sum() - gone.sum() * (gone.sum() + 1) / 2) / (gone.sum() * (~gone).sum())
    assert auc > 0.85
    eng = s["engagements"].to_numpy() >= 5
    d = np.abs(s["best_hour_local"].to_numpy().astype(int) - truth["preferred_hour_local"].to_numpy()) % 24
    hit = np.minimum(d, 24 - d) <= 1
    assert hit[eng].mean() > 0.4


def test_cli_writes_atomically_and_reports_bad_input(world, tmp_path, capsys):
    out = tmp_path / "scores.arrow"
    assert main(["score", str(world / "users.arrow"), str(world / "events.arrow"), "--as-of", "2026-11-01",
                 "-o", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "BG/NBD" in text and "lifecycle" in text and out.exists()
    assert "check on the last 30 days: lapse_risk AUC" in text and "days_inactive alone" in text  # the baseline
    # an event after as_of is a bad row: exit 2, one line, no output
    assert main(["score", str(world / "users.arrow"), str(world / "events.arrow"), "--as-of", "2026-06-01",
                 "-o", str(tmp_path / "s2.arrow"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "after as_of" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s2.arrow").exists()
    assert main(["score", str(world / "users.arrow"), str(world / "events.arrow"), "--activity", "login",
                 "-o", str(tmp_path / "s3.arrow"), "--no-progress"]) == 2


@pytest.mark.parametrize("fatigue", ["learned", "rule"])
def test_a_cap_above_127_is_a_budget_not_a_wrapped_byte(world, tmp_path, capsys, fatigue):
    # given caps of 128 and 200 messages a week (an int8 budget once wrapped them to -128 and -56)
    for cap in (128, 200):
        s = score(world / "users.arrow", world / "events.arrow", as_of=AS_OF, policy_cap=cap, fatigue=fatigue)
        budget = s["fatigue_budget"].to_numpy().astype(np.int64)
        sent = s["sends_7d"].to_numpy().astype(np.int64)
        # then every budget is within 0..cap and nobody is promised more than the room left
        assert budget.min() >= 0 and budget.max() <= cap
        assert np.all(budget <= np.maximum(cap - sent, 0))
        if fatigue == "rule":  # the rule leaves a fresh, answering user the whole cap
            assert budget.max() > 127
    # and a cap out of range is one clear line, exit 2, no output
    out = tmp_path / "s.arrow"
    for bad in ("0", "-1", "1001"):
        assert main(["score", str(world / "users.arrow"), str(world / "events.arrow"), "--as-of", "2026-11-01",
                     "--cap", bad, "-o", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert "--cap must be a whole number of messages from 1 to 1000 per window" in err and f"got {bad}" in err
        assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_cli_quarantine_sets_bad_rows_aside_and_goes_on(tmp_path, capsys):
    # given a world with about 1 % bad rows of every kind
    generate(1500, seed=5, out_dir=tmp_path / "bad", bad_rows=0.01)
    out = tmp_path / "scores.arrow"
    # when scored with --on-bad-rows error: exit 2, one line naming the file, no output
    args = ["score", str(tmp_path / "bad/users.arrow"), str(tmp_path / "bad/events.arrow"), "--as-of", "2026-11-01",
            "-o", str(out), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "users.arrow" in err and not out.exists()
    # when scored with quarantine: exit 0, the scores plus both rejected files with a reason column
    assert main([*args, "--on-bad-rows", "quarantine"]) == 0
    assert "quarantined" in capsys.readouterr().out
    rejected = feather.read_table(tmp_path / "scores.rejected" / "events.rejected.arrow")
    assert rejected.num_rows > 0 and "reason" in rejected.column_names
    scores = feather.read_table(out)
    assert summary_of(scores)["events_rejected"] == rejected.num_rows
    assert scores.num_rows == summary_of(scores)["users"]


@pytest.mark.parametrize("lapse_model", ["auto", "learned"])
def test_the_three_phases_without_a_pool_give_score(world, lapse_model):
    """score() makes the lapse and fatigue statistics and the lapse choice on a second thread;
    the phases run one after the other in this thread give the same table, bit for bit."""
    from engine.scoring.pipeline import aggregate, finalize, reduce_stats, settings

    users, events, as_of = str(world / "users.arrow"), str(world / "events.arrow"), AS_OF
    threaded = score(users, events, as_of=as_of, lapse_model=lapse_model)
    cfg = settings(as_of=as_of, lapse_model=lapse_model)
    part = aggregate(users, events, cfg)
    pop = reduce_stats([part.stats], cfg)
    assert isinstance(pop.lapse_model, dict)
    serial = finalize(part, pop)
    assert serial.column_names == threaded.column_names
    for name in serial.column_names:
        assert serial[name].equals(threaded[name]), name
    a, b = summary_of(serial), summary_of(threaded)
    assert a["lapse_model"]["used"] == b["lapse_model"]["used"]
    assert a["lapse_model"].get("model") == b["lapse_model"].get("model")
    assert a["fatigue"] == b["fatigue"]


def test_a_lapse_choice_still_running_on_the_pool_is_waited_for_by_finalize_and_by_pickling(world):
    """With a pool, reduce_stats returns before the lapse model is chosen; finalize (and a
    Population pickled for Dask workers) waits for it, and the table is the serial one."""
    import pickle
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from engine.scoring.pipeline import aggregate, finalize, reduce_stats, settings

    users, events = str(world / "users.arrow"), str(world / "events.arrow")
    cfg = settings(as_of=AS_OF, lapse_model="learned")
    part = aggregate(users, events, cfg)
    serial = finalize(part, reduce_stats([part.stats], cfg))
    part = aggregate(users, events, cfg)  # finalize consumed the first one
    gate = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        pool.submit(gate.wait, 30)  # holds the pool: the choice cannot have been made yet
        pop = reduce_stats([part.stats], cfg, pool=pool)
        assert pop.pending_lapse is not None and not pop.pending_lapse.done() and pop.lapse_model is None
        gate.set()
        copy = pickle.loads(pickle.dumps(pop))
        assert copy.pending_lapse is None and copy.lapse_model["used"] == "learned"
        out = finalize(part, pop)
    assert pop.pending_lapse is None
    for name in serial.column_names:
        assert out[name].equals(serial[name]), name
    a, b = (dict(summary_of(t)["lapse_model"], seconds=None) for t in (out, serial))  # all but the timing
    assert a == b


def test_a_scores_file_passed_as_users_is_scored_with_a_warning_naming_the_replaced_columns(world, tmp_path, capsys):
    # given a scores file of the world, passed back as USERS
    first = tmp_path / "scores.arrow"
    assert main(["score", str(world / "users.arrow"), str(world / "events.arrow"), "--as-of", "2026-11-01",
                 "-o", str(first), "--no-progress"]) == 0
    capsys.readouterr()
    again = tmp_path / "again.arrow"
    assert main(["score", str(first), str(world / "events.arrow"), "--as-of", "2026-11-01",
                 "-o", str(again), "--no-progress"]) == 0
    # then the computed columns replace the old ones (one of each), and the summary says so
    out = capsys.readouterr().out
    assert "share a name with a score column and were replaced" in out and "last_active_at" in out
    table = feather.read_table(again)
    assert table.column_names.count("lapse_risk") == 1
    assert summary_of(table)["warnings"]
    # while a plain users file gives no such warning
    assert not any("replaced by the score" in w for w in summary_of(feather.read_table(first))["warnings"])


def test_monetary_is_the_mean_of_the_known_purchase_values(world):
    """Given a user with purchases of 20.0 and of no value, a user whose one purchase has no value,
    and the same events without a value column, when scored, then monetary is the mean of the
    values that are known (20.0), null when none is (never 0.0), and purchases counts them all."""
    users = feather.read_table(world / "users.arrow").select(["user_id", "timezone"])
    me = pa.table({"user_id": pa.array([44, 45], pa.int64()), "timezone": ["UTC", "UTC"]})
    users = pa.concat_tables([users, me])
    events = feather.read_table(world / "events.arrow").select(["user_id", "ts", "event", "channel", "value"])
    schema = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")), ("event", pa.string()),
                        ("channel", pa.string()), ("value", pa.float64())])
    rows = [(44, _ts(30), "purchase", 20.0), (44, _ts(20), "purchase", None), (44, _ts(25), "session", None),
            (45, _ts(12), "purchase", None), (45, _ts(3), "session", None)]
    mine = pa.table({"user_id": [r[0] for r in rows], "ts": [r[1] for r in rows], "event": [r[2] for r in rows],
                     "channel": [None] * len(rows), "value": [r[3] for r in rows]}, schema=schema)
    ev = pa.concat_tables([events.cast(schema), mine])
    s = score(users, ev, as_of=AS_OF)
    got = {r["user_id"]: (r["purchases"], r["monetary"]) for r in s.to_pylist() if r["user_id"] in (44, 45)}
    assert got == {44: (2, 20.0), 45: (1, None)}
    no_value = score(users, ev.drop_columns(["value"]), as_of=AS_OF)
    buyers = no_value.filter(pa.compute.greater(no_value["purchases"], 0))
    assert buyers.num_rows > 0 and buyers["monetary"].null_count == buyers.num_rows


def test_activity_older_than_the_model_window_counts_only_in_last_active_at(world):
    """Given users active inside the 730-day model window and 730 days + 1 hour to 760 days back
    (days the active-day bitset, 12 words of 64 days, still holds), when scored, then the older
    activity adds no active day, first day or tenure (frequency, recency_days, tenure_days, and so
    the BG/NBD rows), while last_active_at and days_inactive still see it; exactly 730 days counts."""
    users = feather.read_table(world / "users.arrow").select(["user_id", "timezone"])
    me = pa.table({"user_id": pa.array([46, 47, 48, 49], pa.int64()), "timezone": ["UTC"] * 4})
    users = pa.concat_tables([users, me])
    events = feather.read_table(world / "events.arrow").select(["user_id", "ts", "event", "channel"])
    schema = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")), ("event", pa.string()),
                        ("channel", pa.string())])
    rows = [(46, _ts(745)), (46, _ts(100)), (46, _ts(10)),    # one day outside the window
            (47, _ts(740)), (47, _ts(760)),                     # only outside it
            (48, _ts(730)), (48, _ts(10)),                      # exactly 730 days: inside
            (49, _ts(730, hour=11)), (49, _ts(10))]             # 730 days and an hour: outside
    mine = pa.table({"user_id": [r[0] for r in rows], "ts": [r[1] for r in rows], "event": ["session"] * len(rows),
                     "channel": [None] * len(rows)}, schema=schema)
    s = score(users, pa.concat_tables([events.cast(schema), mine]), as_of=AS_OF, lapse_model="closed_form")
    assert summary_of(s)["model_window_days"] == 730
    got = {r["user_id"]: (r["frequency"], r["recency_days"], r["tenure_days"], r["days_inactive"])
           for r in s.to_pylist() if r["user_id"] in (46, 47, 48, 49)}
    assert got == {46: (1, 90.0, 100.0, 10.0), 47: (0, 0.0, 0.0, 740.0), 48: (1, 720.0, 730.0, 10.0),
                   49: (0, 0.0, 10.0, 10.0)}
    row47 = s.filter(pa.compute.equal(s["user_id"], 47)).to_pylist()[0]
    assert row47["last_active_at"] == _ts(740)
