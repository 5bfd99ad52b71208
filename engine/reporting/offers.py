"""Offer economics: what each offer brought back, and what it cost.

Per offer ``o`` (the plan's ``offer`` / ``offer_segment`` columns, set for every
audience user, held out or not; :mod:`engine.planning.offers`) three groups:

- ``offered``: treated users whose plan gives them ``o``;
- ``holdout``: held-out users the plan would have given ``o`` (same rule, same
  variant hash: the offer's own intent-to-treat control);
- ``no_offer``: treated users of the same segment whose variant withholds offers
  (``offer = "none"``): what a message without the offer does for them.

Re-engagement and conversion differences use Newcombe's interval; revenue per user
(the sum of ``purchase`` values in the window, currency) uses the Welch normal
interval, ``d +- 1.96 * sqrt(s1^2/n1 + s2^2/n2)``.  Incremental revenue is that
difference times the offered users.  The offer's cost is counted on redemptions:
each offered user's first order after the first delivered message carrying the offer
(a unique code is used once), ``cost_fixed + cost_share * order value``; the report
cannot see which orders used the code, so every such order counts (an upper bound).
Net = incremental revenue - cost, with the revenue's interval shifted by the cost.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.reporting import stats
from engine.tz import to_epoch_seconds

__all__ = ["offer_economics", "user_revenue", "html_section", "terminal_lines"]

Z = stats.Z95


def _strings(t: pa.Table, name: str) -> np.ndarray:
    if name not in t.column_names:
        return np.full(t.num_rows, None, dtype=object)
    c = t[name]
    if pa.types.is_dictionary(c.type):
        c = c.cast(pa.string())
    return np.asarray(c.to_numpy(zero_copy_only=False), dtype=object)


def user_revenue(events: pa.Table, users: np.ndarray, start: int, end: int) -> tuple[np.ndarray, tuple]:
    """Per user (sorted ``users``): the sum of ``purchase`` values in [start, end) (currency),
    and the purchases as (user position, epoch s, value) arrays."""
    ev = _strings(events, "event")
    ts = to_epoch_seconds(events["ts"])
    uid = events["user_id"].to_numpy()
    val = events["value"].fill_null(0.0).to_numpy(zero_copy_only=False) if "value" in events.column_names \
        else np.zeros(len(uid))
    pos = np.minimum(np.searchsorted(users, uid), max(len(users) - 1, 0))
    keep = (ev == "purchase") & (ts >= start) & (ts < end)
    keep &= (users[pos] == uid) if len(users) else np.zeros(len(uid), bool)
    rev = np.zeros(len(users))
    np.add.at(rev, pos[keep], val[keep])
    return rev, (pos[keep], ts[keep], val[keep])


def _mean_diff(a: np.ndarray, b: np.ndarray) -> tuple[float | None, float | None, float | None]:
    """(mean(a) - mean(b), Welch 95% interval), None when an arm has fewer than 2 users."""
    if len(a) < 2 or len(b) < 2:
        return None, None, None
    d = float(a.mean() - b.mean())
    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    return d, d - Z * se, d + Z * se


def _rate_diff(flag, t, c) -> dict:
    k1, n1, k2, n2 = int(flag[t].sum()), int(t.sum()), int(flag[c].sum()), int(c.sum())
    d, lo, hi = stats.newcombe_diff(k1, n1, k2, n2)
    nan = (lambda x: None if x is None or math.isnan(x) else float(x))
    return {"rate": k1 / n1 if n1 else None, "against": k2 / n2 if n2 else None, "difference": nan(d),
            "ci": [nan(lo), nan(hi)]}


def offer_economics(plan_t: pa.Table, meta: dict, users: np.ndarray, flags: dict, treat: np.ndarray,
                    ctrl: np.ndarray, events: pa.Table, msgs: pa.Table, start: int, end: int,
                    *, min_n: int = 200) -> list[dict]:
    """One row per offer of the campaign; see the module docstring.  ``users`` sorted,
    ``treat``/``ctrl`` the audience outside / inside the holdout, ``msgs`` the delivered
    messages (``message_id``, ``user_id``)."""
    offers = meta.get("offers") or []
    if not offers or "offer" not in plan_t.column_names:
        return []
    step0 = plan_t.filter(pc.equal(plan_t["step_index"], 0))
    order = np.argsort(step0["user_id"].to_numpy())
    offer = _strings(step0, "offer")[order]
    segment = _strings(step0, "offer_segment")[order]
    # the "no offer" arm: users of variants that withhold offers (offer = "none")
    withheld = {v["name"] for v in meta.get("variants") or [] if v.get("offer") == "none"}
    in_none = np.isin(_strings(step0, "variant")[order], sorted(withheld)) if withheld else np.zeros(len(users), bool)
    rev, (p_pos, p_ts, p_val) = user_revenue(events, users, start, end)
    # the first delivered message carrying an offer, per user
    first = np.full(len(users), np.iinfo(np.int64).max)
    if msgs.num_rows and "message_id" in msgs.column_names:
        carried = plan_t.filter(pc.is_valid(plan_t["offer"])).select(["message_id", "user_id", "send_at"])
        got = carried.filter(pc.is_in(carried["message_id"], value_set=msgs["message_id"]))
        if got.num_rows:
            pos = np.searchsorted(users, got["user_id"].to_numpy())
            np.minimum.at(first, pos, to_epoch_seconds(got["send_at"]))
    # each user's first order after their first offered delivery: the redemption
    o = np.lexsort((p_ts, p_pos))
    p_pos, p_ts, p_val = p_pos[o], p_ts[o], p_val[o]
    after = p_ts >= first[p_pos]
    red_idx = np.nonzero(after)[0]
    red_pos, red_first = np.unique(p_pos[red_idx], return_index=True)
    red_val = np.zeros(len(users))
    redeemed = np.zeros(len(users), bool)
    redeemed[red_pos] = True
    red_val[red_pos] = p_val[red_idx[red_first]]
    rows = []
    for o_meta in offers:
        name = o_meta["name"]
        t = treat & (offer == name)
        h = ctrl & (offer == name)
        none = treat & (segment == name) & in_none
        cost_users = t & redeemed
        cost = float((o_meta.get("cost_fixed", 0.0) + o_meta.get("cost_share", 0.0) * red_val[cost_users]).sum())
        row = {"offer": name, "text": o_meta.get("text"), "cost_fixed": o_meta.get("cost_fixed", 0.0),
               "cost_share": o_meta.get("cost_share", 0.0),
               "offered": int(t.sum()), "holdout": int(h.sum()), "no_offer": int(none.sum()),
               "redemptions": int(cost_users.sum()), "cost": round(cost, 2),
               "revenue_per_user": {"offered": float(rev[t].mean()) if t.any() else None,
                                    "holdout": float(rev[h].mean()) if h.any() else None,
                                    "no_offer": float(rev[none].mean()) if none.any() else None}}
        for against, c in (("vs_holdout", h), ("vs_no_offer", none)):
            d, lo, hi = _mean_diff(rev[t], rev[c])
            incr = None if d is None else d * int(t.sum())
            block = {"reengaged": _rate_diff(flags["reengaged"], t, c),
                     "converted": _rate_diff(flags["converted"], t, c),
                     "revenue_per_user": {"difference": d, "ci": [lo, hi]},
                     "incremental_revenue": None if incr is None else round(incr, 2),
                     "net": None if incr is None else round(incr - cost, 2),
                     "net_ci": [None, None] if d is None else [round(lo * int(t.sum()) - cost, 2),
                                                              round(hi * int(t.sum()) - cost, 2)],
                     "note": ""}
            re = block["reengaged"]
            incr_users = (re["difference"] or 0.0) * int(t.sum())
            block["incremental_reengaged"] = round(incr_users, 1)
            block["cost_per_incremental_reengaged"] = round(cost / incr_users, 2) if incr_users > 0 else None
            block["note"] = stats.verdict(int(t.sum()), int(c.sum()), lo, hi, min_n=min_n, group="a group",
                                          no_effect="revenue difference too small to tell: the interval includes 0")
            row[against] = block
        rows.append(row)
    return rows


def _money(x) -> str:
    return "-" if x is None else f"{x:,.0f}"


def _pp(x) -> str:
    return "-" if x is None else f"{100 * x:+.2f} pp"


def terminal_lines(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    out = ["offers (offered vs the holdout that would have got it; vs same-segment users without the offer):"]
    for r in rows:
        h, n = r["vs_holdout"], r["vs_no_offer"]
        out.append(f"  {r['offer']:<16}{r['offered']:>7,} offered, {r['redemptions']:,} redeemed, cost {_money(r['cost'])}; "
                   f"re-engaged {_pp(h['reengaged']['difference'])} vs holdout, incremental revenue "
                   f"{_money(h['incremental_revenue'])}, net {_money(h['net'])} ({_money(h['net_ci'][0])} .. "
                   f"{_money(h['net_ci'][1])}); vs no offer net {_money(n['net'])}"
                   + (f"  {h['note']}" if h["note"] else ""))
    return out


def html_section(rows: list[dict], table) -> str:
    if not rows:
        return ""
    body = []
    for r in rows:
        for key, label in (("vs_holdout", "holdout (would have got it)"), ("vs_no_offer", "same segment, no offer")):
            b = r[key]
            rv = b["revenue_per_user"]
            body.append([r["offer"], label, r["offered"], r["holdout"] if key == "vs_holdout" else r["no_offer"],
                         _pp(b["reengaged"]["difference"]),
                         f"{_pp(b['reengaged']['ci'][0])} .. {_pp(b['reengaged']['ci'][1])}",
                         "-" if rv["difference"] is None else f"{rv['difference']:+.2f}",
                         _money(b["incremental_revenue"]), _money(r["cost"]), _money(b["net"]),
                         f"{_money(b['net_ci'][0])} .. {_money(b['net_ci'][1])}",
                         "-" if b["cost_per_incremental_reengaged"] is None else f"{b['cost_per_incremental_reengaged']:,.2f}",
                         b["note"]])
    return ("<h2>Offers</h2><p class=\"muted\">Per offer: treated users given the offer against held-out users the "
            "plan would have given it, and against treated users of the same segment whose variant withholds offers. "
            "Cost = fixed + share x order value on each offered user's first order after the offer reached them "
            "(an upper bound: every such order is taken as redeemed). Net = incremental revenue - cost, with the "
            "revenue's Welch 95% interval.</p>"
            + table(["offer", "against", "offered", "compared", "re-engaged diff", "95% CI", "revenue/user diff",
                     "incremental revenue", "cost", "net", "net 95% CI", "cost per incremental re-engaged", "note"],
                    body))
