"""Ledgers written by earlier versions, brought up to date when they are opened.

Each step runs once per ledger and records that it ran in ``ledger_info``, so opening a
current ledger costs one indexed read:

* ``content`` column: messages of a ledger older than content hashing get the column
  (null: nothing to compare a re-plan with until it is loaded again);
* ``addresses = canonical-1``: suppressions written before addresses had one spelling
  (:mod:`engine.io.addresses`) get their canonical twin (``" John@X.com"`` also as
  ``john@x.com``, ``(415) 555-0100`` stays as it was, not being E.164), so they keep
  matching plans, which carry canonical addresses.  The old row stays, so messages
  already in the ledger with the old spelling stay suppressed too.
"""

from __future__ import annotations

import sqlite3

from engine.io.addresses import canonical_addresses
from engine.ledger.sql import transaction

__all__ = ["upgrade", "ADDRESSES"]

#: the ``ledger_info`` value that says the suppressions carry canonical addresses
ADDRESSES = "canonical-1"


def upgrade(con: sqlite3.Connection) -> None:
    """Run the steps this ledger has not had yet (needs ``ledger_info``: :func:`ensure_id`)."""
    if "content" not in {r[1] for r in con.execute("PRAGMA table_info(messages)")}:
        con.execute("ALTER TABLE messages ADD COLUMN content TEXT")
    done = con.execute("SELECT value FROM ledger_info WHERE key = 'addresses'").fetchone()
    if done is not None and done[0] == ADDRESSES:
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
