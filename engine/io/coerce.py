"""Column normalisers for the data contract: Arrow arrays in, numpy arrays and masks out.

Each function takes one Arrow column (any of the types the contract accepts for it)
and returns the normalised values plus boolean masks: ``null`` (the value is
missing) and ``bad`` (present but not convertible; a "wrong type" bad row).  All
work is vectorised Arrow compute or numpy; nothing loops over rows in Python
except :func:`_cast_isolating`, which bisects only the rare strings that look
right but do not parse (``2026-02-31``).

A column whose *type* cannot hold the contract's values at all (``ts`` as
``bool``, ``event`` as ``int64``) raises :class:`ColumnTypeError`, which the
caller turns into an :class:`~engine.errors.InputError` naming the file.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "ColumnTypeError",
    "to_int64",
    "to_epoch_seconds",
    "to_codes",
    "to_float64",
    "to_bool",
    "to_type",
    "to_string",
    "is_stringlike",
    "csv_native",
    "to_text",
]

INT64_MIN = np.iinfo(np.int64).min
#: a whole number as text, also as a float writer spells it (``123.0``: pandas writes a column of
#: ids with a missing one so), which is read exactly, digit by digit, not through a float
_INT_RE = r"^\s*[+-]?\d{1,19}(\.0*)?\s*$"
_NUM_RE = r"^\s*[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf|infinity|nan)\s*$"
_TS_RE = (
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?"
    r"(Z|[+-]\d{2}(:?\d{2})?)?$"
)
_NS_DIGITS_RE = r"(:\d{2}\.\d{6})\d{1,3}"  # fraction digits past the microsecond
_TZ_SUFFIX_RE = r":\d{2}(\.\d{1,9})?(Z|[+-]\d{2}(:?\d{2})?)$"  # a zone after the time, not the date
_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")
_UNIT_DIV = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


class ColumnTypeError(TypeError):
    """A whole column has a type the contract cannot convert (message says which types work)."""


def _combine(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        return arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    return arr


def _decode(arr: pa.Array) -> pa.Array:
    """Dictionary -> its value type (only used for small inputs such as users columns)."""
    if pa.types.is_dictionary(arr.type):
        return arr.dictionary_decode()
    return arr


def is_stringlike(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _null_mask(arr: pa.Array) -> np.ndarray:
    if arr.null_count == 0:
        return np.zeros(len(arr), dtype=bool)
    return arr.is_null().to_numpy(zero_copy_only=False)


def _raw(arr: pa.Array) -> np.ndarray | None:
    """Zero-copy numpy view of a fixed-width integer/float/timestamp array's values buffer.

    Slots under a null hold whatever bytes the writer left: callers mask them.
    Returns None for other types.
    """
    t = arr.type
    if pa.types.is_timestamp(t) or pa.types.is_date64(t) or pa.types.is_duration(t):
        dtype = np.int64
    elif pa.types.is_integer(t):
        dtype = np.dtype(f"{'i' if pa.types.is_signed_integer(t) else 'u'}{t.bit_width // 8}")
    elif pa.types.is_floating(t):
        dtype = np.dtype(f"f{t.bit_width // 8}")  # not t.to_pandas_dtype(): that imports pandas
    else:
        return None
    buf = arr.buffers()[1]
    if buf is None:
        return None
    return np.frombuffer(buf, dtype=dtype, count=len(arr) + arr.offset)[arr.offset:]


def _np(arr: pa.Array, fill) -> np.ndarray:
    if arr.null_count:
        raw = _raw(arr)
        if raw is not None:  # one numpy pass instead of Arrow's fill_null + copy
            out = raw.copy()
            out[_null_mask(arr)] = fill
            return out
        arr = arr.fill_null(fill)
    return arr.to_numpy(zero_copy_only=False)


def to_string(arr) -> pa.Array:
    """Any string-like or dictionary-of-string column as ``string``; empty strings stay."""
    arr = _decode(_combine(arr))
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), pa.string())
    return arr.cast(pa.string())


def _start(arr):
    """``(array, type, length, null mask, bad mask)`` of a column about to be converted:
    chunks combined, dictionaries decoded, no row bad yet."""
    arr = _decode(_combine(arr))
    n = len(arr)
    return arr, arr.type, n, _null_mask(arr), np.zeros(n, dtype=bool)


def to_int64(arr) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer ids as ``int64``: returns ``(values, null, bad)``.

    Accepts any integer type (unsigned values above 2**63-1 are bad), floats that
    hold whole numbers below 2**53 in magnitude (above it a float64 cannot hold every
    integer, so ``float(2**53 + 1)`` is ``2**53``: two ids would read as one), and strings
    of decimal digits, optionally followed by a point and zeros (``"123.0"``).
    """
    arr, t, n, null, bad = _start(arr)
    if pa.types.is_null(t):
        return np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool), bad
    if pa.types.is_signed_integer(t):
        return _np(arr.cast(pa.int64()), 0), null, bad
    if pa.types.is_unsigned_integer(t):
        raw = _np(arr.cast(pa.uint64()), 0)
        bad = raw > np.uint64(np.iinfo(np.int64).max)
        return np.where(bad, 0, raw).astype(np.int64), null, bad
    if pa.types.is_floating(t):
        f = _np(arr.cast(pa.float64()), 0.0)
        null = null | np.isnan(f)  # NaN is how pandas spells a missing id
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(f) & (np.floor(f) == f) & (np.abs(f) < 2.0**53)
        bad = ~ok & ~null
        return np.where(ok, f, 0).astype(np.int64), null, bad
    if is_stringlike(t):
        s = arr.cast(pa.string())
        shape = _np(pc.match_substring_regex(s, _INT_RE), False)
        good = pa.array(shape)
        vals = np.zeros(n, dtype=np.int64)
        if shape.any():
            sub = pc.replace_substring_regex(pc.utf8_trim_whitespace(s.filter(good)), r"^\+|\.0*$", "")
            ints, ok = _cast_isolating(sub, pa.int64())
            idx = np.flatnonzero(shape)
            vals[idx] = ints
            shape[idx[~ok]] = False
        bad = ~shape & ~null
        return vals, null, bad
    raise ColumnTypeError(f"type {t} (expected an integer type, or strings of digits)")


def to_float64(arr) -> tuple[np.ndarray, np.ndarray]:
    """Numbers as ``float64`` with NaN for null: returns ``(values, bad)``; strings are parsed."""
    arr = _decode(_combine(arr))
    t = arr.type
    n = len(arr)
    if pa.types.is_null(t):
        return np.full(n, np.nan), np.zeros(n, dtype=bool)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return _np(arr.cast(pa.float64()), np.nan), np.zeros(n, dtype=bool)
    if is_stringlike(t):
        s = arr.cast(pa.string())
        null = _null_mask(s) | _np(pc.equal(pc.utf8_trim_whitespace(s), ""), False)
        shape = _np(pc.match_substring_regex(s, _NUM_RE, ignore_case=True), False)
        vals = np.full(n, np.nan)
        if shape.any():
            sub = pc.utf8_trim_whitespace(s.filter(pa.array(shape)))
            f, ok = _cast_isolating(sub, pa.float64())
            idx = np.flatnonzero(shape)
            vals[idx] = f
            shape[idx[~ok]] = False
        return vals, ~shape & ~null
    raise ColumnTypeError(f"type {t} (expected a number type, or strings of numbers)")


def to_bool(arr) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean-ish values: returns ``(values, null, bad)``.

    Accepts ``bool``; integers 0/1; strings true/false, t/f, yes/no, y/n, 1/0 (any
    case, surrounding spaces ignored).  Anything else is bad.
    """
    arr = _decode(_combine(arr))
    t = arr.type
    n = len(arr)
    null = _null_mask(arr)
    if pa.types.is_null(t):
        return np.zeros(n, dtype=bool), np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
    if pa.types.is_boolean(t):
        return _np(arr, False).astype(bool), null, np.zeros(n, dtype=bool)
    if pa.types.is_integer(t):
        v = _np(arr.cast(pa.int64()), 0)
        return v == 1, null, ~null & (v != 0) & (v != 1)
    if is_stringlike(t):
        s = pc.utf8_lower(pc.utf8_trim_whitespace(arr.cast(pa.string())))
        empty = _np(pc.equal(s, ""), False)
        yes = _np(pc.is_in(s, value_set=pa.array(_TRUE)), False)
        no = _np(pc.is_in(s, value_set=pa.array(_FALSE)), False)
        null = null | empty
        return yes, null, ~null & ~yes & ~no
    raise ColumnTypeError(f"type {t} (expected bool, 0/1, or strings true/false/yes/no)")


def to_epoch_seconds(arr) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Instants as ``int64`` seconds since the epoch, UTC: returns ``(seconds, null, bad)``.

    Timestamps of any unit (naive values are read as UTC; tz-aware ones are
    already UTC inside Arrow), dates (midnight UTC), and ISO 8601 strings
    (``2026-11-01``, ``2026-11-01 12:00:00``, ``2026-11-01T12:00:00.5+01:00``,
    ``...Z``).  Sub-second parts are floored.
    """
    arr, t, n, null, bad = _start(arr)
    if pa.types.is_null(t):
        return np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool), bad
    if pa.types.is_date(t):
        arr = arr.cast(pa.timestamp("ms"))
        t = arr.type
    if pa.types.is_timestamp(t):
        ints = _np(arr.cast(pa.int64()), 0)
        div = _UNIT_DIV[t.unit]
        return (ints // div if div != 1 else ints), null, bad
    if is_stringlike(t):
        s = pc.utf8_trim_whitespace(arr.cast(pa.string()))
        null = null | _np(pc.equal(s, ""), False)
        # Arrow parses at most 6 fraction digits into microseconds; the nanoseconds (what
        # pyarrow's CSV writer gives a timestamp[ns]) are cut, which floors them like the rest
        s = pc.replace_substring_regex(s, _NS_DIGITS_RE, r"\1")
        shape = _np(pc.match_substring_regex(s, _TS_RE), False)
        has_tz = _np(pc.match_substring_regex(s, _TZ_SUFFIX_RE), False)
        secs = np.zeros(n, dtype=np.int64)
        ok_all = np.zeros(n, dtype=bool)
        for group, typ in ((shape & has_tz, pa.timestamp("us", tz="UTC")), (shape & ~has_tz, pa.timestamp("us"))):
            if not group.any():
                continue
            idx = np.flatnonzero(group)
            us, ok = _cast_isolating(s.filter(pa.array(group)), typ)
            secs[idx] = us // 1_000_000
            ok_all[idx] = ok
        return secs, null, ~ok_all & ~null
    raise ColumnTypeError(f"type {t} (expected a timestamp, a date, or ISO 8601 strings)" + _epoch_hint(arr))


#: epoch-number magnitudes (absolute values) of instants between about 1973 and 2286, by unit
_EPOCH_UNITS = (("s", "seconds", 1e8, 1e10), ("ms", "milliseconds", 1e11, 1e13),
                ("us", "microseconds", 1e14, 1e16), ("ns", "nanoseconds", 1e17, 1e19))


def to_type(arr, typ: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """``arr`` as Arrow type ``typ`` (bool, an integer width, a float, a timestamp or string) by the
    contract's rules above, and the mask of values that could not be converted (null there);
    nulls stay null.  :class:`ColumnTypeError` when no value of ``arr``'s type could be."""
    if pa.types.is_boolean(typ):
        vals, null, bad = to_bool(arr)
        return pa.array(vals, pa.bool_(), mask=null | bad), bad
    if pa.types.is_integer(typ):
        vals, null, bad = to_int64(arr)
        info = np.iinfo(np.dtype(str(typ)))
        bad = bad | (~null & ((vals < info.min) | (vals > info.max)))
        return pa.array(np.where(bad, 0, vals), pa.int64(), mask=null | bad).cast(typ), bad
    if pa.types.is_floating(typ):
        vals, bad = to_float64(arr)
        return pa.array(vals, pa.float64(), mask=np.isnan(vals)).cast(typ), bad
    if pa.types.is_timestamp(typ):
        from engine.tz import from_epoch_seconds

        secs, null, bad = to_epoch_seconds(arr)
        return from_epoch_seconds(np.where(bad, 0, secs), null | bad), bad
    return to_string(arr), np.zeros(len(arr), bool)


def _epoch_hint(arr: pa.Array) -> str:
    """For numbers that may be epoch instants: which unit their size suggests and how to
    write them as timestamps (numbers are refused: seconds and milliseconds look alike)."""
    if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)):
        return ""
    v = np.abs(np.asarray(arr.drop_null().to_numpy(zero_copy_only=False), dtype=np.float64))
    v = v[np.isfinite(v)]
    if not v.size:
        return ""
    med = float(np.median(v))
    unit, name = next(((u, n) for u, n, lo, hi in _EPOCH_UNITS if lo <= med < hi), (None, None))
    if unit is None:
        return "; numbers are not read as instants"
    example = int(v[0]) if float(v[0]).is_integer() else v[0]
    return (f"; the numbers (e.g. {example}) look like epoch {name}, which winback does not "
            f"guess: write the column as a timestamp (in pyarrow: pa.compute.cast(column, pa.timestamp('{unit}', "
            "'UTC')))")



def to_codes(arr, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Names as ``int8`` codes (position in ``names``): returns ``(codes, null, unknown)``.

    Strings go through ``pc.index_in``; a dictionary column maps its (small)
    dictionary once and gathers the codes through its indices (any index type).
    Codes are ``-1`` where null or unknown.
    """
    arr = _combine(arr)
    t = arr.type
    n = len(arr)
    value_set = pa.array(names, type=pa.string())
    if pa.types.is_null(t):
        return np.full(n, -1, dtype=np.int8), np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
    if pa.types.is_dictionary(t):
        if not (is_stringlike(t.value_type) or pa.types.is_null(t.value_type)):
            raise ColumnTypeError(f"type {t} (expected strings or a dictionary of strings)")
        dictionary = arr.dictionary.cast(pa.string())
        lut = np.append(_np(pc.index_in(dictionary, value_set=value_set), -1), -1).astype(np.int8)
        ind = arr.indices
        null = _null_mask(arr)  # a null index
        if arr.dictionary.null_count:  # or an index of a null dictionary value (is_null() sees only the first)
            is_null_value = np.append(_np(arr.dictionary.is_null(), False), False)
            null = null | is_null_value[np.clip(_np(ind.cast(pa.int64()), len(dictionary)), 0, len(dictionary))]
        raw = _raw(ind)
        if raw is not None:  # gather through the raw indices; slots under a null are masked below
            codes = np.take(lut, raw, mode="clip")
        else:
            codes = lut[_np(ind.cast(pa.int64()), len(dictionary))]
        codes[null] = -1
        return codes, null, ~null & (codes < 0)
    if is_stringlike(t):
        if pa.types.is_string_view(t):
            arr = arr.cast(pa.string())  # index_in has no string_view kernel
        null = _null_mask(arr)
        codes = _np(pc.index_in(arr, value_set=value_set), -1).astype(np.int8)
        return codes, null, ~null & (codes < 0)
    raise ColumnTypeError(f"type {t} (expected strings or a dictionary of strings)")


def _cast_isolating(arr: pa.Array, typ: pa.DataType) -> tuple[np.ndarray, np.ndarray]:
    """Cast ``arr`` to ``typ`` (int64/float64/timestamp); returns ``(values, ok)``.

    Casting is all-or-nothing in Arrow, so a failure bisects the array until the
    values that do not parse are isolated; the cost is one cast per half that
    holds a bad value, i.e. O(k log n) casts for k bad values among n.
    """
    n = len(arr)
    out = np.zeros(n, dtype=np.float64 if pa.types.is_floating(typ) else np.int64)
    ok = np.zeros(n, dtype=bool)
    stack = [(0, n)]
    while stack:
        lo, hi = stack.pop()
        if hi <= lo:
            continue
        part = arr.slice(lo, hi - lo)
        try:
            cast = part.cast(typ)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            if hi - lo == 1:
                continue
            mid = (lo + hi) // 2
            stack.append((lo, mid))
            stack.append((mid, hi))
            continue
        if pa.types.is_timestamp(typ):
            cast = cast.cast(pa.int64())
        out[lo:hi] = _np(cast, 0)
        ok[lo:hi] = True
    return out, ok


def fix_utf8(arr) -> tuple[pa.Array, np.ndarray | None]:
    """A string column whose every value is valid UTF-8: returns ``(array, bad)``.

    ``bad`` is None when the column was valid (or is not text; the common case, one
    validation pass); otherwise a mask of the rows whose bytes are not UTF-8, and the
    array has those values decoded with U+FFFD replacement characters, so a message or
    a quarantine file can show them.  Files read without UTF-8 checks (CSV) or written
    by tools that do not check (Arrow, Parquet) can hold such bytes."""
    arr = _combine(arr)
    t = arr.type
    if pa.types.is_dictionary(arr.type):
        t = arr.type.value_type
        if not is_stringlike(t):
            return arr, None
        try:
            arr.dictionary.validate(full=True)
            return arr, None
        except pa.ArrowInvalid:
            arr = arr.dictionary_decode()
    if not is_stringlike(t):
        return arr, None
    try:
        arr.validate(full=True)
        return arr, None
    except pa.ArrowInvalid:
        pass
    if not pa.types.is_string(arr.type):
        arr = arr.cast(pa.string())  # large_string / string_view: same checks below
    vals = arr.view(pa.binary()).to_pylist()  # the slow path, only for a column with bad bytes
    n = len(vals)
    bad = np.zeros(n, dtype=bool)
    fixed = []
    for i, v in enumerate(vals):
        if v is None:
            fixed.append(None)
            continue
        try:
            fixed.append(v.decode("utf-8"))
        except UnicodeDecodeError:
            bad[i] = True
            fixed.append(v.decode("utf-8", errors="replace"))
    return pa.array(fixed, pa.string()), bad


def csv_native(t: pa.DataType) -> bool:
    """True for the types pyarrow's CSV writer writes as they are (and casts to text)."""
    if pa.types.is_dictionary(t):
        return csv_native(t.value_type)
    return (pa.types.is_null(t) or pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t)
            or pa.types.is_decimal(t) or (pa.types.is_temporal(t) and not pa.types.is_interval(t))
            or pa.types.is_string(t) or pa.types.is_large_string(t))


def _json_text(arr: pa.Array) -> pa.Array:
    import json

    def plain(v):
        return v.hex() if isinstance(v, bytes) else str(v)

    return pa.array([None if v is None else json.dumps(v, default=plain, ensure_ascii=False)
                     for v in arr.to_pylist()], pa.string())


def to_text(arr, *, list_sep: str = "|") -> pa.Array:
    """Any column as ``string`` for people and CSV files; null stays null.

    Types CSV holds are cast as Arrow casts them; a list of such values is its values
    joined by ``list_sep``; string_view is cast; bytes are hex; anything else (structs,
    maps, lists of lists or structs, intervals) is JSON text.  Only pass-through columns
    of a users file hold the last kinds, and such inputs are small: they go through
    Python values.
    """
    arr = _combine(arr)
    t = arr.type
    if pa.types.is_dictionary(t):
        arr, t = arr.dictionary_decode(), t.value_type
    if csv_native(t):
        return arr.cast(pa.string())
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        if csv_native(t.value_type):
            if not pa.types.is_list(t):
                arr = arr.cast(pa.list_(t.value_type))
            return pc.binary_join(arr.cast(pa.list_(pa.string())), list_sep)
        return _json_text(arr)
    if pa.types.is_string_view(t):
        return arr.cast(pa.string())
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t) \
            or pa.types.is_binary_view(t):
        return pa.array([None if v is None else v.hex() for v in arr.to_pylist()], pa.string())
    return _json_text(arr)
