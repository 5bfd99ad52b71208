"""The optional catalogue (items table): loading, validation, and item statistics.

An items table has one row per item: ``item_id`` (int64), ``title``, ``category`` (a
list of strings, or one string; several categories in one string are separated by
``|``), ``added_at`` (UTC), and optionally ``expires_at`` (UTC, null = never) and
``editorial`` (bool, null = false).  Any other column (``url``, ``price``, ``image``)
passes through to message templates as ``{{ items[0].url }}``.

Bad rows are handled like users and events (:mod:`engine._badrows`): in error mode one
message names every kind of bad row with examples; in quarantine mode they are set
aside in ``items.rejected.arrow``.

Item statistics come from the events that name an item (``item_id`` on events), in
days before ``as_of`` (UTC): ``popularity`` = the interactions' weights decayed with the
affinity half-life (:mod:`engine.affinity`), ``recent_7d`` = interactions in the last 7
days, ``prior_28d`` = interactions in the 28 days before those, and

    trend = (recent_7d - prior_28d / 4) / sqrt(prior_28d / 4 + 1)

the growth of the last week over the weekly rate of the four weeks before, in units of
its Poisson standard deviation (a z-score), so that a jump from 0 to 3 and from 300 to
400 both count, and noise on small items does not dominate.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from engine.io import coerce as co
from engine.io.badrows import BadRows
from engine.errors import InputError
from engine.io.readers import column_type_error, renamed_note, _require
from engine.io.source import Source
from engine.schema import ITEMS_OPTIONAL, ITEMS_REQUIRED
from engine.tz import from_epoch_seconds
from engine.io.userindex import UserIndex

__all__ = ["Items", "load_items", "NO_EXPIRY", "MAX_CATEGORIES", "item_stats_table", "encode_table",
           "decode_table", "trend_score"]

#: ``expires_at`` of an item that never expires (epoch seconds).
NO_EXPIRY = np.iinfo(np.int64).max
#: At most this many distinct categories: each user carries a dense affinity vector.
MAX_CATEGORIES = 256


@dataclass(frozen=True)
class Items:
    """The normalised catalogue.  Item ``i`` is row ``i`` of ``table`` (input order).

    ``categories``: the distinct category names, sorted; ``cat_ptr``/``cat_idx``: the
    categories of item ``i`` are ``cat_idx[cat_ptr[i]:cat_ptr[i+1]]`` (codes into
    ``categories``, sorted, distinct); ``added``/``expires``: epoch seconds, UTC
    (``NO_EXPIRY`` = never); ``editorial``: bool.
    """

    table: pa.Table
    index: UserIndex
    categories: tuple[str, ...]
    cat_ptr: np.ndarray
    cat_idx: np.ndarray
    added: np.ndarray
    expires: np.ndarray
    editorial: np.ndarray
    source: str = "<table>"
    rows_read: int = 0
    rejected: int = 0
    renamed: str = ""  # engine.io.readers.renamed_note

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def ids(self) -> np.ndarray:
        return self.index.ids

    def lookup(self, item_ids: np.ndarray) -> np.ndarray:
        """Row of each item id (int64), -1 where the catalogue does not have it."""
        return self.index.lookup(item_ids)

    def __repr__(self) -> str:
        return f"Items(n={len(self)}, categories={len(self.categories)}, source={self.source!r})"


def load_items(source, *, on_bad_rows: str = "error", quarantine: str | os.PathLike | None = None) -> Items:
    """Read and check an items file (Arrow IPC, Parquet, CSV, a directory) or table."""
    if isinstance(source, Items):
        return source
    if not isinstance(source, (pa.Table, pa.RecordBatch)) and not os.path.exists(source):
        raise InputError(f"{source}: no such items file; pass the catalogue (.arrow, .parquet, .csv, or a directory "
                         "of them) with columns item_id, title, category, added_at (see docs/content.md)")
    return BadRows(source, "items", on_bad_rows=on_bad_rows, quarantine=quarantine).load(_load, source)


def _categories(col, path) -> tuple[pa.Array, np.ndarray, np.ndarray, tuple[str, ...]]:
    """(normalised list<string> column, per-row pointer, codes, names) of the category column."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    t = arr.type
    if co.is_stringlike(t) or pa.types.is_null(t):
        arr = pc.split_pattern(co.to_string(arr), "|")
    elif pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        arr = arr.cast(pa.list_(t.value_type))
    elif not pa.types.is_list(arr.type):
        raise column_type_error(path, "category", co.ColumnTypeError(
            f"type {t} (expected a list of strings, or strings with categories separated by '|')"))
    values = arr.flatten()
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    if not (co.is_stringlike(values.type) or pa.types.is_null(values.type)):
        raise column_type_error(path, "category", co.ColumnTypeError(f"type {arr.type} (expected strings)"))
    values = pc.utf8_trim_whitespace(co.to_string(values))
    parent = pc.list_parent_indices(arr).to_numpy().astype(np.int64)
    keep = pc.and_(pc.is_valid(values), pc.not_equal(values, "")).fill_null(False).to_numpy(zero_copy_only=False)
    values, parent = values.filter(pa.array(keep)), parent[keep]
    names = tuple(sorted(pc.unique(values).to_pylist()))
    codes = pc.index_in(values, value_set=pa.array(names, pa.string())).to_numpy(zero_copy_only=False).astype(
        np.int64) if len(values) else np.zeros(0, np.int64)
    # distinct categories per item, sorted by code
    order = np.lexsort((codes, parent))
    parent, codes = parent[order], codes[order]
    first = np.ones(len(codes), bool)
    first[1:] = (parent[1:] != parent[:-1]) | (codes[1:] != codes[:-1])
    parent, codes = parent[first], codes[first]
    n = len(arr)
    ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(parent, minlength=n), out=ptr[1:])
    offsets = pa.array(ptr.astype(np.int32))
    normal = pa.ListArray.from_arrays(offsets, pa.array(names, pa.string()).take(pa.array(codes)))
    return normal, ptr, codes.astype(np.int32), names


def _load(source, bad: BadRows) -> Items:
    src = Source(source, contract=(*ITEMS_REQUIRED, *ITEMS_OPTIONAL))
    table = src.read_all()
    _require(table.schema, ITEMS_REQUIRED, src.path, "items")
    n = table.num_rows
    reason = np.zeros(n, np.int8)
    cols: dict[str, pa.Array] = {}

    def conv(fn, name, *args):
        try:
            return fn(table[name], *args)
        except co.ColumnTypeError as exc:
            raise column_type_error(src.path, name, exc) from None

    iid, null, badv = conv(co.to_int64, "item_id")
    bad.mark(reason, null, "null_item_id")
    bad.mark(reason, badv, "bad_item_id")
    valid = np.flatnonzero(reason == 0)
    order = np.argsort(iid[valid], kind="stable")
    s = iid[valid][order]
    dup = np.zeros(n, bool)
    dup[valid[order[1:][s[1:] == s[:-1]]]] = True
    bad.mark(reason, dup, "duplicate_item_id")
    cols["item_id"] = pa.array(iid, pa.int64())
    title = conv(co.to_string, "title")
    empty = pc.or_(pc.is_null(title), pc.equal(pc.utf8_trim_whitespace(title), "")).fill_null(True)
    bad.mark(reason, empty.to_numpy(zero_copy_only=False), "null_title")
    cols["title"] = title
    cats, ptr, codes, names = _categories(table["category"], src.path)
    bad.mark(reason, np.diff(ptr) == 0, "null_category")
    cols["category"] = cats
    added, null, badv = conv(co.to_epoch_seconds, "added_at")
    bad.mark(reason, null, "null_added_at")
    bad.mark(reason, badv, "bad_added_at")
    cols["added_at"] = from_epoch_seconds(added, null | badv)
    expires = np.full(n, NO_EXPIRY, np.int64)
    exp_null = np.ones(n, bool)
    if "expires_at" in table.column_names:
        secs, exp_null, badv = conv(co.to_epoch_seconds, "expires_at")
        bad.mark(reason, badv, "bad_expires_at")
        exp_null = exp_null | badv
        bad.mark(reason, ~exp_null & (secs < added), "expires_before_added")
        expires = np.where(exp_null, NO_EXPIRY, secs)
    cols["expires_at"] = from_epoch_seconds(np.where(exp_null, 0, expires), exp_null)
    editorial = np.zeros(n, bool)
    if "editorial" in table.column_names:
        editorial, _, badv = conv(co.to_bool, "editorial")
        bad.mark(reason, badv, "bad_editorial")
    cols["editorial"] = pa.array(editorial, pa.bool_())
    bad.record(table, reason, 0)
    keep = reason == 0
    names_out = list(table.column_names) + [c for c in ("expires_at", "editorial") if c not in table.column_names]
    out = pa.Table.from_arrays([cols.get(c, table[c] if c in table.column_names else None) for c in names_out],
                               names=names_out)
    if not keep.all():
        out = out.filter(pa.array(keep))
        # the category pointers of the kept rows
        counts = np.diff(ptr)
        sel = np.repeat(keep, counts)
        codes = codes[sel]
        ptr = np.zeros(int(keep.sum()) + 1, np.int64)
        np.cumsum(counts[keep], out=ptr[1:])
    used = np.unique(codes)
    if len(used) < len(names):  # categories only rejected rows had
        remap = np.full(len(names), -1, np.int32)
        remap[used] = np.arange(len(used), dtype=np.int32)
        codes = remap[codes]
        names = tuple(names[i] for i in used)
    if len(names) > MAX_CATEGORIES:
        raise InputError(f"{src.path}: {len(names):,} distinct categories; winback keeps a dense per-user "
                         f"affinity over categories and takes at most {MAX_CATEGORIES}: map them to top-level "
                         "categories (e.g. 'books/fiction/crime' -> 'books') and rerun")
    return Items(table=out, index=UserIndex(iid[keep]), categories=names, cat_ptr=ptr,
                 cat_idx=codes.astype(np.int32), added=added[keep], expires=expires[keep],
                 editorial=editorial[keep], source=str(src.path if src.fmt != "table" else "the items table"),
                 rows_read=n, rejected=int(n - keep.sum()), renamed=renamed_note(src))


def trend_score(recent_7d: np.ndarray, prior_28d: np.ndarray) -> np.ndarray:
    """``(recent - prior/4) / sqrt(prior/4 + 1)``: last week's growth in Poisson standard deviations."""
    base = np.asarray(prior_28d, np.float64) / 4.0
    return (np.asarray(recent_7d, np.float64) - base) / np.sqrt(base + 1.0)


def item_stats_table(items: Items, popularity: np.ndarray, recent_7d: np.ndarray, prior_28d: np.ndarray) -> pa.Table:
    """One row per catalogue item: ``item_id``, ``popularity``, ``recent_7d``, ``prior_28d``, ``trend``."""
    return pa.table({"item_id": pa.array(items.ids, pa.int64()), "popularity": pa.array(popularity, pa.float64()),
                     "recent_7d": pa.array(recent_7d, pa.int64()), "prior_28d": pa.array(prior_28d, pa.int64()),
                     "trend": pa.array(trend_score(recent_7d, prior_28d))})


def encode_table(table: pa.Table) -> bytes:
    """A small table as base64 Arrow IPC stream bytes (to ride in schema metadata)."""
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return base64.b64encode(sink.getvalue().to_pybytes())


def decode_table(raw: bytes) -> pa.Table:
    """Inverse of :func:`encode_table`."""
    return ipc.open_stream(pa.BufferReader(base64.b64decode(raw))).read_all()
