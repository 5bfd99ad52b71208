"""Assembling the plan table: one row per (user, step) from the planning state's columns,
with addresses, labels and the rendered subject and body of every planned message."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import ConfigError
from engine.planning.ads import ads_identifiers
from engine.planning.assign import labels as _labels
from engine.planning.campaign import Campaign
from engine.planning.content import ITEM_FIELD
from engine.planning.columns import col as _col
from engine.planning.offers import OFFER_FIELDS, OWN_FIELDS, offer_columns, offer_context
from engine.planning.survey import survey_fields
from engine.planning.templates import bare_fields, render, template_fields
from engine.planning.variants import all_texts, cell_text, template_names
from engine.schema import ADDRESS_COLUMN, CHANNELS, PLAN_SCHEMA, PROVIDER_CHANNELS, SKIP_REASONS as REASONS
from engine.tz import from_epoch_seconds

__all__ = ["assemble"]


def _strings(table: pa.Table, name: str) -> pa.Array:
    if name not in table.column_names or pa.types.is_null(table[name].type):
        return pa.nulls(table.num_rows, pa.string())
    return pc.cast(table[name], pa.string()).combine_chunks()


def _ads_to(scores: pa.Table, ch: np.ndarray, n: int) -> pa.Array:
    """Per user, the ads identifiers JSON (only for users with an ads row; else null)."""
    ads = PROVIDER_CHANNELS.index("ads")
    who = np.unique(np.nonzero(ch == ads)[0] % n) if n else np.zeros(0, np.int64)
    if not len(who):
        return pa.nulls(n, pa.string())
    pos = np.full(n, -1, np.int64)
    pos[who] = np.arange(len(who))
    return ads_identifiers(scores.take(pa.array(who))).take(pa.array(np.maximum(pos, 0), mask=pos < 0))


def assemble(scores, cmp, uid, holdout, variant, cols, start, zone, zones, content=None) -> pa.Table:
    n, n_steps = len(uid), len(cmp.steps)
    reason = np.concatenate(cols["reason"])
    ch = np.concatenate(cols["channel"])
    send = np.concatenate(cols["send_at"])
    step_idx = np.repeat(np.arange(n_steps, dtype=np.int16), n)
    rows_user = np.tile(np.arange(n), n_steps)
    planned = reason == 0
    uid_all = pa.array(uid[rows_user], pa.int64())
    mid = pc.binary_join_element_wise(cmp.id, pc.cast(uid_all, pa.string()),
                                      pc.cast(pa.array(step_idx), pa.string()), "-")
    # every channel's address in one array (channel-major), then one take per row; for
    # ads, every identifier of the user (engine.planning.ads)
    addresses = pa.concat_arrays([_strings(scores, ADDRESS_COLUMN[c]) for c in CHANNELS] + [_ads_to(scores, ch, n)])
    at = np.where(ch >= 0, ch * n + rows_user, 0)
    to = addresses.take(pa.array(at, mask=ch < 0)) if n else pa.nulls(0, pa.string())
    table = pa.table({
        "message_id": mid, "campaign_id": _labels(np.zeros(len(reason), np.int32), [cmp.id]),
        "user_id": uid_all, "step": _labels(step_idx, [s.name for s in cmp.steps]), "step_index": pa.array(step_idx),
        "variant": _labels(np.tile(variant, n_steps), [v.name for v in cmp.variants]),
        "channel": _labels(ch, list(PROVIDER_CHANNELS)),
        "send_at": from_epoch_seconds(np.where(planned, send, 0), null_mask=~planned),
        "reason": _labels(np.where(planned, -1, reason.astype(np.int64) - 1), list(REASONS[1:])),
        "holdout": pa.array(np.tile(holdout, n_steps)),
        "expected_value": pa.array(np.concatenate(cols["ev"])),
        "to": to, "template": _labels(step_idx.astype(np.int64) * len(cmp.variants) + np.tile(variant, n_steps),
                                      [t for per_step in template_names(cmp) for t in per_step]),
        "subject": pa.nulls(len(reason), pa.string()), "body": pa.nulls(len(reason), pa.string()),
        "exit_on": _labels(step_idx, [s.exit_on for s in cmp.steps]),
        "timezone": _labels(zone[rows_user], zones),
        "best_hour_local": pa.array(_col(scores, "best_hour_local", 12, np.int8)[rows_user]),
        "send_time_confidence": pa.array(_col(scores, "send_time_confidence", 0.0, np.float32)[rows_user]),
    })
    extra = content.columns() if content is not None else {
        "theme": pa.nulls(len(reason), pa.string()),
        "items": pa.ListArray.from_arrays(pa.array(np.zeros(len(reason) + 1, np.int32)), pa.array([], pa.int64())),
        "explored": pa.nulls(len(reason), pa.bool_())}
    extra |= offer_columns(scores, cmp, uid, holdout, variant, reason, rows_user, mid)
    for name, arr in extra.items():
        table = table.append_column(name, arr)
    own = [OFFER_FIELDS[f] for f in table.column_names if f in OFFER_FIELDS]
    return _render(table, scores, rows_user, cmp, planned, content).cast(
        pa.schema(list(PLAN_SCHEMA) + [pa.field("timezone", pa.string()), pa.field("best_hour_local", pa.int8()),
                                       pa.field("send_time_confidence", pa.float32()),
                                       pa.field("theme", pa.string()), pa.field("items", pa.list_(pa.int64())),
                                       pa.field("explored", pa.bool_())] + own))


def absent_defaulted(cmp: Campaign, names) -> set[str]:
    """Template fields no column in ``names`` provides whose every use has a ``default(...)``:
    rendered as their default (and said in the plan's summary), not refused as a typo."""
    absent, bare = set(), set()
    for _, text in all_texts(cmp):
        absent |= {f for f in template_fields(text) if f not in names}
        bare |= bare_fields(text)
    return {f for f in absent - bare if not ITEM_FIELD.match(f)}


def absent_fields_warning(cmp: Campaign, scores: pa.Table) -> str | None:
    """The plan-summary line for :func:`absent_defaulted` fields, or None."""
    names = set(scores.column_names) | {"step", "variant", "channel", "theme", "message_id", "survey_url",
                                        "survey_links", *OWN_FIELDS}
    absent = sorted(absent_defaulted(cmp, names))
    if not absent:
        return None
    return (f"template field{'s' if len(absent) > 1 else ''} {', '.join(absent)} {'are' if len(absent) > 1 else 'is'} "
            "in no scores column, so every message uses the template's default(...); add the column to the users "
            "file and rescore to personalise")


def _render(table: pa.Table, scores: pa.Table, rows_user: np.ndarray, cmp: Campaign, planned: np.ndarray,
            content=None) -> pa.Table:
    """Subject and body for the planned rows, one vectorised render per (step, variant,
    email or not); a variant's own template, subject or body replaces the step's
    (:mod:`engine.planning.variants`)."""
    own = ("step", "variant", "channel", "theme", "message_id") + tuple(n for n in OWN_FIELDS if n in table.column_names)
    survey = ("survey_url", "survey_links")
    names = set(scores.column_names) | set(own) | set(survey) | (content.field_names() if content is not None else set())
    fields = set()
    absent = absent_defaulted(cmp, names)  # {{ first_name | default("there") }} with no first_name column
    for where, text in all_texts(cmp):
        for field in sorted(template_fields(text)):
            if field not in names and field not in absent:
                hint = (" (item fields need the catalogue: pass --items, and an index below the step's items)"
                        if ITEM_FIELD.match(field) else "")
                shown = sorted(n for n in names if not n.startswith("items[")) + (
                    ["items[0].title", "items[0].<any items column>"] if content is not None else [])
                raise ConfigError(f"{cmp.source}: [{where}] unknown field {{{{ {field} }}}}{hint}; "
                                  f"available fields: {', '.join(shown)}")
            fields.add(field)
    idx = np.nonzero(planned)[0]
    if not len(idx):
        return table
    at = pa.array(idx)
    cols = {c: scores[c].take(pa.array(rows_user[idx])) for c in scores.column_names
            if c in fields and c not in own and c not in survey}
    cols |= {f: pa.nulls(len(idx), pa.string()) for f in absent}  # every message takes the default
    cols |= survey_fields(cmp, table["step_index"].to_numpy()[idx], table["message_id"].take(at))
    cols |= {f: content.field(f, idx) for f in fields if content is not None and ITEM_FIELD.match(f)}
    ctx_all = pa.table(cols | {name: table[name].take(at) for name in own} | offer_context(cmp, table, at))
    steps = table["step_index"].to_numpy()[idx]
    var = pc.index_in(table["variant"].take(at), value_set=pa.array([v.name for v in cmp.variants])).to_numpy()
    is_mail = (table["channel"].take(pa.array(idx)).to_numpy(zero_copy_only=False) == "email")
    order, subjects, bodies = [], [], []
    for k, step in enumerate(cmp.steps):
        for v in range(len(cmp.variants)):
            tname, subject, body = cell_text(cmp, k, v)
            for email in (True, False):
                sel = np.nonzero((steps == k) & (var == v) & (is_mail == email))[0]
                if not len(sel):
                    continue
                rows = ctx_all.take(pa.array(sel))
                subjects.append(pa.array([step.name] * len(sel), pa.string()) if subject is None else
                                render(subject, rows, escape=False, name=f"templates.{tname}.subject"))
                bodies.append(pa.array([tname] * len(sel), pa.string()) if body is None else
                              render(body, rows, escape=email, name=f"templates.{tname}.body"))
                order.append(idx[sel])
    pos = np.full(table.num_rows, -1, np.int64)
    pos[np.concatenate(order)] = np.arange(len(idx))
    where = pa.array(np.maximum(pos, 0), mask=pos < 0)
    subject = pa.concat_arrays(subjects).take(where)
    body = pa.concat_arrays(bodies).take(where)
    table = table.set_column(table.column_names.index("subject"), "subject", subject)
    return table.set_column(table.column_names.index("body"), "body", body)
