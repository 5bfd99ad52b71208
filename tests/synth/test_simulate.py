"""Outcome simulation on hand-built worlds, and interval coverage through simulate + report."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from engine.synth import world
from engine.errors import ConfigError, InputError
from engine.ledger.store import Ledger
from engine.reporting.measure import report
from engine.synth.simulate import delivered, outcome_meta, simulate
from engine.tz import from_epoch_seconds

START = 1_790_035_200          # 2026-09-22 00:00 UTC; the campaign starts with its first send
DAYS = 14
RESP = 0.4                     # resp_email of every user
RATE = 0.02                    # organic active days per day of alive users


def hand_world(n: int = 1200, *, holdout_every: int = 10, send_hour: int = 10):
    """Half the users are alive, every ``holdout_every``-th is holdout, one email at their preferred hour."""
    uid = np.arange(1, n + 1, dtype=np.int64)
    held = uid % holdout_every == 0
    plan = pa.table({
        "message_id": [f"m{u}" for u in uid], "campaign_id": ["c"] * n, "user_id": uid,
        "step": ["first"] * n, "step_index": pa.array(np.zeros(n, np.int16)), "variant": ["A"] * n,
        "channel": ["email"] * n,
        "send_at": from_epoch_seconds(np.full(n, START + send_hour * 3600, np.int64)),
        "reason": pa.array([("holdout" if h else None) for h in held], pa.string()),
        "holdout": pa.array(held), "timezone": ["UTC"] * n, "to": [f"u{u}@example.com" for u in uid],
    })
    alive = uid % 4 < 2            # half alive, in the holdout as in the treated group
    truth = pa.table({
        "user_id": uid, "alive": pa.array(alive), "activity_rate": np.full(n, RATE),
        "preferred_hour_local": pa.array(np.full(n, send_hour, np.int8)), "fatigue_sensitivity": np.full(n, 0.3),
        "resp_email": np.full(n, RESP), "resp_sms": np.full(n, 0.1), "resp_push": np.full(n, 0.1),
        "unsub_risk": np.full(n, 0.002), "value_mean": np.full(n, 30.0),
    })
    return plan, truth, alive, held


def true_rates(alive: np.ndarray, held: np.ndarray) -> tuple[float, float]:
    """Expected re-engagement of treated and holdout users from the world's model, by hand.

    Treated alive: active organically (1 - exp(-14 rate)) or clicks (RESP * CLICK_GIVEN_OPEN);
    treated gone: clicks at the damped rate; holdout alive: organic only; holdout gone: never.
    """
    q = RESP * world.CLICK_GIVEN_OPEN
    no_org = np.exp(-RATE * DAYS)
    p_t = np.where(alive, 1 - (1 - q) * no_org, world.DEAD_RESPONSE_SCALE * q)
    p_c = np.where(alive, 1 - no_org, 0.0)
    return float(p_t[~held].mean()), float(p_c[held].mean())


def test_given_a_hand_world_when_simulated_then_only_treated_users_get_channel_events():
    plan, truth, alive, held = hand_world(400)
    ev = simulate(plan, truth, seed=3)
    kinds = ev["event"].cast(pa.string())
    msg = ev.filter(pc.is_valid(ev["message_id"]))
    held_ids = set(plan.filter(plan["holdout"])["user_id"].to_pylist())
    assert set(pc.unique(kinds).to_pylist()) <= {"send", "open", "click", "unsubscribe", "complaint", "session", "purchase"}
    assert not held_ids & set(msg["user_id"].to_pylist())
    # every event lies inside the window; organic events carry no channel, opens do
    ts = pc.cast(ev["ts"], pa.int64()).to_numpy() // 1_000_000
    first_send = START + 10 * 3600
    assert ((ts >= first_send) & (ts < first_send + DAYS * 86400)).all()
    org = ev.filter(pc.is_in(kinds, value_set=pa.array(["session", "purchase"])))
    assert org["channel"].null_count == org.num_rows
    # gone holdout users never come back; gone treated users only after a click
    gone_held = {int(u) for u in truth["user_id"].to_numpy()[~alive & held]}
    assert not gone_held & set(ev["user_id"].to_pylist())


def test_same_seed_same_outcome_other_seed_other_outcome():
    plan, truth, *_ = hand_world(300)
    a, b, c = (simulate(plan, truth, seed=s) for s in (7, 7, 8))
    assert a.equals(b) and not a.equals(c)


def test_held_out_users_outcomes_do_not_depend_on_what_others_were_sent():
    # given the same world and seed, once with every treated message and once with a tenth
    # of them not delivered (e.g. skipped at send time)
    plan, truth, alive, held = hand_world(600)
    fewer = plan.filter(pc.invert(pc.and_(pc.invert(plan["holdout"]),
                                          pc.equal(pc.bit_wise_and(plan["user_id"], 7), 3))))
    fewer = pa.concat_tables([fewer, plan.filter(pc.and_(pc.invert(plan["holdout"]),
                                                         pc.equal(pc.bit_wise_and(plan["user_id"], 7), 3)))
                              .set_column(plan.column_names.index("reason"), "reason",
                                          pa.array(["capacity"] * int((~held & ((np.arange(1, 601) & 7) == 3)).sum()),
                                                   pa.string()))])
    a, b = simulate(plan, truth, seed=5), simulate(fewer, truth, seed=5)
    # then every held-out user's events are the same in both runs
    held_ids = pa.array(plan.filter(plan["holdout"])["user_id"])
    pick = lambda ev: ev.filter(pc.is_in(ev["user_id"], value_set=held_ids)).select(["user_id", "ts", "event"]) \
        .sort_by([("user_id", "ascending"), ("ts", "ascending")])
    assert pick(a).num_rows > 0 and pick(a).equals(pick(b))
    # and the runs differ for the treated users (fewer deliveries)
    assert delivered(a).num_rows > delivered(b).num_rows


def test_ledger_limits_deliveries_to_sent_messages(tmp_path):
    plan, truth, *_ = hand_world(100)
    with Ledger(tmp_path / "ledger.db") as led:
        led.load_plan(plan)
    import sqlite3

    con = sqlite3.connect(tmp_path / "ledger.db")
    con.execute("UPDATE messages SET state='sent' WHERE message_id IN ('m1', 'm2', 'm3')")
    con.commit()
    con.close()
    res = simulate(plan, truth, tmp_path / "ledger.db", seed=1)
    assert sorted(delivered(res)["message_id"].to_pylist()) == ["m1", "m2", "m3"]
    with pytest.raises(InputError, match="does not exist"):
        simulate(plan, truth, tmp_path / "nope.db", seed=1)


def test_blast_mails_every_reachable_non_holdout_user_at_10_utc():
    plan, truth, _, held = hand_world(200, send_hour=15)
    res = simulate(plan, truth, seed=1, policy="blast")
    m = delivered(res)
    assert m.num_rows == int((~held).sum()) and set(m["channel"].to_pylist()) == {"email"}
    at = pc.cast(m["ts"], pa.int64()).to_numpy() // 1_000_000
    # the campaign starts at 15:00, so the blast goes at 10:00 UTC the next morning
    assert set(at.tolist()) == {START + 86400 + 10 * 3600}
    plan10, truth10, *_ = hand_world(20, send_hour=10)
    at10 = pc.cast(delivered(simulate(plan10, truth10, seed=1, policy="blast"))["ts"], pa.int64())
    assert set((at10.to_numpy() // 1_000_000).tolist()) == {START + 10 * 3600}


def test_bad_arguments_are_clear_errors():
    plan, truth, *_ = hand_world(20)
    with pytest.raises(ConfigError, match="policy"):
        simulate(plan, truth, seed=1, policy="spray")
    with pytest.raises(InputError, match="truth does not cover"):
        simulate(plan, truth.slice(0, 10), seed=1)
    with pytest.raises(InputError, match="activity_rate"):
        simulate(plan, truth.drop_columns(["activity_rate"]), seed=1)


def test_empty_and_single_user_plans():
    plan, truth, *_ = hand_world(1, holdout_every=10)
    res = simulate(plan, truth, seed=1)
    assert outcome_meta(res)["deliveries"] == 1
    empty = simulate(plan.slice(0, 0), truth, seed=1)
    assert empty.num_rows == 0 and outcome_meta(empty)["deliveries"] == 0


def test_report_interval_covers_the_true_lift_in_at_least_90_of_100_seeded_worlds():
    """Statistical: the world's known expected lift lies in the report's 95% interval >= 90 times."""
    plan, truth, alive, held = hand_world(1200)
    p_t, p_c = true_rates(alive, held)
    covered, points = 0, []
    for seed in range(100):
        ev = simulate(plan, truth, seed=seed, days=DAYS)
        s = report(plan, _as_dir(ev), days=DAYS)
        re = s["metrics"]["reengaged"]
        covered += re["lift_ci"][0] <= p_t - p_c <= re["lift_ci"][1]
        points.append(re["lift"])
    assert covered >= 90
    # and the estimates centre on the truth (bias well inside one standard error)
    assert abs(np.mean(points) - (p_t - p_c)) < 0.01


_DIRS: dict = {}


def _as_dir(res):
    """report() reads outcomes from disk: write them once per call to a reused temp directory."""
    import tempfile
    from pathlib import Path

    from engine.synth.simulate import write_outcomes

    base = _DIRS.setdefault("d", Path(tempfile.mkdtemp(prefix="winback-sim-")))
    return write_outcomes(res, base / "out")


def test_earlier_campaign_sends_in_the_prior_7_days_add_fatigue():
    """Given world history with sends before the campaign, when simulated, fewer users open."""
    from engine.synth.simulate import _prior_sends

    plan, truth, *_ = hand_world(600)
    first = START + 10 * 3600
    uid = np.repeat(np.arange(1, 601, dtype=np.int64), 4)
    ts = np.tile(np.array([first - 7 * 86400 - 1, first - 7 * 86400, first - 3600, first + 3600]), 600)
    hist = pa.table({"user_id": uid, "ts": from_epoch_seconds(ts), "event": ["send"] * len(uid),
                     "channel": ["email"] * len(uid)})
    # the boundary: 7 days before a delivery counts, a second earlier does not, later ones are the campaign's
    users = np.arange(1, 601, dtype=np.int64)
    got = _prior_sends(hist, users, np.array([0, 5]), np.array([first, first]), first)
    assert got.tolist() == [2, 2]
    calm = outcome_meta(simulate(plan, truth, seed=4))
    tired = outcome_meta(simulate(plan, truth, seed=4, history=hist))
    assert tired["deliveries"] == calm["deliveries"]
    assert tired["opens"] < 0.75 * calm["opens"]     # exp(-0.3 * 2) = 0.55 of the open probability


def test_alive_users_stop_after_dropping_out():
    """Given p_drop = 1, alive users have exactly one organic active day (then they are gone)."""
    plan, truth, *_ = hand_world(400)
    heavy = truth.set_column(truth.schema.get_field_index("activity_rate"), "activity_rate",
                             pa.array(np.full(400, 1.0)))
    dropping = heavy.append_column("p_drop", pa.array(np.full(400, 1.0)))
    ev = simulate(plan.filter(plan["holdout"]), dropping, seed=2)
    sessions = ev.filter(pc.equal(ev["event"].cast(pa.string()), "session"))
    counts = pc.value_counts(sessions["user_id"]).field("counts").to_numpy()
    assert counts.max() == 1
    free = simulate(plan.filter(plan["holdout"]), heavy, seed=2)
    assert pc.value_counts(free.filter(pc.equal(free["event"].cast(pa.string()), "session"))["user_id"]) \
        .field("counts").to_numpy().max() > 5


@pytest.fixture(scope="module")
def themed_world(tmp_path_factory):
    """A generated world of 4000 users (with items: a true theme each) and a hand-built plan of one
    email per user; even rows carry the user's true theme, odd rows another one."""
    import pyarrow.feather as feather

    from engine.synth.generator import generate
    from engine.schema import THEMES

    out = tmp_path_factory.mktemp("themed")
    generate(4000, seed=21, out_dir=out, n_items=300)
    truth = feather.read_table(out / "truth.arrow")
    n = truth.num_rows
    uid = truth["user_id"].to_numpy()
    true_theme = np.array(truth["theme"].to_pylist(), dtype=object)
    other = np.array([THEMES[(THEMES.index(t) + 1) % len(THEMES)] for t in true_theme], dtype=object)
    match = np.arange(n) % 2 == 0
    plan = pa.table({
        "message_id": [f"m{u}" for u in uid], "campaign_id": ["c"] * n, "user_id": uid,
        "step": ["first"] * n, "step_index": pa.array(np.zeros(n, np.int16)), "variant": ["A"] * n,
        "channel": ["email"] * n, "send_at": from_epoch_seconds(np.full(n, START + 19 * 3600, np.int64)),
        "reason": pa.nulls(n, pa.string()), "holdout": pa.array(np.zeros(n, bool)), "timezone": ["UTC"] * n,
        "to": [f"u{u}@example.com" for u in uid],
        "theme": pa.array(np.where(match, true_theme, other), pa.string()),
    })
    return plan, truth, match


def test_messages_in_the_users_true_theme_are_opened_more(themed_world):
    plan, truth, match = themed_world
    ev = simulate(plan, truth, seed=9)
    opened = set(ev.filter(pc.equal(ev["event"].cast(pa.string()), "open"))["message_id"].to_pylist())
    was_opened = np.array([m in opened for m in plan["message_id"].to_pylist()])
    rate_match, rate_miss = was_opened[match].mean(), was_opened[~match].mean()
    se = np.sqrt(rate_match * (1 - rate_match) / match.sum() + rate_miss * (1 - rate_miss) / (~match).sum())
    assert rate_match - rate_miss > 3 * se
    # the expected ratio is THEME_MATCH / THEME_MISS = 1.875
    assert 1.3 < rate_match / rate_miss < 2.6
    by_theme = outcome_meta(ev)["by_theme"]
    assert sum(v["deliveries"] for v in by_theme.values()) == plan.num_rows
    assert sum(v["opens"] for v in by_theme.values()) == len(opened)
    assert sum(v["matched"] for v in by_theme.values()) == int(match.sum())
    assert all(v["clicks"] <= v["opens"] for v in by_theme.values())


def test_no_theme_keeps_the_outcome_of_today(themed_world):
    plan, truth, _ = themed_world
    bare = plan.drop_columns(["theme"])
    nulls = bare.append_column("theme", pa.nulls(plan.num_rows, pa.string()))
    a, b = simulate(bare, truth, seed=4), simulate(nulls, truth, seed=4)
    assert a.equals(b)
    assert "by_theme" not in outcome_meta(a)
    assert outcome_meta(b)["by_theme"] == {"none": {"deliveries": plan.num_rows, "opens": outcome_meta(a)["opens"],
                                                    "clicks": outcome_meta(a)["clicks"], "matched": 0}}
    # a truth without themes (a world without items) ignores the plan's themes
    c = simulate(plan, truth.drop_columns(["theme"]), seed=4)
    assert outcome_meta(c)["opens"] == outcome_meta(a)["opens"]
    # the blast has no theme: factor 1.0
    blast = outcome_meta(simulate(plan, truth, seed=4, policy="blast"))
    assert list(blast["by_theme"]) == ["none"]
    assert world.theme_factor(np.array([-1, 0, 1, 2]), np.array([3, 0, 2, -1])).tolist() == \
        [1.0, world.THEME_MATCH, world.THEME_MISS, 1.0]


def test_unknown_theme_in_the_plan_is_a_clear_error(themed_world):
    plan, truth, _ = themed_world
    bad = plan.set_column(plan.schema.get_field_index("theme"), "theme",
                          pa.array(["nostalgia"] * plan.num_rows, pa.string()))
    with pytest.raises(InputError, match="unknown theme"):
        simulate(bad, truth, seed=1)
