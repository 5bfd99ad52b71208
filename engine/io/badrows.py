"""Bad-row bookkeeping for one input file: counts, examples, the error, the quarantine file.

Each rejected row gets exactly one reason, the first rule it breaks in the order of
:data:`USERS_REASONS` / :data:`EVENTS_REASONS`, so good rows + rejected rows always
equal the rows read.  Rows are numbered from 0 in read order over the whole input
(for a directory: files in sorted path order); in a CSV file row ``r`` is on line
``r + 2`` (after the header).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc

from engine.io.atomic import atomic_path
from engine.errors import InputError, StorageError

__all__ = ["BadRows", "USERS_REASONS", "EVENTS_REASONS", "ITEMS_REASONS", "ON_BAD_ROWS", "QUARANTINE_ADVICE", "format_examples"]

ON_BAD_ROWS = ("error", "quarantine")
MAX_EXAMPLES = 5

#: reason -> (column, what is wrong), in priority order (first match wins).
USERS_REASONS: dict[str, tuple[str, str]] = {
    "bad_utf8": ("(text)", "text that is not valid UTF-8 (re-save the file as UTF-8)"),
    "null_user_id": ("user_id", "a null user_id"),
    "bad_user_id": ("user_id", "a user_id that is not a whole number in the int64 range (as a float: "
                                "below 2^53, where every whole number is exact)"),
    "duplicate_user_id": ("user_id", "a user_id that an earlier row already has (the first row is kept)"),
    "unknown_timezone": ("timezone", "a timezone that is not an IANA name such as Europe/Paris"),
    "bad_consent_email": ("consent_email", "a consent that is not true/false, yes/no or 1/0"),
    "bad_consent_sms": ("consent_sms", "a consent that is not true/false, yes/no or 1/0"),
    "bad_consent_push": ("consent_push", "a consent that is not true/false, yes/no or 1/0"),
    "bad_consent_ads": ("consent_ads", "a consent that is not true/false, yes/no or 1/0"),
    "bad_signup_at": ("signup_at", "a signup_at that is not a timestamp or an ISO 8601 time"),
}
EVENTS_REASONS: dict[str, tuple[str, str]] = {
    "bad_utf8": ("(text)", "text that is not valid UTF-8 (re-save the file as UTF-8)"),
    "null_user_id": ("user_id", "a null user_id"),
    "bad_user_id": ("user_id", "a user_id that is not a whole number in the int64 range (as a float: "
                                "below 2^53, where every whole number is exact)"),
    "unknown_user": ("user_id", "a user_id that is not in the users table"),
    "null_event": ("event", "a null event name"),
    "unknown_event": ("event", "an event name that is not one of session, purchase, send, open, "
                               "click, unsubscribe, bounce, complaint (lower case, as written)"),
    "null_ts": ("ts", "a null timestamp"),
    "bad_ts": ("ts", "a ts that is not a timestamp or an ISO 8601 time"),
    "early_ts": ("ts", "a timestamp before 1971-01-01 (1970-01-01 and 1900-01-01 are placeholders for an "
                       "unknown time; times in January 1970 are epoch seconds stored as milliseconds, or "
                       "milliseconds as microseconds)"),
    "future_ts": ("ts", "a timestamp after as_of"),
    "unknown_channel": ("channel", "a channel that is not one of email, sms, push"),
    "missing_channel": ("channel", "no channel on a send/open/click/unsubscribe/bounce/complaint event"),
    "bad_value": ("value", "a value that is not a finite number of at most 1e12 (NaN, inf, 1e308)"),
    "negative_value": ("value", "a negative purchase value (a refund is not a purchase; leave it out)"),
    "bad_item_id": ("item_id", "an item_id that is not a whole number in the int64 range"),
}
ITEMS_REASONS: dict[str, tuple[str, str]] = {
    "null_item_id": ("item_id", "a null item_id"),
    "bad_item_id": ("item_id", "an item_id that is not a whole number in the int64 range"),
    "duplicate_item_id": ("item_id", "an item_id that an earlier row already has (the first row is kept)"),
    "null_title": ("title", "a null or empty title"),
    "null_category": ("category", "no category (null, or an empty list or string)"),
    "null_added_at": ("added_at", "a null added_at"),
    "bad_added_at": ("added_at", "an added_at that is not a timestamp or an ISO 8601 time"),
    "bad_expires_at": ("expires_at", "an expires_at that is not a timestamp or an ISO 8601 time"),
    "expires_before_added": ("expires_at", "an expires_at before the item's added_at"),
    "bad_editorial": ("editorial", "an editorial flag that is not true/false, yes/no or 1/0"),
}
_REASONS = {"users": USERS_REASONS, "events": EVENTS_REASONS, "items": ITEMS_REASONS}


def _short(value: object) -> str:
    text = value.isoformat() if isinstance(value, (dt.datetime, dt.date)) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


#: the last sentence of a bad-rows message: what to do next (a command without --on-bad-rows
#: replaces it with its own advice)
QUARANTINE_ADVICE = ("Fix the file or rerun with --on-bad-rows quarantine to set these rows aside (with a reason "
                     "column) and go on.")


class BadRows:
    """Collects the rejected rows of one input (``what``: ``"users"``, ``"events"`` or ``"items"``).

    ``on_bad_rows="error"``: :meth:`finish` raises one :class:`InputError` covering
    every rejected row.  ``"quarantine"``: rejected rows, their original columns
    plus ``reason`` (string) and ``row`` (int64, 0-based input row), stream into
    ``quarantine`` (Arrow IPC, or CSV when it ends in ``.csv``), which :meth:`finish`
    moves into place atomically (an empty file when nothing was rejected, so a stale
    one from an earlier run never lingers).  ``on_bad_rows=None`` only counts
    (used by :func:`engine.validate.validate` to report users and events together).
    """

    def __init__(self, source, what: str, *, on_bad_rows: str | None = "error",
                 quarantine: str | os.PathLike | None = None):
        if on_bad_rows is not None and on_bad_rows not in ON_BAD_ROWS:
            raise InputError(f"on_bad_rows must be 'error' or 'quarantine', not {on_bad_rows!r}")
        in_memory = isinstance(source, (pa.Table, pa.RecordBatch))
        self.source = f"the {what} table" if in_memory else str(source)
        self.what = what
        self.reasons = _REASONS[what]
        self.names = list(self.reasons)
        self.code = {name: i + 1 for i, name in enumerate(self.names)}
        self.on_bad_rows = on_bad_rows
        self.notes: list | None = None  # lines about the read itself (engine.io.readers.renamed_note)
        self.quarantine = None if quarantine is None else Path(quarantine)
        if on_bad_rows == "quarantine" and self.quarantine is None:
            if in_memory:
                raise InputError(f"quarantining rows of an in-memory {what} table needs a file to put them in: "
                                 "pass quarantine=PATH")
            self.quarantine = default_quarantine(source)
        self.counts: dict[str, int] = {}
        #: reason -> the column it was found in, when the reason's own entry does not name one
        self.columns: dict[str, str] = {}
        self.examples: dict[str, list[tuple[int, dict]]] = {}
        #: reason -> what to add after its examples (the caller knows more than the rows show)
        self.hints: dict[str, str] = {}
        self.rows_read = 0
        self._ctx = None
        self._writer = None
        self._schema = None
        self._done = False

    # -- bookkeeping ---------------------------------------------------------
    @property
    def total(self) -> int:
        """Rows rejected so far."""
        return sum(self.counts.values())

    @property
    def good(self) -> int:
        return self.rows_read - self.total

    def mark(self, reason: np.ndarray, mask: np.ndarray, name: str) -> None:
        """Give ``name`` to the rows in ``mask`` that have no reason yet."""
        if mask.any():
            reason[(reason == 0) & mask] = self.code[name]

    def record(self, batch: pa.RecordBatch | pa.Table, reason: np.ndarray, offset: int) -> None:
        """Account for one batch; ``reason`` is 0 for good rows, else a reason code."""
        self.rows_read += len(reason)
        if self._writer is None and self.on_bad_rows == "quarantine":
            self._open(batch.schema)
        bad = reason != 0
        if not bad.any():
            return
        hist = np.bincount(reason[bad].astype(np.int64), minlength=len(self.names) + 1)
        for code in np.flatnonzero(hist):
            name = self.names[code - 1]
            self.counts[name] = self.counts.get(name, 0) + int(hist[code])
            ex = self.examples.setdefault(name, [])
            if len(ex) < MAX_EXAMPLES:
                idx = np.flatnonzero(reason == code)[: MAX_EXAMPLES - len(ex)]
                rows = _example_rows(batch, idx)
                ex.extend((offset + int(i), r) for i, r in zip(idx, rows))
        if self._writer is not None:
            idx = np.flatnonzero(bad)
            rejected = batch.take(pa.array(idx))
            cols = [_plain(c) for c in rejected.columns]
            names = pa.array(self.names, pa.string()).take(pa.array(reason[idx].astype(np.int64) - 1))
            rows = pa.array(idx.astype(np.int64) + offset)
            self._writer.write_table(pa.Table.from_arrays([*cols, names, rows], schema=self._schema))

    def load(self, fn, source):
        """``fn(source, self)`` then :meth:`finish`; on any error the quarantine file is dropped."""
        try:
            out = fn(source, self)
            self.finish(schema=None)
        except BaseException:
            self.abort()
            raise
        return out

    # -- quarantine file -----------------------------------------------------
    def _open(self, schema: pa.Schema) -> None:
        fields = [pa.field(f.name, _plain_type(f.type)) for f in schema]
        self._schema = pa.schema([*fields, pa.field("reason", pa.string()), pa.field("row", pa.int64())])
        try:
            self._ctx = atomic_path(self.quarantine)
            tmp = self._ctx.__enter__()
        except (OSError, StorageError) as exc:
            self._ctx = None
            if isinstance(exc, StorageError) and not getattr(exc, "path_shape", False):
                raise  # a full or read-only disk: exit 7 as everywhere
            raise InputError(f"{self.source}: cannot write the quarantine file {self.quarantine} "
                             f"({getattr(exc, 'strerror', None) or exc}); pass a writable --quarantine-dir") from None
        if self.quarantine.suffix.lower() == ".csv":
            self._writer = pacsv.CSVWriter(str(tmp), self._schema)
        else:
            self._writer = ipc.new_file(str(tmp), self._schema)

    def abort(self) -> None:
        """Drop a half-written quarantine file (after an error or an abandoned iteration)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            exc = InputError(f"{self.source}: reading stopped early; no quarantine file written")
            self._ctx.__exit__(InputError, exc, None)

    def finish(self, schema: pa.Schema | None = None) -> Path | None:
        """End of input: raise (error mode) or move the quarantine file into place.

        Calling it again returns the same path.
        """
        if self._done:
            return self.quarantine if self.on_bad_rows == "quarantine" else None
        self._done = True
        if self.on_bad_rows == "error" and self.total:
            raise InputError(self.message())
        if self.on_bad_rows == "quarantine":
            if self._writer is None:
                self._open(schema if schema is not None else pa.schema([]))
            self._writer.close()
            self._writer = None
            self._ctx.__exit__(None, None, None)
            return self.quarantine
        return None

    # -- the message ---------------------------------------------------------
    def describe(self) -> str:
        """One sentence per reason: column, count, what is wrong, up to five example rows."""
        parts = []
        for name in self.names:
            count = self.counts.get(name, 0)
            if not count:
                continue
            column, what = self.reasons[name]
            column = self.columns.get(name, column)
            examples = ", ".join(
                "row {} {{{}}}".format(r, ", ".join(f"{k}: {_short(v)}" for k, v in list(row.items())[:8]))
                for r, row in self.examples.get(name, [])
            )
            hint = self.hints.get(name, "") + _names_hint(name, column,
                                                          [row.get(column) for _, row in self.examples.get(name, [])])
            parts.append(f"column '{column}': {count:,} row{'s' if count != 1 else ''} with {what} "
                         f"[{name}], e.g. {examples}{hint}")
        return (f"{self.source}: {self.total:,} of {self.rows_read:,} {self.what} rows break the data "
                f"contract; " + "; ".join(parts) + ".")

    def message(self) -> str:
        return self.describe() + " " + QUARANTINE_ADVICE


def _names_hint(reason: str, column: str, values: list) -> str:
    """What to do about the unknown event or channel names among ``values`` (the example rows'):
    names that are valid ones in other case or with spaces (``'Session'``, ``'email '``), empty
    names, and the nearest valid name of a misspelt one; "" for other reasons."""
    from engine.schema import CHANNELS, EVENTS

    choices = {"unknown_event": EVENTS, "unknown_channel": CHANNELS}.get(reason)
    if choices is None:
        return ""
    names = [v for v in dict.fromkeys(values) if isinstance(v, str)]
    loose = [v for v in names if v.strip() and v.strip().lower() in choices][:3]
    out = ""
    if loose:
        are = "is" if len(loose) == 1 else "are"
        out += (f"; {', '.join(map(repr, loose))} {are} {', '.join(repr(v.strip().lower()) for v in loose)} "
                f"in other case or with spaces, and names are matched exactly: write them in lower case without "
                f"spaces (in SQL lower(trim({column})), in pyarrow pc.utf8_lower(pc.utf8_trim_whitespace(col)))")
    if any(not v.strip() for v in names):
        out += (f"; an empty {column} is not a missing one (only in CSV is an empty field null): write null "
                f"for none")
    from engine.io.names import did_you_mean

    near = [f"{v!r}{did_you_mean(v, choices)}" for v in names if v.strip() and v not in loose
            and v.strip().lower() not in choices and did_you_mean(v, choices)][:3]
    if near:
        out += f"; misspelt: {', '.join(near)}"
    return out


def default_quarantine(source) -> Path:
    """``<dir>/<name>.rejected.arrow`` beside the input file or directory."""
    path = Path(source)
    stem = path.name.split(".")[0] if path.is_file() else path.name
    return path.with_name(f"{stem or 'input'}.rejected.arrow")


def format_examples(table, idx: np.ndarray) -> str:
    """Rows ``idx`` of ``table`` as the messages show them: ``row 3 {user_id: 4, ts: ...}, row 9 {...}``."""
    return ", ".join("row {} {{{}}}".format(r, ", ".join(f"{k}: {_short(v)}" for k, v in list(row.items())[:8]))
                     for r, row in zip(idx, _example_rows(table, np.asarray(idx))))


def _example_rows(batch, idx: np.ndarray) -> list[dict]:
    """Rows as dicts for the message; values Python cannot hold (year 30000) shown as text."""
    taken = batch.take(pa.array(idx))
    columns = {}
    for name, col in zip(taken.schema.names, taken.columns):
        try:
            columns[name] = col.to_pylist()
        except (OverflowError, ValueError, pa.ArrowException):
            if pa.types.is_timestamp(col.type):  # Arrow's own text of year 57,902 reads '-7634-10-01'
                ints = col.cast(pa.int64())
                columns[name] = [None if v is None else str(np.datetime64(v, col.type.unit))
                                 + ("Z" if col.type.tz else "") for v in ints.to_pylist()]
                continue
            try:
                columns[name] = col.cast(pa.string()).to_pylist()
            except pa.ArrowException:
                columns[name] = ["<unprintable>"] * len(idx)
    return [{k: v[i] for k, v in columns.items()} for i in range(len(idx))]


def _plain_type(t: pa.DataType) -> pa.DataType:
    # IPC files cannot replace dictionaries between batches and CSV cannot hold them.
    return t.value_type if pa.types.is_dictionary(t) else t


def _plain(col):
    return col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col
