"""Survey answers: why users say they left, by segment, and what to do about it.

A survey step (``kind = "survey"``) sends a one-click link per reason; the survey page
posts a signed ``reason`` event to ``winback receive`` (``event: "reason"``,
``reason``: the reason's name, ``message_id``).  The report counts each user's latest
answer in the window, by reason and by the user's lifecycle stage at planning time
(the plan's ``lifecycle`` column), and turns answers into actions for the next run:

- ``too_many_messages`` -> ``lower_cap``: the next campaign with ``[policy]
  survey_actions`` pointing at the file caps the user at ``survey_cap`` messages in
  its first window (engine.planning.survey);
- ``not_relevant``, ``found_an_alternative`` -> ``sunset``: they join the sunset list
  (and such a campaign does not message them);
- any other reason -> ``none`` (counted, no action).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.tz import to_epoch_seconds

__all__ = ["survey_answers", "ACTIONS", "html_section", "terminal_lines"]

ACTIONS = {"too_many_messages": "lower_cap", "not_relevant": "sunset", "found_an_alternative": "sunset"}


def survey_answers(events: pa.Table, plan_t: pa.Table, start: int, end: int) -> tuple[dict, pa.Table]:
    """(summary, actions table ``user_id, reason, action``) of the ``reason`` events in
    [start, end); ({}, empty) when there are none."""
    empty = pa.table({"user_id": pa.array([], pa.int64()), "reason": pa.array([], pa.string()),
                      "action": pa.array([], pa.string())})
    if "reason" not in events.column_names:
        return {}, empty
    ev = events["event"].cast(pa.string()) if pa.types.is_dictionary(events["event"].type) else events["event"]
    r = events.filter(pc.and_(pc.equal(ev, "reason"), pc.is_valid(events["reason"])))
    if r.num_rows == 0:
        return {}, empty
    ts = to_epoch_seconds(r["ts"])
    r = r.filter(pa.array((ts >= start) & (ts < end)))
    if r.num_rows == 0:
        return {}, empty
    # each user's latest answer counts (a user may click two links)
    ts = to_epoch_seconds(r["ts"])
    uid = r["user_id"].to_numpy()
    reason = np.asarray(pc.cast(r["reason"], pa.string()).to_numpy(zero_copy_only=False), dtype=object)
    o = np.lexsort((ts, uid))
    last = np.r_[uid[o][1:] != uid[o][:-1], True]
    uid, reason = uid[o][last], reason[o][last]
    step0 = plan_t.filter(pc.equal(plan_t["step_index"], 0))
    life = {}
    if "lifecycle" in step0.column_names:
        life = dict(zip(step0["user_id"].to_pylist(), step0["lifecycle"].to_pylist()))
    seg = np.array([life.get(int(u)) or "unknown" for u in uid], dtype=object)
    by_reason = {k: int((reason == k).sum()) for k in sorted(set(reason))}
    by_segment = {s: {k: int(((seg == s) & (reason == k)).sum()) for k in by_reason if ((seg == s) & (reason == k)).any()}
                  for s in sorted(set(seg))}
    action = np.array([ACTIONS.get(k, "none") for k in reason], dtype=object)
    summary = {"answers": int(len(uid)), "by_reason": by_reason, "by_segment": by_segment,
               "actions": {a: int((action == a).sum()) for a in sorted(set(action))}}
    table = pa.table({"user_id": pa.array(uid, pa.int64()), "reason": pa.array(reason, pa.string()),
                      "action": pa.array(action, pa.string())})
    return summary, table


def terminal_lines(s: dict) -> list[str]:
    if not s:
        return []
    return [f"survey: {s['answers']:,} answers: " + ", ".join(f"{k} {v:,}" for k, v in s["by_reason"].items())
            + "; actions: " + ", ".join(f"{k} {v:,}" for k, v in s["actions"].items()) + " (survey_actions.csv)"]


def html_section(s: dict, table) -> str:
    if not s:
        return ""
    reasons = list(s["by_reason"])
    return ("<h2>Why they left (survey)</h2><p class=\"muted\">Each user's latest answer in the window, by lifecycle "
            "stage at planning time. Actions in <a href=\"survey_actions.csv\">survey_actions.csv</a>: "
            "too_many_messages -> lower_cap; not_relevant, found_an_alternative -> sunset (also in the sunset list)."
            "</p>" + table(["segment"] + reasons + ["all"],
                           [[seg] + [row.get(k, 0) for k in reasons] + [sum(row.values())]
                            for seg, row in s["by_segment"].items()]
                           + [["all"] + [s["by_reason"][k] for k in reasons] + [s["answers"]]]))
