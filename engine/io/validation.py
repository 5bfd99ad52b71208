"""Check a users file, an events file and optionally a catalogue against the data contract.

Reads exactly what ``score`` reads (through :mod:`engine.io`), so a pair of files
that validates clean is accepted by every step.  Users and events problems are
reported together: in error mode one :class:`~engine.errors.InputError` names every
kind of bad row in both files; in quarantine mode the rejected rows of each file
go to ``<name>.rejected.arrow`` (in ``quarantine_dir``, or beside the input).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from engine.io.duplicates import DuplicateSample, duplicates_warning
from engine.io.badrows import EVENTS_REASONS, ITEMS_REASONS, ON_BAD_ROWS, USERS_REASONS, BadRows
from engine.errors import InputError
from engine.io.readers import _iter_events, _load_users, _open_events
from engine.tz import parse_as_of

__all__ = ["validate", "ValidationReport"]


@dataclass(frozen=True)
class ValidationReport:
    """What :func:`validate` found.  ``*_bad`` maps reason -> rejected rows (see docs/data-contract.md)."""

    users: str
    events: str
    as_of: int  # epoch seconds, UTC
    users_read: int
    users_good: int
    events_read: int
    events_good: int
    users_bad: dict[str, int] = field(default_factory=dict)
    events_bad: dict[str, int] = field(default_factory=dict)
    quarantine: dict[str, str] = field(default_factory=dict)  # "users"/"events"/"items" -> path written
    items: str | None = None
    items_read: int = 0
    items_good: int = 0
    items_bad: dict[str, int] = field(default_factory=dict)
    #: address values rewritten / found to be no address, per users column (engine.io.addresses)
    addresses: dict = field(default_factory=dict)
    #: lines about the read (columns read under the contract's spelling)
    notes: list = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True when no row of any file was rejected."""
        return not self.users_bad and not self.events_bad and not self.items_bad

    def rows(self) -> list[tuple[str, str, str, int]]:
        """``(table, reason, column, rows)`` per kind of bad row, in rule order."""
        out = []
        for what, counts, reasons in (("users", self.users_bad, USERS_REASONS),
                                      ("events", self.events_bad, EVENTS_REASONS),
                                      ("items", self.items_bad, ITEMS_REASONS)):
            for reason, (column, _) in reasons.items():
                if counts.get(reason):
                    out.append((what, reason, column, counts[reason]))
        return out


def _quarantine_path(quarantine_dir, what: str) -> Path | None:
    if quarantine_dir is None:
        return None  # BadRows puts it beside the input
    return Path(quarantine_dir) / f"{what}.rejected.arrow"


def validate(users: str | os.PathLike, events: str | os.PathLike, *, as_of=None, on_bad_rows: str = "error",
             quarantine_dir: str | os.PathLike | None = None, progress: bool = False,
             items: str | os.PathLike | None = None) -> ValidationReport:
    """Validate ``users`` and ``events``; return a :class:`ValidationReport`.

    ``as_of`` (default now; anything :func:`engine.timeutil.parse_as_of` takes)
    bounds event timestamps.  ``on_bad_rows="error"`` raises one
    :class:`InputError` after reading both files when any row is bad;
    ``"quarantine"`` writes the rejected rows (original columns + ``reason`` +
    ``row``) to ``quarantine_dir/users.rejected.arrow`` and
    ``quarantine_dir/events.rejected.arrow`` (default: ``<name>.rejected.arrow``
    beside each input) and returns the report.  ``items``: a catalogue to check too
    (``items.rejected.arrow``).
    """
    if on_bad_rows not in ON_BAD_ROWS:
        raise InputError(f"on_bad_rows must be 'error' or 'quarantine', not {on_bad_rows!r}")
    as_of = parse_as_of(as_of)
    mode = None if on_bad_rows == "error" else "quarantine"
    ubad = BadRows(users, "users", on_bad_rows=mode, quarantine=_quarantine_path(quarantine_dir, "users"))
    ebad = BadRows(events, "events", on_bad_rows=mode, quarantine=_quarantine_path(quarantine_dir, "events"))
    ibad = None if items is None else BadRows(items, "items", on_bad_rows=mode,
                                               quarantine=_quarantine_path(quarantine_dir, "items"))
    ipath = None
    inotes = ""
    ebad.notes = []
    try:
        if ibad is not None:
            from engine.io.items import _load as _load_items

            inotes = _load_items(items, ibad).renamed
            ipath = ibad.finish(schema=None)
        loaded = _load_users(users, ubad)
        src = _open_events(events, ebad, 1 << 20)
        upath = ubad.finish(schema=None)
        dups = DuplicateSample(loaded.table.num_rows)
        for batch in _iter_events(events, loaded.index, as_of, ebad, 1 << 20, progress, src=src):
            dups.add(batch)
        epath = ebad.finish(schema=src.schema)  # already finished by the iterator: returns its path
    except BaseException:
        for b in (ubad, ebad, ibad):
            if b is not None:
                b.abort()
        raise
    boards = [b for b in (ubad, ebad, ibad) if b is not None]
    if on_bad_rows == "error" and any(b.total for b in boards):
        parts = [b.describe() for b in boards if b.total]
        raise InputError(" ".join(parts) + " Fix the files or rerun with --on-bad-rows quarantine to set "
                         "these rows aside (with a reason column) and go on.")
    quarantine = {}
    if upath is not None:
        quarantine["users"] = str(upath)
    if epath is not None:
        quarantine["events"] = str(epath)
    if ipath is not None:
        quarantine["items"] = str(ipath)
    return ValidationReport(
        users=str(users), events=str(events), as_of=as_of,
        users_read=ubad.rows_read, users_good=ubad.good,
        events_read=ebad.rows_read, events_good=ebad.good,
        users_bad=dict(ubad.counts), events_bad=dict(ebad.counts), quarantine=quarantine,
        items=None if items is None else str(items), items_read=0 if ibad is None else ibad.rows_read,
        items_good=0 if ibad is None else ibad.good, items_bad={} if ibad is None else dict(ibad.counts),
        addresses=loaded.addresses,
        notes=[n for n in (inotes, loaded.renamed, *ebad.notes,
                           duplicates_warning(dups.result(), loaded.table["user_id"])) if n],
    )
