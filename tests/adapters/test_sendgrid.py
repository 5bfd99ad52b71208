"""The SendGrid adapter: a whole batch in one request, and a bad address failed alone."""

from __future__ import annotations

from adapters.sendgrid import SendGridAdapter, batch_key
from engine.sending.protocol import FAILED, SENT
from tests.helpers import ADAPTER_SECRET, adapter_message, run_adapter


def msg(i: int, to: str):
    return adapter_message(i, "email", to)


def run_against(batches):
    """Given a local provider, when the SendGrid adapter sends ``batches``: results, stats and messages."""
    return run_adapter(lambda url, t: SendGridAdapter(url, ADAPTER_SECRET, timeout=t, batch_size=50), batches)


def test_sendgrid_carries_a_whole_batch_in_one_request():
    batch = [msg(i, to=f"user{i}@example.com") for i in range(50)]
    [results], stats, messages = run_against([batch])
    assert [r.status for r in results] == [SENT] * 50
    assert [r.message_id for r in results] == [m.message_id for m in batch]
    assert stats["requests"] == 1 and stats["accepted"] == 50
    assert sorted(m["message_id"] for m in messages) == sorted(m.message_id for m in batch)


def test_sendgrid_fails_a_bad_address_alone_and_sends_the_rest_of_its_batch():
    batch = [msg(0, to="a@example.com"), msg(1, to="nobody"), msg(2, to="c@example.com")]
    [results], stats, _ = run_against([batch])
    assert [r.status for r in results] == [SENT, FAILED, SENT]
    assert "nobody" in results[1].error and stats["requests"] == 1 and stats["accepted"] == 2


def test_a_regrouped_retry_batch_is_not_answered_from_an_idempotency_proxys_memory():
    """Given a proxy on 127.0.0.1 that answers a repeated Idempotency-Key from its memory (and
    forwards nothing), when a batch is sent, then resent as it was, then a retry batch starting
    with the same message but carrying another one: the resend is recognised, and the other
    message reaches the provider (with the first message's id as the key it was answered from
    memory and never sent, yet reported sent: lost).  The retry's msg-1 goes out again, as any
    regrouped retry must (at-least-once, docs/sending.md)."""
    import asyncio
    import json

    from aiohttp import web

    from tests.helpers import local_server

    answered: dict[str, web.Response] = {}
    delivered: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        doc = json.loads(await request.read())
        key = request.headers["Idempotency-Key"]
        if key not in answered:
            delivered.extend(p["custom_args"]["message_id"] for p in doc["personalizations"])
            answered[key] = key
        return web.Response(status=202, headers={"X-Message-Id": f"pid-{answered[key]}"})

    first = [msg(1, "a@example.com"), msg(2, "b@example.com")]
    retry = [msg(1, "a@example.com"), msg(3, "c@example.com")]

    async def go():
        async with local_server(handle) as base:
            adapter = SendGridAdapter(base, ADAPTER_SECRET, timeout=5.0, batch_size=50)
            try:
                return [await adapter.send(b) for b in (first, list(reversed(first)), retry)]
            finally:
                await adapter.aclose()

    results = asyncio.run(go())
    assert all(r.status == SENT for batch in results for r in batch)
    assert delivered == ["msg-1", "msg-2", "msg-1", "msg-3"]
    assert len(answered) == 2  # the reordered resend had the first batch's key
    assert batch_key(first[:1]) == "msg-1"
