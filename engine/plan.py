"""Step 2, plan: who gets which message, on which channel, when - and why not.

``plan(scores, campaign)`` returns one row per (user, step) with a deterministic
``message_id``, the channel, ``send_at`` (UTC) and, for users not messaged, the
``reason``.  Rules, in the order they are applied per step:

1. ``not_in_audience``: the audience rule is false; ``holdout``: the user's hash of
   (campaign id, user id) puts them in the holdout (``campaign.holdout`` share).
2. Channel: among the step's channels, those with consent, an address and no
   suppression (scores or the ledger's suppressions), under the per-channel cap; the
   one with the highest ``c_response_rate`` wins, ties by the step's order.  Reasons:
   ``no_consent``, ``no_address``, ``suppressed``, ``channel_cap``.
3. Fatigue: the user's ``fatigue_budget`` bounds the campaign's messages in the first
   policy window (it was scored for the window after ``as_of``), and the cross-channel
   cap (``max_messages`` per ``window_days``, counting earlier steps of this campaign
   in the rolling window and, inside the first window, the scores' ``sends_7d`` or
   ``sends_30d``: their times are not known, so they count in full) must hold at the
   send time: ``fatigue_budget``.
4. Time: the first instant at the user's ``best_hour_local`` at or after the previous
   step's send time plus ``delay_days`` counted in the user's wall time (so "3 days
   later at 09:00" stays 09:00 across a DST change), or the campaign start plus the
   summed delays; moved out of local quiet hours [start, end) to the window's end
   (same or next day, never dropped); at least ``min_gap_hours`` after the user's
   previous message (reason ``min_gap`` when that pushes it more than two days).
5. Capacity per channel and UTC hour: messages are placed in order of
   (``send_time_confidence`` >= 0.4 first, then expected win-back value); those that
   find their hour full try +1 h, -1 h, +2 h, -2 h, ... up to 12 h, skipping local
   quiet hours, hours before the minimum gap, and earlier hours that would break a
   fatigue cap checked in 3; else ``capacity``.

Expected win-back value = ``p_alive x value x c_response_rate`` with value the user's
mean purchase value (the median of buyers for users who never bought).

Holdout and variant use SplitMix64 of (user id XOR a 64-bit hash of the campaign id)
with two salts, so a rerun picks the same users and a new campaign id reshuffles.
"""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine import plan_steps as ps
from engine import plan_time as pt
from engine.campaign import Campaign, load_campaign
from engine.errors import ConfigError, InputError
from engine.guard import check_scores, guard_counts
from engine.partition import splitmix64
from engine.plan_steps import REASONS
from engine.schema import ADDRESS_COLUMN, CHANNELS, CONSENT_COLUMN, PLAN_SCHEMA, SECONDS_PER_DAY
from engine.templates import render
from engine.timeutil import from_epoch_seconds, parse_as_of

__all__ = ["plan", "explain", "REASONS", "plan_summary"]

_R = ps.R


def _campaign_hash(cid: str) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.sha256(cid.encode()).digest()[:8], "little"))


def _unit(h: np.ndarray) -> np.ndarray:
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def user_hash(user_ids: np.ndarray, campaign: Campaign) -> np.ndarray:
    """SplitMix64 of (user id XOR the campaign id's hash): each per-user draw of the
    campaign (holdout, variant, theme experiment) salts this differently."""
    return splitmix64(np.asarray(user_ids, np.int64).view(np.uint64) ^ _campaign_hash(campaign.id))


def assignments(user_ids: np.ndarray, campaign: Campaign) -> tuple[np.ndarray, np.ndarray]:
    """(holdout bool, variant index) per user, deterministic in (campaign id, user id)."""
    base = user_hash(user_ids, campaign)
    u_hold = _unit(splitmix64(base ^ np.uint64(0x686F6C646F7574)))
    u_var = _unit(splitmix64(base ^ np.uint64(0x76617269616E74)))
    w = np.array([v.weight for v in campaign.variants], np.float64)
    variant = np.minimum(np.searchsorted(np.cumsum(w) / w.sum(), u_var, side="right"), len(w) - 1)
    return u_hold < campaign.holdout, variant


_col = ps.col


def plan(scores, campaign, *, as_of=None, suppressions: pa.Table | None = None, ledger=None,
         progress: bool = False, items=None) -> pa.Table:
    """Plan ``campaign`` over ``scores`` (table or path); returns the plan table.

    ``as_of`` (campaign start, UTC) defaults to the campaign's ``as_of``, then the
    scores' ``as_of``.  ``ledger`` (SQLite path): its suppressions are honoured and
    its broadcasts feed the broadcast guard.  ``suppressions``: a table shaped like the
    ledger's (``channel``, ``address``, ``user_id``), honoured the same way.
    ``items``: the catalogue (path, table or :class:`engine.items.Items`) that the
    scores were computed with: each audience row (messaged, held out or stopped by a
    rule) then gets a ``theme`` and
    ``items`` (item ids) from :mod:`engine.plan_content`, and templates may use
    ``{{ theme }}`` and ``{{ items[0].title }}``.  Without it both columns are null.
    """
    t0 = time.perf_counter()
    if not isinstance(scores, pa.Table):
        from engine._sendprep import read_any

        src = f"scores {scores}"
        scores = read_any(scores, "scores")
    else:
        src = "scores table"
    cmp = campaign if isinstance(campaign, Campaign) else load_campaign(campaign)
    check_scores(scores, src)
    meta_raw = (scores.schema.metadata or {}).get(b"winback.score")
    score_meta = json.loads(meta_raw) if meta_raw else {}
    start = parse_as_of(as_of or cmp.as_of or score_meta.get("as_of"))
    part = ps.PartitionPlan(scores, cmp, start, suppressions=suppressions, ledger=ledger, items=items)
    pre = part.prelude()
    broadcast = guard_counts(cmp, pre["audience_reachable"], pre["reachable"], ledger, start)
    part.settle(pre["zones"], ps.value_fill([pre]))
    leveller = ps.Leveller(cmp, start, pre["zones"])
    for k in range(len(cmp.steps)):
        part.apply(k, leveller.level([part.candidates(k)])[0])
    result = part.table_out()
    meta = plan_meta_of(cmp, start, broadcast, time.perf_counter() - t0)
    meta["summary"] = plan_summary(result)
    meta["sunset"] = sunset_meta(cmp, *part.sunset_counts(), start)
    return result.replace_schema_metadata({b"winback.plan": json.dumps(meta, default=str).encode()})


def plan_meta_of(cmp: Campaign, start: int, broadcast: bool, seconds: float) -> dict:
    """The ``winback.plan`` metadata besides the summary and the sunset rule."""
    return {"campaign_id": cmp.id, "as_of": from_epoch_seconds(np.array([start])).to_pylist()[0].isoformat(),
            "broadcast": broadcast, "seconds": round(seconds, 3), **cmp.to_meta()}


def sunset_meta(cmp: Campaign, candidates: int, last_sent: int | None, start: int) -> dict:
    """The sunset rule as the report applies it: users messaged by this campaign who show
    no activity by ``review_at`` (the last planned send + ``window_days``) are sunset."""
    review = (last_sent if last_sent is not None else start) + cmp.policy.window_days * SECONDS_PER_DAY
    return {"enabled": cmp.policy.sunset_after_steps, "candidates": candidates,
            "review_at": from_epoch_seconds(np.array([review])).to_pylist()[0].isoformat(),
            "rule": "messaged by this campaign and no activity (session, purchase, click) by review_at"}


def _labels(index: np.ndarray, names: list) -> pa.Array:
    """String array ``names[index]`` (null where index < 0), built as an Arrow dictionary
    and decoded in C++: no Python string per row."""
    index = np.asarray(index)
    ind = pa.array(index.astype(np.int32), mask=index < 0)
    return pa.DictionaryArray.from_arrays(ind, pa.array(names, pa.string())).cast(pa.string())


def _strings(table: pa.Table, name: str) -> pa.Array:
    if name not in table.column_names or pa.types.is_null(table[name].type):
        return pa.nulls(table.num_rows, pa.string())
    return pc.cast(table[name], pa.string()).combine_chunks()


def _assemble(scores, cmp, uid, holdout, variant, cols, start, zone, zones, content=None) -> pa.Table:
    n, n_steps = len(uid), len(cmp.steps)
    reason = np.concatenate(cols["reason"])
    ch = np.concatenate(cols["channel"])
    send = np.concatenate(cols["send_at"])
    step_idx = np.repeat(np.arange(n_steps, dtype=np.int16), n)
    rows_user = np.tile(np.arange(n), n_steps)
    planned = reason == 0
    uid_all = pa.array(uid[rows_user], pa.int64())
    mid = pc.binary_join_element_wise(cmp.id, pc.cast(uid_all, pa.string()),
                                      pc.cast(pa.array(step_idx), pa.string()), "-")
    # every channel's address in one array (channel-major), then one take per row
    addresses = pa.concat_arrays([_strings(scores, ADDRESS_COLUMN[c]) for c in CHANNELS])
    at = np.where(ch >= 0, ch * n + rows_user, 0)
    to = addresses.take(pa.array(at, mask=ch < 0)) if n else pa.nulls(0, pa.string())
    table = pa.table({
        "message_id": mid, "campaign_id": _labels(np.zeros(len(reason), np.int32), [cmp.id]),
        "user_id": uid_all, "step": _labels(step_idx, [s.name for s in cmp.steps]), "step_index": pa.array(step_idx),
        "variant": _labels(np.tile(variant, n_steps), [v.name for v in cmp.variants]),
        "channel": _labels(ch, list(CHANNELS)),
        "send_at": from_epoch_seconds(np.where(planned, send, 0), null_mask=~planned),
        "reason": _labels(np.where(planned, -1, reason.astype(np.int64) - 1), list(REASONS[1:])),
        "holdout": pa.array(np.tile(holdout, n_steps)),
        "expected_value": pa.array(np.concatenate(cols["ev"])),
        "to": to, "template": _labels(step_idx, [s.template for s in cmp.steps]),
        "subject": pa.nulls(len(reason), pa.string()), "body": pa.nulls(len(reason), pa.string()),
        "exit_on": _labels(step_idx, [s.exit_on for s in cmp.steps]),
        "timezone": _labels(zone[rows_user], zones),
        "best_hour_local": pa.array(_col(scores, "best_hour_local", 12, np.int8)[rows_user]),
        "send_time_confidence": pa.array(_col(scores, "send_time_confidence", 0.0, np.float32)[rows_user]),
    })
    extra = content.columns() if content is not None else {
        "theme": pa.nulls(len(reason), pa.string()),
        "items": pa.ListArray.from_arrays(pa.array(np.zeros(len(reason) + 1, np.int32)), pa.array([], pa.int64())),
        "explored": pa.nulls(len(reason), pa.bool_())}
    for name, arr in extra.items():
        table = table.append_column(name, arr)
    return _render(table, scores, rows_user, cmp, planned, content).cast(
        pa.schema(list(PLAN_SCHEMA) + [pa.field("timezone", pa.string()), pa.field("best_hour_local", pa.int8()),
                                       pa.field("send_time_confidence", pa.float32()),
                                       pa.field("theme", pa.string()), pa.field("items", pa.list_(pa.int64())),
                                       pa.field("explored", pa.bool_())]))


def _render(table: pa.Table, scores: pa.Table, rows_user: np.ndarray, cmp: Campaign, planned: np.ndarray,
            content=None) -> pa.Table:
    """Subject and body for the planned rows, one vectorised render per (step, email or not)."""
    from engine.plan_content import ITEM_FIELD
    from engine.templates import parse_template

    own = ("step", "variant", "channel", "theme")
    names = set(scores.column_names) | set(own) | (content.field_names() if content is not None else set())
    fields = set()
    for tname, t in cmp.templates.items():
        for key, text in (("subject", t.subject), ("body", t.body)):
            for kind, field, _ in parse_template(text):
                if kind == "field" and field not in names:
                    hint = (" (item fields need the catalogue: pass --items, and an index below the step's items)"
                            if ITEM_FIELD.match(field) else "")
                    shown = sorted(n for n in names if not n.startswith("items[")) + (
                        ["items[0].title", "items[0].<any items column>"] if content is not None else [])
                    raise ConfigError(f"{cmp.source}: [templates.{tname}.{key}] unknown field {{{{ {field} }}}}{hint}; "
                                      f"available fields: {', '.join(shown)}")
                fields.add(field)
    idx = np.nonzero(planned)[0]
    if not len(idx):
        return table
    at = pa.array(idx)
    cols = {c: scores[c].take(pa.array(rows_user[idx])) for c in scores.column_names if c in fields and c not in own}
    cols |= {f: content.field(f, idx) for f in fields if content is not None and ITEM_FIELD.match(f)}
    ctx_all = pa.table(cols | {name: table[name].take(at) for name in own})
    steps = table["step_index"].to_numpy()[idx]
    is_mail = (table["channel"].take(pa.array(idx)).to_numpy(zero_copy_only=False) == "email")
    order, subjects, bodies = [], [], []
    for k, step in enumerate(cmp.steps):
        tpl = cmp.templates.get(step.template)
        for email in (True, False):
            sel = np.nonzero((steps == k) & (is_mail == email))[0]
            if not len(sel):
                continue
            if tpl is None:
                subjects.append(pa.array([step.name] * len(sel), pa.string()))
                bodies.append(pa.array([step.template] * len(sel), pa.string()))
            else:
                rows = ctx_all.take(pa.array(sel))
                subjects.append(render(tpl.subject, rows, escape=False, name=f"templates.{step.template}.subject"))
                bodies.append(render(tpl.body, rows, escape=email, name=f"templates.{step.template}.body"))
            order.append(idx[sel])
    pos = np.full(table.num_rows, -1, np.int64)
    pos[np.concatenate(order)] = np.arange(len(idx))
    where = pa.array(np.maximum(pos, 0), mask=pos < 0)
    subject = pa.concat_arrays(subjects).take(where)
    body = pa.concat_arrays(bodies).take(where)
    table = table.set_column(table.column_names.index("subject"), "subject", subject)
    return table.set_column(table.column_names.index("body"), "body", body)


def plan_summary(p: pa.Table) -> dict:
    """Counts per step x channel, per reason, and per UTC send hour."""
    planned = p.filter(pc.is_null(p["reason"]))
    by_step = planned.group_by(["step", "channel"]).aggregate([("user_id", "count")]).to_pylist()
    reasons = p.filter(pc.is_valid(p["reason"])).group_by(["reason"]).aggregate([("user_id", "count")]).to_pylist()
    hours = pc.hour(planned["send_at"]) if planned.num_rows else pa.array([], pa.int64())
    hour_counts = np.bincount(np.asarray(hours.to_numpy(zero_copy_only=False), np.int64), minlength=24).tolist() \
        if planned.num_rows else [0] * 24
    themes = {}
    if "theme" in p.column_names and planned.num_rows:
        themes = {r["theme"]: r["user_id_count"] for r in planned.filter(pc.is_valid(planned["theme"]))
                  .group_by(["theme"]).aggregate([("user_id", "count")]).to_pylist()}
    return {"rows": p.num_rows, "planned": planned.num_rows, "by_theme": dict(sorted(themes.items())),
            "by_step_channel": {f"{r['step']}/{r['channel']}": r["user_id_count"] for r in by_step},
            "by_reason": {r["reason"]: r["user_id_count"] for r in reasons},
            "by_utc_hour": hour_counts}


def explain(user_id: int, plan_table: pa.Table, scores: pa.Table | None = None) -> dict:
    """Everything the plan decided for one user, with the scores that drove it.

    Returns a dict: ``user_id``, ``steps`` (the user's plan rows, each with
    ``local_time`` and, when the message left the user's best hour, ``moved``),
    ``campaign`` (from the plan's metadata) and, with ``scores``: ``scores`` (the user's
    row), ``in_audience`` (the audience rule re-evaluated on that row) and
    ``channels`` per step: every allowed channel in preference order with consent,
    address, suppression and response rate, ranked as the planner ranks them.
    """
    import zoneinfo

    from engine.rules import Rule

    rows = plan_table.filter(pc.equal(plan_table["user_id"], int(user_id))).to_pylist()
    if not rows:
        raise InputError(f"user {user_id} is not in the plan; check the id (plans hold every scored user)")
    out: dict = {"user_id": int(user_id), "steps": rows}
    meta_raw = (plan_table.schema.metadata or {}).get(b"winback.plan")
    meta = json.loads(meta_raw) if meta_raw else {}
    out["campaign"] = {k: meta.get(k) for k in ("campaign_id", "name", "as_of", "audience", "holdout", "policy")}
    for r in rows:
        if r.get("send_at") is None or not r.get("timezone"):
            continue
        local = r["send_at"].astimezone(zoneinfo.ZoneInfo(r["timezone"]))
        r["local_time"] = local.isoformat()
        if r.get("best_hour_local") is not None and local.hour != r["best_hour_local"]:
            quiet = (meta.get("policy") or {}).get("quiet_hours")
            why = "quiet hours" if quiet and pt.in_quiet(np.array([r["best_hour_local"] * 60]), tuple(quiet))[0] \
                else "minimum gap or hourly capacity"
            r["moved"] = f"from the best hour {r['best_hour_local']:02d}:00 to {local:%H:%M} local ({why})"
    if scores is None:
        return out
    s = scores.filter(pc.equal(scores["user_id"], int(user_id)))
    out["scores"] = s.to_pylist()[0] if s.num_rows else None
    if not s.num_rows:
        return out
    if meta.get("audience") is not None:
        out["in_audience"] = bool(Rule(meta["audience"])(s)[0])
    row = out["scores"]
    out["channels"] = []
    for k, step in enumerate(meta.get("steps", [])):
        ranking = []
        for c in step.get("channels", []):
            reachable = bool(row.get(CONSENT_COLUMN[c])) and row.get(ADDRESS_COLUMN[c]) is not None \
                and not row.get(f"{c}_suppressed")
            ranking.append({"channel": c, "consent": bool(row.get(CONSENT_COLUMN[c])),
                            "address": row.get(ADDRESS_COLUMN[c]) is not None,
                            "suppressed": bool(row.get(f"{c}_suppressed")),
                            "response_rate": row.get(f"{c}_response_rate"), "reachable": reachable})
        # the planner reads a missing response rate as 0.1 and keeps the step's order on ties
        ranking.sort(key=lambda x: (not x["reachable"], -(0.1 if x["response_rate"] is None else x["response_rate"])))
        out["channels"].append({"step": step.get("name", str(k)), "ranking": ranking})
    return out
