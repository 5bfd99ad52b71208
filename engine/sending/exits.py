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
from engine.schema import DEFAULT_ACTIVITY
from engine.tz import parse_as_of, to_epoch_seconds

__all__ = ["ExitWatch", "EXIT_EVENTS", "POLL_SECONDS"]

#: the events that end the drip, per ``exit_on`` (``none``: no event does)
EXIT_EVENTS: dict[str, tuple[str, ...]] = {"activity": DEFAULT_ACTIVITY, "purchase": ("purchase",),
                                           "click": ("click",), "none": ()}
#: seconds of the sender's clock between two looks at the sources
POLL_SECONDS = 30.0
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
        #: per file, its exit-relevant events: user_id, at (epoch s), event
        self._tables: dict[Path, pa.Table] = {}
        self.last_poll: float | None = None
        self.exited = 0

    def __bool__(self) -> bool:
        return bool(self.sources)

    def maybe_poll(self, now: float) -> int:
        """:meth:`poll` when :data:`POLL_SECONDS` passed since the last look; skipped count."""
        if not self.sources or (self.last_poll is not None and now - self.last_poll < POLL_SECONDS):
            return 0
        return self.poll(now)

    def poll(self, now: float | None = None) -> int:
        """Read what is new in the sources and skip the messages of users who exited."""
        self.last_poll = now
        if not self._read_new():
            return 0
        n = self._skip(pa.concat_tables(list(self._tables.values())))
        self.exited += n
        return n

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
            table = read_table(path, "events")
            for col in ("user_id", "ts", "event"):
                if col not in table.column_names:
                    raise InputError(f"events {path}: no column {col!r}; an events file needs user_id, ts and event.")
            ts = table.column("ts")
            if not pa.types.is_timestamp(ts.type):
                raise InputError(f"events {path}: column ts is {ts.type}, not a timestamp.")
            event = table.column("event")
            if pa.types.is_dictionary(event.type):
                event = event.cast(pa.string())
            keep = pc.and_(pc.is_valid(table.column("user_id")),
                           pc.is_in(event, value_set=pa.array(sorted({e for v in EXIT_EVENTS.values() for e in v}))))
            t = pa.table({"user_id": pc.cast(table.column("user_id"), pa.int64()),
                          "at": pa.array(to_epoch_seconds(ts)), "event": pc.cast(event, pa.string())}).filter(keep)
            self._seen[path] = key
            self._tables[path] = t  # a file rewritten in place replaces what it said before
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
