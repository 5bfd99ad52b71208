"""Report inputs and outputs beside the lift: feedback events, and the ads removal export.

``with_feedback``: the events of a ``winback receive`` directory (or an events file)
added to the outcome events, on the contract's columns plus ``message_id`` and the
survey's ``reason``.

``ads_removal``: users who were put in an ad audience by this campaign (a delivered
``ads`` message) and no longer belong there: they came back (re-engaged in the
window), unsubscribed or complained, or the ledger suppresses them on any channel.
The report writes their rows for each platform in the upload format
(:mod:`engine.sending.audience`: same normalisation and hashing as the audience, so
the platform finds them), split at the platform's limit:
``ads-removal-meta-00001.csv``, ``ads-removal-google-00001.csv``, ...
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import InputError
from engine.sending.audience import COLUMNS, PLATFORMS, audience_row, split_rows

__all__ = ["with_feedback", "ads_removal"]

_COLS = {"user_id": pa.int64(), "ts": None, "event": pa.string(), "channel": pa.string(), "value": pa.float64(),
         "message_id": pa.string(), "reason": pa.string()}


def _plain(t: pa.Table) -> pa.Table:
    cols = {}
    for name, typ in _COLS.items():
        if name in t.column_names:
            c = t[name]
            if pa.types.is_dictionary(c.type):
                c = c.cast(c.type.value_type)
            cols[name] = c if typ is None else c.cast(typ)
        else:
            cols[name] = pa.nulls(t.num_rows, typ or pa.timestamp("us", tz="UTC"))
    return pa.table(cols)


def with_feedback(events: pa.Table, feedback) -> pa.Table:
    """``events`` plus the events of ``feedback`` (a directory of ``part-*.arrow`` files
    from ``winback receive``, or one events file)."""
    from engine.io.readers import read_table

    path = Path(feedback)
    if not path.exists():
        raise InputError(f"feedback {path} does not exist; pass the output directory of 'winback receive'")
    if path.is_dir():
        parts = sorted(path.glob("part-*.arrow"))
        tables = [read_table(p, "feedback events") for p in parts]
    else:
        tables = [read_table(path, "feedback events")]
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return events
    for t in tables:
        for col in ("user_id", "ts", "event"):
            if col not in t.column_names:
                raise InputError(f"feedback {path} has no column {col!r}; pass the directory 'winback receive' wrote")
    from engine.reporting.outcome_events import normalise

    tables = [normalise(t, f"feedback {path}") for t in tables]
    return pa.concat_tables([_plain(events)] + [_plain(t) for t in tables])


def ads_removal(plan_t: pa.Table, msgs: pa.Table, users: np.ndarray, flags: dict, ledger) -> tuple[dict, dict]:
    """(summary, files) of the removal export; ({}, {}) when the campaign has no ads message."""
    if "channel" not in msgs.column_names or msgs.num_rows == 0:
        return {}, {}
    ads = msgs.filter(pc.equal(msgs["channel"].cast(pa.string()), "ads"))
    if ads.num_rows == 0:
        return {}, {}
    rows = plan_t.filter(pc.is_in(plan_t["message_id"], value_set=ads["message_id"])).select(["user_id", "to"])
    pos = np.searchsorted(users, rows["user_id"].to_numpy())
    why = np.full(rows.num_rows, None, dtype=object)
    why[flags["reengaged"][pos]] = "came_back"
    why[flags["unsubscribed"][pos] & (why == None)] = "opted_out"  # noqa: E711 - elementwise
    if ledger is not None and os.path.exists(ledger):
        from engine.ledger.store import read_suppressions

        sup = read_suppressions(ledger)
        if sup.num_rows and "user_id" in sup.column_names:
            hit = pc.is_in(rows["user_id"], value_set=sup["user_id"].drop_null().cast(pa.int64())) \
                .to_numpy(zero_copy_only=False)
            why[hit & (why == None)] = "suppressed"  # noqa: E711
    keep = why != None  # noqa: E711
    to = rows["to"].to_pylist()
    files, counts = {}, {}
    for platform in PLATFORMS:
        out = [r for r in (audience_row(to[i] or "{}", platform) for i in np.nonzero(keep)[0]) if r is not None]
        for k, part in enumerate(split_rows(out, platform) if out else [], start=1):
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows([COLUMNS[platform]] + part)
            files[f"ads-removal-{platform}-{k:05d}.csv"] = buf.getvalue().encode("utf-8")
        counts[platform] = len(out)
    summary = {"audience": int(rows.num_rows), "remove": int(keep.sum()),
               "by_reason": {r: int((why == r).sum()) for r in ("came_back", "opted_out", "suppressed")},
               "rows": counts, "files": sorted(files)}
    return summary, files
