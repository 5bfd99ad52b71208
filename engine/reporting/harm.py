"""The harm of messages: what was sent to users who needed none, and what it cost in
unsubscribes and complaints per user the campaign actually brought back.

- ``unneeded_messages`` (an estimate): messages delivered to treated users who would
  have come back without them.  The holdout's re-engagement rate ``p0`` is the share
  of the audience that comes back anyway (the holdout is a random hash of the user
  id), so of ``m`` messages to a group, about ``m * p0`` went to such users.  The
  treated group may differ from the audience (reachability), so this is an estimate,
  not a count.
- ``opt_outs``: unsubscribes plus complaints in the window, with their lift over the
  holdout (Newcombe's interval) where a holdout exists for the group (campaign and
  variants; steps and channels are chosen by the plan, so they get counts per 1,000
  messages only).
- ``opt_outs_per_incremental_reengaged``: opt-outs of the treated group divided by its
  incremental re-engaged users, ``lift x treated users`` (None unless the lift's 95 %
  interval lies above 0: a price per user won back needs users won back): the price in
  lost contacts of each user won back.

Beside it, batch-and-blast on the same world when the report has a ``--blast`` run.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.reporting import stats

__all__ = ["harm", "html_section", "terminal_lines"]


def _nan(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _group(flags, t, c, messages: int) -> dict:
    re, out = flags["reengaged"], flags["unsubscribed"]
    n1, n2 = int(t.sum()), int(c.sum())
    d, lo, hi = stats.newcombe_diff(int(re[t].sum()), n1, int(re[c].sum()), n2)
    p0 = float(re[c].mean()) if n2 else None
    incr = d * n1 if n1 and n2 and d == d else None
    k1, k2 = int(out[t].sum()), int(out[c].sum())
    od, olo, ohi = stats.newcombe_diff(k1, n1, k2, n2)
    return {"users": n1, "messages": messages,
            "unneeded_messages": None if p0 is None else round(messages * p0, 1),
            "incremental_reengaged": None if incr is None else round(incr, 1),
            "opt_outs": k1, "opt_out_rate": k1 / n1 if n1 else None, "holdout_opt_out_rate": k2 / n2 if n2 else None,
            "opt_out_lift": _nan(od), "opt_out_lift_ci": [_nan(olo), _nan(ohi)],
            "opt_outs_per_incremental_reengaged": round(k1 / incr, 3) if incr and incr > 0 and lo > 0 else None,
            "reengaged_lift_ci": [_nan(lo), _nan(hi)]}


def harm(users: np.ndarray, flags: dict, treat: np.ndarray, ctrl: np.ndarray, variant: np.ndarray,
         msgs: pa.Table, events: pa.Table, blast: dict | None = None) -> dict:
    """The harm section; ``users`` sorted, ``msgs`` the delivered messages (``message_id``,
    ``user_id``, ``step``, ``channel``, ``variant``), ``events`` the outcome events."""
    m_pos = np.searchsorted(users, msgs["user_id"].to_numpy()) if msgs.num_rows else np.zeros(0, np.int64)
    per_user = np.bincount(m_pos, minlength=len(users)) if len(m_pos) else np.zeros(len(users), np.int64)
    out = {"campaign": _group(flags, treat, ctrl, int(per_user[treat].sum()))}
    out["by_variant"] = {v: _group(flags, treat & (variant == v), ctrl, int(per_user[treat & (variant == v)].sum()))
                         for v in sorted(set(variant[treat]))}
    p0 = float(flags["reengaged"][ctrl].mean()) if ctrl.any() else None
    cells = []
    if msgs.num_rows and "message_id" in events.column_names:
        ev = events["event"].cast(pa.string()) if pa.types.is_dictionary(events["event"].type) else events["event"]
        opt = events.filter(pc.and_(pc.is_in(ev, value_set=pa.array(["unsubscribe", "complaint"])),
                                    pc.is_valid(events["message_id"])))
        opted = pc.is_in(msgs["message_id"], value_set=opt["message_id"]).to_numpy(zero_copy_only=False)
        step = np.asarray(msgs["step"].to_numpy(zero_copy_only=False), dtype=object)
        chan = np.asarray(msgs["channel"].to_numpy(zero_copy_only=False), dtype=object)
        for key in sorted(set(zip(step.tolist(), chan.tolist()))):
            sel = (step == key[0]) & (chan == key[1])
            m = int(sel.sum())
            cells.append({"step": key[0], "channel": key[1], "messages": m,
                          "unneeded_messages": None if p0 is None else round(m * p0, 1),
                          "opt_outs": int(opted[sel].sum()), "opt_outs_per_1000": 1000 * float(opted[sel].mean())})
    out["by_step_channel"] = cells
    if blast is not None:
        b = blast["reengaged"]
        incr = (b["lift"] or 0.0) * b["treated"]["users"]
        out["blast"] = {"messages": blast["messages_sent"], "opt_outs": blast["unsubscribed"],
                        "unneeded_messages": None if b["holdout"]["rate"] is None
                        else round(blast["messages_sent"] * b["holdout"]["rate"], 1),
                        "incremental_reengaged": round(incr, 1),
                        "opt_outs_per_incremental_reengaged": round(blast["unsubscribed"] / incr, 3) if incr > 0 else None}
    return out


def _f(x, digits=1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def terminal_lines(h: dict) -> list[str]:
    if not h:
        return []
    rows = [("winback", h["campaign"])] + ([("batch-and-blast", h["blast"])] if "blast" in h else [])
    return ["harm (unneeded = messages x the holdout's re-engagement rate, an estimate):"] + [
        f"  {name:<16}{r['messages']:>8,} messages, ~{_f(r['unneeded_messages'], 0)} unneeded, {r['opt_outs']:,} "
        f"unsubscribes/complaints, {_f(r['opt_outs_per_incremental_reengaged'], 3)} per incremental re-engaged user"
        for name, r in rows]


def html_section(h: dict, table) -> str:
    if not h:
        return ""

    def row(name, r):
        return [name, r["messages"], _f(r["unneeded_messages"], 0), _f(r.get("incremental_reengaged")), r["opt_outs"],
                _f(r["opt_outs_per_incremental_reengaged"], 3),
                "-" if r.get("opt_out_lift") is None else f"{100 * r['opt_out_lift']:+.2f} pp "
                f"({100 * r['opt_out_lift_ci'][0]:+.2f} .. {100 * r['opt_out_lift_ci'][1]:+.2f})"]
    head = ["", "messages", "unneeded (est.)", "incremental re-engaged", "unsubscribes + complaints",
            "per incremental re-engaged", "opt-out lift vs holdout (95% CI)"]
    groups = [row("winback", h["campaign"])] + [row(f"variant {v}", r) for v, r in h["by_variant"].items()]
    if "blast" in h:
        groups.append(row("batch-and-blast", h["blast"]))
    cells = table(["step", "channel", "messages", "unneeded (est.)", "unsubscribes + complaints", "per 1,000 messages"],
                  [[c["step"], c["channel"], c["messages"], _f(c["unneeded_messages"], 0), c["opt_outs"],
                    _f(c["opt_outs_per_1000"], 2)] for c in h["by_step_channel"]])
    return ("<h2>Harm</h2><p class=\"muted\">Unneeded messages: delivered messages times the holdout's re-engagement "
            "rate (users who would have come back anyway; an estimate). Unsubscribes and complaints per incremental "
            "re-engaged user: the contacts lost for each user won back.</p>" + table(head, groups) + cells)
