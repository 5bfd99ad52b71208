"""The channels of a send: built from a providers file, a parsed dict, adapters or Channel objects."""

from __future__ import annotations

import asyncio

import pytest

from adapters.file import FileAdapter
from engine.errors import ConfigError
from engine.ledger.sql import CLAIM_COLUMNS
from engine.sending.channels import Channel, channels_for, message_of
from engine.sending.retry import DEFAULT_MAX_ATTEMPTS


def test_message_of_maps_a_claimed_row_in_claim_column_order():
    row = dict(message_id="m1", user_id=7, channel="email", step="a", variant=None, to_addr=None,
               subject="Hi", body=None, send_at=1.5e9, template="t", campaign_id="c", attempts=1,
               content='{"theme": "trending"}', rowid=99)
    m = message_of(tuple(row[c] for c in CLAIM_COLUMNS))
    assert (m.message_id, m.user_id, m.channel, m.step, m.variant) == ("m1", 7, "email", "a", None)
    assert m.to == "" and m.body == ""  # nulls become empty strings for the adapters
    assert (m.subject, m.send_at, m.template, m.campaign_id, m.content) == ("Hi", 1.5e9, "t", "c",
                                                                           '{"theme": "trending"}')


def test_channels_for_builds_configs_and_keeps_given_adapters(tmp_path):
    given = Channel(adapter=FileAdapter(tmp_path / "sms.csv"), rate_per_second=3.0)
    plain = FileAdapter(tmp_path / "push.csv")
    doc = {"channels": {"email": {"adapter": "file", "path": str(tmp_path / "email.jsonl"), "concurrency": 4,
                                  "rate_per_second": 50, "max_attempts": 3}}}
    built, owned = channels_for(doc, ["email"])
    assert owned and built["email"].concurrency == 4 and built["email"].rate_per_second == 50
    assert built["email"].max_attempts == 3 and built["email"].adapter.name == "file"
    mixed, owned = channels_for({"sms": given, "push": plain}, ["sms", "push"])
    assert not owned and mixed["sms"] is given
    assert mixed["push"].adapter is plain and mixed["push"].max_attempts == DEFAULT_MAX_ATTEMPTS
    for a in (built["email"].adapter, given.adapter, plain):
        asyncio.run(a.aclose())


def test_a_channel_the_providers_lack_is_named_with_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match=r"channel sms but the providers have no \[channels\.sms\] "
                                          r"\(they configure email\)\. Add the channel"):
        channels_for({"email": FileAdapter(tmp_path / "e.csv")}, ["email", "sms"])
