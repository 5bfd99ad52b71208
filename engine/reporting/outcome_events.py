"""The outcome events of ``winback report`` in the types the report reads.

An outcome events file (``winback simulate``, ``winback receive``, or the product's own
events) may spell its columns in any of the types the data contract accepts (user ids as
text, timestamps as ISO text or dates, names as dictionaries, an empty CSV whose columns
have no type).  :func:`normalise` gives ``user_id`` int64, ``ts`` timestamp[us, UTC],
``event``/``channel``/``message_id`` string and ``value`` float64 (the conversions of
:mod:`engine.io.coerce`), or one :class:`~engine.errors.InputError` naming the file, the
column, how many rows and a few examples when a row has no usable user id or time: the
report would otherwise count it nowhere, or stop on it with a traceback.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.errors import InputError
from engine.io import coerce as co
from engine.io.badrows import format_examples
from engine.tz import from_epoch_seconds

__all__ = ["normalise"]

_EXAMPLES = 5


def _names(col, column: str, where: str) -> pa.Array:
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    t = col.type
    if pa.types.is_null(t):
        return pa.nulls(len(col), pa.string())
    if pa.types.is_dictionary(t) and (co.is_stringlike(t.value_type) or pa.types.is_null(t.value_type)):
        return col.cast(pa.string())
    if co.is_stringlike(t):
        return col.cast(pa.string())
    raise InputError(f"{where}: column {column!r} has type {t} (expected strings or a dictionary of strings); "
                     "write the names as text (see docs/data-contract.md) and rerun")


def _refuse(events: pa.Table, where: str, column: str, mask: np.ndarray, what: str) -> None:
    idx = np.flatnonzero(mask)
    examples = format_examples(events, idx[:_EXAMPLES])
    raise InputError(f"{where}: {len(idx):,} of {events.num_rows:,} outcome events rows have {what} in column "
                     f"{column!r}, e.g. {examples}; the report cannot tell whose or when they were, so fix or drop "
                     "these rows and rerun")


def normalise(events: pa.Table, where: str) -> pa.Table:
    """``events`` with its contract columns converted (see the module docstring); other columns
    unchanged.  ``where`` names the input in messages (its path, or ``table``)."""
    cols = {}
    try:
        column = "user_id"
        uid, null, bad = co.to_int64(events["user_id"])
        if null.any():
            _refuse(events, where, column, null, "no user_id")
        if bad.any():
            _refuse(events, where, column, bad, "a user_id that is not a whole number in the int64 range")
        cols["user_id"] = pa.array(uid, pa.int64())
        column = "ts"
        secs, null, bad = co.to_epoch_seconds(events["ts"])
        if null.any():
            _refuse(events, where, column, null, "no timestamp")
        if bad.any():
            _refuse(events, where, column, bad, "a ts that is not a timestamp or an ISO 8601 time")
        cols["ts"] = from_epoch_seconds(secs)
        column = "value"
        if "value" in events.column_names:
            value, bad = co.to_float64(events["value"])
            if bad.any():
                _refuse(events, where, column, bad, "a value that is not a number")
            cols["value"] = pa.array(value, pa.float64(), mask=np.isnan(value))
    except co.ColumnTypeError as exc:
        raise InputError(f"{where}: column {column!r} of the outcome events has {exc}; convert the column "
                         "(see docs/data-contract.md) and rerun") from None
    for name in ("event", "channel"):
        if name in events.column_names:
            cols[name] = _names(events[name], name, where)
    if "message_id" in events.column_names:  # an empty CSV column has no type
        cols["message_id"] = co.to_string(events["message_id"])
    out = events
    for name, arr in cols.items():
        out = out.set_column(out.schema.get_field_index(name), name, arr)
    return out
