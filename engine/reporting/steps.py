"""Lift per step, against the step's own holdout.

A step with its own rule (``[[steps]] where``, e.g. an ads step for users the owned
channels no longer move) applies it to held-out users too (their plan rows say
``not_in_step``), so the users a step is *for* have a holdout of their own: treated
users for whom the rule holds against held-out users for whom it holds.  The
difference is intent-to-treat on that sub-population: it measures the whole campaign
on those users (they may also have got earlier steps), which for a step that only
they get is the best estimate of what the step adds without a split of the step
itself.  Steps without a rule cover the whole audience: their row equals the headline.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["step_lift"]


def step_lift(plan_t: pa.Table, users: np.ndarray, flag: np.ndarray, compare, meta: dict) -> list[dict]:
    """One row per step with a ``where`` rule: ``compare(flag, treat, ctrl)`` on the users
    eligible for it; ``users`` sorted, ``flag`` per user (re-engaged)."""
    out = []
    for k, step in enumerate(meta.get("steps") or []):
        if not step.get("where"):
            continue
        rows = plan_t.filter(pc.equal(plan_t["step_index"], k))
        reason = rows["reason"].fill_null("")
        pos = np.searchsorted(users, rows["user_id"].to_numpy())
        ctrl = np.zeros(len(users), bool)
        ctrl[pos[pc.equal(reason, "holdout").to_numpy(zero_copy_only=False)]] = True
        out_of = pc.is_in(reason, value_set=pa.array(["not_in_audience", "not_in_step", "holdout"]))
        treat = np.zeros(len(users), bool)
        treat[pos[pc.invert(out_of).to_numpy(zero_copy_only=False)]] = True
        row = {"step": step.get("name"), "where": step["where"], "channels": step.get("channels")}
        row.update(compare(flag, treat, ctrl))
        out.append(row)
    return out


def _pp(x) -> str:
    return "-" if x is None else f"{100 * x:+.2f} pp"


def terminal_lines(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    return ["steps with their own rule (eligible treated vs eligible holdout):"] + [
        f"  {r['step']:<22}({r['where']}) {r['treated']['users']:,} vs {r['holdout']['users']:,} users: "
        f"lift {_pp(r['lift'])} ({_pp(r['lift_ci'][0])} .. {_pp(r['lift_ci'][1])})"
        + (f"  {r['note']}" if r["note"] else "") for r in rows]


def html_section(rows: list[dict], table) -> str:
    if not rows:
        return ""
    return ("<h2>Steps with their own rule</h2><p class=\"muted\">Users the step's rule selects, treated against "
            "held out (the rule applies to both): the campaign's effect on the users the step is for.</p>"
            + table(["step", "rule", "channels", "treated", "rate", "holdout", "rate", "lift", "95% CI", "note"],
                    [[r["step"], r["where"], ", ".join(r["channels"] or []), r["treated"]["users"],
                      "-" if r["treated"]["rate"] is None else f"{100 * r['treated']['rate']:.2f}%",
                      r["holdout"]["users"],
                      "-" if r["holdout"]["rate"] is None else f"{100 * r['holdout']['rate']:.2f}%",
                      _pp(r["lift"]), f"{_pp(r['lift_ci'][0])} .. {_pp(r['lift_ci'][1])}", r["note"]]
                     for r in rows]))
