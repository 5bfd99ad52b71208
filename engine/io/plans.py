"""Plan files: reading a plan (one Arrow file or a partitioned directory), its ``winback.plan``
metadata, the campaign start, and the users who came back after it.

Every instant is epoch seconds, UTC.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import InputError, WinbackError
from engine.io.meta import PLAN, read_meta, with_meta
from engine.io.planmeta import check_plan_meta
from engine.io.readers import read_table
from engine.io.source import _unique_names
from engine.schema import DEFAULT_ACTIVITY, PLAN_SUMMARY_FILE
from engine.tz import parse_as_of, to_epoch_seconds

__all__ = ["read_plan", "plan_meta", "campaign_ids", "campaign_start", "reengaged_users"]


def read_plan(plan: str | os.PathLike | pa.Table) -> tuple[pa.Table, str]:
    """The plan as a table, and a name for it in error messages; its ``winback.plan``
    metadata checked (:func:`engine.io.planmeta.check_plan_meta`: :class:`InputError` when edited into nonsense)."""
    table, name = _read_plan(plan)
    check_plan_meta(table, name)
    return table, name


def _read_plan(plan: str | os.PathLike | pa.Table) -> tuple[pa.Table, str]:
    if isinstance(plan, pa.Table):
        return plan, "plan table"
    path = Path(plan)
    if path.suffix.lower() in (".arrow", ".feather", ".ipc") and path.is_file():
        import pyarrow.feather as feather  # keeps the schema metadata (campaign start)

        try:
            table = feather.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"plan {path} is not an Arrow IPC file ({exc}); pass the plan.arrow of 'winback plan'.") from None
        _unique_names(path, table.schema)
        return table, str(path)
    table = read_table(path, "plan")
    side = path / PLAN_SUMMARY_FILE if path.is_dir() else None
    if side is not None and side.exists():  # a partitioned plan: the whole plan's metadata
        try:
            meta = json.loads(side.read_text(encoding="utf-8")).get("winback.plan")
        except ValueError:
            meta = None
        if isinstance(meta, dict):
            table = with_meta(table, PLAN, meta)
    return table, str(path)


def campaign_ids(plan: pa.Table) -> list[str]:
    """The distinct campaign ids of ``plan``'s rows (nulls left out)."""
    if "campaign_id" not in plan.column_names:
        return []
    return [c for c in pc.unique(plan.column("campaign_id")).to_pylist() if c is not None]


def plan_meta(plan: pa.Table) -> dict:
    """The ``winback.plan`` schema metadata (campaign id, as_of, steps, policy) or ``{}``."""
    return read_meta(plan, PLAN)


def campaign_start(plan: pa.Table) -> float:
    """Epoch seconds the campaign starts: ``as_of`` in the ``winback.plan`` metadata,
    else the earliest ``send_at`` of step 0 (of the rows with one; 0.0 when none has)."""
    as_of = plan_meta(plan).get("as_of")
    if as_of is not None:
        try:
            return float(parse_as_of(as_of))
        except (ValueError, TypeError, WinbackError):
            pass
    send = to_epoch_seconds(plan.column("send_at")) if plan.num_rows else np.zeros(0, np.int64)
    if "step_index" in plan.column_names and plan.num_rows:
        first = plan.column("step_index").to_numpy(zero_copy_only=False) == 0
        if first.any():
            send = send[first]
    send = send[send != np.iinfo(np.int64).min]  # rows with no message (send_at null) start nothing
    return float(send.min()) if send.size else 0.0


def reengaged_users(events: str | os.PathLike, plan: pa.Table) -> np.ndarray:
    """User ids with activity (session, purchase, click) after the campaign start."""
    table = read_table(events, "events")
    for col in ("user_id", "ts", "event"):
        if col not in table.column_names:
            raise InputError(f"events {events}: no column {col!r}; an events file needs user_id, ts and event.")
    start = campaign_start(plan)
    event = table.column("event")
    if pa.types.is_dictionary(event.type):
        event = event.cast(pa.string())
    ts = table.column("ts")
    if not pa.types.is_timestamp(ts.type):
        raise InputError(f"events {events}: column ts is {ts.type}, not a timestamp.")
    secs = to_epoch_seconds(ts)
    active = pc.is_in(event, value_set=pa.array(list(DEFAULT_ACTIVITY))).to_numpy(zero_copy_only=False)
    keep = active & (secs > start)
    uid = table.column("user_id").to_numpy()
    return np.unique(uid[keep])
