"""Read users and events under the data contract (docs/data-contract.md).

Inputs are Arrow IPC / Feather v2 files (memory-mapped), Parquet files, CSV files
(small inputs), or directories of any of these (read as a ``pyarrow.dataset``,
files in sorted path order).  Events stream in record batches of at most
``batch_rows`` rows, so memory is bounded by the batch, not the file.

Normalisation: ``user_id`` of any integer type (or whole floats, or digit
strings) becomes ``int64``; timestamps of any unit become epoch seconds (UTC;
naive values are read as UTC, tz-aware ones converted); ``event``/``channel`` as
strings or dictionaries (any index type) become ``int8`` codes of
:data:`engine.schema.EVENT_CODE` / :data:`~engine.schema.CHANNEL_CODE`; ``value``
becomes ``float64`` with NaN for null.  Rows that break the contract are counted
and either reported in one :class:`~engine.errors.InputError` or written to a
quarantine file with a ``reason`` column (see :class:`BadRows`).
"""

from __future__ import annotations

import collections
import functools
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.io import coerce as co
from engine.io.badrows import BadRows
from engine.io.decode import decode_batch
from engine.errors import InputError
from engine.progress import bar
from engine.schema import (CHANNEL_EVENTS, CHANNELS, EVENTS, EVENTS_OPTIONAL, EVENTS_REQUIRED, USERS_OPTIONAL,
                           USERS_REQUIRED)
from engine.tz import canonical_timezone, from_epoch_seconds, is_timezone, iso_utc, parse_as_of
from engine.tz import infer_timezones as infer_tz
from engine.io.source import _CSV_TEXT, Source, read_table  # noqa: F401  (read_table re-exported)
from engine.io.userindex import UserIndex
from engine.io.addresses import ADDRESS_COLUMNS
from engine.io.addresses import canonical as canonical_address_column

__all__ = ["read_table", "load_users", "Users", "UserIndex", "iter_events", "EventBatch", "BadRows", "NO_ITEM"]

_CHANNEL_EVENT_LUT = np.array([name in CHANNEL_EVENTS for name in EVENTS] + [False])
#: largest purchase value accepted (any currency): above it a value is a typo or a sentinel,
#: and a sum of a few of them overflows to inf
MAX_VALUE = 1e12
#: earliest event (and signup) time accepted, 1971-01-01T00:00:00Z: before it an instant is a
#: placeholder (1970-01-01, 1900-01-01, 0001-01-01) or epoch numbers stored in too fine a unit
#: (seconds as milliseconds land in January 1970), which would stretch every user's history
EARLIEST_TS = 31_536_000
_PURCHASE = EVENTS.index("purchase")


def _text_checked(table, bad_rows: BadRows):
    """``table`` with every string column valid UTF-8, and the mask of rows that were not (or None)."""
    bad = None
    for i, name in enumerate(table.schema.names):
        fixed, mask = co.fix_utf8(table.column(i))
        if mask is not None:
            table = table.set_column(i, name, fixed)
            bad = mask if bad is None else bad | mask
            bad_rows.columns.setdefault("bad_utf8", name)
    return table, bad


def _require(schema: pa.Schema, required: dict, path: Path, what: str) -> None:
    missing = [c for c in required if c not in schema.names]
    if missing:
        sep = next((s for s in ";\t|" if len(schema.names) == 1 and s in schema.names[0]), None)
        fix = (f"the file looks {sep!r}-separated: winback reads comma-separated CSV, so re-save it with commas"
               if sep else "rename the column or pass the right file")
        raise InputError(
            f"{path}: required column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(c) for c in missing)} missing from the {what} file (columns found: "
            f"{', '.join(schema.names) or 'none'}); {fix}"
        )


def column_type_error(path: Path, column: str, exc: co.ColumnTypeError) -> InputError:
    return InputError(f"{path}: column '{column}' has {exc}; every row would be rejected, so "
                      "convert the column (see docs/data-contract.md) and rerun")


# --------------------------------------------------------------------------- users
@dataclass(frozen=True)
class Users:
    """The normalised users table and its id index (dense index = row position)."""

    table: pa.Table
    index: UserIndex
    rows_read: int = 0
    rejected: int = 0
    #: per address column: values rewritten to the canonical form and values that were no
    #: address (now null), with examples (engine.io.addresses); only columns with either
    addresses: dict = field(default_factory=dict)
    #: a line naming the columns read under the contract's spelling (``EMAIL`` as email), or ""
    renamed: str = ""

    def __len__(self) -> int:
        return self.table.num_rows

    def __repr__(self) -> str:
        return (f"Users(rows={self.table.num_rows}, columns={self.table.column_names}, "
                f"rows_read={self.rows_read}, rejected={self.rejected}, index={self.index!r})")


def load_users(source, *, on_bad_rows: str = "error", quarantine: str | os.PathLike | None = None,
               infer_timezones: bool = False) -> Users:
    """Read and normalise the users table; see the module docstring and docs/data-contract.md.

    ``Users.table`` has ``user_id`` int64, ``timezone`` string (null = campaign
    default), ``email``/``phone``/``push_token`` string, ``consent_*`` bool (null ->
    False), ``signup_at`` timestamp[us, UTC]; missing optional columns are added
    (null, or False for consents); other columns pass through.  Of rows sharing a
    user_id the first is kept and later copies are rejected.

    ``infer_timezones`` (scoring): an unknown timezone is not a bad row; every user's
    timezone follows :func:`engine.tz.infer_timezones` (given, else the phone's, else
    null for the default) and a ``timezone_source`` column says which.
    """
    return BadRows(source, "users", on_bad_rows=on_bad_rows, quarantine=quarantine).load(
        functools.partial(_load_users, infer_timezones=infer_timezones), source)


def _load_users(source, bad: BadRows, infer_timezones: bool = False) -> Users:
    src = Source(source, check_utf8=False,  # bad bytes are bad rows (bad_utf8)
                 contract=(*USERS_REQUIRED, *USERS_OPTIONAL))
    table = src.read_all()
    _require(table.schema, USERS_REQUIRED, src.path, "users")
    n = table.num_rows
    reason = np.zeros(n, dtype=np.int8)
    table, badtext = _text_checked(table, bad)  # pass-through columns too: later steps read them
    if badtext is not None:
        bad.mark(reason, badtext, "bad_utf8")
    cols: dict[str, pa.Array] = {}
    try:
        uid, null, badv = co.to_int64(table["user_id"])
    except co.ColumnTypeError as exc:
        raise column_type_error(src.path, "user_id", exc) from None
    bad.mark(reason, null, "null_user_id")
    bad.mark(reason, badv, "bad_user_id")
    valid = np.flatnonzero(reason == 0)
    index = UserIndex(uid[valid])  # also finds the repeated ids (a row with an earlier row's id)
    dup = np.zeros(n, dtype=bool)
    dup[valid[index.repeats]] = True
    bad.mark(reason, dup, "duplicate_user_id")
    cols["user_id"] = pa.array(uid, pa.int64())
    addresses = {}  # also the timezone column's respellings and unknown names
    if "timezone" in table.column_names:
        tz = co.to_string(table["timezone"])
        tz = pc.if_else(pc.equal(pc.utf8_trim_whitespace(tz), ""), pa.scalar(None, pa.string()), tz)
        distinct = [v for v in pc.unique(tz.drop_null()).to_pylist() if not is_timezone(v)]
        respelt = {v: canonical_timezone(v) for v in distinct if canonical_timezone(v)}
        if respelt:  # 'america/new_york' is America/New_York: written in its IANA spelling
            hit = pc.is_in(tz, value_set=pa.array(list(respelt), pa.string()))
            fixed = pc.index_in(tz, value_set=pa.array(list(respelt), pa.string()))
            tz = pc.if_else(hit, pa.array(list(respelt.values()), pa.string()).take(fixed), tz)
            distinct = [v for v in distinct if v not in respelt]
        unknown = None
        if distinct:
            unknown = pc.is_in(tz, value_set=pa.array(distinct, pa.string())).to_numpy(zero_copy_only=False)
            if not infer_timezones:
                bad.mark(reason, unknown, "unknown_timezone")
        if respelt or (unknown is not None and infer_timezones):
            n_fixed = int(pc.sum(hit).as_py() or 0) if respelt else 0
            addresses["timezone"] = {"normalised": n_fixed,
                                     "not_an_address": int(unknown.sum()) if unknown is not None and
                                     infer_timezones else 0,
                                     "examples": distinct[:3] if infer_timezones else []}
        cols["timezone"] = tz
    for name in ("consent_email", "consent_sms", "consent_push", "consent_ads"):
        if name in table.column_names:
            try:
                yes, _, badv = co.to_bool(table[name])
            except co.ColumnTypeError as exc:
                raise column_type_error(src.path, name, exc) from None
            bad.mark(reason, badv, f"bad_{name}")
            cols[name] = pa.array(yes, pa.bool_())
    if "signup_at" in table.column_names:
        try:
            secs, null, badv = co.to_epoch_seconds(table["signup_at"])
        except co.ColumnTypeError as exc:
            raise column_type_error(src.path, "signup_at", exc) from None
        bad.mark(reason, badv, "bad_signup_at")
        early = ~null & ~badv & (secs < EARLIEST_TS)  # a placeholder (1970-01-01, 1900) or unit mistake: unknown
        if early.any():
            addresses["signup_at"] = {"normalised": 0, "not_an_address": int(early.sum()),
                                      "examples": [iso_utc(int(v)) for v in np.unique(secs[early])[:3]]}
        cols["signup_at"] = from_epoch_seconds(secs, null | badv | early)
    for name in ADDRESS_COLUMNS:  # one spelling per address; a value that is none becomes null
        if name in table.column_names:
            cols[name], fixed, invalid, examples = canonical_address_column(name, co.to_string(table[name]))
            if fixed or invalid:
                addresses[name] = {"normalised": fixed, "not_an_address": invalid, "examples": examples}
    if infer_timezones:
        zones, source = infer_tz(cols.get("timezone"), cols.get("phone"), n)
        cols["timezone"], cols["timezone_source"] = zones, source
        if "timezone" not in table.column_names:
            table = table.append_column("timezone", zones)
        table = table.append_column("timezone_source", source) if "timezone_source" not in table.column_names \
            else table

    bad.record(table, reason, 0)
    keep = reason == 0
    out_names, out_cols = [], []
    for name in table.column_names:
        out_names.append(name)
        out_cols.append(cols.get(name, table[name]))
    for name, typ in USERS_OPTIONAL.items():
        if name not in cols:
            out_names.append(name)
            out_cols.append(pa.array(np.zeros(n, dtype=bool)) if typ == pa.bool_() else pa.nulls(n, typ))
    out = pa.Table.from_arrays(out_cols, names=out_names)
    if not keep.all():
        out = out.filter(pa.array(keep))
    if len(valid) != int(keep.sum()):  # rows went after the index was built: positions moved
        index = UserIndex(uid[keep])
    return Users(table=out, index=index, rows_read=n, rejected=int(n - keep.sum()), addresses=addresses,
                 renamed=renamed_note(src))


# --------------------------------------------------------------------------- events
#: ``EventBatch.item`` of an event that names no item.
NO_ITEM = np.iinfo(np.int64).min

@dataclass(frozen=True, slots=True)
class EventBatch:
    """Good event rows of one batch, as equal-length numpy arrays.

    ``uidx`` int64 dense user index; ``ts`` int64 epoch seconds, UTC; ``event`` int8
    (:data:`engine.schema.EVENT_CODE`); ``channel`` int8 (-1 = none); ``value``
    float64 (NaN when null or absent); ``item`` int64 item id (``NO_ITEM`` when null;
    ``None`` when the input has no ``item_id`` column).  Arrays may be read-only views
    of a memory-mapped file: copy before writing into them.
    """

    uidx: np.ndarray
    ts: np.ndarray
    event: np.ndarray
    channel: np.ndarray
    value: np.ndarray
    item: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.uidx)


def iter_events(source, index: UserIndex | Users, *, as_of, on_bad_rows: str = "error",
                quarantine: str | os.PathLike | None = None, batch_rows: int = 1 << 20,
                progress: bool = False, read_ahead: int = 0, later: str = "bad",
                notes: list | None = None, decoders: int = 1, then=None) -> Iterator[EventBatch]:
    """Stream the good events of ``source`` as :class:`EventBatch` es.

    ``index`` maps user ids to dense indexes (a :class:`Users` is taken as its index).
    ``as_of`` is epoch seconds (or anything :func:`engine.timeutil.parse_as_of`
    takes); events after it are bad rows.  The file is opened and its columns
    checked at once (a missing required column raises here); rows are checked as
    they stream.  With ``on_bad_rows="error"`` an :class:`InputError` covering every
    bad row of the whole input is raised after the last batch; with
    ``"quarantine"`` bad rows go to ``quarantine`` (default
    ``<input>.rejected.arrow`` beside the input) and iteration just ends.

    ``read_ahead``: when > 0, batches are read and checked on a second thread, up to
    that many ahead of the consumer (the same batches, in the same order; see
    :func:`_read_ahead`).  ``later="ignore"``: events after ``as_of`` are no bad rows but
    no part of this history either (a backtest's cut): they are skipped, and the other
    rows keep their numbers in the file.  ``notes``: a list that receives a line when
    columns are read under the contract's spelling (``TS`` as ts).  ``decoders``: batches
    decoded at once, on that many threads (the same batches, rows and bad rows, in order).
    ``then``: a function of each batch run where it was decoded; then ``(batch, then(batch))``
    pairs are yielded instead (the scoring pass counts blocks there: ``kernels.Folder.counts``).
    """
    as_of = parse_as_of(as_of)
    if later not in ("bad", "ignore"):
        raise ValueError(f"later must be 'bad' or 'ignore', not {later!r}")
    if isinstance(index, Users):
        index = index.index
    bad = BadRows(source, "events", on_bad_rows=on_bad_rows, quarantine=quarantine)
    bad.notes = notes
    batches = _iter_events(source, index, as_of, bad, batch_rows, progress, later=later, decoders=decoders, then=then)
    return _read_ahead(batches, read_ahead) if read_ahead > 0 else batches


def _read_ahead(batches, depth: int):
    """The items of the generator ``batches``, produced on a second thread up to ``depth`` ahead.

    Reading and checking a batch (Arrow, numpy, the numba id lookup) mostly releases the
    GIL, so it overlaps the consumer's work on the previous batch.  An exception of the
    reader is raised here after the batches before it; when the consumer stops early,
    the reader is closed on its own thread (so a quarantine file in progress is discarded).
    """
    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    end = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for b in batches:
                if not put((b, None)):
                    return
            put((end, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer and raised there
            put((end, exc))
        finally:
            batches.close()

    reader = threading.Thread(target=produce, name="winback-read", daemon=True)
    reader.start()
    try:
        while True:
            item, exc = q.get()
            if item is end:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        reader.join()


def _open_events(source, bad: BadRows, batch_rows: int) -> Source:
    wanted = None if bad.on_bad_rows == "quarantine" else [*EVENTS_REQUIRED, *EVENTS_OPTIONAL]
    src = Source(source, columns=wanted, batch_rows=batch_rows, check_utf8=False,
                 contract=(*EVENTS_REQUIRED, *EVENTS_OPTIONAL))
    _require(src.schema, EVENTS_REQUIRED, src.path, "events")
    if bad.notes is not None and src.renamed:
        bad.notes.append(renamed_note(src))
    return src


def renamed_note(src: Source) -> str:
    """One line naming the columns of ``src`` read under the contract's spelling, or ""."""
    if not src.renamed:
        return ""
    many = len(src.renamed) > 1
    pairs = ", ".join(f"{k!r} as {v!r}" for k, v in src.renamed.items())
    return (f"{src.path}: column{'s' if many else ''} {pairs} read under the data contract's "
            f"name{'s' if many else ''} (lower case with underscores); rename {'them' if many else 'it'} "
            "in the file to silence this")


def _iter_events(source, index, as_of, bad, batch_rows, progress, src=None, later="bad", decoders=1, then=None):
    src = src if src is not None else _open_events(source, bad, batch_rows)
    if len(index) == 0:  # a header-only users export: say so rather than blame every event
        bad.hints["unknown_user"] = "; the users table has no rows at all: pass a users file that has its rows"

    def gen():
        offset = 0
        pbar = bar(progress, total=src.num_rows, desc="events", unit="rows")
        try:
            for batch, eb, reason in _decoded(src.batches(), index, as_of, bad, src.path, decoders, then):
                if later == "ignore" and reason.any():
                    reason = _later_ignored(batch, reason, as_of)
                bad.record(batch, reason, offset)
                src.release(batch)  # the batch's columns are copied out (or views that stay valid)
                offset += batch.num_rows
                pbar.update(batch.num_rows)
                if len(eb[0] if then is not None else eb):
                    yield eb
            bad.finish(schema=src.schema if src.columns is None else None)
        except BaseException:
            bad.abort()
            raise
        finally:
            pbar.close()

    return gen()


def _decoded(batches, index, as_of, bad, path, decoders: int, then=None):
    """``(batch, good rows, reasons)`` of each of ``batches``, in order (good rows ``(rows,
    then(rows))`` with ``then``); with ``decoders`` > 1 the batches are decoded that many at a
    time on as many threads (the kernels release the GIL), each result handed on in input order."""
    if decoders <= 1:
        for batch in batches:
            batch, badtext = _text_checked(batch, bad)
            yield (batch, *_events_batch(batch, index, as_of, bad, path, badtext, then))
        return
    pool = ThreadPoolExecutor(decoders, thread_name_prefix="winback-decode")
    pending: collections.deque = collections.deque()
    try:
        for batch in batches:
            batch, badtext = _text_checked(batch, bad)
            pending.append((batch, pool.submit(_events_batch, batch, index, as_of, bad, path, badtext, then)))
            if len(pending) >= decoders:
                b, fut = pending.popleft()
                yield (b, *fut.result())
        while pending:
            b, fut = pending.popleft()
            yield (b, *fut.result())
    finally:
        for _, fut in pending:
            fut.cancel()
        pool.shutdown(wait=True)


def _later_ignored(batch: pa.RecordBatch, reason: np.ndarray, as_of: int) -> np.ndarray:
    """``reason`` with the rows after ``as_of`` cleared, whatever else is wrong with them (none
    of them is in the batch's good rows: the later ones are ``future_ts`` at least)."""
    ts, null, badv = co.to_epoch_seconds(batch.column("ts"))
    return np.where((ts > as_of) & ~null & ~badv, np.int8(0), reason)


def _events_batch(batch: pa.RecordBatch, index: UserIndex, as_of: int, bad: BadRows, path: Path,
                  badtext: np.ndarray | None = None, then=None):
    """The good rows of one batch (with ``then``: and ``then`` of them) and every row's reason
    (0 = good; ``bad.code``)."""
    fast = None
    if badtext is None:  # the common column types: one kernel over the raw buffers (engine.io.decode)
        fast = decode_batch(batch, index, as_of, bad.code, events=EVENTS, channels=CHANNELS,
                            needs_channel=_CHANNEL_EVENT_LUT, max_value=MAX_VALUE, purchase=_PURCHASE,
                            no_item=NO_ITEM, min_ts=EARLIEST_TS)
    eb, reason = (EventBatch(*fast[:6]), fast[6]) if fast is not None else \
        _events_batch_columns(batch, index, as_of, bad, path, badtext)
    return ((eb, then(eb)) if then is not None else eb), reason


def _events_batch_columns(batch: pa.RecordBatch, index: UserIndex, as_of: int, bad: BadRows, path: Path,
                          badtext: np.ndarray | None = None):
    """:func:`_events_batch` column by column: every type the contract accepts."""
    n = batch.num_rows
    names = batch.schema.names
    reason = np.zeros(n, dtype=np.int8)
    if badtext is not None:
        bad.mark(reason, badtext, "bad_utf8")
    column = "user_id"
    try:
        uid, null, badv = co.to_int64(batch.column("user_id"))
        bad.mark(reason, null, "null_user_id")
        bad.mark(reason, badv, "bad_user_id")
        uidx = index.lookup(uid)
        bad.mark(reason, uidx < 0, "unknown_user")
        column = "event"
        ev, null, unknown = co.to_codes(batch.column("event"), EVENTS)
        bad.mark(reason, null, "null_event")
        bad.mark(reason, unknown, "unknown_event")
        column = "ts"
        ts, null, badv = co.to_epoch_seconds(batch.column("ts"))
        bad.mark(reason, null, "null_ts")
        bad.mark(reason, badv, "bad_ts")
        bad.mark(reason, ts < EARLIEST_TS, "early_ts")
        bad.mark(reason, ts > as_of, "future_ts")
        column = "channel"
        if "channel" in names:
            ch, _, unknown = co.to_codes(batch.column("channel"), CHANNELS)
            bad.mark(reason, unknown, "unknown_channel")
        else:
            ch = np.full(n, -1, dtype=np.int8)
        needs = _CHANNEL_EVENT_LUT[ev]  # code -1 (bad event) reads the trailing False
        bad.mark(reason, needs & (ch < 0), "missing_channel")
        column = "value"
        if "value" in names:
            value, badv = co.to_float64(batch.column("value"))
            with np.errstate(invalid="ignore"):
                badv |= ~np.isnan(value) & ~(np.abs(value) <= MAX_VALUE)  # inf, 1e308
                negative = (value < 0) & (ev == _PURCHASE)
            bad.mark(reason, badv, "bad_value")
            bad.mark(reason, negative, "negative_value")
        else:
            value = np.full(n, np.nan)
        item = None
        column = "item_id"
        if "item_id" in names:
            col = batch.column("item_id")
            if col.type == pa.int64():  # the common case: one pass, nulls as NO_ITEM
                item = col.fill_null(NO_ITEM).to_numpy()
            else:
                item, null, badv = co.to_int64(col)
                bad.mark(reason, badv, "bad_item_id")
                if null.any():
                    item = np.where(null, NO_ITEM, item)
    except co.ColumnTypeError as exc:
        raise column_type_error(path, column, exc) from None
    if reason.any():
        keep = reason == 0
        return EventBatch(uidx[keep], ts[keep], ev[keep], ch[keep], value[keep],
                          None if item is None else item[keep]), reason
    return EventBatch(uidx, ts, ev, ch, value, item), reason

