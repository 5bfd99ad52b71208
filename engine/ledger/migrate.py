"""Ledgers written by earlier versions, brought up to date when they are opened.

Each step runs once per ledger and records that it ran in ``ledger_info``, so opening a
current ledger costs one indexed read:

* ``content`` column: messages of a ledger older than content hashing get the column
  (null: nothing to compare a re-plan with until it is loaded again);
* ``addresses = canonical-1``: suppressions written before addresses had one spelling
  (:mod:`engine.io.addresses`) get their canonical twin (``" John@X.com"`` also as
  ``john@x.com``, ``(415) 555-0100`` stays as it was, not being E.164), so they keep
  matching plans, which carry canonical addresses.  The old row stays, so messages
  already in the ledger with the old spelling stay suppressed too;
* ``retry_after = bounded-1``: earlier versions heeded any Retry-After, so a provider's
  "not before year 5000" left retries due centuries ahead (a send waited for them
  forever) and a channel pause that long.  Retries due more than :data:`FAR` ahead
  become ``dead`` (``last_error`` says why) and such pauses are dropped, as a current
  send does with such an answer (:data:`engine.sending.retry.MAX_RETRY_AFTER`);
* ``reasons = lower-1``: suppression reasons written by another tool as ``Complaint`` or
  `` unsubscribe`` are stored trimmed and in lower case, as :meth:`Ledger.add_suppressions`
  now writes them, so every check reads them (a ``Complaint`` once stopped no channel).
"""

from __future__ import annotations

import sqlite3
import time

from engine.io.addresses import canonical_addresses
from engine.ledger.sql import transaction

__all__ = ["upgrade", "ADDRESSES", "RETRY_AFTER", "REASONS", "FAR"]

#: the ``ledger_info`` value that says the suppressions carry canonical addresses
ADDRESSES = "canonical-1"
#: the ``ledger_info`` value that says every suppression reason is trimmed and in lower case
REASONS = "lower-1"
#: the ``ledger_info`` value that says no retry or pause lies further ahead than a send waits
RETRY_AFTER = "bounded-1"
#: seconds ahead beyond which a retry or pause can only come from an unbounded Retry-After
#: (400 days: a current send waits at most a day for a Retry-After, then quiet hours and at
#: most a 30-day gap)
FAR = 400 * 86400.0


def upgrade(con: sqlite3.Connection) -> None:
    """Run the steps this ledger has not had yet (needs ``ledger_info``: :func:`ensure_id`)."""
    if "content" not in {r[1] for r in con.execute("PRAGMA table_info(messages)")}:
        con.execute("ALTER TABLE messages ADD COLUMN content TEXT")
    _canonical_suppressions(con)
    _bounded_retries(con)
    _lower_reasons(con)


def _lower_reasons(con: sqlite3.Connection) -> None:
    if _done(con, "reasons", REASONS):
        return
    with transaction(con):
        con.execute("UPDATE OR IGNORE suppressions SET reason = lower(trim(reason)) "
                    "WHERE reason IS NOT NULL AND reason != lower(trim(reason))")
        con.execute("INSERT OR REPLACE INTO ledger_info (key, value) VALUES ('reasons', ?)", (REASONS,))


def _done(con: sqlite3.Connection, key: str, value: str) -> bool:
    row = con.execute("SELECT value FROM ledger_info WHERE key = ?", (key,)).fetchone()
    return row is not None and row[0] == value


def _bounded_retries(con: sqlite3.Connection) -> None:
    if _done(con, "retry_after", RETRY_AFTER):
        return
    now = time.time()
    with transaction(con):
        con.execute("UPDATE messages SET state = 'dead', updated_at = ?, last_error = COALESCE(last_error, '') || "
                    "'; given up: a Retry-After beyond what a send waits, kept by an earlier version' "
                    "WHERE state = 'failed' AND next_attempt_at > ?", (now, now + FAR))
        if con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'pauses'").fetchone():
            con.execute("DELETE FROM pauses WHERE until > ?", (now + FAR,))
        con.execute("INSERT OR REPLACE INTO ledger_info (key, value) VALUES ('retry_after', ?)", (RETRY_AFTER,))


def _canonical_suppressions(con: sqlite3.Connection) -> None:
    if _done(con, "addresses", ADDRESSES):
        return
    with transaction(con):
        rows = con.execute("SELECT channel, address, user_id, reason, at FROM suppressions "
                           "WHERE address IS NOT NULL").fetchall()
        if rows:
            fixed = canonical_addresses([r[0] for r in rows], [r[1] for r in rows])
            con.executemany("INSERT OR IGNORE INTO suppressions (channel, address, user_id, reason, at) "
                            "VALUES (?,?,?,?,?)",
                            [(r[0], a, r[2], r[3], r[4]) for r, a in zip(rows, fixed) if a != r[1]])
        con.execute("INSERT OR REPLACE INTO ledger_info (key, value) VALUES ('addresses', ?)", (ADDRESSES,))
