"""The Twilio adapter: one request per message, the provider's SID back, header-breaking rows refused unsent."""

from __future__ import annotations

import asyncio

from adapters.local_provider import LocalProvider
from adapters.twilio import TwilioAdapter
from engine.sending.protocol import FAILED, SENT, Message

SECRET = "s3cr3t-value-never-shown"


def _m(i: int, to: str) -> Message:
    return Message(f"msg-{i}", i, "sms", "a", None, to, None, f"Hello {i}", 1_790_000_000.0)


def test_each_message_is_one_request_and_a_bad_row_never_leaves():
    async def go():
        async with LocalProvider(webhook_secret=SECRET) as p:
            a = TwilioAdapter(p.url, "AC123", SECRET, timeout=5.0, status_callback="https://x.example/tw")
            try:
                results = await a.send([_m(0, "+15551234567"), _m(1, "+1555\r\n1234567"), _m(2, "+15557654321")])
            finally:
                await a.aclose()
            return results, p.stats()

    results, stats = asyncio.run(go())
    assert [r.status for r in results] == [SENT, FAILED, SENT]
    assert results[0].provider_id.startswith("SM") and results[0].provider_id != results[2].provider_id
    assert "control character in 'to'" in results[1].error
    assert stats["requests"] == 2 and stats["accepted"] == 2
    shown = repr(TwilioAdapter("http://127.0.0.1:1", "AC123", SECRET))
    assert SECRET not in shown and "AC123" not in shown  # both credentials show as Secret(...=***)
