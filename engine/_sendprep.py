"""Inputs of ``send`` around the hot loop: reading the plan, the dry-run preview, exit rules."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from engine.errors import DispatchError, InputError, WinbackError
from engine.schema import DEFAULT_ACTIVITY, TIMESTAMP
from engine.timeutil import parse_as_of, to_epoch_seconds

__all__ = ["read_plan", "read_any", "plan_meta", "dry_run_preview", "reengaged_users", "campaign_start",
           "planned_as_sent"]

_FORMATS = {".arrow": "feather", ".feather": "feather", ".ipc": "feather",
            ".parquet": "parquet", ".csv": "csv"}


def read_any(path: str | os.PathLike, what: str) -> pa.Table:
    """Read an Arrow IPC, Parquet or CSV file (or a directory of them) into a table."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} {path} does not exist; pass the path of an Arrow, Parquet or CSV file.")
    fmt = "parquet" if path.is_dir() and any(path.rglob("*.parquet")) else _FORMATS.get(path.suffix.lower())
    if path.is_dir() and fmt is None:
        fmt = "feather"
    if fmt is None:
        raise InputError(f"{what} {path}: unknown file type {path.suffix!r}; use .arrow, .parquet or .csv.")
    if fmt == "csv":  # an empty field is null (as 'winback score -o x.csv' writes nulls), not ""
        import pyarrow.csv as pacsv

        fmt = ds.CsvFileFormat(convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    try:
        return ds.dataset(path, format=fmt).to_table()
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{what} {path} cannot be read as {fmt}: {exc}") from None


def read_plan(plan: str | os.PathLike | pa.Table) -> tuple[pa.Table, str]:
    """The plan as a table, and a name for it in error messages."""
    if isinstance(plan, pa.Table):
        return plan, "plan table"
    path = Path(plan)
    if path.suffix.lower() in (".arrow", ".feather", ".ipc") and path.is_file():
        import pyarrow.feather as feather  # keeps the schema metadata (campaign start)

        try:
            return feather.read_table(path), str(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"plan {path} is not an Arrow IPC file ({exc}); pass the plan.arrow of 'winback plan'.") from None
    table = read_any(path, "plan")
    side = path / "_winback_plan.json" if path.is_dir() else None
    if side is not None and side.exists():  # a partitioned plan: the whole plan's metadata
        try:
            meta = json.loads(side.read_text(encoding="utf-8")).get("winback.plan")
        except ValueError:
            meta = None
        if isinstance(meta, dict):
            table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                                   b"winback.plan": json.dumps(meta, default=str).encode()})
    return table, str(path)


def plan_meta(plan: pa.Table) -> dict:
    """The ``winback.plan`` schema metadata (campaign id, as_of, steps, policy) or ``{}``."""
    raw = (plan.schema.metadata or {}).get(b"winback.plan")
    try:
        meta = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def campaign_start(plan: pa.Table) -> float:
    """Epoch seconds the campaign starts: ``as_of`` in the ``winback.plan`` metadata,
    else the earliest ``send_at`` of step 0."""
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
    return float(send.min()) if send.size else 0.0


def reengaged_users(events: str | os.PathLike, plan: pa.Table) -> np.ndarray:
    """User ids with activity (session, purchase, click) after the campaign start."""
    table = read_any(events, "events")
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


def _mask(address: str | None) -> str:
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
        row["to"] = _mask(row.get("to"))
        row["send_at"] = str(send[i].as_py())
        out.append(row)
    return grouped, out


def planned_as_sent(plan: pa.Table, ledger) -> pa.Table:
    """The plan's planned rows; with a ``ledger`` path, only those the ledger marks ``sent``."""
    planned = plan.filter(pc.is_null(plan["reason"]))
    if ledger is None:
        return planned
    if not os.path.exists(ledger):
        raise InputError(f"ledger {ledger} does not exist; pass the ledger 'winback send' wrote, or leave "
                         "--ledger out to count every planned message as delivered")
    from engine.ledger import read_messages

    led = read_messages(ledger)
    sent = led.filter(pc.equal(led["state"], "sent"))["message_id"]
    return planned.filter(pc.is_in(planned["message_id"], value_set=sent))


class LedgerLock:
    """One sender per ledger: an exclusive ``flock`` on ``LEDGER.lock``, freed by the OS on a crash."""

    def __init__(self, ledger_path: Path):
        self.path = ledger_path.with_name(ledger_path.name + ".lock")
        self.fd: int | None = None

    def __enter__(self) -> "LedgerLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise DispatchError(
                f"another 'winback send' is using the ledger {self.path.with_suffix('')}; wait for it "
                "to finish (or stop it) before sending from the same ledger again") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
