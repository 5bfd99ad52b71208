"""Reading a ledger from the other steps (plan, report, simulate): read-only connections,
results as Arrow tables with instants as ``timestamp[us, UTC]``."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import InputError
from engine.schema import TIMESTAMP

__all__ = ["read_messages", "read_suppressions", "read_broadcasts", "read_user", "read_contacts", "campaign_gaps", "planned_as_sent"]


def _open_ro(path: str | os.PathLike) -> sqlite3.Connection:
    path = Path(path)
    if not path.exists():
        raise InputError(
            f"ledger {path} does not exist. Pass the --ledger file a 'winback send' run wrote."
        )
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
        con.execute("SELECT 1 FROM messages LIMIT 1")
    except sqlite3.DatabaseError as exc:
        raise InputError(f"{path} is not a winback ledger ({exc}). Pass the --ledger file of 'winback send'.") from None
    return con


def _table(con: sqlite3.Connection, sql: str, schema: pa.Schema, times: Sequence[str]) -> pa.Table:
    rows = con.execute(sql).fetchall()
    cols = list(zip(*rows)) if rows else [[] for _ in schema]
    arrays = []
    for field, values in zip(schema, cols):
        if field.name in times:
            secs = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            mask = np.isnan(secs)
            us = np.where(mask, 0, np.round(secs * 1e6)).astype(np.int64)
            arrays.append(pa.array(us, type=TIMESTAMP, mask=mask))
        else:
            arrays.append(pa.array(list(values), type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


_MESSAGES_SCHEMA = pa.schema([
    ("message_id", pa.string()), ("campaign_id", pa.string()), ("user_id", pa.int64()),
    ("step", pa.string()), ("step_index", pa.int16()), ("variant", pa.string()),
    ("channel", pa.string()), ("to_addr", pa.string()), ("send_at", TIMESTAMP),
    ("state", pa.string()), ("attempts", pa.int32()), ("next_attempt_at", TIMESTAMP),
    ("provider_id", pa.string()), ("last_error", pa.string()), ("sent_at", TIMESTAMP),
    ("updated_at", TIMESTAMP),
])
_SUPPRESSIONS_SCHEMA = pa.schema([
    ("channel", pa.string()), ("address", pa.string()), ("user_id", pa.int64()),
    ("reason", pa.string()), ("at", TIMESTAMP),
])


def _read(path, table: str, schema: pa.Schema, times: Sequence[str]) -> pa.Table:
    """Every row of ``table`` in insertion order, as ``schema`` (``times``: epoch s -> UTC)."""
    con = _open_ro(path)
    try:
        return _table(con, f"SELECT {', '.join(f.name for f in schema)} FROM {table} ORDER BY rowid", schema, times)
    except sqlite3.DatabaseError as exc:  # a damaged page: one line, not a traceback
        name = Path(path).name
        raise InputError(f"ledger {path} cannot be read ({' '.join(str(exc).split())}): it is damaged. Restore it "
                         f"from a backup, or salvage it with 'sqlite3 {name} .recover | sqlite3 recovered.db' and "
                         "pass --ledger recovered.db.") from None
    finally:
        con.close()


def read_messages(path: str | os.PathLike) -> pa.Table:
    """Every message of the ledger at ``path`` (instants as ``timestamp[us, UTC]``)."""
    return _read(path, "messages", _MESSAGES_SCHEMA, ("send_at", "next_attempt_at", "sent_at", "updated_at"))


def read_suppressions(path: str | os.PathLike) -> pa.Table:
    """The suppressions of the ledger at ``path``: channel, address, user_id, reason, at."""
    return _read(path, "suppressions", _SUPPRESSIONS_SCHEMA, ("at",))


def read_broadcasts(path: str | os.PathLike) -> pa.Table:
    """Whole-base campaigns sent from the ledger at ``path``: campaign_id, at."""
    return _read(path, "broadcasts", pa.schema([("campaign_id", pa.string()), ("at", TIMESTAMP)]), ("at",))


def read_user(path: str | os.PathLike, user_id: int) -> tuple[pa.Table, pa.Table]:
    """One user's messages (every campaign) and suppressions in the ledger at ``path``."""
    con = _open_ro(path)
    uid = int(user_id)
    try:
        msgs = _table(con, f"SELECT {', '.join(f.name for f in _MESSAGES_SCHEMA)} FROM messages "
                           f"WHERE user_id = {uid} ORDER BY send_at, rowid", _MESSAGES_SCHEMA,
                      ("send_at", "next_attempt_at", "sent_at", "updated_at"))
        sups = _table(con, f"SELECT {', '.join(f.name for f in _SUPPRESSIONS_SCHEMA)} FROM suppressions "
                           f"WHERE user_id = {uid} ORDER BY rowid", _SUPPRESSIONS_SCHEMA, ("at",))
    finally:
        con.close()
    return msgs, sups


def read_contacts(path: str | os.PathLike, *, exclude_campaign: str | None, lo: float, hi: float,
                  gaps_before: float | None = None, caps: bool = False) -> tuple[np.ndarray, ...]:
    """Messages that reached or will reach their user (sent, planned, in flight, failed with
    a retry pending) at an instant in ``(lo, hi)`` (epoch s), of every campaign but
    ``exclude_campaign``: ``(user_id int64, channel str objects, at int64 epoch s, gap
    int64 s)``.  The instant is ``sent_at`` for sent messages, ``next_attempt_at`` for the
    others; ``gap`` is the message's campaign's ``min_gap_hours`` in seconds, as its send
    recorded it (0 when the ledger has no record of that campaign).

    ``gaps_before``: an instant (epoch s) new messages start from; the messages within the
    largest recorded gap before it are read too, even before ``lo`` (a campaign whose gap is
    longer than the caller's window still keeps it).  ``caps``: also each message's campaign's
    ``max_messages`` and ``window_days`` in seconds (0 and 0 when the ledger has no record of it),
    and the messages within the longest recorded window before ``lo``."""
    con = _open_ro(path)
    try:
        gaps = campaign_gaps(con)
        rules = campaign_caps(con) if caps else {}
        if rules:
            lo = min(lo, (gaps_before if gaps_before is not None else lo) - max(w for _, w in rules.values()))
        if gaps_before is not None and gaps:
            lo = min(lo, gaps_before - max(gaps.values()))
        rows = con.execute(
            "SELECT user_id, channel, CAST(at AS INTEGER), campaign_id FROM (SELECT user_id, channel, campaign_id, "
            "CASE WHEN state = 'sent' THEN COALESCE(sent_at, send_at) ELSE next_attempt_at END AS at "
            "FROM messages WHERE state IN ('sent', 'planned', 'in_flight', 'failed')) "
            "WHERE at > ? AND at < ? AND (? IS NULL OR campaign_id IS NOT ?)",
            (lo, hi, exclude_campaign, exclude_campaign)).fetchall()
    finally:
        con.close()
    if not rows:
        empty = (np.zeros(0, np.int64), np.zeros(0, object), np.zeros(0, np.int64), np.zeros(0, np.int64))
        return empty + ((np.zeros(0, np.int64), np.zeros(0, np.int64)) if caps else ())
    uid, ch, at, cid = zip(*rows)
    gap = np.array([gaps.get(c, 0) for c in cid], np.int64)
    out = (np.array(uid, np.int64), np.array(ch, object), np.array(at, np.int64), gap)
    if caps:
        out += (np.array([rules.get(c, (0, 0))[0] for c in cid], np.int64),
                np.array([rules.get(c, (0, 0))[1] for c in cid], np.int64))
    return out


def _policy_values(con: sqlite3.Connection, value, bad) -> dict:
    """campaign -> ``value(policy)`` for every policy the ledger's ``campaigns`` table recorded
    (``bad`` when it cannot be read; no entry when ``bad`` is None); {} in a ledger never sent from."""
    if con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'campaigns'").fetchone() is None:
        return {}
    out = {}
    for cid, meta in con.execute("SELECT campaign_id, meta FROM campaigns"):
        try:
            out[cid] = value((json.loads(meta) or {}).get("policy") or {})
        except (ValueError, TypeError, AttributeError):
            if bad is not None:
                out[cid] = bad
    return out


def campaign_caps(con: sqlite3.Connection) -> dict[str, tuple[int, int]]:
    """Each campaign's (``max_messages``, ``window_days`` in seconds) from the policies its sends
    recorded (as :func:`campaign_gaps`); a campaign recorded without them: the defaults 3 and 7 days."""
    return _policy_values(con, lambda p: (int(p.get("max_messages", 3)), int(float(p.get("window_days", 7)) * 86400)),
                          None)


def campaign_gaps(con: sqlite3.Connection) -> dict[str, int]:
    """Each campaign's ``min_gap_hours`` in seconds, from the policies its sends recorded
    (the ``campaigns`` table of :mod:`engine.sending.release`; none in a ledger never sent from)."""
    return _policy_values(con, lambda p: int(round(float(p.get("min_gap_hours") or 0.0) * 3600)), 0)


def planned_as_sent(plan: pa.Table, ledger) -> pa.Table:
    """The plan's planned rows; with a ``ledger`` path, only those the ledger marks ``sent``."""
    planned = plan.filter(pc.is_null(plan["reason"]))
    if ledger is None:
        return planned
    if not os.path.exists(ledger):
        raise InputError(f"ledger {ledger} does not exist; pass the ledger 'winback send' wrote, or leave "
                         "--ledger out to count every planned message as delivered")
    led = read_messages(ledger)
    sent = led.filter(pc.equal(led["state"], "sent"))["message_id"]
    return planned.filter(pc.is_in(planned["message_id"], value_set=sent))
