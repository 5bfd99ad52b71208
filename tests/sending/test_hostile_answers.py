"""Providers that answer in ways the adapters must survive: a Retry-After of years, one past
the campaign's end, and a 2xx whose id is not text.  Each test runs a real HTTP server on
127.0.0.1 and the real adapters and ledger, and counts what the server received per message.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import json
import time

import numpy as np
import pyarrow as pa
import pytest
from aiohttp import web

from adapters.fcm import FcmAdapter
from adapters.twilio import TwilioAdapter
from adapters.webhook import WebhookAdapter
from engine.io.meta import PLAN, with_meta
from engine.schema import TIMESTAMP
from engine.sending.dispatcher import Channel, dispatch
from tests.helpers import ledger_rows, local_server

N = 6


def plan(channel: str, *, ends_at: float | None = None) -> pa.Table:
    now = time.time()
    table = pa.table({
        "message_id": [f"{channel}-{i}" for i in range(N)], "campaign_id": ["c"] * N,
        "user_id": pa.array(range(N), pa.int64()), "step": ["s0"] * N, "channel": [channel] * N,
        "send_at": pa.array(np.full(N, int(now * 1e6)), TIMESTAMP), "reason": pa.nulls(N, pa.string()),
        "to": [f"+1555000{i:04d}" for i in range(N)], "subject": ["Hello"] * N, "body": ["Come back"] * N})
    if ends_at is None:
        return table
    iso = lambda t: dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat()  # noqa: E731
    return with_meta(table, PLAN, {"campaign_id": "c", "as_of": iso(now - 60), "ends_at": iso(ends_at),
                                   "policy": {"max_messages": 10, "window_days": 7, "quiet_hours": None}})


def serve(answer, channel: str, table: pa.Table, ledger, *, now: bool, max_seconds: float = 20.0):
    """Send ``table`` through ``channel``'s adapter to a server answering ``answer(n)`` to the
    n-th request of a message id; returns (summary, requests per id)."""
    seen: collections.Counter = collections.Counter()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        key = request.headers.get("Idempotency-Key") or json.loads(body)["message_id"]
        seen[key] += 1
        if sum(seen.values()) > 10 * N:  # bounded: a runaway sender is answered, never served
            return web.Response(status=400, text="too many requests in this test")
        return answer(seen[key])

    async def main():
        async with local_server(handle) as base:
            adapter = {"push": lambda: FcmAdapter(base, "proj", "token"),
                       "sms": lambda: TwilioAdapter(base, "AC0", "token"),
                       "webhook": lambda: WebhookAdapter(base + "/hook", "secret")}[channel]()
            try:
                return await dispatch(table, {channel: Channel(adapter, max_attempts=4)}, ledger, now=now,
                                      handle_signals=False, max_seconds=max_seconds)
            finally:
                await adapter.aclose()

    return asyncio.run(main()), seen


def rows(ledger) -> list[tuple]:
    return ledger_rows(ledger, "SELECT state, attempts, provider_id, last_error FROM messages")


def pauses(ledger) -> list[tuple]:
    return ledger_rows(ledger, "SELECT * FROM pauses")


@pytest.mark.parametrize("retry_after", ["99999999999", "1e300", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_a_retry_after_of_years_gives_the_message_up_instead_of_waiting_for_it(tmp_path, retry_after):
    # given a provider whose first answer to every message is 429 with a Retry-After of
    # thousands of years (seconds, a float, an HTTP-date far ahead)
    def answer(n):
        if n == 1:
            return web.Response(status=429, headers={"Retry-After": retry_after}, text="slow down")
        return web.json_response({"id": "late"})

    ledger = tmp_path / "l.db"
    summary, seen = serve(answer, "webhook", plan("webhook"), ledger, now=True)
    # then every message is final (dead, saying why), none waits, the provider was asked once
    # per message and never before its Retry-After, and no pause holds the channel
    got = rows(ledger)
    assert [r[0] for r in got] == ["dead"] * N, got
    assert all("Retry-After" in r[3] and "longer than the 24 h" in r[3] for r in got), got[0]
    assert sorted(seen.values()) == [1] * N
    assert summary.dead == N and summary.sent == 0
    assert pauses(ledger) == []


def test_a_retry_after_past_the_campaign_end_gives_the_message_up(tmp_path):
    # given a campaign that ends in ten minutes and a provider that asks for an hour
    def answer(n):
        if n == 1:
            return web.Response(status=503, headers={"Retry-After": "3600"}, text="maintenance")
        return web.json_response({"id": "late"})

    ledger = tmp_path / "l.db"
    summary, seen = serve(answer, "webhook", plan("webhook", ends_at=time.time() + 600), ledger, now=False)
    # then the messages are dead at once (they could not go before the end), asked once each
    got = rows(ledger)
    assert [r[0] for r in got] == ["dead"] * N, got
    assert all("after the campaign's end" in r[3] for r in got), got[0]
    assert sorted(seen.values()) == [1] * N


def test_a_short_retry_after_is_still_waited_for(tmp_path):
    # given the same campaign and a provider asking for one second
    def answer(n):
        if n == 1:
            return web.Response(status=429, headers={"Retry-After": "1"}, text="slow down")
        return web.json_response({"id": f"ok-{n}"})

    ledger = tmp_path / "l.db"
    summary, seen = serve(answer, "webhook", plan("webhook", ends_at=time.time() + 600), ledger, now=False)
    # then every message went on its second attempt
    assert [r[:2] for r in rows(ledger)] == [("sent", 2)] * N
    assert sorted(seen.values()) == [2] * N


@pytest.mark.parametrize("channel,body,status", [
    ("push", {"name": {"project": "p", "ids": [1, 2]}}, 200),   # FCM: name is an object
    ("push", {"name": 12345}, 200),                             # FCM: name is a number
    ("sms", {"sid": ["SM1", "SM2"], "status": "queued"}, 201),  # Twilio: sid is a list
])
def test_a_provider_id_that_is_not_text_is_recorded_and_the_send_goes_on(tmp_path, channel, body, status):
    # given a provider that accepts every message but names it with a JSON object, number or list
    ledger = tmp_path / "l.db"
    summary, seen = serve(lambda n: web.json_response(body, status=status), channel, plan(channel), ledger,
                          now=True)
    # then every message is sent once and its provider id kept as text (the send used to stop
    # with a ledger error, leaving the accepted messages in flight to be sent again)
    got = rows(ledger)
    assert [r[0] for r in got] == ["sent"] * N, got
    assert all(isinstance(r[2], str) and r[2] for r in got)
    assert sorted(seen.values()) == [1] * N
    assert summary.sent == N


def test_an_adapter_of_our_own_protocol_may_name_messages_with_any_value(tmp_path):
    # given an adapter (not one of ours) whose provider ids are dicts and numbers
    from engine.sending.protocol import Result

    class Odd:
        name, max_batch = "odd", 2

        async def send(self, batch):
            return [Result(m.message_id, "sent", provider_id={"id": i} if i % 2 else i) for i, m in enumerate(batch)]

        async def aclose(self):
            pass

    summary = asyncio.run(dispatch(plan("push"), {"push": Channel(Odd())}, tmp_path / "l.db", now=True,
                                   handle_signals=False, max_seconds=20))
    # then the ledger keeps them as text and every message is sent
    assert summary.sent == N
    assert sorted(r[2] for r in rows(tmp_path / "l.db")) == sorted(["0", "{'id': 1}"] * (N // 2))
