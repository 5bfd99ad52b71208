"""The send ledger: one SQLite file (WAL) that knows the state of every message.

A killed ``winback send`` resumes from here: nothing is lost, and a message is sent
again only if it was in flight at the moment of the crash (see docs/sending.md).

States::

    planned ──claim──> in_flight ──sent──> sent
       ^                  │ ├──retry──> failed (retry pending at next_attempt_at) ──claim──> in_flight
       │                  │ └──permanent failure / max attempts──> dead
       └──crash recovery──┘                (exit rule / suppression)  planned|failed ──> skipped

Tables (docs/architecture.md "ledger"): ``messages`` (one row per planned message;
instants are epoch seconds, UTC), ``suppressions`` (channel, address, user_id,
reason, at; read by ``plan``), ``broadcasts`` (campaign_id, at; read by the
broadcast guard).  Secrets never reach the ledger: only what the plan holds.

Durability: ``journal_mode=WAL`` with ``synchronous=NORMAL``: a commit survives a
killed process (SIGKILL); a power cut may lose the last commits, which then count
as "in flight at the crash".  Writes are batched (claims per batch, results every
~100 rows or ~50 ms) so the ledger is not the bottleneck of the send loop.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Iterable, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import DispatchError, InputError
from engine.io.addresses import canonical_addresses
from engine.io.plans import campaign_ids
from engine.ledger.replan import dropped_rowids, holdout_users, messaged_holdout, replan_error
from engine.ledger.files import check_file, create, ledger_error, quick_check
from engine.ledger.planrows import _planned_rows, check_plan_rows  # noqa: F401  (re-exported)
from engine.ledger.identity import ensure_id
from engine.ledger.migrate import upgrade
from engine.ledger.read import read_broadcasts, read_messages, read_suppressions  # noqa: F401 (the read API)

__all__ = ["Ledger", "check_plan_columns", "check_plan_rows", "ledger_error", "read_messages", "read_suppressions",
           "read_broadcasts", "CLAIM_COLUMNS"]


from engine.ledger.sql import (  # noqa: E402 (the SQL lives in its own module)
    _CLAIM_FAILED,
    _CLAIM_PLANNED,
    _INSERT_WIDTH,
    _PLAN_COLUMNS,
    _ROWID,
    _SCHEMA,
    _SENT_ONE,
    _UPDATE_FROM,
    CLAIM_COLUMNS,
    _claim_update_sql,
    _insert_sql,
    _multi_row,
    _sent_sql,
    _statement_sizes,
    transaction as _transaction,
)


def _connect(path: str | os.PathLike) -> sqlite3.Connection:
    con = sqlite3.connect(str(path), isolation_level=None, timeout=30.0, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("PRAGMA busy_timeout=30000")
    con.execute("PRAGMA cache_size=-65536")
    return con


def _content(plan: pa.Table) -> list:
    """Per planned row the message's content as JSON text, ``{"theme": ..., "items": [...]}``
    (None without a theme): adapters pass it on to providers that take structured data."""
    n = plan.num_rows
    if "theme" not in plan.column_names or plan.column("theme").null_count == n:
        return [None] * n
    import json

    themes = plan.column("theme").to_pylist()
    items = plan.column("items").to_pylist() if "items" in plan.column_names else [None] * n
    return [None if t is None else json.dumps({"theme": t, "items": i or []}, separators=(",", ":"))
            for t, i in zip(themes, items)]


def check_plan_columns(plan: pa.Table, source: str) -> None:
    """An :class:`InputError` when ``plan`` lacks a column the ledger needs (before any ledger is made)."""
    missing = [c for c in _PLAN_COLUMNS if c not in plan.column_names]
    if missing:
        raise InputError(
            f"{source}: the plan has no column {', '.join(missing)} (it has "
            f"{', '.join(plan.column_names[:12])}). Pass a plan.arrow written by 'winback plan'."
        )


#: dead of retryable failures, not of a Retry-After too long to wait for (the provider asked: no call before it)
_GAVE_UP = ("state = 'dead' AND last_error LIKE 'gave up after %' AND last_error NOT LIKE '%; the provider asked%' "
            "AND last_error NOT LIKE '%; the provider''s Retry-After%'")


class Ledger:
    """An open ledger file.  Use as a context manager; every method commits its own work.

    Results are buffered by :meth:`sent`, :meth:`retry` and :meth:`dead` and written
    by :meth:`flush` in one transaction (the dispatcher flushes every ~100 rows or
    ~50 ms and always before it claims or stops).
    """

    def __init__(self, path: str | os.PathLike, *, check: bool = True):
        self.path = Path(path)
        try:
            if not self.path.exists():
                create(self.path, _SCHEMA)
            check_file(self.path)
            self._con = _connect(self.path)
            if check:  # a damaged page is found now, not half-way through a send
                quick_check(self._con, self.path)
            tables = {r[0] for r in self._con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "messages" not in tables:
                raise DispatchError(
                    f"{self.path} is an SQLite file but not a winback ledger (it has tables "
                    f"{', '.join(sorted(tables)[:5]) or 'none'}). Pass the --ledger file of 'winback send', "
                    "or a new path to start a ledger.")
            self._con.executescript(_SCHEMA)
            self.id = ensure_id(self._con)  # which plans may send through it: engine.ledger.identity
            upgrade(self._con)  # a ledger of an earlier version: engine.ledger.migrate
        except sqlite3.DatabaseError as exc:
            raise ledger_error(self.path, exc) from None
        self._sent: list = []  # flat triples: rowid, provider_id, at
        self._retry: list[tuple] = []
        self._dead: list[tuple] = []
        self._gone: list[tuple] = []
        self.pending_writes = 0

    @property
    def connection(self) -> sqlite3.Connection:
        """The open SQLite connection (autocommit; callers open their own transactions)."""
        return self._con

    # -- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        """Flush buffered results and close the file; idempotent."""
        if self._con is None:
            return
        self.flush()
        self._con.close()
        self._con = None  # type: ignore[assignment]

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- loading ---------------------------------------------------------------------
    def load_plan(self, plan: pa.Table, *, source: str = "plan", replan: bool = False,
                  dry_run: bool = False) -> int:
        """Add the plan's planned rows (``reason`` null); return how many were new.

        Idempotent: loading the same plan twice adds nothing, and a message id already
        sent, in flight, retried or skipped is never touched.  A re-plan of a campaign
        (the same message ids, e.g. after a template fix or on fresh scores) may differ
        from what the ledger holds for messages not yet attempted: in channel, address,
        time, variant or content, or by no longer planning a message.  Sending the old
        versions would ignore the new plan, so that is refused (:class:`ConfigError`,
        nothing written) unless ``replan``: then the pending messages take this plan's
        version and the ones it no longer plans are skipped (``replanned``).  The counts
        are in :attr:`replanned`.  ``dry_run`` does all of it, refusal included, inside one
        transaction that is rolled back: the counts say what a send would load, and the
        ledger keeps what it held.
        """
        self.replanned = {"changed": 0, "dropped": 0}
        check_plan_columns(plan, source)
        unplanned = None  # the ids the plan lists with a reason: not to be sent
        cids = campaign_ids(plan)
        held_out = holdout_users(plan)  # (checked against the ledger's sent messages below)
        if "reason" in plan.column_names:
            is_planned = pc.is_null(plan.column("reason"))
            unplanned = plan.column("message_id").filter(pc.invert(is_planned)).combine_chunks()
            plan = plan.filter(is_planned)
        if plan.num_rows == 0 and (unplanned is None or not len(unplanned)):
            return 0
        plan, send_s = _planned_rows(plan, source)
        n = plan.num_rows

        def col(name: str, default=None) -> list:
            if name in plan.column_names:
                return plan.column(name).to_pylist()
            return [default] * n

        step_index = col("step_index", 0)
        send_list = send_s.tolist()
        columns = (
            col("message_id"), col("campaign_id"), col("user_id"), col("step"),
            [0 if s is None else s for s in step_index], col("variant"), col("channel"),
            col("to"), col("subject"), col("body"), col("template"), col("exit_on"),
            send_list, send_list, _content(plan), [time.time()] * n,
        )
        # row-major parameters for multi-row INSERTs, interleaved by slice assignment
        flat: list = [None] * (n * _INSERT_WIDTH)
        for j, values in enumerate(columns):
            flat[j::_INSERT_WIDTH] = values
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        try:
            # new rows take rowids above the largest one: counting those is a range read of the
            # rowid index, not a scan of the ledger (the upsert's changes are new + replaced rows)
            top = con.execute("SELECT COALESCE(MAX(rowid), 0) FROM messages").fetchone()[0]
            if top and held_out is not None:
                messaged_holdout(con, held_out, cids, source)  # a messaged holdout measures nothing
            dropped = dropped_rowids(con, unplanned, cids) if top and unplanned is not None else []
            before = con.total_changes
            _multi_row(con, _insert_sql, flat, _INSERT_WIDTH)
            inserted = con.execute("SELECT COUNT(*) FROM messages WHERE rowid > ?", (top,)).fetchone()[0]
            changed = con.total_changes - before - inserted
            if (changed or dropped) and not replan:
                raise replan_error(source, cids, changed, dropped)
            if dropped:
                now = time.time()
                con.executemany("UPDATE messages SET state = 'skipped', last_error = 'replanned', updated_at = ? "
                                "WHERE rowid = ? AND state = 'planned' AND attempts = 0", [(now, r) for r in dropped])
            con.execute("ROLLBACK" if dry_run else "COMMIT")
        except BaseException:
            if con.in_transaction:  # SQLite may have rolled back already (disk full, I/O error)
                con.execute("ROLLBACK")
            raise
        self.replanned = {"changed": changed, "dropped": len(dropped)}
        return inserted

    # -- crash recovery ----------------------------------------------------------------
    def recover(self, *, at_most_once: bool = False) -> int:
        """Settle messages a killed run left ``in_flight``; return how many.

        By default they go back to the state they were claimed from, with the
        unanswered attempt uncounted (at-least-once: the provider may have got them;
        an ``Idempotency-Key`` makes the resend harmless), and not before the latest
        Retry-After their channel's provider gave (:meth:`pause`).  With ``at_most_once`` they
        become ``dead`` with ``last_error = 'in flight at crash'`` and are never resent.
        """
        now = time.time()
        con = self._con
        with _transaction(con):
            if at_most_once:
                cur = con.execute(
                    "UPDATE messages SET state = 'dead', last_error = 'in flight at crash', "
                    "updated_at = ? WHERE state = 'in_flight'", (now,),
                )
            else:
                # a message in flight may have been answered with a Retry-After that the
                # crash kept from the ledger: it waits for its channel's last one (pause)
                until = "COALESCE((SELECT until FROM pauses p WHERE p.channel = messages.channel AND until > ?), 0)"
                cur = con.execute(
                    f"UPDATE messages SET state = CASE WHEN attempts > 1 OR next_attempt_at < {until} "
                    f"THEN 'failed' ELSE 'planned' END, attempts = attempts - 1, "
                    f"next_attempt_at = MAX(next_attempt_at, {until}), updated_at = ? "
                    "WHERE state = 'in_flight'", (now, now, now),
                )
        return cur.rowcount

    def retry_dead(self, campaign_ids: Sequence[str]) -> int:
        """Give the messages that died of retryable failures (``gave up after N attempts``: the
        provider was down, timed out or kept answering 429/5xx) a new round; return how many.

        They become ``planned`` with no attempts counted: the release checks see them as any late
        message (quiet hours, ``too_late``, ``campaign_end``, the caps).  Permanent failures,
        ``in flight at crash`` and a Retry-After too long to wait for (:data:`_GAVE_UP`) stay dead.
        Only the messages of ``campaign_ids``."""
        marks = ",".join("?" * len(campaign_ids))
        if not marks:
            return 0
        released = any(r[1] == "released_at" for r in self._con.execute("PRAGMA table_info(messages)"))
        with _transaction(self._con):
            cur = self._con.execute(
                "UPDATE messages SET state = 'planned', attempts = 0, next_attempt_at = send_at, last_error = NULL, "
                f"{'released_at = NULL, ' if released else ''}updated_at = ? WHERE {_GAVE_UP} "
                f"AND campaign_id IN ({marks})", (time.time(), *campaign_ids))
        return cur.rowcount

    def gave_up(self, campaign_ids: Sequence[str]) -> int:
        """How many messages of ``campaign_ids`` are dead of retryable failures (:meth:`retry_dead`)."""
        marks = ",".join("?" * len(campaign_ids))
        if not marks:
            return 0
        return self._con.execute(f"SELECT COUNT(*) FROM messages WHERE {_GAVE_UP} AND campaign_id IN ({marks})",
                                 tuple(campaign_ids)).fetchone()[0]

    def pause(self, channel: str, until: float) -> None:
        """Record at once (its own commit) that ``channel``'s provider asked for no retry before
        ``until`` (epoch seconds): messages in flight at a crash wait for it (:meth:`recover`)."""
        self._con.execute(
            "INSERT INTO pauses (channel, until) VALUES (?, ?) "
            "ON CONFLICT (channel) DO UPDATE SET until = MAX(until, excluded.until)", (channel, float(until)))

    # -- the hot path ------------------------------------------------------------------
    def claim(self, channel: str, limit: int, *, now: float, release_until: float,
              with_results: bool = False) -> list[tuple]:
        """Move up to ``limit`` due messages of ``channel`` to ``in_flight``; return them.

        Due: retries (``failed``) whose ``next_attempt_at <= now`` first, then
        ``planned`` messages whose ``send_at <= release_until`` (``now``, or infinity to
        send everything at once).  One transaction; rows are tuples in
        :data:`CLAIM_COLUMNS` order, ``attempts`` already counting this attempt.
        ``with_results``: write the buffered results first, in the same transaction (one
        commit instead of a :meth:`flush` and a claim; retries just recorded are claimable).
        """
        con = self._con
        write = with_results and (self.pending_writes or self._gone)
        con.execute("BEGIN IMMEDIATE")
        try:
            if write:
                self._write_results(con)
            rows = con.execute(_CLAIM_FAILED, (channel, now, limit)).fetchall()
            if len(rows) < limit:
                rows += con.execute(_CLAIM_PLANNED, (channel, release_until, limit - len(rows))).fetchall()
            i = 0
            for k in _statement_sizes(len(rows)):
                con.execute(_claim_update_sql(k), [now, *(r[_ROWID] for r in rows[i:i + k])])
                i += k
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:  # SQLite may have rolled back already (disk full, I/O error)
                con.execute("ROLLBACK")
            raise
        if write:
            self._results_written()
        return rows

    def unclaim(self, message_ids: Sequence[str]) -> None:
        """Put claimed messages that never went out back where they were."""
        if not message_ids:
            return
        con = self._con
        with _transaction(con):
            con.executemany(
                "UPDATE messages SET state = CASE WHEN attempts > 1 THEN 'failed' ELSE 'planned' END, "
                "attempts = attempts - 1 WHERE message_id = ? AND state = 'in_flight'",
                ((m,) for m in message_ids),
            )

    def sent(self, rowid: int, provider_id: str | None, at: float) -> None:
        """Buffer: the provider accepted the message (``rowid`` from :meth:`claim`); a
        ``provider_id`` that is not text (an adapter's number or dict) is stored as text."""
        if provider_id is not None and provider_id.__class__ is not str:
            provider_id = str(provider_id)
        self._sent += (rowid, provider_id, at)  # flat: rowid, provider_id, at per message
        self.pending_writes += 1

    def retry(self, rowid: int, next_at: float, error: str | None, at: float) -> None:
        """Buffer: a transient failure; try again at ``next_at`` (epoch seconds)."""
        self._retry.append((next_at, error, at, rowid))
        self.pending_writes += 1

    def dead(self, rowid: int, error: str | None, at: float, *,
             channel: str | None = None, address: str | None = None,
             user_id: int | None = None, suppress: bool = False) -> None:
        """Buffer: a permanent failure; with ``suppress`` the address is suppressed too."""
        self._dead.append((error, at, rowid))
        if suppress and channel is not None:
            self._gone.append((channel, address, user_id, error, at))
        self.pending_writes += 1

    def flush(self) -> int:
        """Write buffered results in one transaction; return how many rows."""
        n = self.pending_writes
        if not n and not self._gone:
            return 0
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        try:
            self._write_results(con)
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:  # SQLite may have rolled back already (disk full, I/O error)
                con.execute("ROLLBACK")
            raise
        self._results_written()
        return n

    def _results_written(self) -> None:
        self._sent, self._retry, self._dead, self._gone = [], [], [], []
        self.pending_writes = 0

    def _write_results(self, con: sqlite3.Connection) -> None:
        """The statements of :meth:`flush`, inside the caller's transaction."""
        if self._sent:
            if _UPDATE_FROM:
                _multi_row(con, _sent_sql, self._sent, 3)
            else:
                rows = self._sent
                con.executemany(_SENT_ONE, [(rows[i + 1], rows[i + 2], rows[i + 2], rows[i])
                                            for i in range(0, len(rows), 3)])
        if self._retry:
            con.executemany(
                "UPDATE messages SET state = 'failed', next_attempt_at = ?, last_error = ?, "
                "updated_at = ? WHERE rowid = ?", self._retry)
        if self._dead:
            con.executemany(
                "UPDATE messages SET state = 'dead', last_error = ?, updated_at = ? "
                "WHERE rowid = ?", self._dead)
        if self._gone:
            con.executemany(
                "INSERT OR IGNORE INTO suppressions (channel, address, user_id, reason, at) "
                "VALUES (?,?,?,?,?)", self._gone)

    # -- exit rules and suppressions -----------------------------------------------------
    def skip_exited(self, user_ids: Iterable[int]) -> int:
        """Skip later drip steps (``step_index > 0`` with ``exit_on`` set) of users who
        re-engaged; they become ``skipped`` with ``last_error = 'exited'``."""
        con = self._con
        with _transaction(con):
            con.execute("CREATE TEMP TABLE IF NOT EXISTS exited (user_id INTEGER PRIMARY KEY)")
            con.execute("DELETE FROM exited")
            con.executemany("INSERT OR IGNORE INTO exited VALUES (?)", ((int(u),) for u in user_ids))
            cur = con.execute(
                "UPDATE messages SET state = 'skipped', last_error = 'exited', updated_at = ? "
                "WHERE state IN ('planned', 'failed') AND step_index > 0 AND exit_on IS NOT NULL "
                "AND exit_on != '' AND user_id IN (SELECT user_id FROM exited)", (time.time(),),
            )
        return cur.rowcount

    def skip_suppressed(self) -> int:
        """Skip pending messages to a suppressed address on its channel, or to its user when it has no
        address or is a person's request (any but a bounce, which is the address's alone)."""
        con = self._con
        if con.execute("SELECT 1 FROM suppressions LIMIT 1").fetchone() is None:
            return 0  # nothing to skip: no scan of the messages
        with _transaction(con):
            cur = con.execute(
                "UPDATE messages SET state = 'skipped', last_error = 'suppressed', updated_at = ? "
                "WHERE state IN ('planned', 'failed') AND EXISTS (SELECT 1 FROM suppressions s "
                "WHERE s.channel = messages.channel AND (s.address = messages.to_addr OR (s.user_id = "
                "messages.user_id AND (s.address IS NULL OR COALESCE(s.reason, '') NOT LIKE '%bounce%'))))",
                (time.time(),))
        return cur.rowcount

    def add_suppressions(self, rows: Iterable[dict]) -> int:
        """Add suppressions (dicts with channel, address, user_id, reason, at); return new ones.

        An address is stored in its channel's canonical form (:mod:`engine.io.addresses`:
        ``" John@X.com"`` as ``john@x.com``), as the users reader writes it into every plan.

        ``at`` is epoch seconds (default now); a row already present is kept as it was.  ``reason``
        is stored trimmed and in lower case (``Complaint`` is a complaint for every check).
        """
        now = time.time()
        rows = list(rows)
        addresses = canonical_addresses([r["channel"] for r in rows], [r.get("address") for r in rows])
        values = [(r["channel"], a, r.get("user_id"), _reason(r.get("reason")), r.get("at", now))
                  for r, a in zip(rows, addresses)]
        con = self._con
        before = con.total_changes
        with _transaction(con):
            con.executemany(
                "INSERT OR IGNORE INTO suppressions (channel, address, user_id, reason, at) "
                "VALUES (?,?,?,?,?)", values)
        return con.total_changes - before

    def record_broadcast(self, campaign_id: str, at: float | None = None) -> None:
        """Note that a whole-base campaign went out (read by the broadcast guard)."""
        self._con.execute("INSERT INTO broadcasts VALUES (?, ?)", (campaign_id, at or time.time()))

    # -- questions -------------------------------------------------------------------------
    def next_due(self, channel: str) -> float | None:
        """Epoch seconds when the next pending message of ``channel`` is due, or None.

        Planned messages are due at ``send_at``, retries at ``next_attempt_at``."""
        con = self._con
        a = con.execute(
            "SELECT MIN(next_attempt_at) FROM messages WHERE channel = ? AND state = 'failed'",
            (channel,)).fetchone()[0]
        b = con.execute(
            "SELECT MIN(next_attempt_at) FROM messages WHERE channel = ? AND state = 'planned'",
            (channel,)).fetchone()[0]
        cands = [x for x in (a, b) if x is not None]
        return min(cands) if cands else None

    def counts(self) -> dict[str, dict[str, int]]:
        """``{channel: {state: n}}`` over the whole ledger."""
        out: dict[str, dict[str, int]] = {}
        for channel, state, n in self._con.execute(
            "SELECT channel, state, COUNT(*) FROM messages GROUP BY channel, state"
        ):
            out.setdefault(channel, {})[state] = n
        return out

    def channels(self) -> list[str]:
        """Channels with messages not yet final."""
        return [r[0] for r in self._con.execute(
            "SELECT DISTINCT channel FROM messages WHERE state IN ('planned', 'failed', 'in_flight')")]


def _reason(why) -> str | None:
    """A suppression's reason as stored: trimmed, lower case (None stays None)."""
    return None if why is None else (str(why).strip().lower() or None)
