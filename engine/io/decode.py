"""One pass over an events batch of the common column types: checks, id lookup and codes.

Most event files hold ``user_id`` int64, ``ts`` as a timestamp, ``event``/``channel`` as
dictionaries of strings, ``value`` float64 and ``item_id`` int64 (what ``winback
generate`` and most writers of Arrow files produce).  For such a batch
:func:`decode_batch` reads the raw Arrow buffers (values, validity bitmaps, dictionary
indices) in one numba kernel (:func:`_decode`) that gives every row its first bad-row
reason (the order of :data:`engine.io.badrows.EVENTS_REASONS`), looks the user id up,
maps the event and channel through a code table of their (small) dictionaries, and
writes the good rows' columns, compacted, in one go: no null masks, fill copies or
gathers per column.  Any other layout (strings, floats as ids, dates, a dictionary with
null values, text that is not valid UTF-8) returns None and takes the general,
column-by-column path of :func:`engine.io.readers._events_batch`, which gives the same
rows and reasons (a test holds them equal).

Measured on 1M users / 59.5M events (generated, random order; 2 shared cores, load ~2.6):
``iter_events`` 4.0 s of CPU column by column (1.0 s of it reading the file), 1.8 s with
this kernel and the mapped file (``benchmarks/README.md``); the kernel 25 ms per 1M rows.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.io.userindex import UserIndex, lookup_block
from engine.jit import njit

__all__ = ["decode_batch", "REASON_ORDER"]

#: the reasons :func:`_decode` can give, in the order it checks them (a prefix-respecting
#: subsequence of ``EVENTS_REASONS``: the reasons the accepted types cannot produce are absent)
REASON_ORDER = ("null_user_id", "unknown_user", "null_event", "unknown_event", "null_ts", "early_ts", "future_ts",
                "unknown_channel", "missing_channel", "bad_value", "negative_value")
_UNIT_DIV = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_INDEX_TYPES = {pa.int8(): np.int8, pa.int16(): np.int16, pa.int32(): np.int32, pa.int64(): np.int64,
                pa.uint8(): np.uint8, pa.uint16(): np.uint16, pa.uint32(): np.uint32}


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


# every input array the kernel gets is read-only (as views of Arrow buffers are), dummies and
# converted indices too, so that one compiled signature serves every batch
_NO_BITS = _readonly(np.zeros(1, np.uint8))
_DUMMY_I8 = _readonly(np.zeros(1, np.int8))
_DUMMY_I64 = _readonly(np.zeros(1, np.int64))
_DUMMY_F64 = _readonly(np.zeros(1, np.float64))
_LOOKUP_BLOCK = 2048


@njit(inline="always")
def _bit(bits, off, i, nulls):
    """1 when row ``i`` holds a value, 0 when null (bit ``off + i`` of an Arrow validity
    bitmap, LSB first); always 1 for a column without nulls."""
    if not nulls:
        return 1
    j = off + i
    return (bits[j >> 3] >> (j & 7)) & 1


@njit(inline="always")
def _code(lut, k):
    """``lut[k]`` with out-of-range indices clipped into the table (numpy ``take(mode="clip")``)."""
    if k < 0:
        k = 0
    elif k >= lut.size:
        k = lut.size - 1
    return np.int64(lut[k])


@njit
def _rows(lo, hi, g, div, found, uid_bits, uid_off, uid_nulls, ev_idx, ev_bits, ev_off, ev_nulls, ev_lut,
          ts_raw, ts_bits, ts_off, ts_nulls, min_ts, as_of, has_ch, ch_idx, ch_bits, ch_off, ch_nulls, ch_lut,
          need_lut, has_val, val_raw, val_bits, val_off, val_nulls, max_value, purchase,
          has_item, item_raw, item_bits, item_off, item_nulls, no_item, first_code,
          reason, o_uidx, o_ts, o_ev, o_ch, o_val, o_item):
    """Rows ``lo .. hi-1`` (see :func:`_decode`); ``g``: good rows so far; returns the new count.

    Branch-free per row (the nulls and names of a real file follow no pattern a branch
    predictor could learn): every rule sets one bit of ``f``, and the row's reason is that
    of the lowest bit set (``first_code``); every row is written at ``g``, which moves on
    only past a good row.
    """
    for i in range(lo, hi):
        vu = _bit(uid_bits, uid_off, i, uid_nulls)
        u = found[i - lo]
        ve = _bit(ev_bits, ev_off, i, ev_nulls)
        ecode = _code(ev_lut, np.int64(ev_idx[i]))
        e = (ecode + 1) * ve - 1
        vt = _bit(ts_bits, ts_off, i, ts_nulls)
        t = (ts_raw[i] // div) * vt
        c = np.int64(-1)
        vc = 0
        ccode = np.int64(0)
        if has_ch:
            vc = _bit(ch_bits, ch_off, i, ch_nulls)
            ccode = _code(ch_lut, np.int64(ch_idx[i]))
            c = (ccode + 1) * vc - 1
        v = np.nan
        if has_val:
            raw = val_raw[i]
            v = raw if _bit(val_bits, val_off, i, val_nulls) else np.nan
        f = (1 - vu) | (np.int64(u < 0) << 1) | ((1 - ve) << 2) | ((ve & np.int64(ecode < 0)) << 3)
        f |= ((1 - vt) << 4) | (np.int64(t < min_ts) << 5) | (np.int64(t > as_of) << 6)
        f |= (vc & np.int64(ccode < 0)) << 7
        f |= (np.int64(need_lut[e + 1]) & np.int64(c < 0)) << 8
        f |= (np.int64(v == v) & np.int64(not (abs(v) <= max_value))) << 9
        f |= (np.int64(v < 0) & np.int64(e == purchase)) << 10
        reason[i] = first_code[f]
        o_uidx[g] = u
        o_ts[g] = t
        o_ev[g] = e
        o_ch[g] = c
        o_val[g] = v
        if has_item:
            raw_item = item_raw[i]
            o_item[g] = raw_item if _bit(item_bits, item_off, i, item_nulls) else no_item
        g += np.int64(f == 0)
    return g


@njit
def _decode(uid, uid_bits, uid_off, uid_nulls, is_table, lut, base, slots, bits,
            ev_idx, ev_bits, ev_off, ev_nulls, ev_lut,
            ts_raw, ts_bits, ts_off, ts_nulls, ts_div, min_ts, as_of,
            has_ch, ch_idx, ch_bits, ch_off, ch_nulls, ch_lut, need_lut,
            has_val, val_raw, val_bits, val_off, val_nulls, max_value, purchase,
            has_item, item_raw, item_bits, item_off, item_nulls, no_item, first_code,
            reason, o_uidx, o_ts, o_ev, o_ch, o_val, o_item):
    """Rows of one batch: ``reason[i]`` (0 = good, else the code of the first reason of
    :data:`REASON_ORDER` row ``i`` breaks: ``first_code[f]`` for the reasons' bit set ``f``)
    and the good rows' columns written compactly into ``o_*``; returns how many are good.

    ``*_bits``/``*_off``/``*_nulls``: a column's validity bitmap, its bit offset, and
    whether it has nulls at all; ``*_idx``: dictionary indices, mapped through ``*_lut``
    (codes, ``-1`` = not a known name; an index past the table reads its last entry);
    ``ts_raw // ts_div``: epoch seconds (floored), bad before ``min_ts`` or after ``as_of``; ``need_lut[e + 1]``: event code ``e``
    needs a channel; ``has_*``: the optional column exists.  Under a null the values
    read as an id that is looked up for nothing, a time 0, a value NaN, ``no_item``.
    """
    n = uid.shape[0]
    g = 0
    # the id look-ups (a cache miss each in a large table) run in a tight loop of their own, a
    # block of rows at a time, so that many are in flight at once; inside the long loop below
    # the processor would overlap only one or two
    found = np.empty(min(n, _LOOKUP_BLOCK), np.int64)
    for lo in range(0, n, _LOOKUP_BLOCK):
        hi = min(lo + _LOOKUP_BLOCK, n)
        lookup_block(uid, lo, hi, found, is_table, lut, base, slots, bits)
        # the time unit's divisor as a constant in each copy of the loop: a multiplication
        # instead of a 64-bit division per row
        args = (found, uid_bits, uid_off, uid_nulls, ev_idx, ev_bits, ev_off, ev_nulls, ev_lut,
                ts_raw, ts_bits, ts_off, ts_nulls, min_ts, as_of, has_ch, ch_idx, ch_bits, ch_off, ch_nulls, ch_lut,
                need_lut, has_val, val_raw, val_bits, val_off, val_nulls, max_value, purchase,
                has_item, item_raw, item_bits, item_off, item_nulls, no_item, first_code,
                reason, o_uidx, o_ts, o_ev, o_ch, o_val, o_item)
        if ts_div == 1_000_000:
            g = _rows(lo, hi, g, 1_000_000, *args)
        elif ts_div == 1_000:
            g = _rows(lo, hi, g, 1_000, *args)
        elif ts_div == 1:
            g = _rows(lo, hi, g, 1, *args)
        else:
            g = _rows(lo, hi, g, 1_000_000_000, *args)
    return g


def _values(arr: pa.Array, dtype) -> np.ndarray:
    """Zero-copy numpy view of a fixed-width array's values (its offset applied)."""
    return _readonly(np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr) + arr.offset)[arr.offset:])


def _validity(arr: pa.Array) -> tuple[np.ndarray, int, bool]:
    """``(bitmap bytes, bit offset, has nulls)`` of an array (a dummy bitmap when no nulls)."""
    if arr.null_count == 0 or arr.buffers()[0] is None:
        return _NO_BITS, 0, False
    return _readonly(np.frombuffer(arr.buffers()[0], dtype=np.uint8)), arr.offset, True


def _code_table(dictionary: pa.Array, names: tuple[str, ...]) -> np.ndarray:
    """Code of each dictionary entry (-1 = not in ``names``), plus a trailing -1."""
    idx = pc.index_in(dictionary.cast(pa.string()), value_set=pa.array(names, pa.string()))
    return np.append(idx.fill_null(-1).to_numpy(zero_copy_only=False), -1).astype(np.int8)


def _dict_ok(arr) -> bool:
    t = arr.type
    return (pa.types.is_dictionary(t) and t.index_type in _INDEX_TYPES and arr.dictionary.null_count == 0
            and len(arr.dictionary) < 127
            and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)))


def _indices(arr: pa.Array) -> np.ndarray:
    """A dictionary column's indices as int8 (a view when they are int8 already).

    Wider indices are clipped to ``0 .. len(dictionary)`` first, which maps every index the
    way the code table's clipped look-up (:func:`_code`) would.
    """
    raw = _values(arr, _INDEX_TYPES[arr.type.index_type])
    if raw.dtype == np.int8:
        return raw
    return _readonly(np.clip(raw, 0, len(arr.dictionary)).astype(np.int8))


def _column(batch: pa.RecordBatch, name: str):
    i = batch.schema.get_field_index(name)
    if i < 0:
        return None
    col = batch.column(i)
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def decode_batch(batch: pa.RecordBatch, index: UserIndex, as_of: int, reason_code: dict, *,
                 events: tuple[str, ...], channels: tuple[str, ...], needs_channel: np.ndarray,
                 max_value: float, purchase: int, no_item: int, min_ts: int):
    """``(uidx, ts, event, channel, value, item, reason)`` of a batch of the common types
    (see the module docstring), or None when a column has another type.

    ``reason_code``: bad-row reason name -> int8 code (``BadRows.code``); ``min_ts``: the earliest
    good instant (epoch seconds; ``engine.io.readers.EARLIEST_TS``); ``item`` is None
    without an ``item_id`` column.  The columns hold the good rows only, in input order.
    """
    uid, ev, ts = _column(batch, "user_id"), _column(batch, "event"), _column(batch, "ts")
    ch, val, item = _column(batch, "channel"), _column(batch, "value"), _column(batch, "item_id")
    if not (uid is not None and uid.type == pa.int64() and ts is not None and pa.types.is_timestamp(ts.type)
            and ev is not None and _dict_ok(ev) and (ch is None or _dict_ok(ch))
            and (val is None or val.type == pa.float64()) and (item is None or item.type == pa.int64())):
        return None
    n = batch.num_rows
    if n == 0 or any(c.buffers()[1] is None for c in (uid, ts, ev, *(c for c in (ch, val, item) if c is not None))):
        return None
    uid_bits = _validity(uid)
    ev_bits = _validity(ev)
    ts_bits = _validity(ts)
    if ch is not None:
        ch_args = (True, _indices(ch), *_validity(ch), _code_table(ch.dictionary, channels))
    else:
        ch_args = (False, _DUMMY_I8, _NO_BITS, 0, False, np.full(1, -1, np.int8))
    val_args = (True, _values(val, np.float64), *_validity(val)) if val is not None else \
        (False, _DUMMY_F64, _NO_BITS, 0, False)
    item_args = (True, _values(item, np.int64), *_validity(item)) if item is not None else \
        (False, _DUMMY_I64, _NO_BITS, 0, False)
    codes = [reason_code[r] for r in REASON_ORDER]
    first_code = np.zeros(1 << len(codes), np.int8)  # bit set of broken rules -> the first one's code
    for f in range(1, first_code.size):
        first_code[f] = codes[(f & -f).bit_length() - 1]
    need_lut = np.concatenate(([False], needs_channel[:len(events)])).astype(np.bool_)
    reason = np.empty(n, np.int8)
    o_uidx, o_ts = np.empty(n, np.int64), np.empty(n, np.int64)
    o_ev, o_ch = np.empty(n, np.int8), np.empty(n, np.int8)
    o_val = np.empty(n, np.float64)
    o_item = np.empty(n if item is not None else 1, np.int64)
    good = _decode(_values(uid, np.int64), *uid_bits, *index.arrays(),
                   _indices(ev), *ev_bits, _code_table(ev.dictionary, events),
                   _values(ts, np.int64), *ts_bits, np.int64(_UNIT_DIV[ts.type.unit]), np.int64(min_ts),
                   np.int64(as_of),
                   *ch_args, need_lut, *val_args, np.float64(max_value), np.int64(purchase),
                   *item_args, np.int64(no_item), first_code,
                   reason, o_uidx, o_ts, o_ev, o_ch, o_val, o_item)
    cols = [o_uidx, o_ts, o_ev, o_ch, o_val] + ([o_item] if item is not None else [])
    if good < n:
        cols = [c[:good].copy() for c in cols]  # the rejected rows' room is not kept
    return (*cols[:5], cols[5] if item is not None else None, reason)
