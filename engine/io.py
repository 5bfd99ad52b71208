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

import functools
import os
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from engine import _coerce as co
from engine._badrows import BadRows
from engine.errors import InputError
from engine.progress import bar
from engine.schema import (
    CHANNEL_EVENTS,
    CHANNELS,
    EVENTS,
    EVENTS_OPTIONAL,
    EVENTS_REQUIRED,
    USERS_OPTIONAL,
    USERS_REQUIRED,
)
from engine.timeutil import from_epoch_seconds, parse_as_of
from engine.userindex import UserIndex

__all__ = ["read_table", "load_users", "Users", "UserIndex", "iter_events", "EventBatch", "BadRows", "NO_ITEM"]

_IPC = {".arrow", ".feather", ".ipc", ".arrows"}
#: IPC files above this size are streamed from disk rather than memory-mapped
_MMAP_MAX_BYTES = 1 << 30
_PARQUET = {".parquet", ".pq"}
_CSV = {".csv"}
#: CSV columns always read as text, so phone numbers keep their "+" and zeros and
#: a bad value in one row makes a bad row, not an unreadable file.
_CSV_TEXT = ("user_id", "ts", "event", "channel", "value", "timezone", "email", "phone",
             "push_token", "consent_email", "consent_sms", "consent_push", "signup_at", "item_id", "title",
             "category", "added_at", "expires_at", "editorial")
_CHANNEL_EVENT_LUT = np.array([name in CHANNEL_EVENTS for name in EVENTS] + [False])


# --------------------------------------------------------------------------- reading
def _format(source) -> tuple[Path, str]:
    path = Path(source)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory; pass a users or events file "
                         "(.arrow, .feather, .parquet, .csv) or a directory of them")
    if path.is_dir():
        suffixes = {p.suffix.lower() for p in _files(path)}
        if suffixes & _PARQUET:
            return path, "parquet"
        if suffixes & _CSV:
            return path, "csv"
        if suffixes & _IPC:
            return path, "ipc"
        raise InputError(f"{path}: directory has no .arrow, .feather, .parquet or .csv files; "
                         "pass a directory of input files")
    suffix = path.suffix.lower()
    if suffix in _PARQUET:
        return path, "parquet"
    if suffix in _CSV:
        return path, "csv"
    return path, "ipc"  # .arrow/.feather/.ipc, and anything else is tried as Arrow IPC


def _files(path: Path, suffixes: set[str] | None = None) -> list[Path]:
    """Data files below ``path`` in sorted order; hidden (``.``/``_``) files and directories skipped."""
    out = []
    for p in path.rglob("*"):
        rel = p.relative_to(path).parts
        if p.is_file() and not any(part.startswith((".", "_")) for part in rel):
            if suffixes is None or p.suffix.lower() in suffixes:
                out.append(p)
    return sorted(out)


def _csv_convert(path: Path) -> pacsv.ConvertOptions:
    header = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16)).schema.names
    types = {name: pa.string() for name in header if name in _CSV_TEXT}
    return pacsv.ConvertOptions(column_types=types, strings_can_be_null=True)


def _unreadable(path: Path, fmt: str, exc: Exception) -> InputError:
    detail = " ".join(str(exc).split())  # Arrow messages may span lines; the error is one line
    also = "; in a directory, every file needs the same columns and types" if path.is_dir() else ""
    return InputError(f"{path}: cannot be read as {fmt} ({detail}); check that the file is complete "
                      f"and its suffix matches its format (.arrow/.feather, .parquet, .csv){also}")


class _Source:
    """Record batches of one input in read order, with its schema and row count when known."""

    def __init__(self, source, *, columns: list[str] | None = None, batch_rows: int = 1 << 20):
        self.batch_rows = max(1, int(batch_rows))
        self.num_rows: int | None = None
        if isinstance(source, (pa.Table, pa.RecordBatch)):  # an in-memory table (the Python API)
            self.path, self.fmt = Path("<table>"), "table"
            self._table = pa.Table.from_batches([source]) if isinstance(source, pa.RecordBatch) else source
            self.schema = self._table.schema
            self.num_rows = self._table.num_rows
            self.columns = None if columns is None else [c for c in columns if c in self.schema.names]
            return
        self.path, self.fmt = _format(source)
        try:
            self._open(columns)
        except (pa.ArrowException, OSError) as exc:
            raise _unreadable(self.path, self.fmt, exc) from None

    def _open(self, columns) -> None:
        path, fmt = self.path, self.fmt
        if path.is_dir():
            # only files of the chosen format: a README or a stray file does not break the read
            files = _files(path, {"parquet": _PARQUET, "csv": _CSV, "ipc": _IPC}[fmt])
            fmt_obj = "parquet" if fmt == "parquet" else "ipc"
            if fmt == "csv":
                fmt_obj = ds.CsvFileFormat(convert_options=_csv_convert(files[0]))
            self._dataset = ds.dataset([str(f) for f in files], format=fmt_obj, partitioning="hive",
                                       partition_base_dir=str(path))
            self.schema = self._dataset.schema
            self.num_rows = None if fmt == "csv" else self._dataset.count_rows()
        elif fmt == "ipc":
            # Small files are memory-mapped (zero copy). Large ones are read batch by batch
            # into ordinary memory that is freed as the pass moves on: a mapped file's
            # touched pages count in the process's resident memory, which would grow with
            # the events (O(events)) instead of the users; reading costs ~1 s per 5 GB.
            big = path.stat().st_size > _MMAP_MAX_BYTES
            self._mmap = pa.OSFile(str(path), "r") if big else pa.memory_map(str(path), "r")
            try:
                self._reader = ipc.open_file(self._mmap)
            except pa.ArrowInvalid:
                self._mmap.seek(0)
                self._reader = ipc.open_stream(self._mmap)  # an IPC stream file
            self.schema = self._reader.schema
            if isinstance(self._reader, ipc.RecordBatchFileReader):
                # row counts from the batch headers of a mapping (no data pages are read)
                with pa.memory_map(str(path), "r") as mm:
                    counter = ipc.open_file(mm)
                    self.num_rows = sum(counter.get_batch(i).num_rows for i in range(counter.num_record_batches))
        elif fmt == "parquet":
            self._pq = pq.ParquetFile(str(path), memory_map=True)
            self.schema = self._pq.schema_arrow
            self.num_rows = self._pq.metadata.num_rows
        else:
            self._convert = _csv_convert(path)
            self.schema = pacsv.open_csv(path, convert_options=self._convert).schema
        self.columns = None if columns is None else [c for c in columns if c in self.schema.names]

    def _raw(self) -> Iterator[pa.RecordBatch]:
        cols = self.columns
        if self.fmt == "table":
            t = self._table.select(cols) if cols is not None else self._table
            yield from t.to_batches(max_chunksize=self.batch_rows)
        elif self.path.is_dir():
            for frag in sorted(self._dataset.get_fragments(), key=lambda f: f.path):
                try:
                    yield from frag.to_batches(schema=self.schema, columns=cols, batch_size=self.batch_rows,
                                               use_threads=False)
                except pa.ArrowException as exc:  # name the file, not just the directory
                    exc = type(exc)(f"{frag.path}: {exc}")
                    raise _unreadable(self.path, self.fmt, exc) from None
        elif self.fmt == "ipc":
            if isinstance(self._reader, ipc.RecordBatchFileReader):
                for i in range(self._reader.num_record_batches):
                    b = self._reader.get_batch(i)
                    yield b.select(cols) if cols is not None else b
            else:
                for b in self._reader:
                    yield b.select(cols) if cols is not None else b
        elif self.fmt == "parquet":
            yield from self._pq.iter_batches(batch_size=self.batch_rows, columns=cols)
        else:
            reader = pacsv.open_csv(self.path, convert_options=self._convert,
                                    read_options=pacsv.ReadOptions(block_size=1 << 22))
            for b in reader:
                yield b.select(cols) if cols is not None else b

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Batches of at most ``batch_rows`` rows (big ones sliced, small ones merged)."""
        pending: list[pa.RecordBatch] = []
        size = 0
        limit = self.batch_rows
        try:
            for b in self._raw():
                if b.num_rows == 0:
                    continue
                if not pending and limit // 4 <= b.num_rows <= limit:
                    yield b  # most file batches: no copy
                    continue
                if not pending and b.num_rows >= limit:
                    for start in range(0, b.num_rows - b.num_rows % limit, limit):
                        yield b.slice(start, limit)
                    rest = b.num_rows % limit
                    if rest:
                        pending, size = [b.slice(b.num_rows - rest)], rest
                    continue
                pending.append(b)
                size += b.num_rows
                if size >= limit:
                    merged = pa.concat_batches(pending)
                    for start in range(0, size - size % limit, limit):
                        yield merged.slice(start, limit)
                    rest = size % limit
                    pending, size = ([merged.slice(size - rest)], rest) if rest else ([], 0)
            if pending:
                yield pa.concat_batches(pending)
        except (pa.ArrowException, OSError) as exc:
            raise _unreadable(self.path, self.fmt, exc) from None

    def read_all(self) -> pa.Table:
        if self.fmt == "table":
            return self._table.select(self.columns) if self.columns is not None else self._table
        if self.fmt == "ipc" and not self.path.is_dir() and isinstance(self._reader, ipc.RecordBatchFileReader):
            table = self._reader.read_all()  # zero-copy over the memory map
            return table.select(self.columns) if self.columns is not None else table
        batches = list(self.batches())
        if not batches:
            schema = self.schema if self.columns is None else pa.schema([self.schema.field(c) for c in self.columns])
            return schema.empty_table()
        return pa.Table.from_batches(batches)


def read_table(source: str | os.PathLike) -> pa.Table:
    """Read a whole ``.arrow``/``.feather``/``.ipc``/``.parquet``/``.csv`` file or a directory.

    Arrow IPC files are memory-mapped (zero copy).  CSV columns named in the data
    contract are read as text; others are inferred.  No normalisation happens here:
    use :func:`load_users` / :func:`iter_events` for contract inputs.
    """
    return _Source(source).read_all()


def _require(schema: pa.Schema, required: dict, path: Path, what: str) -> None:
    missing = [c for c in required if c not in schema.names]
    if missing:
        raise InputError(
            f"{path}: required column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(c) for c in missing)} missing from the {what} file (columns found: "
            f"{', '.join(schema.names) or 'none'}); rename the column or pass the right file"
        )


def _column_type_error(path: Path, column: str, exc: co.ColumnTypeError) -> InputError:
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

    def __len__(self) -> int:
        return self.table.num_rows

    def __repr__(self) -> str:
        return (f"Users(rows={self.table.num_rows}, columns={self.table.column_names}, "
                f"rows_read={self.rows_read}, rejected={self.rejected}, index={self.index!r})")


@functools.lru_cache(maxsize=4096)
def _is_timezone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def load_users(source, *, on_bad_rows: str = "error", quarantine: str | os.PathLike | None = None) -> Users:
    """Read and normalise the users table; see the module docstring and docs/data-contract.md.

    ``Users.table`` has ``user_id`` int64, ``timezone`` string (null = campaign
    default), ``email``/``phone``/``push_token`` string, ``consent_*`` bool (null ->
    False), ``signup_at`` timestamp[us, UTC]; missing optional columns are added
    (null, or False for consents); other columns pass through.  Of rows sharing a
    user_id the first is kept and later copies are rejected.
    """
    return BadRows(source, "users", on_bad_rows=on_bad_rows, quarantine=quarantine).load(_load_users, source)


def _load_users(source, bad: BadRows) -> Users:
    src = _Source(source)
    table = src.read_all()
    _require(table.schema, USERS_REQUIRED, src.path, "users")
    n = table.num_rows
    reason = np.zeros(n, dtype=np.int8)
    cols: dict[str, pa.Array] = {}
    try:
        uid, null, badv = co.to_int64(table["user_id"])
    except co.ColumnTypeError as exc:
        raise _column_type_error(src.path, "user_id", exc) from None
    bad.mark(reason, null, "null_user_id")
    bad.mark(reason, badv, "bad_user_id")
    valid = np.flatnonzero(reason == 0)
    order = np.argsort(uid[valid], kind="stable")
    ids_sorted = uid[valid][order]
    dup = np.zeros(n, dtype=bool)
    dup[valid[order[1:][ids_sorted[1:] == ids_sorted[:-1]]]] = True
    bad.mark(reason, dup, "duplicate_user_id")
    cols["user_id"] = pa.array(uid, pa.int64())

    if "timezone" in table.column_names:
        tz = co.to_string(table["timezone"])
        tz = pc.if_else(pc.equal(pc.utf8_trim_whitespace(tz), ""), pa.scalar(None, pa.string()), tz)
        distinct = [v for v in pc.unique(tz.drop_null()).to_pylist() if not _is_timezone(v)]
        if distinct:
            bad.mark(reason, pc.is_in(tz, value_set=pa.array(distinct, pa.string())).to_numpy(
                zero_copy_only=False), "unknown_timezone")
        cols["timezone"] = tz
    for name in ("consent_email", "consent_sms", "consent_push"):
        if name in table.column_names:
            try:
                yes, _, badv = co.to_bool(table[name])
            except co.ColumnTypeError as exc:
                raise _column_type_error(src.path, name, exc) from None
            bad.mark(reason, badv, f"bad_{name}")
            cols[name] = pa.array(yes, pa.bool_())
    if "signup_at" in table.column_names:
        try:
            secs, null, badv = co.to_epoch_seconds(table["signup_at"])
        except co.ColumnTypeError as exc:
            raise _column_type_error(src.path, "signup_at", exc) from None
        bad.mark(reason, badv, "bad_signup_at")
        cols["signup_at"] = from_epoch_seconds(secs, null | badv)
    for name in ("email", "phone", "push_token"):
        if name in table.column_names:
            cols[name] = co.to_string(table[name])

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
    ids = uid[keep]
    return Users(table=out, index=UserIndex(ids), rows_read=n, rejected=int(n - keep.sum()))


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
                progress: bool = False) -> Iterator[EventBatch]:
    """Stream the good events of ``source`` as :class:`EventBatch` es.

    ``index`` maps user ids to dense indexes (a :class:`Users` is taken as its index).
    ``as_of`` is epoch seconds (or anything :func:`engine.timeutil.parse_as_of`
    takes); events after it are bad rows.  The file is opened and its columns
    checked at once (a missing required column raises here); rows are checked as
    they stream.  With ``on_bad_rows="error"`` an :class:`InputError` covering every
    bad row of the whole input is raised after the last batch; with
    ``"quarantine"`` bad rows go to ``quarantine`` (default
    ``<input>.rejected.arrow`` beside the input) and iteration just ends.
    """
    as_of = parse_as_of(as_of)
    if isinstance(index, Users):
        index = index.index
    bad = BadRows(source, "events", on_bad_rows=on_bad_rows, quarantine=quarantine)
    return _iter_events(source, index, as_of, bad, batch_rows, progress)


def _open_events(source, bad: BadRows, batch_rows: int) -> _Source:
    wanted = None if bad.on_bad_rows == "quarantine" else [*EVENTS_REQUIRED, *EVENTS_OPTIONAL]
    src = _Source(source, columns=wanted, batch_rows=batch_rows)
    _require(src.schema, EVENTS_REQUIRED, src.path, "events")
    return src


def _iter_events(source, index, as_of, bad, batch_rows, progress, src=None):
    src = src if src is not None else _open_events(source, bad, batch_rows)

    def gen():
        offset = 0
        pbar = bar(progress, total=src.num_rows, desc="events", unit="rows")
        try:
            for batch in src.batches():
                eb, reason = _events_batch(batch, index, as_of, bad, src.path)
                bad.record(batch, reason, offset)
                offset += batch.num_rows
                pbar.update(batch.num_rows)
                if len(eb):
                    yield eb
            bad.finish(schema=src.schema if src.columns is None else None)
        except BaseException:
            bad.abort()
            raise
        finally:
            pbar.close()

    return gen()


def _events_batch(batch: pa.RecordBatch, index: UserIndex, as_of: int, bad: BadRows, path: Path):
    n = batch.num_rows
    names = batch.schema.names
    reason = np.zeros(n, dtype=np.int8)
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
            bad.mark(reason, badv, "bad_value")
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
        raise _column_type_error(path, column, exc) from None
    if reason.any():
        keep = reason == 0
        return EventBatch(uidx[keep], ts[keep], ev[keep], ch[keep], value[keep],
                          None if item is None else item[keep]), reason
    return EventBatch(uidx, ts, ev, ch, value, item), reason

