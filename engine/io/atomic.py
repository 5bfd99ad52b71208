"""Atomic output: write to a temporary file in the target's directory, then rename.

A crash or an error never leaves a truncated or half-written output behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq

__all__ = ["atomic_path", "atomic_dir", "write_table"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it over ``final`` on success."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside ``final``; swap it in for ``final`` on success."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; outputs get the usual mode
    try:
        yield tmp
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _flat_lists(table: pa.Table) -> pa.Table:
    """List columns as text for CSV: values joined by ``|`` (``[1, 2]`` -> ``"1|2"``)."""
    import pyarrow.compute as pc

    for i, field in enumerate(table.schema):
        t = field.type
        if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            col = table.column(i)
            if not pa.types.is_list(t):
                col = col.cast(pa.list_(t.value_type))
            text = pc.binary_join(col.cast(pa.list_(pa.string())), "|")
            table = table.set_column(i, field.name, text)
    return table


def write_table(table: pa.Table, path: str | os.PathLike) -> Path:
    """Write ``table`` atomically; the format follows the suffix.

    ``.arrow``/``.feather``/``.ipc`` -> Arrow IPC file (uncompressed, memory-mappable),
    ``.parquet`` -> Parquet (zstd), ``.csv`` -> CSV (list columns as ``|``-joined text;
    CSV keeps no schema metadata), ``.jsonl`` -> JSON lines.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        table = _flat_lists(table)
    with atomic_path(path) as tmp:
        if suffix in (".arrow", ".feather", ".ipc", ""):
            feather.write_feather(table, tmp, compression="uncompressed")
        elif suffix == ".parquet":
            pq.write_table(table, tmp, compression="zstd")
        elif suffix == ".csv":
            pacsv.write_csv(table, tmp)
        elif suffix == ".jsonl":
            import json

            with open(tmp, "w", encoding="utf-8") as fh:
                for row in table.to_pylist():
                    fh.write(json.dumps(row, default=str) + "\n")
        else:
            raise ValueError(f"unsupported output suffix {suffix!r}")
    return path
