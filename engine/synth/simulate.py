"""Outcome simulation for a synthetic world: what users do after the campaign.

Given a plan, the generator's ``truth`` and what was actually delivered (the ledger's
``sent`` messages; without a ledger, every planned message), each delivery is answered
with the world's own behavioural model (:mod:`engine.world`): open with
``response_probability`` (alive, channel rate, delivery local hour vs the preferred
hour, messages in the 7 days before), click after an open, unsubscribe and complain.
When the plan has a ``theme`` column and the truth a ``theme`` (a world with items),
the open probability is multiplied by ``world.theme_factor`` (the blast has no theme:
factor 1.0); the metadata then counts deliveries, opens and clicks per message theme
(``by_theme``, with ``none`` for messages without one, and ``matched``: deliveries
whose theme is the user's true one).
A click lands on the site: the outcomes hold a ``session`` two seconds after it (the visit
product analytics would record; the report counts sessions and purchases as re-engagement,
not clicks, which only messaged users can make), and it revives a gone user with
``REVIVE_GIVEN_CLICK``.  Then organic activity over the next ``days`` days is drawn for
*every* user of the plan, treated or holdout, from their true activity rate, so
holdout users can come back on their own.

``policy="blast"`` evaluates batch-and-blast on the same world: one email at 10:00 UTC
on day 0 to every user of the audience who is reachable at step 0 (the holdout stays
untouched as control).

Returns contract events plus ``message_id``, one ``send`` row per delivery answered;
``winback simulate`` writes them to ``events.arrow``.  Same seed, same outcome.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.io.meta import SIMULATE, read_meta, with_meta
from engine.synth import world
from engine.io.plans import campaign_start, read_plan
from engine.io.readers import read_table
from engine.ledger.read import planned_as_sent
from engine.io.atomic import atomic_dir
from engine.errors import ConfigError, InputError
from engine.planning.timing import local_instants
from engine.schema import CHANNELS, PROVIDER_CHANNELS, SECONDS_PER_DAY, THEMES, TIMESTAMP
from engine.tz import from_epoch_seconds, to_epoch_seconds

__all__ = ["simulate", "write_outcomes", "outcome_meta", "delivered", "META_KEY"]

#: schema metadata key of a simulated outcome table (JSON of the counts and settings)
META_KEY = SIMULATE

_UNREACHABLE = {"not_in_audience", "holdout", "no_consent", "no_address", "suppressed"}


def _deliveries(plan: pa.Table, ledger, policy: str, start: int, scores=None) -> pa.Table:
    if policy == "blast":
        step0 = plan.filter(pc.equal(plan["step_index"], 0))
        if scores is not None:
            # every user with email consent, an address and no suppression, bar the holdout
            s = scores if isinstance(scores, pa.Table) else read_table(scores, "scores")
            ok_s = pc.and_(pc.and_(pc.fill_null(s["consent_email"], False), pc.is_valid(s["email"])),
                           pc.invert(pc.fill_null(s["email_suppressed"], False)))
            reach = s.filter(ok_s)["user_id"]
            ok = pc.and_(pc.is_in(step0["user_id"], value_set=reach), pc.invert(step0["holdout"]))
        else:
            reason = step0["reason"].fill_null("")
            ok = pc.invert(pc.is_in(reason, value_set=pa.array(sorted(_UNREACHABLE))))
        users = step0.filter(ok)
        day = start // SECONDS_PER_DAY
        at = day * SECONDS_PER_DAY + 10 * 3600
        at = at if at >= start else at + SECONDS_PER_DAY  # the first 10:00 UTC from the start
        n = users.num_rows
        return pa.table({
            "message_id": pc.binary_join_element_wise("blast", pc.cast(users["user_id"], pa.string()), "-"),
            "user_id": users["user_id"], "channel": pa.array(["email"] * n, pa.string()),
            "step": pa.array(["blast"] * n, pa.string()), "step_index": pa.array(np.zeros(n, np.int16)),
            "variant": pa.array(["blast"] * n, pa.string()),
            "send_at": from_epoch_seconds(np.full(n, at, np.int64)), "timezone": users["timezone"]
            if "timezone" in users.column_names else pa.array(["UTC"] * n),
        })
    planned = planned_as_sent(plan, ledger)
    cols = ["message_id", "user_id", "channel", "step", "step_index", "variant", "send_at", "timezone", "theme",
            "offer"]
    return planned.select([c for c in cols if c in planned.column_names])


def simulate(plan, truth, ledger=None, *, seed: int = 0, days: int = 14, policy: str = "winback",
             scores=None, history=None) -> pa.Table:
    """Simulate outcomes; returns the events after the campaign start, UTC, within ``days``.

    Columns user_id, ts, event, channel, value, message_id.  Each delivered message is a
    ``send`` row (:func:`delivered`); its answers follow (open, click, unsubscribe,
    complaint, with its message_id); organic ``session``/``purchase`` rows have no
    channel.  The counts (deliveries, opens, revived ...) are in the schema metadata
    (:func:`outcome_meta`).

    ``scores`` (blast only): email reachability of the whole base; without it the blast
    goes to the audience's reachable users.  ``history``: the world's events (its
    ``send`` rows are earlier campaigns), so fatigue counts every message of the 7 days
    before a delivery, not only this campaign's.
    """
    if policy not in ("winback", "blast"):
        raise ConfigError(f"--policy must be 'winback' or 'blast', got {policy!r}")
    if not 1 <= days <= 3650:
        raise ConfigError(f"--days must be from 1 to 3650, got {days}")
    if not 0 <= seed < 2**63:  # numpy's seeds are whole numbers >= 0
        raise ConfigError(f"--seed must be a whole number from 0 to 2**63 - 1, got {seed}")
    plan_t, plan_name = read_plan(plan)
    _check_plan(plan_t, plan_name)
    truth_t = truth if isinstance(truth, pa.Table) else read_table(truth, "truth")
    for col in ("user_id", "alive", "activity_rate", "preferred_hour_local", "fatigue_sensitivity"):
        if col not in truth_t.column_names:
            raise InputError(f"truth table has no column {col!r}; pass the truth.arrow of 'winback generate'")
    start = int(campaign_start(plan_t))
    end = start + days * SECONDS_PER_DAY
    rng = np.random.default_rng([seed, 0x5EED])            # per-message draws
    rng_users = np.random.default_rng([seed, 0x5EED, 1])   # per-user draws of the users alive at the start
    users = np.unique(plan_t["user_id"].to_numpy())
    t_ids = truth_t["user_id"].to_numpy()
    order = np.argsort(t_ids)
    pos = np.searchsorted(t_ids[order], users)
    if (pos >= len(t_ids)).any() or not np.array_equal(t_ids[order][np.minimum(pos, len(t_ids) - 1)], users):
        raise InputError(f"truth does not cover every user of {plan_name}; use the truth of the same world")
    tr = truth_t.take(pa.array(order[pos]))

    def tcol(name, default=0.0):
        return tr[name].fill_null(default).to_numpy(zero_copy_only=False) if name in tr.column_names \
            else np.full(len(users), default)

    alive = tcol("alive", False).astype(bool)
    d = _deliveries(plan_t, ledger, policy, start, scores)
    m_user = np.searchsorted(users, d["user_id"].to_numpy())
    m_at = to_epoch_seconds(d["send_at"])
    m_ch = np.array([PROVIDER_CHANNELS.index(c) for c in d["channel"].to_pylist()], np.int64) if d.num_rows \
        else np.zeros(0, np.int64)
    local_hour = (local_instants(d, m_at) % SECONDS_PER_DAY) / 3600.0
    # an ad is seen whenever the user scrolls, not at the delivery hour: no hour factor
    is_ad = m_ch == PROVIDER_CHANNELS.index("ads")
    local_hour = np.where(is_ad, tcol("preferred_hour_local", 12)[m_user], local_hour)
    # messages in the 7 days before each delivery (this campaign's)
    o = np.lexsort((m_at, m_user))
    key = m_user[o].astype(np.int64) * (4 * 10**9) + (m_at[o] - start)
    n7 = np.empty(len(o), np.int64)
    n7[o] = np.arange(len(o)) - np.searchsorted(key, key - 7 * SECONDS_PER_DAY, side="left")
    if history is not None and len(m_user):
        n7 += _prior_sends(history, users, m_user, m_at, start)
    rate = np.stack([tcol(f"resp_{c}", 0.1) for c in CHANNELS] + [tcol("resp_ads", world.ADS_RESPONSE)], axis=1)
    p_open = world.response_probability(alive[m_user], rate[m_user, m_ch], local_hour,
                                        tcol("preferred_hour_local", 12)[m_user], n7, tcol("fatigue_sensitivity")[m_user])
    themed = "theme" in plan_t.column_names and "theme" in tr.column_names
    if themed:
        m_theme = _theme_codes(d, plan_name)
        u_theme = _theme_codes(tr, "truth")[m_user]
        p_open = np.clip(p_open * world.theme_factor(m_theme, u_theme), 0.0, 1.0)
    appeal, o_size = _variant_offer_effects(plan_t, d, tcol("value_mean", 30.0)[m_user])
    p_open = np.clip(p_open * appeal, 0.0, 1.0)
    opened = rng.random(len(m_user)) < p_open
    clicked = opened & (rng.random(len(m_user)) < np.clip(world.CLICK_GIVEN_OPEN * (1 + world.OFFER_CLICK_GAIN * o_size),
                                                          0.0, 1.0))
    p_unsub = np.where(is_ad, 0.0, world.unsubscribe_probability(tcol("unsub_risk", 0.002)[m_user], n7))
    unsub = rng.random(len(m_user)) < p_unsub
    complaint = unsub & (rng.random(len(m_user)) < 0.1)
    open_at = m_at + rng.exponential(2 * 3600, len(m_user)).astype(np.int64) + 30
    click_at = open_at + rng.exponential(600, len(m_user)).astype(np.int64) + 5
    revive = clicked & ~alive[m_user] & (rng.random(len(m_user)) < world.REVIVE_GIVEN_CLICK)
    revived_at = np.full(len(users), np.iinfo(np.int64).max)
    np.minimum.at(revived_at, m_user[revive], click_at[revive])
    # organic activity: Poisson active days at the true rate while alive in the window.
    # Users alive at the start draw from their own stream (rng_users), users a click revived
    # from the messages' (rng): held-out users' outcomes never depend on what others were sent.
    lam = tcol("activity_rate", 0.1)
    p_drop = np.clip(tcol("p_drop", 0.0), 0.0, 1.0)
    purchase_p, value_mean = tcol("purchase_p", 0.1), tcol("value_mean", 30.0)
    g = np.where(p_drop > 0, rng_users.geometric(np.where(p_drop > 0, p_drop, 0.5)), np.iinfo(np.int64).max)
    rev = np.nonzero(~alive & (revived_at != np.iinfo(np.int64).max))[0]
    parts = []
    for gen, who, since in ((rng_users, np.nonzero(alive)[0], np.full(int(alive.sum()), start, np.int64)),
                            (rng, rev, revived_at[rev])):
        span = np.clip(end - since, 0, None) / SECONDS_PER_DAY
        k = gen.poisson(lam[who] * span)
        idx = np.repeat(np.arange(len(who)), k)
        at = since[idx] + (gen.random(len(idx)) * span[idx] * SECONDS_PER_DAY).astype(np.int64)
        parts.append((who[idx], at, gen.random(len(idx)) < purchase_p[who[idx]],
                      np.round(value_mean[who[idx]] * np.exp(gen.normal(0, 0.4, len(idx))), 2)))
    owner, s_at, buy, value = (np.concatenate(x) for x in zip(*parts))
    # a user drops out after each active day with p_drop (BG/NBD), so keep only the
    # active days up to the first drop: the first G of them, G ~ Geometric(p_drop)
    o2 = np.lexsort((s_at, owner))
    owner, s_at, buy, value = owner[o2], s_at[o2], buy[o2], value[o2]
    rank = np.arange(len(owner)) - np.searchsorted(owner, owner, side="left")
    live = rank < g[owner]
    owner, s_at, buy, value = owner[live], s_at[live], buy[live], value[live]
    # an offer clicked is an order (on which the offer's cost falls), at most one per message
    o_buy = np.zeros(len(m_user), bool)
    if (o_size > 0).any():  # (no draw without offers)
        o_buy = clicked & (o_size > 0) & (rng.random(len(m_user)) < world.OFFER_ORDER_GIVEN_CLICK)
        owner = np.concatenate([owner, m_user[o_buy]])
        s_at = np.concatenate([s_at, click_at[o_buy] + 60])
        buy = np.concatenate([buy, np.ones(int(o_buy.sum()), bool)])
        value = np.concatenate([value, np.round(value_mean[m_user[o_buy]] * np.exp(rng.normal(0, 0.4, int(o_buy.sum()))), 2)])
    ev_parts = [
        (m_user, m_at, "send", m_ch, np.arange(len(m_user))),
        (m_user[opened], open_at[opened], "open", m_ch[opened], np.nonzero(opened)[0]),
        (m_user[clicked], click_at[clicked], "click", m_ch[clicked], np.nonzero(clicked)[0]),
        (m_user[unsub & ~complaint], open_at[unsub & ~complaint], "unsubscribe", m_ch[unsub & ~complaint],
         np.nonzero(unsub & ~complaint)[0]),
        (m_user[complaint], open_at[complaint], "complaint", m_ch[complaint], np.nonzero(complaint)[0]),
        (owner, s_at, "session", np.full(len(owner), -1), None),
        (m_user[clicked], click_at[clicked] + 2, "session", np.full(int(clicked.sum()), -1), None),  # the landing
        (owner[buy], s_at[buy] + 300, "purchase", np.full(int(buy.sum()), -1), None),
    ]
    events = _events_table(users, ev_parts, d["message_id"], value[buy], end)
    meta = {"policy": policy, "seed": seed, "days": days, "start": start, "users": int(len(users)),
            "deliveries": int(len(m_user)), "opens": int(opened.sum()), "clicks": int(clicked.sum()),
            "revived": int((revived_at != np.iinfo(np.int64).max).sum()),
            "unsubscribes": int(unsub.sum()), "offer_orders": int(o_buy.sum())}
    if themed:
        meta["by_theme"] = _by_theme(m_theme, u_theme, opened, clicked)
    answers = _survey_answers(plan_t, d, opened, open_at, alive[m_user], tcol("fatigue_sensitivity")[m_user],
                              users[m_user], end, rng)
    if answers:
        meta["survey_answers"] = answers
    return with_meta(events, META_KEY, meta, default=None)


def _variant_offer_effects(plan_t: pa.Table, d: pa.Table, value_mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per delivery: the variant copy's appeal (world.content_appeal) and the size of the
    offer it carries (world.offer_size, 0 without one), from the plan's campaign."""
    from engine.io.plans import plan_meta

    meta = plan_meta(plan_t)
    n = d.num_rows
    appeal, size = np.ones(n), np.zeros(n)
    if not n:
        return appeal, size
    steps = np.asarray(d["step"].to_numpy(zero_copy_only=False), dtype=object)
    if "variant" in d.column_names:
        var = np.asarray(d["variant"].to_numpy(zero_copy_only=False), dtype=object)
        for v in meta.get("variants") or []:
            own = [v.get(k) for k in ("template", "subject", "body") if v.get(k) is not None]
            if not own:
                continue
            on = (var == v["name"]) & (np.isin(steps, v.get("steps")) if v.get("steps") else True)
            appeal[on] = world.content_appeal("\x00".join(own))
    if "offer" in d.column_names:
        offer = np.asarray(d["offer"].to_numpy(zero_copy_only=False), dtype=object)
        for o in meta.get("offers") or []:
            on = offer == o["name"]
            size[on] = world.offer_size(o.get("cost_share", 0.0), o.get("cost_fixed", 0.0), value_mean[on])
    return appeal, size


def _survey_answers(plan_t, d, opened, open_at, alive, sensitivity, uid, end, rng) -> list[dict]:
    """Answers to survey steps, as the survey page would post them to ``winback receive``
    (generic ``reason`` events): an opened survey message is answered with
    ``world.SURVEY_ANSWER_GIVEN_OPEN``, the reason drawn by ``world.reason_weights``."""
    from engine.io.plans import plan_meta

    steps = [st for st in plan_meta(plan_t).get("steps") or [] if st.get("kind") == "survey"]
    if not steps or not d.num_rows:
        return []
    names = np.asarray(d["step"].to_numpy(zero_copy_only=False), dtype=object)
    out = []
    for st in steps:
        sel = np.nonzero((names == st["name"]) & opened)[0]
        if not len(sel):
            continue
        sel = sel[rng.random(len(sel)) < world.SURVEY_ANSWER_GIVEN_OPEN]
        reasons = list(st.get("reasons") or [])
        w = world.reason_weights(reasons, alive[sel], sensitivity[sel])
        u = rng.random(len(sel))[:, None]
        pick = (np.cumsum(w, axis=1) / w.sum(axis=1, keepdims=True) < u).sum(axis=1)
        mids = d["message_id"].take(pa.array(sel)).to_pylist()
        chans = d["channel"].take(pa.array(sel)).to_pylist()
        for j, i in enumerate(sel):
            at = int(open_at[i]) + 60
            if at < end:
                out.append({"event": "reason", "channel": chans[j], "message_id": mids[j], "user_id": int(uid[i]),
                            "ts": at, "reason": reasons[min(int(pick[j]), len(reasons) - 1)]})
    return out


def _theme_codes(t: pa.Table, name: str) -> np.ndarray:
    """Codes (indices into THEMES) of the ``theme`` column; -1 where absent or null."""
    if "theme" not in t.column_names:
        return np.full(t.num_rows, -1, np.int64)
    col = t["theme"].cast(pa.string()) if pa.types.is_dictionary(t["theme"].type) else t["theme"]
    idx = pc.index_in(col, value_set=pa.array(THEMES, pa.string()))
    unknown = pc.and_(pc.is_valid(col), pc.is_null(idx))
    if pc.any(unknown).as_py():
        bad = pc.unique(col.filter(unknown)).to_pylist()[:5]
        raise InputError(f"{name}: {pc.sum(unknown).as_py()} rows have an unknown theme (e.g. {bad}); "
                         f"themes are {', '.join(THEMES)}")
    return pc.fill_null(idx, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _by_theme(m_theme, u_theme, opened, clicked) -> dict:
    """Deliveries, opens, clicks and deliveries matching the user's true theme, per message theme."""
    out = {}
    for code in np.unique(m_theme):
        sel = m_theme == code
        out["none" if code < 0 else THEMES[code]] = {
            "deliveries": int(sel.sum()), "opens": int(opened[sel].sum()), "clicks": int(clicked[sel].sum()),
            "matched": int((sel & (u_theme == code)).sum())}
    return out


def outcome_meta(events: pa.Table) -> dict:
    """The simulation's counts and settings stored in a :func:`simulate` table ({} if none)."""
    return read_meta(events, META_KEY)


def delivered(events: pa.Table) -> pa.Table:
    """The ``send`` rows of an outcome table: one per delivered message."""
    ev = events["event"].cast(pa.string()) if pa.types.is_dictionary(events["event"].type) else events["event"]
    return events.filter(pc.equal(ev, "send"))


def _prior_sends(history, users, m_user, m_at, start) -> np.ndarray:
    """Per delivery, the world's earlier ``send`` events of that user in the 7 days before it."""
    h = history if isinstance(history, pa.Table) else read_table(history, "history events")
    for col in ("user_id", "ts", "event"):
        if col not in h.column_names:
            raise InputError(f"history events have no column {col!r}; pass the events.arrow of 'winback generate'")
    ev = h["event"].cast(pa.string()) if pa.types.is_dictionary(h["event"].type) else h["event"]
    h = h.filter(pc.equal(ev, "send"))
    base = start - 8 * SECONDS_PER_DAY
    ts = to_epoch_seconds(h["ts"]) if h.num_rows else np.zeros(0, np.int64)
    uid = h["user_id"].to_numpy(zero_copy_only=False) if h.num_rows else np.zeros(0, np.int64)
    pos = np.minimum(np.searchsorted(users, uid), max(len(users) - 1, 0))
    keep = (ts >= base) & (ts < start) & (users[pos] == uid) if len(users) else np.zeros(len(uid), bool)
    big = np.int64(4 * 10**9)
    hk = np.sort(pos[keep].astype(np.int64) * big + (ts[keep] - base))
    mk = m_user.astype(np.int64) * big + (m_at - base)
    return np.searchsorted(hk, mk, side="left") - np.searchsorted(hk, mk - 7 * SECONDS_PER_DAY, side="left")


def _events_table(users, parts, message_ids, purchase_values, end) -> pa.Table:
    uid, ts, ev, ch, mid, val = [], [], [], [], [], []
    chan_names = np.array(list(PROVIDER_CHANNELS) + [None], dtype=object)
    mids = message_ids.to_numpy(zero_copy_only=False) if len(message_ids) else np.zeros(0, dtype=object)
    for owner, at, name, c, msg_idx in parts:
        keep = at < end
        uid.append(users[owner[keep]])
        ts.append(at[keep])
        ev.append(np.full(int(keep.sum()), name, dtype=object))
        ch.append(chan_names[np.where(c[keep] >= 0, c[keep], len(PROVIDER_CHANNELS))])
        mid.append(mids[msg_idx[keep]] if msg_idx is not None else np.full(int(keep.sum()), None, dtype=object))
        if name == "purchase":
            val.append(purchase_values[keep])
        else:
            val.append(np.full(int(keep.sum()), np.nan))
    v = np.concatenate(val) if val else np.zeros(0)
    t = np.concatenate(ts) if ts else np.zeros(0, np.int64)
    order = np.argsort(t, kind="stable")
    return pa.table({
        "user_id": pa.array(np.concatenate(uid)[order], pa.int64()),
        "ts": from_epoch_seconds(t[order]),
        "event": pa.array(np.concatenate(ev)[order], pa.string()).dictionary_encode(),
        "channel": pa.array(np.concatenate(ch)[order], pa.string()).dictionary_encode(),
        "value": pa.array(v[order], pa.float64(), mask=np.isnan(v[order])),
        "message_id": pa.array(np.concatenate(mid)[order], pa.string()),
    })


def write_outcomes(events: pa.Table, out_dir: str | os.PathLike) -> Path:
    """Write ``out_dir``/events.arrow and outcome.json (the counts) atomically, and the
    survey answers, when any, to answers.jsonl (one generic ``reason`` event per line,
    to post to ``winback receive``: they are not in events.arrow)."""
    import pyarrow.feather as feather

    out_dir = Path(out_dir)
    meta = outcome_meta(events)
    answers = meta.pop("survey_answers", [])
    with atomic_dir(out_dir) as tmp:
        feather.write_feather(events, tmp / "events.arrow", compression="uncompressed")
        (tmp / "outcome.json").write_text(json.dumps(meta | {"survey_answers": len(answers)}, indent=2))
        if answers:  # what the survey page would post to 'winback receive' (not in events.arrow)
            (tmp / "answers.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
    return out_dir


del TIMESTAMP


def _check_plan(plan_t: pa.Table, name: str) -> None:
    """An :class:`InputError` when the plan lacks what a simulation reads, or a planned
    message has no user, send time or known channel (a hand-made or cut-down plan)."""
    from engine.io.plans import require_plan_columns

    require_plan_columns(plan_t, name, ("message_id", "user_id", "step", "channel", "send_at", "reason"))
    planned = plan_t.filter(pc.is_null(plan_t["reason"]))
    if plan_t["user_id"].null_count:
        raise InputError(f"{name}: column 'user_id' is null in {plan_t['user_id'].null_count:,} rows; pass the plan "
                         "'winback plan' wrote")
    for col in ("send_at", "channel"):
        if planned[col].null_count:
            raise InputError(f"{name}: column {col!r} is null in {planned[col].null_count:,} planned rows; pass the "
                             "plan 'winback plan' wrote")
    odd = sorted(set(pc.unique(planned["channel"]).to_pylist()) - set(PROVIDER_CHANNELS))
    if odd:
        raise InputError(f"{name}: column 'channel' has {odd[:3]!r}, not one of {', '.join(PROVIDER_CHANNELS)}; "
                         "pass the plan 'winback plan' wrote")
