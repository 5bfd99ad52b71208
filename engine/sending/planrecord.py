"""What the ledger keeps of a plan for the release checks (:mod:`engine.sending.release`).

``campaigns`` holds each campaign's policy, default timezone, start and end; ``campaign_zones``
each planned user's timezone for that campaign (``user_zones``, one zone per user whatever the
campaign, is what ledgers of older versions hold: read, no longer written).  A send records
them when it loads a plan, and again whenever the campaign's row is missing (a run killed
between loading the plan, which commits on its own, and recording it).
"""

from __future__ import annotations

import json
import time

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["record_plan", "has_plan_record"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS campaigns (campaign_id TEXT PRIMARY KEY, meta TEXT NOT NULL, at REAL);
CREATE TABLE IF NOT EXISTS user_zones (user_id INTEGER PRIMARY KEY, timezone TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS campaign_zones (campaign_id TEXT NOT NULL, user_id INTEGER NOT NULL, timezone TEXT NOT NULL,
                                           PRIMARY KEY (campaign_id, user_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_user ON messages (user_id);
"""


def _ensure(con) -> None:
    con.executescript(_SCHEMA)
    if "released_at" not in {r[1] for r in con.execute("PRAGMA table_info(messages)")}:
        con.execute("ALTER TABLE messages ADD COLUMN released_at REAL")  # a ledger of an older version


def _campaign_of(plan: pa.Table, meta: dict) -> str:
    cid = str(meta.get("campaign_id") or meta.get("id") or "")
    if not cid and "campaign_id" in plan.column_names and plan.num_rows:
        cid = str(plan.column("campaign_id")[0].as_py())
    return cid


def has_plan_record(ledger, plan: pa.Table, meta: dict) -> bool:
    """Whether :func:`record_plan` ran for this plan's campaign (a run killed between loading a
    plan and recording it leaves its messages without their policy: the next run records it)."""
    con = ledger.connection
    _ensure(con)
    return con.execute("SELECT 1 FROM campaigns WHERE campaign_id = ?", (_campaign_of(plan, meta),)).fetchone() \
        is not None


def record_plan(ledger, plan: pa.Table, meta: dict) -> None:
    """Keep what the release checks need from a plan: its campaign's policy and default
    timezone (``campaigns``), and each planned user's timezone for this campaign
    (``campaign_zones``: a user without a timezone is planned in each campaign's own default,
    so one campaign's plan never moves another's quiet hours)."""
    con = ledger.connection
    _ensure(con)
    cid = _campaign_of(plan, meta)
    keep = {"policy": meta.get("policy") or {}, "timezone": meta.get("timezone") or "UTC", "as_of": meta.get("as_of"),
            "ends_at": _end(meta),
            "steps": [{"name": s.get("name"), "delay_days": s.get("delay_days")} for s in meta.get("steps") or []]}
    con.execute("BEGIN IMMEDIATE")
    try:
        con.execute("INSERT OR REPLACE INTO campaigns VALUES (?, ?, ?)", (cid, json.dumps(keep), time.time()))
        if "timezone" in plan.column_names and plan.num_rows:
            rows = plan.filter(pc.is_valid(plan.column("timezone"))) if "reason" not in plan.column_names else \
                plan.filter(pc.and_(pc.is_null(plan.column("reason")), pc.is_valid(plan.column("timezone"))))
            pairs = pa.table({"u": rows.column("user_id"), "z": pc.cast(rows.column("timezone"), pa.string())})
            pairs = pairs.group_by("u").aggregate([("z", "max")])
            con.executemany("INSERT OR REPLACE INTO campaign_zones VALUES (?, ?, ?)",
                            ((cid, u, z) for u, z in zip(pairs.column("u").to_pylist(),
                                                         pairs.column("z_max").to_pylist())))
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _end(meta: dict) -> float | None:
    """The campaign's end (epoch s) from a plan's metadata: its ``ends_at`` (``winback plan``
    writes the resolved end), else the start + every step's delay + 10 days (the plan's
    horizon), else None (a hand-made plan without a start: no end)."""
    from engine.tz import parse_as_of

    try:
        if meta.get("ends_at"):
            return float(parse_as_of(meta["ends_at"]))
        if meta.get("as_of"):
            delays = sum(float(s.get("delay_days") or 0) for s in meta.get("steps") or [])
            return float(parse_as_of(meta["as_of"])) + (delays + 10) * 86_400.0
    except Exception:  # a hand-edited date: no end rather than a crash at send time
        return None
    return None
