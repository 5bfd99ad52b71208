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
from engine.schema import DEFAULT_ACTIVITY, PLAN_SCHEMA, PLAN_SUMMARY_FILE
from engine.tz import parse_as_of, to_epoch_seconds

__all__ = ["read_plan", "normalised_plan", "require_plan_columns", "plan_meta", "campaign_ids", "campaign_start",
           "reengaged_users"]


def read_plan(plan: str | os.PathLike | pa.Table) -> tuple[pa.Table, str]:
    """The plan as a table, and a name for it in error messages; its ``winback.plan``
    metadata checked (:func:`engine.io.planmeta.check_plan_meta`: :class:`InputError` when edited into nonsense)
    and its columns in the types 'winback plan' writes (:func:`normalised_plan`)."""
    table, name = _read_plan(plan)
    check_plan_meta(table, name)
    return normalised_plan(table, name), name


#: the instants a plan's ``send_at`` may hold: 1970 to 2199 (epoch seconds, UTC)
_FIRST, _LAST = 0, 7_258_118_400
#: plan columns beside :data:`engine.schema.PLAN_SCHEMA` that readers rely on
_PLAN_EXTRA = pa.schema([("timezone", pa.string()), ("best_hour_local", pa.int8()), ("theme", pa.string()),
                         ("explored", pa.bool_())])


def normalised_plan(table: pa.Table, name: str) -> pa.Table:
    """``table`` with each known plan column in the type 'winback plan' writes: a plan that went
    through another tool (ISO text for ``send_at``, digits for ``user_id``, ``yes``/``1`` for
    ``holdout``, large or dictionary text) reads as the original; a value that cannot be
    converted is one :class:`InputError` naming the column, the count and example rows.
    Numeric ``send_at`` is epoch seconds; a ``timezone`` the tz database does not know is
    null (the campaign's timezone, as the release checks treat it)."""
    from engine.io import coerce as co
    from engine.tz import from_epoch_seconds

    for field in [*PLAN_SCHEMA, *_PLAN_EXTRA]:
        if field.name not in table.column_names:
            continue
        col, want = table[field.name], field.type
        t = col.type
        if pa.types.is_null(t) or (t == want and not pa.types.is_timestamp(want) and field.name != "timezone"):
            continue
        try:
            if pa.types.is_timestamp(want):
                if pa.types.is_integer(t) or pa.types.is_floating(t):  # epoch seconds, as the ledger reads them
                    f = np.asarray(col.to_numpy(zero_copy_only=False), np.float64)
                    null = np.isnan(f)
                    secs = np.where(null, 0, np.round(np.nan_to_num(f))).astype(np.int64)
                    bad = ~null & ~((f >= _FIRST) & (f < _LAST))
                else:
                    secs, null, bad = co.to_epoch_seconds(col)
                    bad = bad | (~null & ((secs < _FIRST) | (secs >= _LAST)))
                if t == want and not bad.any():
                    continue
                new = from_epoch_seconds(np.where(bad, 0, secs), null | bad)
            else:
                new, bad = co.to_type(col, want)
                if field.name == "timezone":  # a name the tz database does not know: the campaign's timezone,
                    from engine.tz import is_timezone  # as the release checks and planning treat it

                    names = [v for v in pc.unique(new.drop_null()).to_pylist() if not is_timezone(v)]
                    if names:
                        new = pc.if_else(pc.is_in(new, value_set=pa.array(names, pa.string())),
                                         pa.scalar(None, pa.string()), new)
                    elif t == want:
                        continue
        except co.ColumnTypeError as exc:
            raise InputError(f"{name}: column {field.name!r} has {exc}; pass the plan 'winback plan' wrote, "
                             "or convert the column back") from None
        if bad.any():
            rows = np.flatnonzero(bad)
            ex = ", ".join(f"row {int(r)}: {col[int(r)].as_py()!r}" for r in rows[:3])
            what = "instants from 1970 to 2199" if field.name == "send_at" else want
            raise InputError(f"{name}: column {field.name!r} has {len(rows):,} values that are not "
                             f"{what} ({ex}); pass the plan 'winback plan' wrote, or fix those values")
        table = table.set_column(table.schema.get_field_index(field.name), field.name, new)
    return table


def require_plan_columns(plan: pa.Table, name: str, columns) -> None:
    """An :class:`InputError` when ``plan`` lacks any of ``columns`` (a hand-made or cut-down plan)."""
    missing = [c for c in columns if c not in plan.column_names]
    if missing:
        raise InputError(f"{name}: the plan has no column {', '.join(missing)} (it has "
                         f"{', '.join(plan.column_names[:12])}); pass the plan 'winback plan' wrote")


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
