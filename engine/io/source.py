"""Reading any input table: Arrow IPC / Feather v2 (memory-mapped), Parquet, CSV, or a
directory of them, as a whole table (:func:`read_table`) or in record batches
(:class:`Source`) of bounded size."""

from __future__ import annotations

import mmap
import os
import re
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc

from engine.errors import InputError

__all__ = ["Source", "read_table", "contract_renames", "fold_name"]

_IPC = {".arrow", ".feather", ".ipc", ".arrows"}
#: IPC files above this size are streamed from disk rather than memory-mapped
_MMAP_MAX_BYTES = 1 << 30
_PARQUET = {".parquet", ".pq"}
_CSV = {".csv"}
#: CSV columns always read as text, so phone numbers keep their "+" and zeros and
#: a bad value in one row makes a bad row, not an unreadable file.
_CSV_TEXT = ("user_id", "ts", "event", "channel", "value", "timezone", "email", "phone",
             "push_token", "consent_email", "consent_sms", "consent_push", "consent_ads", "signup_at", "item_id", "title",
             "category", "added_at", "expires_at", "editorial")
#: CSV columns read as text by :func:`read_table` (whole tables such as scores and plans):
#: the contract's text columns, but ids, counts and instants keep their inferred types.
_TABLE_TEXT = ("event", "channel", "timezone", "email", "phone", "push_token", "title", "category", "to",
               "subject", "body", "step", "variant", "reason", "theme", "template", "campaign_id",
               "lifecycle", "top_category")


def _format(source) -> tuple[Path, str]:
    path = Path(source)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory; pass a users or events file "
                         "(.arrow, .feather, .parquet, .csv) or a directory of them")
    if path.is_dir():
        files = _files(path)
        suffixes = {p.suffix.lower() for p in files}
        kinds = [(name, next(p for p in files if p.suffix.lower() in group))
                 for name, group in (("Parquet", _PARQUET), ("CSV", _CSV), ("Arrow", _IPC)) if suffixes & group]
        if len(kinds) > 1:  # reading one kind only would drop the others' rows without a word
            found = ", ".join(f"{name} ({p.relative_to(path)})" for name, p in kinds)
            raise InputError(f"{path}: directory holds files of more than one format: {found}; winback reads "
                             "a directory as one dataset of one format, so convert the files to one format "
                             "or move the others out")
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


def fold_name(name: str) -> str:
    """A column name as the contract compares it: letters and digits only, lower case
    (``User ID``, ``USER_ID``, ``userId`` and ``user-id`` all fold to ``userid``)."""
    return re.sub(r"[^0-9a-z]", "", name.casefold())


def contract_renames(names: list[str], contract) -> dict[str, str]:
    """``{column: contract name}`` for the columns of ``names`` that spell a contract column
    other than exactly (``EMAIL``, ``Push Token``) when that exact name is absent.  Two
    spellings of one contract column are an :class:`InputError` (which one is meant is a guess)."""
    want = {fold_name(c): c for c in contract if c not in names}
    out: dict[str, str] = {}
    for name in names:
        target = want.get(fold_name(name))
        if target is None or name in contract:
            continue
        if target in out.values():
            other = next(k for k, v in out.items() if v == target)
            raise InputError(f"columns {other!r} and {name!r} both spell the data contract's {target!r}; "
                             f"rename the one to read to {target!r} and drop or rename the other")
        out[name] = target
    return out


def _csv_input(path: Path):
    """``path``, or its bytes with a line end added when the whole file is one line without one:
    a header-only export (no rows), of which Arrow would read no columns at all."""
    if path.is_file() and 0 < path.stat().st_size <= 1 << 16:
        data = path.read_bytes()
        if b"\n" not in data and b"\r" not in data and data.strip():
            return pa.BufferReader(data + b"\n")
    return path


def _csv_convert(path: Path | list[Path], text: tuple[str, ...] = _CSV_TEXT,
                 check_utf8: bool = True) -> pacsv.ConvertOptions:
    """Column types of a CSV file (or of every file of a directory: ``path`` a list)."""
    header = [n for p in (path if isinstance(path, list) else [path])
              for n in pacsv.open_csv(_csv_input(p), read_options=pacsv.ReadOptions(block_size=1 << 16)).schema.names]
    folded = {fold_name(t) for t in text}
    types = {name: pa.string() for name in header if name in text or fold_name(name) in folded}
    return pacsv.ConvertOptions(column_types=types, strings_can_be_null=True, check_utf8=check_utf8)


#: leading bytes of formats that reach the Arrow IPC reader under another suffix -> what to say
_MAGIC = ((b"PAR1", "a Parquet file; name it .parquet"),
          (b"\x1f\x8b", "gzip-compressed; decompress it first (winback reads uncompressed .arrow, .parquet and .csv "
                        "files)"),
          (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook is one); export the sheet as CSV UTF-8 and name it "
                          ".csv"),
          (b"FEA1", "a Feather version 1 file; write it again as Feather version 2 (pyarrow.feather.write_feather)"))


def _sniff(path: Path) -> str | None:
    """What a file that is no Arrow IPC file is, from its first bytes (None when unknown)."""
    with open(path, "rb") as f:
        head = f.read(512)
    kind = next((what for magic, what in _MAGIC if head.startswith(magic)), None)
    if kind is None and head and not head.startswith(b"ARROW1") and b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError:
            return None
        kind = "text (CSV or JSON?); winback reads CSV files named .csv, with a header row"
    return kind


def _unreadable(path: Path, fmt: str, exc: Exception) -> InputError:
    head = b""
    if fmt == "csv" and path.is_file():  # Excel's "Unicode text" is UTF-16: unreadable in any way
        with open(path, "rb") as f:
            head = f.read(2)
    utf16 = head in (b"\xff\xfe", b"\xfe\xff")
    if fmt == "csv" and path.is_file() and path.stat().st_size == 0:
        return InputError(f"{path}: the file is empty (0 bytes, not even a header row); export it again "
                          "with its header row of column names")
    kind = _sniff(path) if fmt == "ipc" and path.is_file() else None
    if kind is not None:  # a file of another format under an Arrow (or unknown) suffix: say which
        return InputError(f"{path}: cannot be read as ipc (Arrow IPC): it is {kind}")
    if utf16 or isinstance(exc, UnicodeDecodeError):  # or a CSV header that is not UTF-8
        what = "UTF-16 text" if utf16 else "not UTF-8 text"
        return InputError(f"{path}: cannot be read as {fmt}: its header row is {what}; re-save the file as "
                          "CSV UTF-8 (comma-separated)")
    # Arrow messages may span lines and quote the file's bytes; the error is one printable line
    detail = "".join(c if c.isprintable() and c != "\ufffd" else " " for c in str(exc))
    detail = " ".join(detail.split())
    if len(detail) > 200:
        detail = detail[:197] + "..."
    also = "; in a directory, every file needs the same columns and types" if path.is_dir() else ""
    return InputError(f"{path}: cannot be read as {fmt} ({detail}); check that the file is complete "
                      f"and its suffix matches its format (.arrow/.feather, .parquet, .csv){also}")


def _directory_schema(dataset, path: Path, contract=()) -> pa.Schema:
    """The schema of a directory's dataset: every column of any of its files, then the partition keys.

    A dataset takes its first file's schema, so a column that file lacks (``value``) would be
    dropped from every other file without a word.  Here each column has the type of the first
    file that holds it, except that a wider float or a non-null type of a later file wins
    (``float32`` against ``double``, an all-null column of a file against the others' values).
    A data contract column spelt differently in two files (``user_id`` and ``User_ID``) is an
    :class:`InputError`: each file's rows would be read under only one of the spellings."""
    fields: dict[str, pa.Field] = {}
    spelt: dict[str, tuple[str, str]] = {}  # contract name -> (a file's spelling, that file)
    for frag in dataset.get_fragments():
        try:
            schema = frag.physical_schema
        except pa.ArrowException as exc:  # name the file, not just the directory
            raise type(exc)(f"{frag.path}: {exc}") from None
        _unique_names(Path(frag.path), schema)
        for fl in schema:
            have = fields.get(fl.name)
            if have is None or pa.types.is_null(have.type) or (
                    pa.types.is_floating(have.type) and pa.types.is_floating(fl.type)
                    and fl.type.bit_width > have.type.bit_width):
                fields[fl.name] = fl
        for name in contract:
            own = name if name in schema.names else next(
                (n for n in schema.names if fold_name(n) == fold_name(name)), None)
            if own is None:
                continue
            first, where = spelt.setdefault(name, (own, frag.path))
            if own != first:
                this, that = (Path(p).relative_to(path) for p in (frag.path, where))
                raise InputError(f"{path}: file {this} names the column {own!r} where {that} names it "
                                 f"{first!r}; every file of a directory needs the same column names, so rename "
                                 f"it to {name!r} in each file")
    for fl in dataset.schema:  # the partition keys (key=value directories) come last, as the dataset has them
        fields.setdefault(fl.name, fl)
    return pa.schema(list(fields.values()), metadata=dataset.schema.metadata)  # the first file's metadata


class _DuplicateColumns(InputError):
    """Two columns of one file share a name (:func:`_unique_names`)."""


def _unique_names(path: Path, schema: pa.Schema) -> None:
    """An :class:`InputError` when two columns share a name: which one would be read is
    a guess (Arrow refuses to choose), and a copy would pass through to every output."""
    names = schema.names
    dup = sorted({n for n in names if names.count(n) > 1}, key=names.index)
    if dup:
        where = [i for i, n in enumerate(names) if n == dup[0]]
        raise _DuplicateColumns(f"{path}: column {dup[0]!r} appears {len(where)} times (columns {where} of "
                         f"{len(names)}){f'; so do {dup[1:4]}' if len(dup) > 1 else ''}; every column name "
                         "must be unique: drop or rename the copies and write the file again")


class Source:
    """Record batches of one input in read order, with its schema and row count when known.

    ``check_utf8=False``: CSV text is not checked while reading (the caller checks it
    per row, see :func:`engine.io.coerce.fix_utf8`), so one bad byte is one bad row.

    ``contract``: the data contract's column names for this input; a column that spells
    one in other case or punctuation (``EMAIL``, ``Push Token``) is read under the contract
    name, and ``renamed`` (``{file name: contract name}``) says which were.  ``columns``
    and ``schema`` use the contract names."""

    def __init__(self, source, *, columns: list[str] | None = None, batch_rows: int = 1 << 20,
                 csv_text: tuple[str, ...] = _CSV_TEXT, check_utf8: bool = True, contract=()):
        self.renamed: dict[str, str] = {}
        self._contract = tuple(contract)
        self.batch_rows = max(1, int(batch_rows))
        self.csv_text = csv_text
        self.check_utf8 = check_utf8
        self.num_rows: int | None = None
        self._mm = None
        if isinstance(source, (pa.Table, pa.RecordBatch)):  # an in-memory table (the Python API)
            self.path, self.fmt = Path("<table>"), "table"
            self._table = pa.Table.from_batches([source]) if isinstance(source, pa.RecordBatch) else source
            _unique_names(self.path, self._table.schema)
            self.renamed = contract_renames(self._table.schema.names, self._contract)
            if self.renamed:
                self._table = self._table.rename_columns([self.renamed.get(n, n) for n in self._table.schema.names])
            self.schema = self._table.schema
            self.num_rows = self._table.num_rows
            self.columns = None if columns is None else [c for c in columns if c in self.schema.names]
            return
        self.path, self.fmt = _format(source)
        try:
            self._open(columns)
        except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
            raise _unreadable(self.path, self.fmt, exc) from None
        _unique_names(self.path, self.schema)
        self._file_schema = self.schema
        self.renamed = contract_renames(self.schema.names, self._contract)
        if self.renamed:
            self._actual = {v: k for k, v in self.renamed.items()}
            self.schema = pa.schema([f.with_name(self.renamed.get(f.name, f.name)) for f in self.schema])
            self.columns = None if columns is None else [c for c in columns if c in self.schema.names]

    def _spelt(self, b):
        """A batch or table of the file with its columns under the contract's names."""
        if not self.renamed:
            return b
        return b.rename_columns([self.renamed.get(n, n) for n in b.schema.names])

    def _open(self, columns) -> None:
        path, fmt = self.path, self.fmt
        if path.is_dir():
            # only files of the chosen format: a README or a stray file does not break the read
            files = _files(path, {"parquet": _PARQUET, "csv": _CSV, "ipc": _IPC}[fmt])
            fmt_obj = "parquet" if fmt == "parquet" else "ipc"
            import pyarrow.dataset as ds  # only for directories: it imports pandas

            if fmt == "csv":
                fmt_obj = ds.CsvFileFormat(convert_options=_csv_convert(files, self.csv_text, self.check_utf8))
            try:
                self._dataset = ds.dataset([str(f) for f in files], format=fmt_obj, partitioning="hive",
                                           partition_base_dir=str(path))
                self._dataset = self._dataset.replace_schema(_directory_schema(self._dataset, path, self._contract))
            except pa.ArrowInvalid:
                for f in files:  # a file with two columns of one name: name it and the column
                    try:
                        Source(f, csv_text=self.csv_text, check_utf8=self.check_utf8)
                    except _DuplicateColumns:
                        raise
                    except InputError:
                        continue
                raise
            self.schema = self._dataset.schema
            self.num_rows = None if fmt == "csv" else self._dataset.count_rows()
        elif fmt == "ipc":
            # Files are memory-mapped (zero copy).  A mapped file's touched pages count in
            # the process's resident memory, which would grow with the events (O(events))
            # instead of the users, so a large file's pages are handed back batch by batch
            # (release()); where the platform cannot do that, a large file is read batch by
            # batch into ordinary memory instead (~1 s per 2 GB more on a shared 2-core machine).
            big = path.stat().st_size > _MMAP_MAX_BYTES
            self._mm = None
            if big and hasattr(mmap, "MADV_DONTNEED"):
                with open(path, "rb") as f:
                    self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                view = pa.py_buffer(self._mm)
                self._mm_base = view.address
                self._mmap = pa.BufferReader(view)
            else:
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
            import pyarrow.parquet as pq  # only for Parquet inputs (with pyarrow.fs: 15 ms)

            self._pq = pq.ParquetFile(str(path), memory_map=True)
            self.schema = self._pq.schema_arrow
            self.num_rows = self._pq.metadata.num_rows
        else:
            self._convert = _csv_convert(path, self.csv_text, self.check_utf8)
            self.schema = pacsv.open_csv(_csv_input(path), convert_options=self._convert).schema
        self.columns = None if columns is None else [c for c in columns if c in self.schema.names]

    def _raw(self) -> Iterator[pa.RecordBatch]:
        if not self.renamed or self.fmt == "table":
            yield from self._raw_file()
            return
        for b in self._raw_file():
            yield self._spelt(b)

    def _raw_file(self) -> Iterator[pa.RecordBatch]:
        cols = self.columns
        if cols is not None and self.renamed and self.fmt != "table":
            cols = [self._actual.get(c, c) for c in cols]  # the file's own spelling
        if self.fmt == "table":
            t = self._table.select(cols) if cols is not None else self._table
            yield from t.to_batches(max_chunksize=self.batch_rows)
        elif self.path.is_dir():
            for frag in sorted(self._dataset.get_fragments(), key=lambda f: f.path):
                try:
                    yield from frag.to_batches(schema=self._file_schema, columns=cols, batch_size=self.batch_rows,
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
            reader = pacsv.open_csv(_csv_input(self.path), convert_options=self._convert,
                                    read_options=pacsv.ReadOptions(block_size=1 << 22))
            for b in reader:
                yield b.select(cols) if cols is not None else b

    def release(self, batch: pa.RecordBatch) -> None:
        """Hand the file pages under ``batch`` back to the OS (large mapped files only).

        Safe while views of the batch live on: the mapping is of the file, read-only, so a
        page touched again is read back from the page cache; only resident memory shrinks.
        """
        if self._mm is None:
            return
        lo, hi = None, 0
        for col in batch.columns:
            for buf in col.buffers():
                if buf is not None and buf.size:
                    start = buf.address - self._mm_base
                    if 0 <= start < len(self._mm):
                        lo = start if lo is None else min(lo, start)
                        hi = max(hi, start + buf.size)
        if lo is None:
            return
        page = mmap.PAGESIZE
        lo = lo // page * page
        hi = min(len(self._mm), -(-hi // page) * page)
        if hi > lo:
            self._mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)

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
            table = self._spelt(self._reader.read_all())  # zero-copy over the memory map
            return table.select(self.columns) if self.columns is not None else table
        batches = list(self.batches())
        if not batches:
            schema = self.schema if self.columns is None else pa.schema([self.schema.field(c) for c in self.columns])
            return schema.empty_table()
        return pa.Table.from_batches(batches)


def read_table(source: str | os.PathLike | pa.Table, what: str = "table") -> pa.Table:
    """Read a whole ``.arrow``/``.feather``/``.ipc``/``.parquet``/``.csv`` file or a directory.

    The one reader of whole tables (scores, plans, outcomes, events for the report).
    Arrow IPC files are memory-mapped (zero copy) and keep their schema metadata.  CSV
    columns named in the data contract (and every address-like column) are read as
    text, so a phone keeps its ``+`` and leading zeros; an empty CSV field is null.
    No normalisation happens here: use :func:`load_users` / :func:`iter_events` for
    contract inputs.  ``what`` names the input in error messages ("scores", "plan").
    """
    if not isinstance(source, (pa.Table, pa.RecordBatch)) and not Path(source).exists():
        raise InputError(f"{what} {source} does not exist (no such file or directory); pass the path of an Arrow, Parquet or "
                         "CSV file (or a directory of them).")
    return Source(source, csv_text=_TABLE_TEXT).read_all()


