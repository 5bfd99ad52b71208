"""The dry-run preview of ``winback send --dry-run``: counts per channel, step and UTC hour,
and a few samples with masked addresses."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.schema import TIMESTAMP
from engine.tz import to_epoch_seconds

__all__ = ["dry_run_preview", "mask_address"]


def mask_address(address: str | None) -> str:
    if not address:
        return ""
    if "@" in address:
        name, _, domain = address.partition("@")
        return f"{name[:1]}***@{domain}"
    return address[:3] + "***" + address[-2:] if len(address) > 6 else "***"


def dry_run_preview(plan: pa.Table, samples_per_channel: int = 2) -> tuple[pa.Table, list[dict]]:
    """Counts of planned messages per channel, step and UTC hour; a few masked samples."""
    if "reason" in plan.column_names:
        plan = plan.filter(pc.is_null(plan.column("reason")))
    send = plan.column("send_at")
    if pa.types.is_timestamp(send.type):
        secs = to_epoch_seconds(send)
    else:
        secs = np.asarray(send.to_numpy(zero_copy_only=False), dtype=np.int64)
    hour = pa.array((secs // 3600 * 3600) * 1_000_000, type=TIMESTAMP)
    step = plan.column("step") if "step" in plan.column_names else pa.nulls(plan.num_rows, pa.string())
    grouped = pa.table({"channel": plan.column("channel"), "step": step, "hour": hour}).group_by(
        ["channel", "step", "hour"]).aggregate([([], "count_all")])
    grouped = grouped.rename_columns(["channel", "step", "hour", "messages"]).sort_by(
        [("hour", "ascending"), ("channel", "ascending"), ("step", "ascending")])
    out: list[dict] = []
    seen: dict[str, int] = {}
    cols = [c for c in ("message_id", "user_id", "channel", "step", "variant", "to", "subject")
            if c in plan.column_names]
    for i, row in enumerate(plan.select(cols).slice(0, 10_000).to_pylist()):
        ch = row.get("channel")
        if seen.get(ch, 0) >= samples_per_channel:
            continue
        seen[ch] = seen.get(ch, 0) + 1
        row["to"] = mask_address(row.get("to"))
        row["send_at"] = str(send[i].as_py())
        out.append(row)
    return grouped, out
