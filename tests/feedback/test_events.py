"""Provider payloads to contract events: SendGrid, Twilio and the generic JSON, one event at a time."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from engine.feedback.events import MAX_JSON_DEPTH, BadPayload, depth, epoch, generic_events, load_json, \
    sendgrid_events, twilio_events, user_id

T0 = 1_790_000_000  # campaign-ish epoch seconds


def test_load_json_refuses_constants_deep_nesting_and_non_json():
    assert load_json(b'{"a": [1, {"b": 2}]}') == {"a": [1, {"b": 2}]}
    for raw in (b"[NaN]", b'{"x": Infinity}', b"not json", b"\xff"):
        with pytest.raises(BadPayload, match="not JSON"):
            load_json(raw)
    deep = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)
    with pytest.raises(BadPayload, match=f"nested deeper than {MAX_JSON_DEPTH} levels"):
        load_json(deep)
    assert load_json(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH) is not None


def test_depth_counts_containers_only():
    assert depth(3) == 0 and depth([]) == 1 and depth({"a": [1, 2]}) == 2 and depth([[[]], {}]) == 3


def test_epoch_and_user_id_take_numbers_digits_and_iso_with_an_offset():
    assert epoch(None, 5.0) == 5.0 and epoch(7, 0) == 7.0 and epoch("8.5", 0) == 8.5
    midnight = dt.datetime(2026, 9, 21, tzinfo=dt.timezone.utc).timestamp()
    assert epoch("2026-09-21T00:00:00Z", 0) == midnight == epoch("2026-09-21T02:00:00+02:00", 0)
    for bad in (True, "2026-09-21T00:00:00", [1]):
        with pytest.raises(ValueError):
            epoch(bad, 0)
    assert user_id("42") == 42 and user_id(7.0) == 7 and user_id(None) is None and user_id("") is None
    for bad in (True, 2.5, 2**63, [1]):
        with pytest.raises(ValueError):
            user_id(bad)


def test_sendgrid_maps_events_suppresses_hard_bounces_and_counts_the_rest():
    doc = [
        {"event": "open", "timestamp": T0, "message_id": "m1", "user_id": "11", "sg_event_id": "e1",
         "sg_message_id": "p1"},
        {"event": "bounce", "type": "bounce", "email": "b@example.com", "timestamp": T0, "message_id": "m2"},
        {"event": "bounce", "type": "blocked", "email": "c@example.com", "timestamp": T0, "message_id": "m3"},
        {"event": "spamreport", "email": "d@example.com", "timestamp": T0, "message_id": "m4"},
        {"event": "delivered", "timestamp": T0},
        {"event": "dropped", "reason": "Bounced Address", "email": "e@example.com", "timestamp": T0},
        {"event": "teleported", "timestamp": T0},
        {"event": "open", "timestamp": "yesterday", "message_id": "m5"},
    ]
    events, supp, report = sendgrid_events(doc, float(T0))
    assert [(e["message_id"], e["event"]) for e in events] == [("m1", "open"), ("m2", "bounce"), ("m3", "bounce"),
                                                               ("m4", "complaint")]
    assert events[0]["user_id"] == 11 and events[0]["ts"] == T0 * 1_000_000
    assert events[0]["event_id"] == "sg:e1" and events[0]["provider_id"] == "p1"
    assert [(s["address"], s["reason"]) for s in supp] == [("b@example.com", "hard_bounce"),
                                                          ("d@example.com", "complaint"),
                                                          ("e@example.com", "hard_bounce")]
    assert report["ignored"] == 2 and report["unknown"] == 1
    assert [r["index"] for r in report["rejected"]] == [7]
    with pytest.raises(BadPayload, match="JSON array"):
        sendgrid_events({"event": "open"}, float(T0))


def test_twilio_failures_become_bounces_or_opt_outs_and_delivered_is_ignored():
    params = {"MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": "21610", "To": "+15551234567"}
    events, supp, report = twilio_events(params, {"message_id": "m1", "user_id": "3"}, float(T0))
    assert [(e["event"], e["channel"], e["user_id"], e["event_id"]) for e in events] == [
        ("unsubscribe", "sms", 3, "tw:SM1:undelivered")]
    assert supp == [{"channel": "sms", "address": "+15551234567", "event": events[0], "reason": "unsubscribe"}]
    events, supp, _ = twilio_events({**params, "ErrorCode": "30003"}, {}, float(T0))
    assert events[0]["event"] == "bounce" and supp == []  # unreachable for now: not a hard bounce
    assert twilio_events({"MessageSid": "SM1", "MessageStatus": "delivered"}, {}, float(T0))[2]["ignored"] == 1
    with pytest.raises(BadPayload, match="MessageSid and MessageStatus"):
        twilio_events({"MessageStatus": "failed"}, {}, float(T0))


def test_generic_events_take_an_object_a_list_or_an_events_key():
    one = {"event": "click", "channel": "push", "user_id": 5, "ts": T0}
    for doc in (one, [one], {"events": [one]}):
        events, supp, report = generic_events(json.loads(json.dumps(doc)), 0.0)
        assert [(e["event"], e["user_id"], e["ts"]) for e in events] == [("click", 5, T0 * 1_000_000)]
    events, supp, report = generic_events([{"event": "bounce", "channel": "email", "user_id": 1, "hard": False},
                                           {"event": "bounce", "channel": "email", "user_id": 2},
                                           {"event": "open", "channel": "fax", "user_id": 3},
                                           {"event": "open", "channel": "email"}], float(T0))
    assert [e["user_id"] for e in events] == [1, 2] and [s["event"]["user_id"] for s in supp] == [2]
    assert [r["index"] for r in report["rejected"]] == [2, 3]
    with pytest.raises(BadPayload):
        generic_events("open", float(T0))


def test_a_bad_survey_answer_is_rejected_alone_and_the_good_ones_kept():
    """Per-event checks: in one batch, a reason that is not a name (or missing) is rejected
    with its index; the good answer and the open beside it are kept."""
    from engine.feedback.events import generic_events

    doc = {"events": [
        {"event": "reason", "channel": "email", "message_id": "m1", "user_id": 1, "reason": "not_relevant"},
        {"event": "reason", "channel": "email", "message_id": "m2", "user_id": 2, "reason": "Too Many!"},
        {"event": "reason", "channel": "email", "message_id": "m3", "user_id": 3},
        {"event": "open", "channel": "email", "message_id": "m4", "user_id": 4},
    ]}
    events, supp, report = generic_events(doc, float(T0))
    assert [(e["message_id"], e["event"], e.get("reason")) for e in events] == [
        ("m1", "reason", "not_relevant"), ("m4", "open", None)]
    assert [r["index"] for r in report["rejected"]] == [1, 2] and not supp
    assert all("survey reason name" in r["reason"] for r in report["rejected"])
