"""Provider payloads -> contract events, one event at a time (used by the receiver).

Each function takes a parsed, already authenticated payload and returns
``(events, suppressions, report)``: event dicts (``user_id``, ``ts`` in epoch
microseconds UTC, ``event``, ``channel``, ``message_id``, ``provider_id`` and, when
the provider gives one, ``event_id`` for replay protection), suppression dicts
(``channel``, ``address``, ``event``, ``reason``) and a report ``{"unknown": n,
"ignored": n, "rejected": [{"index": i, "reason": text}]}``.  An unknown event type
is counted and skipped; a malformed event (bad time, user id, address, id) is skipped
with its reason; the rest of the batch is kept.  A payload whose shape is wrong as a
whole raises :class:`BadPayload`.

Every text an event keeps (ids, addresses, names) must be encodable UTF-8: JSON can carry a
lone surrogate (``"\\ud800"``), which no part file or ledger can store, so such an event is
malformed on its own instead of failing the batch file it would join.  A bounce carries
``hard`` (True: the address is gone; False: a soft bounce such as SendGrid ``blocked``).  On
``/events`` an event name or channel written with another case or surrounding whitespace
(``Unsubscribe``, `` email``) is read as the name it is (:func:`engine.io.names.canonical`,
as ``send --events`` reads files) and counted in the report's ``renamed``.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime

import pyarrow as pa

from engine.io.names import canonical
from engine.sending.exits import FEEDBACK_CHANNELS

__all__ = ["BadPayload", "MAX_JSON_DEPTH", "TWILIO_HARD", "TWILIO_OPTOUT", "load_json", "sendgrid_events",
           "generic_events", "twilio_events"]

SG_MAP = {"open": "open", "click": "click", "bounce": "bounce", "spamreport": "complaint",
          "unsubscribe": "unsubscribe", "group_unsubscribe": "unsubscribe"}
#: SendGrid events that are known and not stored (counted as ignored)
SG_IGNORED = {"delivered", "dropped", "processed", "deferred", "group_resubscribe"}
SG_DROPPED = {"bounced address": "hard_bounce", "unsubscribed address": "unsubscribe",
              "spam reporting address": "complaint"}
#: ``reason`` is a survey answer (why the user left), posted by a survey step's page
GENERIC_EVENTS = {"open", "click", "bounce", "complaint", "unsubscribe", "reason"}
#: a survey answer's ``reason``: one of the names a survey step lists
REASON = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
#: the channels ``/events`` takes: the contract's and ``webhook`` (the webhook adapter's own posts)
CHANNELS = set(FEEDBACK_CHANNELS)
#: Twilio error codes meaning the number will never take messages (hard bounce) ...
TWILIO_HARD = {"21211", "21612", "21614", "30005", "30006"}
#: ... and meaning the recipient opted out (STOP)
TWILIO_OPTOUT = {"21610", "30004"}
MIN_TS, MAX_TS = 946_684_800.0, 4_102_444_800.0  # 2000-01-01 .. 2100-01-01 UTC, epoch seconds
#: deepest JSON nesting accepted in a body (an event object inside a list inside an object is 3)
MAX_JSON_DEPTH = 32
MAX_ADDRESS = 320  # characters (RFC 5321 local part + domain)
MAX_ID = 200  # characters of a message id, provider id or event id


class BadPayload(ValueError):
    """The payload as a whole is not of the endpoint's shape (answered 400)."""


class _Bad(Exception):
    """One event of a batch is malformed: skipped with this reason, the rest kept."""


def _report() -> dict:
    return {"unknown": 0, "ignored": 0, "renamed": 0, "rejected": []}


def _encodable(text: str) -> bool:
    """True when ``text`` can be written as UTF-8 (no lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def load_json(raw: bytes):
    """Parse a JSON body: no NaN/Infinity constants, at most :data:`MAX_JSON_DEPTH` levels."""
    try:
        doc = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise BadPayload(f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError):
        raise BadPayload("the body is not JSON") from None
    if depth(doc) > MAX_JSON_DEPTH:
        raise BadPayload(f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels")
    return doc


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def depth(doc) -> int:
    """Nesting depth of parsed JSON (a scalar is 0), without recursion; stops past the limit."""
    if type(doc) is not list and type(doc) is not dict:
        return 0
    deepest, stack = 1, [(doc, 1)]
    while stack:
        node, d = stack.pop()
        for v in (node.values() if type(node) is dict else node):
            if type(v) is list or type(v) is dict:  # only containers are walked: scalars cost one check
                if d >= deepest:
                    deepest = d + 1
                    if deepest > MAX_JSON_DEPTH:
                        return deepest
                stack.append((v, d + 1))
    return deepest


def epoch(value, fallback: float) -> float:
    """Epoch seconds (UTC) of a payload time: a number, digits, or ISO 8601 with an offset."""
    if value is None:
        return fallback
    if isinstance(value, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"a time is a number or an ISO 8601 string, not {type(value).__name__}")
    try:
        return float(value)
    except ValueError:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            raise ValueError(f"time {value!r} has no UTC offset") from None
        return dt.timestamp()


def user_id(value) -> int | None:
    """A 64-bit user id from an int, a whole float or digits; None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
        raise ValueError(f"user_id {value!r} is not a whole number")
    if not isinstance(value, (int, float, str)):
        raise ValueError(f"user_id is a {type(value).__name__}, not a number")
    uid = int(value)
    if not -(2**63) <= uid < 2**63:
        raise ValueError(f"user_id {value!r} does not fit 64 bits")
    return uid


def address(value, *, optional: bool = False) -> str | None:
    """A suppression address: a short printable string (None allowed when ``optional``)."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_ADDRESS or not value.isprintable() \
            or not _encodable(value):
        raise _Bad("the address (email/To) is not a short printable string")
    return value


def event(kind, channel, message_id, uid, ts, now, provider_id=None) -> dict:
    """One contract event dict; raises ``_Bad`` for a bad time, user id or id."""
    try:
        at = epoch(ts, now)
        if not (math.isfinite(at) and MIN_TS <= at < MAX_TS):
            raise ValueError(f"time {ts!r} is not between 2000 and 2100")
        uid = user_id(uid)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _Bad(f"bad user_id or timestamp: {exc}") from None
    for name, v in (("message_id", message_id), ("sg_message_id", provider_id)):
        if v is not None and (not isinstance(v, (str, int)) or isinstance(v, bool) or len(str(v)) > MAX_ID):
            raise _Bad(f"{name} is not a short string")
        if isinstance(v, str) and not _encodable(v):
            raise _Bad(f"{name} is not valid UTF-8 text (it holds a lone surrogate such as \\ud800)")
    return {"user_id": uid, "ts": int(round(at * 1e6)), "event": kind, "channel": channel,
            "message_id": None if message_id is None else str(message_id),
            "provider_id": None if provider_id is None else str(provider_id)}


def sendgrid_events(doc, now: float):
    """A SendGrid Event Webhook body (a JSON array of events)."""
    if not isinstance(doc, list):
        raise BadPayload("a SendGrid event webhook body is a JSON array")
    events, supp, report = [], [], _report()
    for i, e in enumerate(doc):
        try:
            _sendgrid_event(e, now, events, supp, report)
        except _Bad as bad:
            report["rejected"].append({"index": i, "reason": str(bad)})
    return events, supp, report


def _sendgrid_event(e, now, events: list, supp: list, report: dict) -> None:
    if not isinstance(e, dict) or not isinstance(e.get("event"), str):
        raise _Bad("an event is an object with a string 'event'")
    kind = e["event"]
    if kind in SG_IGNORED:
        report["ignored"] += 1
        why = e.get("reason")
        why = why.lower() if isinstance(why, str) else ""  # dropped: SendGrid already suppresses it
        reason = next((r for k, r in SG_DROPPED.items() if kind == "dropped" and k in why), None)
        if reason and e.get("email"):
            ev = event("bounce", "email", e.get("message_id"), e.get("user_id"), e.get("timestamp"), now)
            supp.append({"channel": "email", "address": address(e["email"]), "event": ev, "reason": reason})
        return
    if kind not in SG_MAP:
        report["unknown"] += 1
        return
    ev = event(SG_MAP[kind], "email", e.get("message_id"), e.get("user_id"), e.get("timestamp"), now,
               provider_id=e.get("sg_message_id"))
    eid = e.get("sg_event_id")
    if eid is not None:
        if not isinstance(eid, str) or not eid or len(eid) > MAX_ID or not _encodable(eid):
            raise _Bad("sg_event_id is not a short string")
        ev["event_id"] = "sg:" + eid
    hard = kind == "bounce" and e.get("type", "bounce") == "bounce"
    if kind == "bounce":
        ev["hard"] = hard
    entry = None
    if hard or ev["event"] in ("unsubscribe", "complaint"):
        entry = {"channel": "email", "address": address(e.get("email")), "event": ev,
                 "reason": "hard_bounce" if hard else ev["event"]}
    events.append(ev)
    if entry is not None:
        supp.append(entry)


def generic_events(doc, now: float):
    """Our generic JSON: one event object, a list, or ``{"events": [...]}``; a ``reason`` event also
    carries ``reason`` (a survey answer's name)."""
    items = doc.get("events") if isinstance(doc, dict) and "events" in doc else doc
    items = [items] if isinstance(items, dict) else items
    if not isinstance(items, list):
        raise BadPayload("the body is an event object, a list, or {\"events\": [...]}")
    events, supp, report = [], [], _report()
    kinds, kind_renamed = _names([e.get("event") if isinstance(e, dict) else None for e in items], GENERIC_EVENTS)
    chans, chan_renamed = _names([e.get("channel") if isinstance(e, dict) else None for e in items], CHANNELS)
    for i, e in enumerate(items):
        try:
            if not isinstance(e, dict) or not isinstance(e.get("event"), str):
                raise _Bad("an event is an object with a string 'event'")
            if kinds[i] not in GENERIC_EVENTS:
                report["unknown"] += 1
                continue
            channel = chans[i]
            if channel not in CHANNELS:
                raise _Bad(f"'channel' is one of {sorted(CHANNELS)}")
            if e.get("message_id") is None and e.get("user_id") is None:
                raise _Bad("an event needs 'message_id' or 'user_id'")
            ev = event(kinds[i], channel, e.get("message_id"), e.get("user_id"), e.get("ts"), now)
            if ev["event"] == "reason":  # a survey answer: why the user left (a survey step's reasons)
                if not isinstance(e.get("reason"), str) or not REASON.match(e["reason"]):
                    raise _Bad("a 'reason' event needs 'reason': a survey reason name such as "
                               "\"too_many_messages\" (lower-case letters, digits, '_')")
                ev["reason"] = e["reason"]
            hard = e.get("hard", True)
            if not isinstance(hard, bool):
                raise _Bad("'hard' is true or false")
            if ev["event"] == "bounce":
                ev["hard"] = hard
            entry = None
            if ev["event"] in ("unsubscribe", "complaint") or (ev["event"] == "bounce" and hard):
                entry = {"channel": channel, "address": address(e.get("address"), optional=True),
                         "event": ev, "reason": "hard_bounce" if ev["event"] == "bounce" else ev["event"]}
            events.append(ev)
            report["renamed"] += bool(kind_renamed[i] or chan_renamed[i])
            if entry is not None:
                supp.append(entry)
        except _Bad as bad:
            report["rejected"].append({"index": i, "reason": str(bad)})
    return events, supp, report


def _names(values: list, choices) -> tuple[list, list]:
    """``values`` read as :func:`engine.io.names.canonical` reads a file's names (trimmed, lower-cased:
    ``" Unsubscribe"`` is ``unsubscribe``), and per value whether that changed it into one of
    ``choices``; a value that is not encodable text is None."""
    safe = [v if isinstance(v, str) and _encodable(v) else None for v in values]
    if all(v is None for v in safe):
        return safe, [False] * len(safe)
    names, renamed, _unknown = canonical(pa.array(safe, pa.string()), sorted(choices))
    return names.to_pylist(), renamed.tolist()


def twilio_events(params: dict, query, now: float):
    """A Twilio status callback (form ``params``; the callback URL's ``query`` may name the message)."""
    report = _report()
    status, sid = params.get("MessageStatus"), params.get("MessageSid")
    if not status or not sid:
        raise BadPayload("a Twilio status callback has MessageSid and MessageStatus")
    if status not in ("undelivered", "failed"):
        report["ignored"] += 1
        return [], [], report
    code = params.get("ErrorCode", "")
    kind = "unsubscribe" if code in TWILIO_OPTOUT else "bounce"
    try:
        ev = event(kind, "sms", query.get("message_id"), query.get("user_id") or params.get("user_id"), None,
                   now, provider_id=sid)
        ev["event_id"] = f"tw:{sid}:{status}"
        if kind == "bounce":
            ev["hard"] = code in TWILIO_HARD
        supp = []
        if code in TWILIO_OPTOUT or code in TWILIO_HARD:
            supp.append({"channel": "sms", "address": address(params.get("To")), "event": ev,
                         "reason": "unsubscribe" if kind == "unsubscribe" else "hard_bounce"})
    except _Bad as bad:
        raise BadPayload(str(bad)) from None
    return [ev], supp, report
