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


def dry_run_summary(summary, table: pa.Table, source: str, providers, ledger_path, *, events=None,
                    replan: bool = False):
    """``summary`` (a :class:`engine.sending.summary.DispatchSummary`) filled with what a send of
    ``table`` would do, touching nothing: the same refusals as a send (plan rows, --events,
    providers, a re-plan), the preview per channel/step/hour with masked samples, the
    messages new to the ledger, and how many --events would make exit or suppress."""
    import os

    from engine.errors import ConfigError
    from engine.io.plans import campaign_start
    from engine.ledger.store import Ledger, check_plan_columns, check_plan_rows
    from engine.sending.exits import ExitWatch

    check_plan_columns(table, source)  # what the send would refuse, the dry run refuses
    check_plan_rows(table, source)
    if events:
        watch = ExitWatch(None, events).read()
        summary.exited = watch.would_exit(table, campaign_start(table))
        summary.suppressed = watch.would_suppress(table)
        summary.notes = watch.notes
    summary.dry_run, summary.samples = dry_run_preview(table)
    if isinstance(providers, (str, os.PathLike)):
        from engine.sending.providers import load_providers

        configured = load_providers(providers)
        needed = sorted(set(summary.dry_run.column("channel").to_pylist()))
        missing = [c for c in needed if c not in configured]
        if missing:
            raise ConfigError(f"the plan has messages on channel {', '.join(missing)} but "
                              f"{providers} has no [channels.{missing[0]}]; add it or re-plan.")
    if ledger_path.exists():  # what a send would load: new messages, and a re-plan's refusal
        from engine.io.plans import campaign_ids

        with Ledger(ledger_path) as ledger:
            summary.loaded = ledger.load_plan(table, source=source, replan=replan, dry_run=True)
            summary.replanned = dict(ledger.replanned)
            summary.gave_up = ledger.gave_up(campaign_ids(table))  # what --retry-dead would revive
    else:
        summary.loaded = int(summary.dry_run.column("messages").to_numpy().sum()) if summary.dry_run.num_rows else 0
    return summary
