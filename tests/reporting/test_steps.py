"""Lift per step with its own rule: eligible treated users against the step's own holdout."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.reporting import stats
from engine.reporting.steps import html_section, step_lift, terminal_lines


def compare(flag, treat, ctrl):
    k1, n1, k2, n2 = int(flag[treat].sum()), int(treat.sum()), int(flag[ctrl].sum()), int(ctrl.sum())
    d, lo, hi = stats.newcombe_diff(k1, n1, k2, n2)
    return {"treated": {"users": n1, "rate": k1 / n1}, "holdout": {"users": n2, "rate": k2 / n2},
            "lift": d, "lift_ci": [lo, hi], "note": ""}


def test_only_steps_with_a_rule_and_only_their_eligible_users_count():
    # users 1-6; step 1 (ads, with a rule): 1-3 sent, 4 held out, 5 not in the step, 6 not in the audience
    users = np.arange(1, 7, dtype=np.int64)
    plan = pa.table({
        "user_id": pa.array(list(users) * 2, pa.int64()),
        "step_index": pa.array([0] * 6 + [1] * 6, pa.int16()),
        "reason": [None] * 6 + [None, None, None, "holdout", "not_in_step", "not_in_audience"]})
    meta = {"steps": [{"name": "a", "where": ""},
                      {"name": "ads", "where": "unresponsive_owned_3", "channels": ["ads"]}]}
    flag = np.array([1, 1, 0, 1, 1, 1], bool)
    [row] = step_lift(plan, users, flag, compare, meta)
    assert (row["step"], row["where"], row["channels"]) == ("ads", "unresponsive_owned_3", ["ads"])
    assert row["treated"] == {"users": 3, "rate": 2 / 3} and row["holdout"] == {"users": 1, "rate": 1.0}
    assert terminal_lines([row])[1].startswith("  ads") and "3 vs 1 users" in terminal_lines([row])[1]
    assert "<h2>Steps with their own rule</h2>" in html_section([row], lambda h, r: f"{len(r)} rows")
    assert terminal_lines([]) == [] and html_section([], None) == ""
