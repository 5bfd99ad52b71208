"""The adapter interface: messages, results, secrets that never show, refused header fields."""

from __future__ import annotations

import pickle

import pytest

from engine.sending import scrub
from engine.sending.protocol import FAILED, Message, Secret, content_fields, refused


def _m(**kw) -> Message:
    base = dict(message_id="m1", user_id=1, channel="email", step="a", variant="v", to="ann@example.com",
                subject="Hi", body="line one\nline two", send_at=1.79e9, template="t", campaign_id="c")
    return Message(**(base | kw))


def test_a_clean_message_is_not_refused_and_bodies_may_hold_newlines():
    assert refused(_m()) is None
    assert refused(_m(subject="Caf\u00e9 \u2764")) is None


@pytest.mark.parametrize("field", ["to", "subject", "message_id", "step", "variant", "campaign_id", "template"])
@pytest.mark.parametrize("bad", ["x\r\nBcc: eve@example.com", "x\x00", "x\u2028y", "x\x85"])
def test_a_control_character_in_a_header_field_fails_the_row(field, bad):
    r = refused(_m(**{field: bad}))
    assert r is not None and r.status == FAILED and r.message_id == _m(**{field: bad}).message_id
    assert r.error.startswith(f"bad row: a control character in {field!r}")


def test_secret_never_shows_and_cannot_be_pickled():
    s = Secret("a-long-credential-value-123", "WINBACK_KEY")
    assert repr(s) == str(s) == f"{s}" == "Secret(WINBACK_KEY=***)"
    assert s.reveal() == "a-long-credential-value-123"
    assert scrub.scrub("token a-long-credential-value-123 leaked") == "token *** leaked"
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(s)


def test_content_fields_flatten_theme_and_items():
    assert content_fields(_m()) == {}
    assert content_fields(_m(content='{"theme": "leaving_soon", "items": [3, 14]}')) == {
        "theme": "leaving_soon", "items": "3,14"}
    assert content_fields(_m(content='{"theme": null}')) == {"theme": "", "items": ""}
