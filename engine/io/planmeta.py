"""The check of a plan's ``winback.plan`` metadata when the plan is read (send, simulate,
report, explain).

``winback send`` keeps the campaign's policy from this metadata in the ledger and applies
it to every message it releases (the cap, quiet hours, the gap, the campaign's end).  A
value edited by hand into something else (quiet hours as ``"21:00"``, a cap of
``"three"``, a timezone that does not exist, an end that is not a date) would otherwise
break the send half-way or, worse, be read as "no rule"; :func:`check_plan_meta` refuses
it first, with one :class:`InputError` naming the plan file, the key and what it should
hold.  Simulate, report and explain read the same keys (steps, variants, policy) and
meet the same check.  A plan without the metadata (a hand-made plan) passes: the defaults apply.
"""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import InputError, WinbackError
from engine.io.meta import PLAN
from engine.schema import PROVIDER_CHANNELS

__all__ = ["check_plan_meta"]

_FIX = "re-plan with 'winback plan' instead of editing the plan's metadata"


def _bad(source: str, key: str, what: str, value) -> InputError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return InputError(f"{source}: plan metadata winback.plan key {key} {what}, got {shown}; {_FIX}.")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value) -> bool:
    return _number(value) and float(value) == int(value)


def _instant(meta: dict, key: str, source: str) -> None:
    from engine.tz import parse_as_of

    value = meta.get(key)
    if value is None:
        return
    try:
        if not isinstance(value, str):
            raise ValueError
        parse_as_of(value)
    except (ValueError, TypeError, OverflowError, WinbackError):
        raise _bad(source, key, "must be an ISO 8601 instant like \"2026-11-01T00:00:00+00:00\"", value) from None


def _policy(policy, source: str) -> None:
    if policy is None:
        return
    if not isinstance(policy, dict):
        raise _bad(source, "policy", "must be an object of the campaign's [policy] keys", policy)
    quiet = policy.get("quiet_hours")
    if quiet not in (None, [], False):
        if not (isinstance(quiet, list) and len(quiet) == 2 and all(_whole(q) and 0 <= q < 1440 for q in quiet)):
            raise _bad(source, "policy.quiet_hours",
                       "must be [start, end] in minutes after local midnight 0-1439 (e.g. [1260, 480] for "
                       "21:00-08:00) or [] for none", quiet)
    checks = (
        ("max_messages", lambda v: _whole(v) and v >= 1, "must be a whole number >= 1"),
        ("window_days", lambda v: _number(v) and v > 0, "must be a number of days > 0 (7 or 30)"),
        ("min_gap_hours", lambda v: _number(v) and v >= 0, "must be a number of hours >= 0"),
        ("complaint_suppresses", lambda v: v in ("all", "channel"), "must be \"all\" or \"channel\""),
    )
    for key, ok, what in checks:
        if key in policy and policy[key] is not None and not ok(policy[key]):
            raise _bad(source, f"policy.{key}", what, policy[key])
    for key in ("channel_caps", "capacity_per_hour"):
        caps = policy.get(key)
        if caps is None:
            continue
        if not isinstance(caps, dict):
            raise _bad(source, f"policy.{key}", "must be an object like {\"sms\": 1}", caps)
        for ch, cap in caps.items():
            if ch not in PROVIDER_CHANNELS:
                raise _bad(source, f"policy.{key}.{ch}",
                           f"names an unknown channel (use {', '.join(PROVIDER_CHANNELS)})", ch)
            if not (_whole(cap) and cap >= 0):
                raise _bad(source, f"policy.{key}.{ch}", "must be a whole number >= 0", cap)


def check_plan_meta(plan: pa.Table, source: str) -> dict:
    """The plan's ``winback.plan`` metadata, checked for what a send applies (module
    docstring); ``{}`` when the plan has none.  Raises :class:`InputError` naming ``source``."""
    raw = (plan.schema.metadata or {}).get(PLAN)
    if not raw:
        return {}
    try:
        meta = json.loads(raw)
    except ValueError as exc:
        raise InputError(f"{source}: plan metadata winback.plan is not valid JSON ({exc}); {_FIX}.") from None
    if not isinstance(meta, dict):
        raise InputError(f"{source}: plan metadata winback.plan must be a JSON object, got {type(meta).__name__}; "
                         f"{_FIX}.")
    for key in ("campaign_id", "id", "timezone"):
        if meta.get(key) is not None and not (isinstance(meta[key], str) and meta[key]):
            raise _bad(source, key, "must be a non-empty text", meta[key])
    cid = meta.get("campaign_id") or meta.get("id")
    if cid is not None and "campaign_id" in plan.column_names and plan.num_rows:
        column = plan.column("campaign_id")
        if pa.types.is_dictionary(column.type):
            column = column.cast(pa.string())
        others = [c for c in pc.unique(column).to_pylist() if c is not None and c != cid]
        if others:
            raise _bad(source, "campaign_id", f"must be the campaign of the plan's rows ({others[0]!r})", cid)
    zone = meta.get("timezone")
    if zone is not None:
        from engine.tz import is_timezone

        if not is_timezone(zone):
            raise _bad(source, "timezone", "must be an IANA timezone name like \"Europe/Berlin\" or \"UTC\"", zone)
    _instant(meta, "as_of", source)
    _instant(meta, "ends_at", source)
    for key in ("steps", "variants", "offers"):
        items = meta.get(key)
        if items is not None and not (isinstance(items, list) and all(isinstance(s, dict) for s in items)):
            raise _bad(source, key, f"must be a list of {key[:-1]} objects", items)
    for key in ("content", "sunset", "summary"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            raise _bad(source, key, "must be an object", meta[key])
    steps = meta.get("steps")
    if steps is not None:
        for i, step in enumerate(steps):
            delay = step.get("delay_days")
            if delay is not None and not (_number(delay) and delay >= 0):
                raise _bad(source, f"steps[{i}].delay_days", "must be a number of days >= 0", delay)
    _policy(meta.get("policy"), source)
    ledger = meta.get("ledger")
    if ledger is not None and not (isinstance(ledger, dict) and all(
            ledger.get(k) is None or isinstance(ledger.get(k), str) for k in ("path", "id"))):
        raise _bad(source, "ledger", "must be an object {\"path\": text, \"id\": text}", ledger)
    return meta
