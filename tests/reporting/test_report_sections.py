"""The report's offer section on hand-built plans and events whose answers are known, and the
variant, offer, harm and survey sections end to end on a simulated world (each section's
hand-built cases: tests/reporting/test_variants.py, test_harm.py, test_survey.py)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from engine.reporting import offers, stats
from engine.tz import from_epoch_seconds
from tests.helpers import EXAMPLES

T0 = 1_793_491_200  # 2026-11-01 UTC


def offer_world():
    """Six users: 1-2 offered (treated), 3 held out with the offer, 4 same segment without it,
    5 held out without, 6 treated without; user 1 buys 50 after the offer, user 3 buys 20."""
    uid = np.arange(1, 7, dtype=np.int64)
    plan = pa.table({
        "message_id": [f"m{u}" for u in uid], "user_id": uid, "step_index": pa.array(np.zeros(6, np.int16)),
        "offer": ["ten", "ten", "ten", None, None, None], "offer_segment": ["ten", "ten", "ten", "ten", None, None],
        "variant": ["a", "a", "a", "none", "a", "a"],
        "send_at": from_epoch_seconds(np.full(6, T0 + 3600, np.int64)),
    })
    events = pa.table({"user_id": pa.array([1, 1, 3], pa.int64()),
                       "ts": from_epoch_seconds(np.array([T0 + 7200, T0 + 9000, T0 + 100], np.int64)),
                       "event": ["purchase", "purchase", "purchase"], "value": [50.0, 30.0, 20.0]})
    msgs = pa.table({"message_id": ["m1", "m2", "m4", "m6"], "user_id": pa.array([1, 2, 4, 6], pa.int64())})
    treat = np.array([1, 1, 0, 1, 0, 1], bool)
    meta = {"offers": [{"name": "ten", "text": "10 off", "cost_fixed": 2.0, "cost_share": 0.1}],
            "variants": [{"name": "a", "offer": None}, {"name": "none", "offer": "none"}]}
    f = {"reengaged": np.array([1, 0, 1, 0, 0, 0], bool), "converted": np.array([1, 0, 1, 0, 0, 0], bool)}
    return plan, events, msgs, treat, meta, f, uid


def test_offer_economics_by_hand():
    plan, events, msgs, treat, meta, f, uid = offer_world()
    [row] = offers.offer_economics(plan, meta, uid, f, treat, ~treat, events, msgs, T0, T0 + 14 * 86400, min_n=1)
    assert (row["offered"], row["holdout"], row["no_offer"]) == (2, 1, 1)
    # user 1's first order after the offer reached them: 50 -> cost 2 + 0.1 x 50 (the second order is not)
    assert row["redemptions"] == 1 and row["cost"] == pytest.approx(7.0)
    assert row["revenue_per_user"] == {"offered": 40.0, "holdout": 20.0, "no_offer": 0.0}
    h = row["vs_holdout"]
    assert h["revenue_per_user"]["difference"] is None      # one held-out user: no variance, no interval
    n = row["vs_no_offer"]
    assert n["revenue_per_user"]["difference"] is None and n["reengaged"]["difference"] == pytest.approx(0.5)


def test_offer_revenue_interval_is_welch():
    a, b = np.array([0.0, 10.0, 20.0, 30.0]), np.array([0.0, 0.0, 5.0, 5.0, 10.0])
    d, lo, hi = offers._mean_diff(a, b)
    se = (a.var(ddof=1) / 4 + b.var(ddof=1) / 5) ** 0.5
    assert d == pytest.approx(11.0) and hi - d == pytest.approx(stats.Z95 * se) and d - lo == pytest.approx(hi - d)


def test_the_demo_campaign_end_to_end_on_a_small_world(tmp_path):
    """Plan, simulate and report the offers campaign: every section is there, holdout
    users get no offer orders, the ads removal files are in the platforms' formats."""
    from engine.planning.planner import plan
    from engine.reporting.measure import report
    from engine.scoring.pipeline import score
    from engine.synth.generator import generate
    from engine.synth.simulate import outcome_meta, simulate, write_outcomes
    import pyarrow.feather as feather

    generate(6000, seed=4, out_dir=tmp_path / "w")
    s = score(tmp_path / "w/users.arrow", tmp_path / "w/events.arrow", as_of="2026-11-01T00:00:00Z")
    p = plan(s, EXAMPLES / "winback_offers.toml")
    feather.write_feather(p, tmp_path / "plan.arrow")
    ev = simulate(tmp_path / "plan.arrow", tmp_path / "w/truth.arrow", seed=2)
    assert outcome_meta(ev)["offer_orders"] > 0
    write_outcomes(ev, tmp_path / "out")
    answers = [json.loads(x) for x in (tmp_path / "out/answers.jsonl").read_text().splitlines()]
    assert answers and {a["event"] for a in answers} == {"reason"}
    r = report(tmp_path / "plan.arrow", tmp_path / "out", out_dir=tmp_path / "rep")
    assert [a["variant"] for a in r["variants"]["arms"]] == ["control", "offer-first", "no-offer"]
    assert {o["offer"] for o in r["offers"]} == {"vip-20", "free-shipping"}
    assert r["by_step"][0]["step"] == "ads-unresponsive" and r["harm"]["campaign"]["messages"] > 0
    assert r["metrics"]["opened"]["lift"] is None and "holdout gets no messages" in r["metrics"]["opened"]["note"]
    files = sorted(x.name for x in (tmp_path / "rep").iterdir())
    assert "ads-removal-meta-00001.csv" in files and "ads-removal-google-00001.csv" in files
    head = (tmp_path / "rep/ads-removal-google-00001.csv").read_text().splitlines()[0]
    assert head == "Email,Phone,First Name,Last Name,Country,Zip"
    html = (tmp_path / "rep/index.html").read_text()
    for title in ("Variant against variant", "Offers", "Harm", "Ads audience removal"):
        assert title in html
    channels = html.split("<h2>Steps and channels</h2>")[1].split("<h2>")[0]
    assert "<td>ads-unresponsive</td><td>ads</td>" in channels      # the table, not a stray object
    against = html.split("<h2>Variants against the holdout</h2>")[1].split("<h2>")[0]
    assert "<table" in against and "<module" not in html             # the variants' table, not the module


def test_the_world_reacts_to_offers_and_copy_deterministically():
    from engine.synth import world

    assert world.content_appeal(None) == 1.0
    a = world.content_appeal("Subject A")
    assert a == world.content_appeal("Subject A") and 1 - world.APPEAL_SPREAD <= a <= 1 + world.APPEAL_SPREAD
    assert world.offer_size(np.array([0.2, 0.0, 0.9]), np.array([0.0, 4.0, 5.0]), np.array([50.0, 40.0, 10.0])) \
        .tolist() == [0.2, 0.1, 1.0]


def test_offer_orders_come_only_from_clicked_offer_messages(tmp_path):
    """Every purchase six minutes after a click (a visit a minute after, the order five later)
    is an offer order, on an offered message."""
    import pyarrow.compute as pc
    import pyarrow.feather as feather

    from engine.planning.planner import plan
    from engine.scoring.pipeline import score
    from engine.synth.generator import generate
    from engine.synth.simulate import outcome_meta, simulate
    from engine.tz import to_epoch_seconds

    generate(3000, seed=9, out_dir=tmp_path / "w")
    s = score(tmp_path / "w/users.arrow", tmp_path / "w/events.arrow", as_of="2026-11-01T00:00:00Z")
    p = plan(s, EXAMPLES / "winback_offers.toml")
    feather.write_feather(p, tmp_path / "plan.arrow")
    ev = simulate(tmp_path / "plan.arrow", tmp_path / "w/truth.arrow", seed=1)
    e = ev.to_pydict()
    kind = [str(x) for x in e["event"]]
    ts = to_epoch_seconds(ev["ts"])
    clicks = {(u, int(t) + 360): m for u, t, k, m in zip(e["user_id"], ts, kind, e["message_id"]) if k == "click"}
    offered = set(p.filter(pc.is_valid(p["offer"]))["message_id"].to_pylist())
    orders = [(u, int(t)) for u, t, k in zip(e["user_id"], ts, kind) if k == "purchase" and (u, int(t)) in clicks]
    assert len(orders) == outcome_meta(ev)["offer_orders"] > 0
    assert all(clicks[o] in offered for o in orders)
