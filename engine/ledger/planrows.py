"""The planned rows of a plan as the ledger takes them: checked before any ledger is made.

A planned message (``reason`` null) needs an id (unique), a send time, a user and a
channel; its columns are first read as 'winback plan' writes them
(:func:`engine.io.plans.normalised_plan`: ``send_at`` of any unit, epoch seconds or ISO 8601
text, digit user ids).  Anything else is one :class:`InputError` naming the
column and example message ids.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import InputError
from engine.io.plans import normalised_plan
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
    plan = normalised_plan(plan, source)  # ISO text send_at, digit user ids: the types 'winback plan' writes
    send_at = plan.column("send_at")
    if pa.types.is_timestamp(send_at.type):
        send_s = to_epoch_seconds(send_at).astype(np.float64)
    else:  # all null (no type): no send time
        send_s = np.asarray(send_at.to_numpy(zero_copy_only=False), dtype=np.float64)
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
    return plan, send_s

