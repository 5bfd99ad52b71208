"""engine.reporting.integrity: the report refuses to state a lift its outcomes cannot measure."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather

from engine.planning.planner import plan
from engine.reporting.measure import report
from engine.scoring.pipeline import score
from engine.synth.generator import generate
from engine.synth.simulate import simulate, write_outcomes
from engine.tz import from_epoch_seconds
from tests.helpers import holdout_plan

START = 1_790_000_000


def _events(rows, extra=None):
    """rows: (user_id, seconds after START, event); ``extra``: more columns."""
    t = pa.table({"user_id": pa.array([r[0] for r in rows], pa.int64()),
                  "ts": from_epoch_seconds(np.array([START + r[1] for r in rows], np.int64)),
                  "event": [r[2] for r in rows]})
    for name, values in (extra or {}).items():
        t = t.append_column(name, pa.array(values))
    return t


def _big_plan(n=3000):
    return holdout_plan(n, start=START)


def test_a_holdout_without_any_event_is_not_measurable():
    # given an export of messaged users only: 30 % of the 2,000 treated are active, the 1,000 held out have no row
    p = _big_plan()
    treated = [u for u in range(1, 3001) if u % 3 and u % 10 < 3]
    s = report(p, _events([(u, 3600, "session") for u in treated]))
    # then no lift is stated, and the warning says what to export
    re = s["metrics"]["reengaged"]
    assert re["lift"] is None and re["note"].startswith("not measurable")
    assert any("no activity of any of the 1,000 holdout users" in w for w in s["warnings"])
    assert s["messages_per_incremental_reengaged_user"] is None


def test_outcomes_of_message_events_only_are_not_measurable():
    # given only opens and clicks (a 'winback receive' directory alone): only messaged users have them
    p = _big_plan()
    s = report(p, _events([(u, 60, "click") for u in range(1, 3001) if u % 3 and u % 7 == 0]))
    assert s["metrics"]["reengaged"]["note"].startswith("not measurable")
    assert any("no session or purchase event" in w for w in s["warnings"])
    assert s["metrics"]["clicked"]["treated"]["count"] > 0  # the message metric itself is still counted


def test_a_messaged_holdout_user_leaves_the_holdout_and_duplicate_deliveries_count_once():
    # given outcomes with send rows: treated users 1, 2 and holdout user 3 (a re-plan moved them), one send row
    # repeated; activity for users 2, 3, 4, 6
    p = holdout_plan(60, start=START)
    sends = [(1, 0, "send", "m1"), (1, 0, "send", "m1"), (2, 0, "send", "m2"), (3, 0, "send", "m3")]
    act = [(u, 3600, "session", None) for u in (2, 3, 4, 6)]
    rows = sends + act
    ev = _events([r[:3] for r in rows], {"message_id": [r[3] for r in rows],
                                         "channel": ["email" if r[2] == "send" else None for r in rows]})
    s = report(p, ev)
    # then user 3 is out of the holdout (19 of 20 left), the repeated row counts once, and both are said
    re = s["metrics"]["reengaged"]
    assert re["holdout"]["users"] == 19 and re["holdout"]["count"] == 1  # user 6
    assert s["messages_sent"] == 3
    assert any("1 holdout users received messages of this campaign" in w for w in s["warnings"])
    assert any("1 delivery rows repeat a message_id" in w for w in s["warnings"])


def test_a_short_window_is_said():
    p = _big_plan(60)
    s = report(p, _events([(1, 3 * 86400, "session"), (3, 86400, "session")]), days=60)
    assert any("3.0 days into the 60-day window" in w for w in s["warnings"])


def test_no_cost_per_incremental_user_without_a_significant_lift():
    # given identical re-engagement in both arms (10 %): the lift's interval includes 0
    p = _big_plan()
    s = report(p, _events([(u, 3600 + u * 300, "session") for u in range(1, 3001) if u % 10 == 0]))
    assert s["metrics"]["reengaged"]["lift_ci"][0] < 0 < s["metrics"]["reengaged"]["lift_ci"][1]
    assert s["messages_per_incremental_reengaged_user"] is None
    assert s["harm"]["campaign"]["opt_outs_per_incremental_reengaged"] is None
    assert s["warnings"] == []


def test_a_simulated_campaign_is_measurable_without_warnings(tmp_path):
    # given a generated world, planned and simulated (every audience user's activity recorded)
    generate(3000, seed=9, out_dir=tmp_path / "w")
    sc = score(tmp_path / "w/users.arrow", tmp_path / "w/events.arrow", as_of="2026-11-01")
    p = plan(sc, "examples/winback_lapsing.toml")
    feather.write_feather(p, tmp_path / "plan.arrow")
    write_outcomes(simulate(p, tmp_path / "w/truth.arrow", seed=2), tmp_path / "out")
    s = report(tmp_path / "plan.arrow", tmp_path / "out")
    # then the report states a lift and warns of nothing
    assert s["warnings"] == [] and s["metrics"]["reengaged"]["lift"] is not None


def test_a_campaign_without_a_holdout_says_so():
    # given a plan with no held-out user
    p = holdout_plan(60, start=START)
    p = p.set_column(p.schema.get_field_index("holdout"), "holdout", pa.array([False] * 60))
    p = p.set_column(p.schema.get_field_index("reason"), "reason", pa.nulls(60, pa.string()))
    s = report(p, _events([(1, 3600 + 86400 * 9, "session")]))
    # then the note says there is no control group, not that an arm is small
    assert s["metrics"]["reengaged"]["note"].startswith("no holdout")


def test_other_campaigns_send_rows_are_not_this_campaigns_deliveries_and_a_treated_arm_without_events_is_said():
    # given simulate-style outcomes holding this plan's sends for users 1, 2 and a newsletter send to every
    # user (the holdout too), and activity for both arms
    p = holdout_plan(60, start=START)
    rows = [(1, 0, "send", "m1"), (2, 0, "send", "m2")] + [(u, 60, "send", f"newsletter-{u}") for u in range(1, 61)]
    rows += [(u, 3600 + u * 9000, "session", None) for u in (2, 3, 4, 6, 9)]
    ev = _events([r[:3] for r in rows], {"message_id": [r[3] for r in rows],
                                         "channel": ["email" if r[2] == "send" else None for r in rows]})
    s = report(p, ev)
    # then only m1 and m2 count as delivered, and the holdout keeps its 20 users
    assert s["messages_sent"] == 2 and s["metrics"]["reengaged"]["holdout"]["users"] == 20
    assert not any("holdout users received" in w for w in s["warnings"])
    # and an export with the holdout's activity but none of the 2,000 treated users' is not measurable
    big = _big_plan()
    held = [u for u in range(1, 3001) if u % 3 == 0 and u % 10 < 3]
    s = report(big, _events([(u, 3600, "session") for u in held]))
    assert s["metrics"]["reengaged"]["note"].startswith("not measurable")
    assert any("no activity of any of the 2,000 treated users" in w for w in s["warnings"])
