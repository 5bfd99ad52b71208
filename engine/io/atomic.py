"""Atomic output: write to a temporary file in the target's directory, then rename.

A crash or an error never leaves a truncated or half-written output behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather

from engine.errors import ConfigError, StorageError

__all__ = ["atomic_path", "atomic_dir", "check_output", "check_ledger_path", "write_table", "append_synced", "cut_partial_line", "storage_error", "STORAGE_ERRNOS"]

#: errno values meaning "this disk or directory cannot take the write" (not a winback bug)
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EACCES, errno.EPERM}
_STORAGE_TEXT = ("no space left", "disk quota", "read-only file system", "file too large", "permission denied")


def storage_error(exc: BaseException, path: str | os.PathLike | None = None) -> StorageError | None:
    """The one-line :class:`StorageError` for an ``OSError`` of a full or read-only disk, else None.

    ``path`` names the file being written when the error itself does not."""
    if not isinstance(exc, OSError):
        return None
    text = str(exc).lower()
    where = path if path is not None else (exc.filename or "an output file")
    shape = _path_shape(exc, path)
    if shape is not None:
        err = StorageError(f"cannot write {where}: {shape}. Nothing was half-written: earlier outputs are "
                           "as they were.")
        err.path_shape = True  # a file where a directory must be, or the reverse (not the disk)
        return err
    if exc.errno not in STORAGE_ERRNOS and not any(t in text for t in _STORAGE_TEXT):
        return None
    code = exc.errno
    if code in (errno.EROFS, errno.EACCES, errno.EPERM) or "read-only" in text or "permission" in text:
        what = "the directory is read-only or not writable by this user"
        todo = "pass an output path in a directory this user can write"
    elif code == errno.EFBIG or "too large" in text:
        what = "the file is larger than this filesystem or a limit (ulimit -f) allows"
        todo = "write to another filesystem or raise the limit"
    else:
        what = "the disk is full"
        todo = "free space on that disk (or pass an output path on another one) and run the same command again"
    return StorageError(f"cannot write {where}: {what} ({exc.strerror or exc}); {todo}. Nothing was "
                        "half-written: earlier outputs are as they were.")


def _path_shape(exc: OSError, path) -> str | None:
    """What is wrong with the shape of an output path (a file where a directory must be, a
    directory where the file goes), or None: the errors of a mistyped ``-o``/``--ledger``."""
    if exc.errno == errno.EISDIR:
        target = path if path is not None else (exc.filename2 or exc.filename)
        return f"{target} is a directory; pass a file path inside it instead, e.g. {Path(str(target)) / 'out.arrow'}"
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        probe = Path(str(path if path is not None else exc.filename or ""))
        if exc.errno == errno.EEXIST and path is None and probe.is_file():
            return f"{probe} is a file where a directory is needed; pass a path in a directory"
        under = _file_above(probe)
        if under is not None:
            return f"{under} is a file, not a directory; pass a path in a directory (or move that file)"
    return None


def _file_above(path: Path) -> Path | None:
    """The nearest of ``path``'s parent directories that is really a file (nothing can be
    made at ``path`` then: ``plan.arrow/ledger.db``), or None."""
    return next((p for p in path.parents if p.is_file()), None)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it over ``final`` on success."""
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    except OSError as exc:
        raise (storage_error(exc, final) or exc) from None
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        err = storage_error(exc, final)
        if err is not None:
            raise err from None
        raise


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside ``final``; swap it in for ``final`` on success."""
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    except OSError as exc:
        raise (storage_error(exc, final) or exc) from None
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; outputs get the usual mode
    try:
        yield tmp
        if final.exists():
            _may_replace(final, tmp)
            old = final.with_name(f".{final.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        err = storage_error(exc, final)
        if err is not None:
            raise err from None
        raise


#: files a directory output never replaces unless it writes them itself: the inputs of the
#: main job (a world of 'winback generate', scores, plans, campaigns, ledgers)
_INPUT_STEMS = {"users", "events", "truth", "items", "world", "scores", "plan", "ledger"}
_INPUT_SUFFIXES = {".toml", ".db", ".sqlite"}


def _may_replace(final: Path, new: Path) -> None:
    """A :class:`ConfigError` unless the directory ``final`` may be swapped for ``new``: it
    must be a directory, and hold no input-like file (users.arrow, a campaign .toml, a
    ledger .db, ...) that ``new`` does not write too, so ``-o world/`` or ``-o users.arrow``
    never deletes an input; other files of an earlier output are replaced whole."""
    if not final.is_dir():
        raise ConfigError(f"cannot write {final}: it is a file, and this output is a directory; pass a "
                          "directory path (a new one, or an earlier output of the same command)")
    made = {p.name for p in new.iterdir()}
    lost = sorted(p.name for p in final.iterdir() if p.is_file() and p.name not in made
                  and (p.name.split(".")[0].lower() in _INPUT_STEMS or p.suffix.lower() in _INPUT_SUFFIXES))
    if lost:
        raise ConfigError(f"cannot write {final}: it holds {', '.join(lost[:4])}{' ...' if len(lost) > 4 else ''}, "
                          "which this output does not write and replacing the directory would delete; pass a "
                          "new or empty directory, or move those files first")


def _csv_columns(table: pa.Table) -> pa.Table:
    """``table`` with every column in a type CSV holds (:func:`engine.io.coerce.to_text`: list
    columns as text, values joined by ``|``, ``[1, 2]`` -> ``"1|2"``; bytes as hex; nested values
    as JSON text); the other columns as they are."""
    from engine.io.coerce import csv_native, to_text

    for i, field in enumerate(table.schema):
        if not csv_native(field.type):
            table = table.set_column(i, field.name, to_text(table.column(i), list_sep="|"))
    return table


#: the suffixes :func:`write_table` writes (no suffix: Arrow IPC)
TABLE_SUFFIXES = (".arrow", ".feather", ".ipc", ".parquet", ".csv", ".jsonl")


def check_output(path: str | os.PathLike, inputs=()) -> Path:
    """``path`` if :func:`write_table` can write its suffix and it is none of ``inputs``,
    else a :class:`ConfigError` naming it (asked before the work, so an hour of scoring is
    not lost to a typo, and ``-o events.arrow`` does not replace the events with scores)."""
    path = Path(path)
    if path.suffix.lower() not in TABLE_SUFFIXES + ("",):
        raise ConfigError(f"cannot write {path}: the suffix {path.suffix!r} is no table format; end the output "
                          "in .arrow (or .feather, .ipc), .parquet, .csv or .jsonl")
    for src in inputs:
        if isinstance(src, (str, os.PathLike)) and path.exists() and Path(src).exists() \
                and os.path.samefile(path, src):
            raise ConfigError(f"cannot write {path}: it is the input {src}; writing there would replace "
                              "that input. Pass another -o path")
    return path


def check_ledger_path(ledger: str | os.PathLike | None) -> None:
    """A :class:`StorageError` when ``ledger`` can never be a ledger file: a directory, or a
    path under a file (``plan.arrow/ledger.db``); asked by commands that only record the
    path for a later send, so the typo shows now, not at the send."""
    if ledger is None:
        return
    path = Path(ledger)
    if path.is_dir():
        raise StorageError(f"--ledger {path} is a directory; pass a file path inside it, e.g. {path / 'ledger.db'}")
    under = _file_above(path)
    if under is not None:
        raise StorageError(f"--ledger {path}: {under} is a file, not a directory, so no ledger can be made "
                           "there; pass a path in a directory (or move that file)")


def write_table(table: pa.Table, path: str | os.PathLike) -> Path:
    """Write ``table`` atomically; the format follows the suffix.

    ``.arrow``/``.feather``/``.ipc`` -> Arrow IPC file (uncompressed, memory-mappable),
    ``.parquet`` -> Parquet (zstd), ``.csv`` -> CSV (list columns as ``|``-joined text, nested
    columns as JSON text and bytes as hex; CSV keeps no schema metadata),
    ``.jsonl`` -> JSON lines.
    """
    path = check_output(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        table = _csv_columns(table)
    with atomic_path(path) as tmp:
        if suffix in (".arrow", ".feather", ".ipc", ""):
            feather.write_feather(table, tmp, compression="uncompressed")
        elif suffix == ".parquet":
            import pyarrow.parquet as pq  # only for Parquet outputs (with pyarrow.fs: 15 ms)

            pq.write_table(table, tmp, compression="zstd")
        elif suffix == ".csv":
            pacsv.write_csv(table, tmp)
        elif suffix == ".jsonl":
            import json

            with open(tmp, "w", encoding="utf-8") as fh:
                for row in table.to_pylist():
                    fh.write(json.dumps(row, default=str) + "\n")
    return path


def append_synced(path: str | os.PathLike, data: bytes) -> None:
    """Append ``data`` to ``path`` (created 0644 if missing) in full, then fsync: the
    export files of the file and ads adapters, where each batch must be on disk before
    its messages count as sent."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def cut_partial_line(path: str | os.PathLike) -> bytes:
    """The bytes of ``path`` up to its last newline (b"" when it does not exist); a partial
    last line, left by a crash in the middle of :func:`append_synced`, is truncated away
    on disk first."""
    path = Path(path)
    if not path.exists():
        return b""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        with open(path, "r+b") as fh:
            fh.truncate(keep)
            os.fsync(fh.fileno())
        data = data[:keep]
    return data
