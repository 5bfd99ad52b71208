"""The planned rows of a plan as the ledger takes them: checked before any ledger is made.

A planned message (``reason`` null) needs an id (unique), a send time, a user and a
channel; ``send_at`` may be a timestamp of any unit, epoch seconds, or ISO 8601 text
(a plan re-saved by another tool).  Anything else is one :class:`InputError` naming the
column and example message ids.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import InputError
from engine.tz import to_epoch_seconds

__all__ = ["check_plan_rows"]


def check_plan_rows(plan: pa.Table, source: str) -> None:
    """An :class:`InputError` naming the rows when a planned message (``reason`` null) has
    no id, a repeated id, no send time, no user or no channel (before any ledger is made)."""
    if "reason" in plan.column_names:
        plan = plan.filter(pc.is_null(plan.column("reason")))
    if plan.num_rows:
        _planned_rows(plan, source)


def _planned_rows(plan: pa.Table, source: str) -> tuple[pa.Table, np.ndarray]:
    """The planned rows checked (see :func:`check_plan_rows`), ``user_id`` as int64, and
    their send times in epoch seconds (float)."""
    ids = plan.column("message_id")
    nulls = ids.null_count
    if nulls:
        raise InputError(
            f"{source}: column message_id is null in {nulls} planned rows. "
            "Every planned message needs an id; rewrite the plan with 'winback plan'."
        )
    if pc.count_distinct(ids).as_py() != plan.num_rows:
        counts = pc.value_counts(ids)
        dup = [v["values"] for v in counts.to_pylist() if v["counts"] > 1]
        raise InputError(
            f"{source}: column message_id repeats in {len(dup)} ids among {plan.num_rows} "
            f"planned rows, e.g. {dup[:5]}. Message ids must be unique; rewrite the plan "
            "with 'winback plan'."
        )
    send_at = plan.column("send_at")
    if pa.types.is_timestamp(send_at.type):
        send_s = to_epoch_seconds(send_at).astype(np.float64)
    elif pa.types.is_integer(send_at.type) or pa.types.is_floating(send_at.type):
        send_s = np.asarray(send_at.to_numpy(zero_copy_only=False), dtype=np.float64)
    else:  # ISO text (a plan re-saved as CSV or by another tool), dates
        secs, null, unreadable = _instants(send_at, source)
        send_s = np.where(null | unreadable, np.nan, secs.astype(np.float64))
    if np.isnan(send_s).any() or (send_s < -1e17).any():
        bad = np.flatnonzero(np.isnan(send_s) | (send_s < -1e17))
        raise InputError(
            f"{source}: column send_at is null or not an instant in {bad.size} planned rows, e.g. message ids "
            f"{[ids[int(i)].as_py() for i in bad[:5]]}. Every planned message needs a send time."
        )
    for name in ("user_id", "channel"):  # the ledger cannot hold a message without them
        if name in plan.column_names and plan.column(name).null_count:
            bad = np.flatnonzero(plan.column(name).is_null().to_numpy(zero_copy_only=False))
            raise InputError(
                f"{source}: column {name} is null in {bad.size} planned rows, e.g. message ids "
                f"{[ids[int(i)].as_py() for i in bad[:5]]}. Every planned message needs a user and a "
                "channel; rewrite the plan with 'winback plan'.")
    if "user_id" in plan.column_names and not pa.types.is_integer(plan.column("user_id").type):
        from engine.io import coerce

        try:
            uid, _, badid = coerce.to_int64(plan.column("user_id"))
        except coerce.ColumnTypeError as exc:
            raise InputError(f"{source}: column user_id has {exc}; rewrite the plan with 'winback plan'") from None
        if badid.any():
            bad = np.flatnonzero(badid)
            raise InputError(
                f"{source}: column user_id is not a whole number in {bad.size} planned rows, e.g. "
                f"{[(ids[int(i)].as_py(), plan.column('user_id')[int(i)].as_py()) for i in bad[:3]]}; "
                "rewrite the plan with 'winback plan'.")
        plan = plan.set_column(plan.schema.get_field_index("user_id"), "user_id", pa.array(uid, pa.int64()))
    return plan, send_s


def _instants(arr, source: str):
    """``(seconds, null, unreadable)`` of a plan column of instants in any contract shape."""
    from engine.io import coerce

    try:
        return coerce.to_epoch_seconds(arr)
    except coerce.ColumnTypeError as exc:
        raise InputError(f"{source}: column send_at has {exc}; rewrite the plan with 'winback plan'") from None
