"""The SendGrid adapter: a whole batch in one request, and a bad address failed alone."""

from __future__ import annotations

import asyncio

from adapters.local_provider import LocalProvider
from adapters.sendgrid import SendGridAdapter
from engine.sending.protocol import FAILED, SENT, Message

SECRET = "s3cr3t-value-never-shown"


class _Kind:
    channel = "email"
    good_to = "ann@example.com"


SENDGRID = _Kind()


def msg(i: int, kind, to: str | None = None) -> Message:
    return Message(message_id=f"msg-{i}", user_id=i, channel=kind.channel, step="we-miss-you", variant="a",
                   to=kind.good_to if to is None else to, subject="We miss you", body=f"Hello {i}",
                   send_at=1_790_000_000.0, campaign_id="c1")


def run_against(kind, batches: list[list[Message]]):
    """Given a local provider, when the SendGrid adapter sends ``batches``: results, stats and messages."""
    async def go():
        async with LocalProvider(webhook_secret=SECRET) as p:
            adapter = SendGridAdapter(p.url, SECRET, timeout=5.0, batch_size=50)
            try:
                results = [await adapter.send(b) for b in batches]
            finally:
                await adapter.aclose()
            return results, p.stats(), p.messages()

    return asyncio.run(go())


def test_sendgrid_carries_a_whole_batch_in_one_request():
    kind = SENDGRID
    batch = [msg(i, kind, to=f"user{i}@example.com") for i in range(50)]
    [results], stats, messages = run_against(kind, [batch])
    assert [r.status for r in results] == [SENT] * 50
    assert [r.message_id for r in results] == [m.message_id for m in batch]
    assert stats["requests"] == 1 and stats["accepted"] == 50
    assert sorted(m["message_id"] for m in messages) == sorted(m.message_id for m in batch)


def test_sendgrid_fails_a_bad_address_alone_and_sends_the_rest_of_its_batch():
    kind = SENDGRID
    batch = [msg(0, kind, to="a@example.com"), msg(1, kind, to="nobody"), msg(2, kind, to="c@example.com")]
    [results], stats, _ = run_against(kind, [batch])
    assert [r.status for r in results] == [SENT, FAILED, SENT]
    assert "nobody" in results[1].error and stats["requests"] == 1 and stats["accepted"] == 2
