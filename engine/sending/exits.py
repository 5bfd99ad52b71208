"""Exit rules at send time: users who came back leave the rest of the sequence.

``[[steps]] exit_on`` says what ends a user's drip before a step: ``activity`` (a
session, purchase or click), ``purchase``, ``click``, or ``none`` (nothing: the step
goes out whatever the user did).  A message of a later step (``step_index > 0``) whose
user did that after its campaign's start becomes ``skipped`` / ``exited``.

The sources are events files or directories (Arrow, Parquet or CSV with ``user_id``,
``ts``, ``event``), such as the feedback directory ``winback receive`` writes.  A long
send re-reads them every :data:`POLL_SECONDS` (of the sender's clock) when they
changed, so users who return mid-campaign leave it mid-campaign; the part files of a
directory already read are not read again.

The same sources stop messages for good: an ``unsubscribe``, ``complaint`` or ``bounce``
row (the data contract's meaning: the address is gone) adds a ledger suppression for
that user on its channel (every channel when the row names none), and every pending
message it covers becomes ``skipped`` / ``suppressed`` before the next claim, whatever
step or campaign it belongs to; a complaint also stops the user's other marketing
channels at release (``[policy] complaint_suppresses``).  So a feedback directory written
by ``winback receive`` without ``--ledger``, or an ESP's export, is honoured mid-send.

An event name or channel written with another case or surrounding whitespace (``Unsubscribe``,
``email ``) is read as the name it is (:attr:`ExitWatch.notes` says how many); an event name
that is none of the contract's, or an unknown channel on an exit or stop row, refuses the file
(:class:`InputError`), so a misspelt unsubscribe is never dropped and its user sent to.

What ``winback receive`` writes is always read: its survey answers (``event: "reason"``) are
ignored here, and a stop row on channel ``webhook`` (the webhook adapter's own post; the
adapter carries whichever channel the providers file gives it) stops the channel its
``message_id`` went out on in the ledger, or every channel when the ledger does not know the
message.  A ``bounce`` row whose ``hard`` column is false (a soft bounce: the receiver writes
SendGrid ``blocked`` and a generic ``hard: false`` so) stops nothing; a bounce with no ``hard``
(older part files, other sources) is a hard one.  A file refused mid-send says that the
messages sent before it stay sent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import InputError, WinbackError
from engine.schema import CHANNELS, DEFAULT_ACTIVITY, EVENTS
from engine.tz import parse_as_of

__all__ = ["ExitWatch", "EXIT_EVENTS", "FEEDBACK_CHANNELS", "FEEDBACK_EVENTS", "POLL_SECONDS"]

#: the events that end the drip, per ``exit_on`` (``none``: no event does)
EXIT_EVENTS: dict[str, tuple[str, ...]] = {"activity": DEFAULT_ACTIVITY, "purchase": ("purchase",),
                                           "click": ("click",), "none": ()}
#: seconds of the sender's clock between two looks at the sources
POLL_SECONDS = 30.0
#: events that suppress the user's channel for every later message (the data contract's meaning)
STOP_EVENTS: tuple[str, ...] = ("unsubscribe", "complaint", "bounce")
#: every event name a sources file may hold: the contract's and the survey answers
#: ``winback receive`` writes (``reason``: read, and ignored by exit rules and stops)
FEEDBACK_EVENTS: tuple[str, ...] = EVENTS + ("reason",)
#: every channel a sources file may name: the contract's and ``webhook`` (posts of the webhook
#: adapter that ``winback receive`` takes on ``/events``)
FEEDBACK_CHANNELS: tuple[str, ...] = CHANNELS + ("webhook",)
_NOTHING_SENT = "(nothing was sent or claimed)"
_MID_SEND = ("(this send stopped here: the messages it sent before this file changed stay sent, nothing "
             "more is claimed; the next send resumes the rest)")
_DATA = (".arrow", ".feather", ".ipc", ".parquet", ".csv")


class ExitWatch:
    """The events sources of one send run, read once at the start and again when they change."""

    def __init__(self, ledger, sources: str | os.PathLike | Iterable | None):
        if sources is None:
            sources = []
        elif isinstance(sources, (str, os.PathLike)):
            sources = [sources]
        self.ledger = ledger
        self.sources = [Path(s) for s in sources]
        for s in self.sources:
            if not s.exists():
                raise InputError(f"events {s} does not exist; pass an events file or the directory "
                                 "'winback receive' writes")
        self._seen: dict[Path, tuple] = {}
        self._unapplied = False  # read (by read()) but not yet applied to the ledger
        #: per file, its exit-relevant events: user_id, at (epoch s), event
        self._tables: dict[Path, pa.Table] = {}
        self.last_poll: float | None = None
        self.exited = 0
        #: per file, the names it spells with another case or whitespace: (column, name) -> rows
        self._renamed: dict[Path, dict[tuple[str, str], int]] = {}
        #: pending messages skipped as suppressed by the sources' unsubscribes, complaints, bounces
        self.suppressed = 0

    def __bool__(self) -> bool:
        return bool(self.sources)

    @property
    def notes(self) -> list[str]:
        """One line per column whose names the sources spell with another case or surrounding
        whitespace and were read as the names they are, e.g. ``--events: read 2 event
        names as 'unsubscribe' (case/whitespace)``."""
        from engine.io.names import renamed_note

        out = []
        for column, noun in (("event", "event name"), ("channel", "channel")):
            counts: dict[str, int] = {}
            for per_file in self._renamed.values():
                for (col, name), n in per_file.items():
                    if col == column:
                        counts[name] = counts.get(name, 0) + n
            note = renamed_note(counts, noun)
            if note:
                out.append(f"--events: {note}")
        return out

    def maybe_poll(self, now: float) -> int:
        """:meth:`poll` when :data:`POLL_SECONDS` passed since the last look; skipped count."""
        if not self.sources or (self.last_poll is not None and now - self.last_poll < POLL_SECONDS):
            return 0
        return self.poll(now)

    def read(self) -> "ExitWatch":
        """Read (and check) the sources now, before a ledger is touched: a bad events file is an
        :class:`InputError` before any message is loaded or claimed; the next :meth:`poll` applies it."""
        self._unapplied = self._read_new() or self._unapplied
        return self

    def would_exit(self, plan: pa.Table, start: float) -> int:
        """How many of ``plan``'s planned later-step messages (campaign start ``start``, epoch s)
        the events read so far would skip as ``exited`` (what a dry run reports)."""
        if not self._tables or "exit_on" not in plan.column_names:
            return 0
        events = pa.concat_tables(list(self._tables.values()))
        planned = plan.filter(pc.is_null(plan["reason"])) if "reason" in plan.column_names else plan
        later = planned.filter(pc.fill_null(pc.greater(planned["step_index"], 0), False))
        if not later.num_rows:
            return 0
        uid = events.column("user_id").to_numpy()
        at = events.column("at").to_numpy()
        ev = events.column("event").to_numpy(zero_copy_only=False)
        rule = np.asarray(later["exit_on"].fill_null("none").to_numpy(zero_copy_only=False), dtype=object)
        users = later["user_id"].to_numpy(zero_copy_only=False)
        total = 0
        for name, kinds in EXIT_EVENTS.items():
            if kinds:
                gone = np.unique(uid[(at > start) & np.isin(ev, kinds)])
                total += int(((rule == name) & np.isin(users, gone)).sum())
        return total

    def poll(self, now: float | None = None, ledger=None) -> int:
        """Read what is new in the sources and skip the messages of users who exited (in ``ledger``
        from now on, when given)."""
        self.ledger = ledger if ledger is not None else self.ledger
        mid_send = self.last_poll is not None  # the first poll comes before any claim
        self.last_poll = now
        try:
            changed = self._read_new() or self._unapplied
        except InputError as exc:
            if not mid_send:
                raise
            raise InputError(str(exc).replace(_NOTHING_SENT, _MID_SEND)) from None
        self._unapplied = False
        if not changed:
            return 0
        events = pa.concat_tables(list(self._tables.values()))
        if self.ledger.add_suppressions(_stops(events, self.ledger.connection)):  # before the next claim, whatever the step
            self.suppressed += self.ledger.skip_suppressed()
        n = self._skip(events)
        self.exited += n
        return n

    def would_suppress(self, plan: pa.Table) -> int:
        """How many of ``plan``'s planned messages the sources' unsubscribes, complaints and
        bounces would skip as ``suppressed`` (what a dry run reports)."""
        if not self._tables:
            return 0
        stops = _stops(pa.concat_tables(list(self._tables.values())), getattr(self.ledger, "connection", None))
        if not stops:
            return 0
        gone = {(r["user_id"], r["channel"]) for r in stops}
        planned = plan.filter(pc.is_null(plan["reason"])) if "reason" in plan.column_names else plan
        return sum((u, c) in gone for u, c in zip(planned["user_id"].to_pylist(), planned["channel"].to_pylist()))

    def _files(self) -> list[Path]:
        out = []
        for s in self.sources:
            if s.is_dir():
                out += sorted(p for p in s.rglob("*") if p.suffix.lower() in _DATA and p.is_file())
            else:
                out.append(s)
        return out

    def _read_new(self) -> bool:
        """Read the files that are new or changed since the last look; True if any was."""
        from engine.io.source import read_table

        changed = False
        for path in self._files():
            try:
                st = path.stat()
            except OSError:
                continue
            key = (st.st_mtime_ns, st.st_size)
            if self._seen.get(path) == key:
                continue
            t, renamed = _exit_events(read_table(path, "events"), path)
            self._seen[path] = key
            self._tables[path] = t  # a file rewritten in place replaces what it said before
            self._renamed[path] = renamed
            changed = True
        return changed

    def _skip(self, events: pa.Table) -> int:
        con = self.ledger.connection
        starts = _campaign_starts(con)
        if not starts:
            return 0
        uid = events.column("user_id").to_numpy()
        at = events.column("at").to_numpy()
        ev = events.column("event").to_numpy(zero_copy_only=False)
        total = 0
        con.execute("BEGIN IMMEDIATE")
        try:
            con.execute("CREATE TEMP TABLE IF NOT EXISTS exited (user_id INTEGER PRIMARY KEY)")
            for cid, start in starts.items():
                for rule, kinds in EXIT_EVENTS.items():
                    if not kinds:
                        continue
                    users = np.unique(uid[(at > start) & np.isin(ev, kinds)])
                    if not len(users):
                        continue
                    con.execute("DELETE FROM exited")
                    con.executemany("INSERT OR IGNORE INTO exited VALUES (?)", ((int(u),) for u in users))
                    total += con.execute(
                        "UPDATE messages SET state = 'skipped', last_error = 'exited', updated_at = strftime('%s') "
                        "WHERE state IN ('planned', 'failed') AND step_index > 0 AND campaign_id IS ? "
                        "AND exit_on = ? AND user_id IN (SELECT user_id FROM exited)", (cid, rule)).rowcount
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return total


def _exit_events(table: pa.Table, path) -> tuple[pa.Table, dict[tuple[str, str], int]]:
    """The exit-relevant rows (a session, purchase or click, an unsubscribe, complaint or bounce)
    of one events file as ``user_id`` (int64), ``at`` (epoch s UTC), ``event``, ``channel``, and
    the names it spells with another case or surrounding whitespace, ``(column, name) -> rows``.
    The contract's types are accepted (any integer or digit-string id, plain or dictionary;
    timestamps of any unit, naive read as UTC, or ISO 8601 text); ``Unsubscribe`` or ``email ``
    is read as ``unsubscribe`` or ``email``.  An event name that is none of the contract's
    (engine.schema.EVENTS), a channel that is none of its channels on an exit-relevant row, or
    such a row with a null or unreadable id or instant is an :class:`InputError` naming the file,
    the column, the count and example rows, before any message is claimed: a misspelt
    unsubscribe must never be dropped and its user sent to."""
    from engine.io import coerce
    from engine.io.names import canonical

    for col in ("user_id", "ts", "event"):
        if col not in table.column_names:
            raise InputError(f"events {path}: no column {col!r}; an events file needs user_id, ts and event.")
    try:
        event = coerce.to_string(table.column("event"))
    except (coerce.ColumnTypeError, pa.ArrowException) as exc:
        raise InputError(f"events {path}: column event has {exc}; it must hold event names such as session") from None
    event, event_renamed, unknown = canonical(event, FEEDBACK_EVENTS)
    if unknown.any():
        _refuse_names(table, path, "event", "an event name", unknown, FEEDBACK_EVENTS)
    wanted = sorted({e for v in EXIT_EVENTS.values() for e in v} | set(STOP_EVENTS))
    keep = np.asarray(pc.is_in(event, value_set=pa.array(wanted)).fill_null(False), bool) & ~_soft(table, event)
    channel, channel_renamed = pa.nulls(table.num_rows, pa.string()), np.zeros(table.num_rows, bool)
    if "channel" in table.column_names:
        try:
            channel, channel_renamed, unknown = canonical(coerce.to_string(table.column("channel")),
                                                          FEEDBACK_CHANNELS)
        except (coerce.ColumnTypeError, pa.ArrowException):
            unknown = np.zeros(table.num_rows, bool)  # not text at all: every channel, as with no channel
        if (unknown & keep).any():
            _refuse_names(table, path, "channel", "a channel", unknown & keep, FEEDBACK_CHANNELS)
    message_id = pa.nulls(table.num_rows, pa.string())
    if "message_id" in table.column_names:
        try:
            message_id = coerce.to_string(table.column("message_id"))
        except (coerce.ColumnTypeError, pa.ArrowException):
            pass  # not text: a webhook stop row then stops every channel
    renamed = {}
    for col, names, mask in (("event", event, event_renamed), ("channel", channel, channel_renamed)):
        mask = mask & keep
        if mask.any():
            for name, n in zip(*np.unique(np.asarray(names.filter(pa.array(mask)).to_pylist(), object),
                                          return_counts=True)):
                renamed[(col, str(name))] = int(n)
    row_of = np.flatnonzero(keep)
    mask = pa.array(keep)
    table, event, channel, message_id = (table.filter(mask), event.filter(mask), channel.filter(mask),
                                         message_id.filter(mask))
    try:
        uid, uid_null, uid_bad = coerce.to_int64(table.column("user_id"))
        at, ts_null, ts_bad = coerce.to_epoch_seconds(table.column("ts"))
    except coerce.ColumnTypeError as exc:
        which = "ts" if "timestamp" in str(exc) else "user_id"
        raise InputError(f"events {path}: column {which} has {exc}; fix the file or pass the events "
                         "'winback receive' writes") from None
    for col, bad, what in (("user_id", uid_null | uid_bad, "a null or non-integer user_id"),
                           ("ts", ts_null | ts_bad, "a null or unreadable ts")):
        if bad.any():
            rows = np.flatnonzero(bad)
            examples = "; ".join(f"row {row_of[i]} {{user_id: {table.column('user_id')[int(i)].as_py()!r}, "
                                 f"ts: {table.column('ts')[int(i)].as_py()!r}, event: {event[int(i)].as_py()!r}}}"
                                 for i in rows[:3])
            raise InputError(f"events {path}: column {col}: {len(rows):,} session/purchase/click/unsubscribe/"
                             f"complaint/bounce rows with {what}, e.g. {examples}; an exit rule or a suppression "
                             "cannot tell whose or when. Fix or drop these rows and send again (nothing was "
                             "sent or claimed).")
    return pa.table({"user_id": pa.array(uid, pa.int64()), "at": pa.array(at, pa.int64()),
                     "event": event.cast(pa.string()), "channel": channel,
                     "message_id": message_id.cast(pa.string())}), renamed


def _soft(table: pa.Table, event: pa.Array) -> np.ndarray:
    """The soft bounces of ``table``: ``bounce`` rows whose ``hard`` column is false (a bounce
    with no ``hard``, or one that does not read as true/false, is hard: the address is gone)."""
    if "hard" not in table.column_names:
        return np.zeros(table.num_rows, bool)
    try:
        hard = pc.cast(table.column("hard"), pa.bool_())
    except (pa.ArrowException, TypeError):
        return np.zeros(table.num_rows, bool)
    bounce = pc.equal(event, "bounce").fill_null(False)
    return np.asarray(pc.and_(bounce, pc.invert(hard).fill_null(False)).fill_null(False), bool)


def _refuse_names(table: pa.Table, path, column: str, noun: str, bad: np.ndarray, choices) -> None:
    """Raise the :class:`InputError` for the rows ``bad`` of ``table`` whose ``column`` is unknown."""
    from engine.io import coerce
    from engine.io.badrows import MAX_EXAMPLES, format_examples
    from engine.io.names import unknown_message

    rows = np.flatnonzero(bad)
    values = coerce.to_string(table.column(column)).take(pa.array(rows)).to_pylist()
    head = unknown_message(f"events {path}", column, noun, values, choices,
                           format_examples(table, rows[:MAX_EXAMPLES]), len(rows))
    raise InputError(f"{head}; a send cannot tell which stop or exit these rows mean, and a misspelt "
                     "unsubscribe would be lost and its user sent to. Fix or drop these rows and send again "
                     "(nothing was sent or claimed).")


def _stops(events: pa.Table, con=None) -> list[dict]:
    """Suppression rows (engine.ledger.store.Ledger.add_suppressions) for the unsubscribe,
    complaint and (hard) bounce rows of ``events``: by user, on the row's channel or every
    channel; a ``webhook`` row on the channel the ledger (``con``) sent its message on."""
    hit = pc.is_in(events["event"], value_set=pa.array(STOP_EVENTS)).fill_null(False)
    if not pc.any(hit).as_py():
        return []
    rows = events.filter(hit)
    mids = rows["message_id"].to_pylist() if "message_id" in rows.column_names else [None] * rows.num_rows
    sent_on = _message_channels(con, {m for m, c in zip(mids, rows["channel"].to_pylist())
                                      if m is not None and c == "webhook"})
    out = []
    for uid, at, ev, ch, mid in zip(rows["user_id"].to_pylist(), rows["at"].to_pylist(),
                                    rows["event"].to_pylist(), rows["channel"].to_pylist(), mids):
        ch = ch.strip().lower() if isinstance(ch, str) else None
        if ch == "webhook":
            ch = sent_on.get(mid)
        for c in ([ch] if ch in CHANNELS else CHANNELS):
            out.append({"channel": c, "address": None, "user_id": uid, "reason": ev, "at": float(at)})
    return out


def _message_channels(con, message_ids: set) -> dict:
    """message_id -> the channel the ledger (``con``, may be None) sent it on, for ``message_ids``."""
    out: dict = {}
    if con is None or not message_ids:
        return out
    ids = list(message_ids)
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        out.update(con.execute(f"SELECT message_id, channel FROM messages WHERE message_id IN "
                               f"({','.join('?' * len(chunk))})", chunk).fetchall())
    return out


def _campaign_starts(con) -> dict:
    """campaign_id -> its start (epoch s) for the campaigns with pending later steps."""
    out = {}
    pending = [r[0] for r in con.execute(
        "SELECT DISTINCT campaign_id FROM messages WHERE state IN ('planned', 'failed') AND step_index > 0")]
    metas = dict(con.execute("SELECT campaign_id, meta FROM campaigns").fetchall()) if con.execute(
        "SELECT 1 FROM sqlite_master WHERE name = 'campaigns'").fetchone() else {}
    for cid in pending:
        start = None
        meta = metas.get(cid)
        if meta:
            try:
                as_of = json.loads(meta).get("as_of")
                start = parse_as_of(as_of) if as_of else None
            except (ValueError, TypeError, AttributeError, WinbackError):  # unreadable: the first send time
                start = None
        if start is None:
            row = con.execute("SELECT MIN(send_at) FROM messages WHERE campaign_id IS ? AND step_index = 0",
                              (cid,)).fetchone()
            start = row[0] if row and row[0] is not None else con.execute(
                "SELECT MIN(send_at) FROM messages WHERE campaign_id IS ?", (cid,)).fetchone()[0]
        out[cid] = float(start)
    return out
