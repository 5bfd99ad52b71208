"""The ledger's SQL: the schema, and the statements the hot path runs (claims, multi-row
inserts and updates), built once per row count and cached.  Used by :mod:`engine.ledger`."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager

__all__ = ["CLAIM_COLUMNS", "transaction"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    message_id      TEXT PRIMARY KEY,
    campaign_id     TEXT,
    user_id         INTEGER NOT NULL,
    step            TEXT,
    step_index      INTEGER NOT NULL DEFAULT 0,
    variant         TEXT,
    channel         TEXT NOT NULL,
    to_addr         TEXT,
    subject         TEXT,
    body            TEXT,
    template        TEXT,
    exit_on         TEXT,
    send_at         REAL NOT NULL,
    state           TEXT NOT NULL DEFAULT 'planned',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    provider_id     TEXT,
    last_error      TEXT,
    sent_at         REAL,
    updated_at      REAL,
    content         TEXT
);
CREATE INDEX IF NOT EXISTS messages_planned ON messages (channel, next_attempt_at)
    WHERE state = 'planned';
CREATE INDEX IF NOT EXISTS messages_retry ON messages (channel, next_attempt_at)
    WHERE state = 'failed';
CREATE TABLE IF NOT EXISTS suppressions (
    channel TEXT NOT NULL,
    address TEXT,
    user_id INTEGER,
    reason  TEXT,
    at      REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS suppressions_key
    ON suppressions (channel, COALESCE(address, ''), COALESCE(user_id, -1));
CREATE TABLE IF NOT EXISTS broadcasts (campaign_id TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS pauses (channel TEXT PRIMARY KEY, until REAL NOT NULL);
"""

#: columns returned by :meth:`Ledger.claim`, in this order (``rowid`` is the row's key
#: for :meth:`Ledger.sent` / :meth:`Ledger.retry` / :meth:`Ledger.dead`)
CLAIM_COLUMNS = (
    "message_id", "user_id", "channel", "step", "variant", "to_addr", "subject",
    "body", "send_at", "template", "campaign_id", "attempts", "content", "rowid",
)
_ROWID = CLAIM_COLUMNS.index("rowid")
# partial indexes cover only pending rows, so in_flight -> sent never touches them; the
# state must be a literal for SQLite to use a partial index.  A claim selects the due rows
# (attempts already counting this attempt) and then updates them by rowid, in one
# transaction: cheaper than one UPDATE ... RETURNING, whose RETURNING costs ~1 us a row.
_CLAIM_SQL = (
    "SELECT " + ", ".join("attempts + 1" if c == "attempts" else c for c in CLAIM_COLUMNS) + " "
    "FROM messages WHERE channel = ? AND state = '{state}' AND next_attempt_at <= ? "
    "ORDER BY next_attempt_at LIMIT ?"
)
_CLAIM_FAILED = _CLAIM_SQL.format(state="failed")
_CLAIM_PLANNED = _CLAIM_SQL.format(state="planned")
_CLAIM_UPDATE: dict[int, str] = {}


def _claim_update_sql(k: int) -> str:
    sql = _CLAIM_UPDATE.get(k)
    if sql is None:
        sql = _CLAIM_UPDATE[k] = (
            "UPDATE messages SET state = 'in_flight', attempts = attempts + 1, updated_at = ? "
            "WHERE rowid IN (" + ",".join(["?"] * k) + ")")
    return sql

_PLAN_COLUMNS = ("message_id", "user_id", "channel", "send_at")

#: rows per multi-row statement (``VALUES (...), (...)``): one statement step for many
#: rows costs about a third less per row than ``executemany`` (64 x 14 parameters stays
#: under SQLite's oldest 999-variable limit)
_ROWS_PER_STATEMENT = 64
#: ``UPDATE ... FROM`` needs SQLite 3.33
_UPDATE_FROM = sqlite3.sqlite_version_info >= (3, 33, 0)

_INSERT_HEAD = (
    "INSERT INTO messages (message_id, campaign_id, user_id, step, step_index, "
    "variant, channel, to_addr, subject, body, template, exit_on, send_at, "
    "next_attempt_at, content, state, attempts, updated_at) VALUES "
)
# a message id already in the ledger is left as it is, except a message never attempted
# whose plan changed (Ledger.load_plan counts those and replaces them only when asked):
# every column a re-plan may change, compared NULL-safely
_PLAN_FIELDS = ("step", "step_index", "variant", "channel", "to_addr", "subject", "body", "template",
                "exit_on", "send_at", "content")
_DIFFERS = " OR ".join(f"messages.{c} IS NOT excluded.{c}" for c in _PLAN_FIELDS)
_INSERT_TAIL = (
    " ON CONFLICT(message_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _PLAN_FIELDS)
    + ", next_attempt_at = excluded.next_attempt_at, updated_at = excluded.updated_at, last_error = 'replanned'"
    + " WHERE messages.state = 'planned' AND messages.attempts = 0 AND (" + _DIFFERS + ")"
)
_INSERT_WIDTH = 16  # the 15 plan values and updated_at
_INSERT_ROW = "(" + ",".join(["?"] * 15) + ",'planned',0,?)"
_SENT_ONE = ("UPDATE messages SET state = 'sent', provider_id = ?, sent_at = ?, "
             "updated_at = ?, last_error = NULL WHERE rowid = ?")
_SENT_HEAD = ("UPDATE messages SET state = 'sent', provider_id = v.column2, sent_at = v.column3, "
              "updated_at = v.column3, last_error = NULL FROM (VALUES ")
_SENT_TAIL = ") AS v WHERE messages.rowid = v.column1"


def _statement_sizes(n: int, per: int = _ROWS_PER_STATEMENT):
    """Split ``n`` rows into statements of ``per`` rows, then powers of two (few distinct SQL texts)."""
    while n:
        k = per if n >= per else 1 << (n.bit_length() - 1)
        yield k
        n -= k


def _multi_row(con: sqlite3.Connection, sql_for, flat: list, width: int) -> None:
    """Run ``sql_for(k)`` (a statement of ``k`` rows of ``width`` parameters) over ``flat``;
    at most 999 parameters a statement (the oldest SQLite limit)."""
    i = 0
    for k in _statement_sizes(len(flat) // width, min(_ROWS_PER_STATEMENT, 999 // width)):
        j = i + k * width
        con.execute(sql_for(k), flat[i:j])
        i = j


_INSERT_SQL: dict[int, str] = {}
_SENT_SQL: dict[int, str] = {}


def _insert_sql(k: int) -> str:
    sql = _INSERT_SQL.get(k)
    if sql is None:
        sql = _INSERT_SQL[k] = _INSERT_HEAD + ",".join([_INSERT_ROW] * k) + _INSERT_TAIL
    return sql


def _sent_sql(k: int) -> str:
    sql = _SENT_SQL.get(k)
    if sql is None:
        sql = _SENT_SQL[k] = _SENT_HEAD + ",".join(["(?,?,?)"] * k) + _SENT_TAIL
    return sql


@contextmanager
def transaction(con: sqlite3.Connection):
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error (never left open)."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
