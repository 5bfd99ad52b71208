"""``winback explain``: everything the plan decided for one user, and why."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.io.meta import PLAN, read_meta
from engine.errors import InputError
from engine.planning import timing as pt
from engine.planning.rules import Rule
from engine.schema import ADDRESS_COLUMN
from engine.tz import Offsets

__all__ = ["explain"]


def explain(user_id: int, plan_table: pa.Table, scores: pa.Table | None = None, ledger=None) -> dict:
    """Everything the plan decided for one user, with the scores that drove it.

    Returns a dict: ``user_id``, ``steps`` (the user's plan rows, each with
    ``local_time`` and, when the message left the user's best hour, ``moved``),
    ``campaign`` (from the plan's metadata) and, with ``scores``: ``scores`` (the user's
    row), ``in_audience`` (the audience rule re-evaluated on that row) and
    ``channels`` per step: every allowed channel in preference order with consent,
    address, suppression and response rate, ranked as the planner ranks them; ``warnings``
    when the scores carry no metadata (a CSV: :func:`engine.planning.planner.lost_metadata_warning`).

    With ``ledger`` (a path): each step gets ``sent`` (what happened at send time: the
    ledger's ``state``, ``attempts``, ``sent_at``, ``why`` - the reason a message was
    skipped or dead, e.g. ``exited``, ``suppressed``, ``cap_other_campaigns``,
    ``too_late``, ``complaint`` - ``retimed_to`` for a pending message moved later, and
    ``late_hours`` for one sent more than 15 minutes after its planned time), and
    ``ledger`` holds the user's ``other_campaigns`` messages and ``suppressions``.
    """
    if not -2**63 <= int(user_id) < 2**63:
        raise InputError(f"user {user_id} is not in the plan: user ids are 64-bit whole numbers; check the id")
    rows = plan_table.filter(pc.equal(plan_table["user_id"], int(user_id))).to_pylist()
    if not rows:
        raise InputError(f"user {user_id} is not in the plan; check the id (plans hold every scored user)")
    out: dict = {"user_id": int(user_id), "steps": rows}
    meta = read_meta(plan_table, PLAN)
    out["campaign"] = {k: meta.get(k) for k in ("campaign_id", "name", "as_of", "audience", "holdout", "policy")}
    for r in rows:
        if isinstance(r.get("send_at"), (int, float)):  # epoch seconds (a hand-made plan)
            r["send_at"] = dt.datetime.fromtimestamp(r["send_at"], dt.timezone.utc)
        if r.get("send_at") is None or not r.get("timezone"):
            continue
        epoch = int(r["send_at"].timestamp())
        offset = int(Offsets([r["timezone"]], epoch, epoch).at(np.zeros(1, np.int64), np.array([epoch]))[0])
        local = r["send_at"].astimezone(dt.timezone(dt.timedelta(seconds=offset)))
        r["local_time"] = local.isoformat()
        if r.get("best_hour_local") is not None and local.hour != r["best_hour_local"]:
            quiet = (meta.get("policy") or {}).get("quiet_hours")
            why = "quiet hours" if quiet and pt.in_quiet(np.array([r["best_hour_local"] * 60]), tuple(quiet))[0] \
                else "minimum gap from this or another campaign's message, or hourly capacity"
            r["moved"] = f"from the best hour {r['best_hour_local']:02d}:00 to {local:%H:%M} local ({why})"
    if ledger is not None:
        _with_ledger(out, ledger, meta.get("campaign_id"))
    if scores is None:
        return out
    from engine.planning.planner import lost_metadata_warning

    lost = lost_metadata_warning(scores, "the scores")
    if lost:
        out["warnings"] = [lost]
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
            consent = bool(row.get(f"consent_{c}"))
            address = (row.get("email") or row.get("phone")) is not None if c == "ads" \
                else row.get(ADDRESS_COLUMN[c]) is not None
            # as the planner reads them: a null opt-out is suppressed (also a null 'complained'), an unknown rate 0.1
            opt_out = row.get(f"{c}_suppressed", False)
            suppressed = opt_out is None or bool(opt_out) or ("complained" in row and row["complained"] is None)
            reachable = consent and address and not suppressed
            rate = row.get(f"{c}_response_rate")
            rate = None if rate is None or rate != rate else rate
            ranking.append({"channel": c, "consent": consent, "address": address, "suppressed": suppressed,
                            "response_rate": rate, "reachable": reachable})
        # the planner reads a missing response rate as 0.1 and keeps the step's order on ties
        ranking.sort(key=lambda x: (not x["reachable"], -(0.1 if x["response_rate"] is None else x["response_rate"])))
        out["channels"].append({"step": step.get("name", str(k)), "ranking": ranking})
    return out


def _with_ledger(out: dict, ledger, campaign_id) -> None:
    """Add what happened at send time to ``out`` (see :func:`explain`)."""
    from engine.ledger.read import read_user

    msgs, sups = read_user(ledger, out["user_id"])
    by_id = {m["message_id"]: m for m in msgs.to_pylist()}
    for r in out["steps"]:
        m = by_id.get(r["message_id"])
        if r.get("reason") is not None:
            continue
        if m is None:
            r["sent"] = {"state": "not in the ledger (not sent yet: run 'winback send')"}
            continue
        info = {"state": m["state"], "attempts": m["attempts"], "sent_at": m["sent_at"],
                "why": m["last_error"] if m["state"] in ("skipped", "dead") else None}
        if m["state"] in ("planned", "failed") and m["next_attempt_at"] != m["send_at"]:
            info["retimed_to"] = m["next_attempt_at"]
            if m["last_error"]:  # e.g. min_gap_other_campaigns: moved after another campaign's message
                info["why"] = m["last_error"]
        if m["state"] == "sent" and m["sent_at"] is not None and r.get("send_at") is not None:
            late = (m["sent_at"] - r["send_at"]).total_seconds()
            if late > 900:
                info["late_hours"] = round(late / 3600, 1)
        r["sent"] = info
    others = [m for m in msgs.to_pylist() if m["campaign_id"] != campaign_id]
    out["ledger"] = {"path": str(ledger),
                     "other_campaigns": [{k: m[k] for k in ("campaign_id", "step", "channel", "state", "send_at",
                                                           "sent_at", "last_error")} for m in others],
                     "suppressions": sups.to_pylist()}
