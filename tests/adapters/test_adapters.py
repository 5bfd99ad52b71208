"""Adapters against the local provider as a real HTTP server on 127.0.0.1.

Every HTTP adapter goes through the same tests (one parametrized fixture): sent,
429 with Retry-After (seconds and HTTP-date), 5xx, 4xx, timeouts and dropped
connections; plus secrets hygiene (the providers file: sending/test_providers.py; the file
export: adapters/test_file.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Callable

import pytest

from engine.sending.protocol import FAILED, RETRY, SENT, Adapter, Message
from adapters.fcm import FcmAdapter
from adapters.local_provider import Faults, LocalProvider
from adapters.sendgrid import SendGridAdapter
from adapters.twilio import TwilioAdapter
from adapters.webhook import WebhookAdapter, sign
from tests.helpers import ADAPTER_SECRET, adapter_message, run_adapter

SECRET = ADAPTER_SECRET


@dataclass
class Kind:
    """How to build one adapter against a provider, and which addresses it takes."""

    name: str
    channel: str
    good_to: str
    bad_to: str
    build: Callable[[str, float], Adapter]


KINDS = [
    Kind("webhook", "push", "device-token-1", "", lambda url, t: WebhookAdapter(f"{url}/hooks/push", SECRET, timeout=t)),
    Kind("sendgrid", "email", "ann@example.com", "not-an-email",
         lambda url, t: SendGridAdapter(url, SECRET, timeout=t, batch_size=50)),
    Kind("twilio", "sms", "+15551234567", "555-1234",
         lambda url, t: TwilioAdapter(url, "AC123", SECRET, timeout=t)),
    Kind("fcm", "push", "device-token-1", "unregistered-token",
         lambda url, t: FcmAdapter(url, "demo-project", SECRET, timeout=t)),
]


@pytest.fixture(params=KINDS, ids=[k.name for k in KINDS])
def kind(request) -> Kind:
    return request.param


def msg(i: int, kind: Kind, to: str | None = None) -> Message:
    return adapter_message(i, kind.channel, kind.good_to if to is None else to)


def run_against(kind: Kind, batches: list[list[Message]], *, faults: Faults | None = None,
                timeout: float = 5.0, **provider_kw):
    """Given a local provider with ``faults``, when the adapter sends ``batches``: results and stats."""
    return run_adapter(kind.build, batches, faults=faults, timeout=timeout, **provider_kw)


def test_sends_and_gets_sent_with_a_provider_id(kind):
    [results], stats, messages = run_against(kind, [[msg(1, kind)]])
    assert [r.status for r in results] == [SENT]
    assert results[0].message_id == "msg-1" and results[0].provider_id
    assert stats["accepted"] == 1 and stats["duplicates"] == 0
    assert messages[0]["message_id"] == "msg-1" and messages[0]["to"] == kind.good_to


def test_a_resend_is_accepted_again_but_counted_as_a_duplicate(kind):
    results, stats, _ = run_against(kind, [[msg(1, kind)], [msg(1, kind)]])
    assert [r[0].status for r in results] == [SENT, SENT]
    assert stats["accepted"] == 1 and stats["duplicates"] == 1


@pytest.mark.parametrize("as_date", [False, True], ids=["seconds", "http-date"])
def test_429_with_retry_after_is_retry_with_the_delay(kind, as_date):
    [results], stats, _ = run_against(kind, [[msg(1, kind)]],
                                      faults=Faults(rate_429=1.0, retry_after=30, retry_after_date=as_date))
    assert results[0].status == RETRY and results[0].error.startswith("429")
    assert 27 <= results[0].retry_after <= 30  # the date form has whole-second resolution
    assert stats["accepted"] == 0 and stats["rejected"] == {"fault_429": 1}


def test_5xx_is_retry_without_delay(kind):
    [results], _, _ = run_against(kind, [[msg(1, kind)]], faults=Faults(error_rate=1.0))
    assert results[0].status == RETRY and results[0].error.startswith("503")
    assert results[0].retry_after is None


def test_timeout_is_retry(kind):
    [results], _, _ = run_against(kind, [[msg(1, kind)]], faults=Faults(timeout_rate=1.0, hang_seconds=3),
                                  timeout=0.3)
    assert results[0].status == RETRY and "timeout" in results[0].error


def test_dropped_connection_is_retry(kind):
    [results], stats, _ = run_against(kind, [[msg(1, kind)]], faults=Faults(drop_rate=1.0))
    assert results[0].status == RETRY and results[0].error
    assert stats["accepted"] == 0 and stats["rejected"] == {"fault_drop": 1}


def test_refused_connection_is_retry(kind, free_port):
    async def go():
        adapter = kind.build(f"http://127.0.0.1:{free_port}", 2.0)
        try:
            return await adapter.send([msg(1, kind)])
        finally:
            await adapter.aclose()

    [result] = asyncio.run(go())
    assert result.status == RETRY and result.error


def test_a_bad_address_is_a_permanent_failure_with_the_provider_reason(kind):
    [results], stats, _ = run_against(kind, [[msg(1, kind, to=kind.bad_to)]])
    assert results[0].status == FAILED
    assert results[0].error.startswith(("400", "404", "invalid email"))  # SendGrid checks before sending
    assert stats["accepted"] == 0
    if kind.name == "twilio":
        assert "21211" in results[0].error
    if kind.name == "fcm":
        assert "unregistered" in results[0].error  # the dispatcher suppresses the token


def test_wrong_credentials_are_rejected_as_failed(kind):
    async def go():
        async with LocalProvider(webhook_secret="other", api_key="other", account_sid="AC123",
                                 auth_token="other") as p:
            adapter = kind.build(p.url, 5.0)
            try:
                return await adapter.send([msg(1, kind)]), p.stats()
            finally:
                await adapter.aclose()

    [result], stats = asyncio.run(go())
    assert result.status == FAILED and result.error.startswith("401")
    assert stats["accepted"] == 0 and set(stats["rejected"]) <= {"signature", "auth"}


def test_secrets_never_appear_in_repr_or_errors(kind):
    results, _, _ = run_against(kind, [[msg(1, kind)], [msg(2, kind, to=kind.bad_to)]],
                                faults=None)
    adapter = kind.build("http://127.0.0.1:1", 1.0)
    text = repr(adapter) + str(adapter) + repr(results)
    assert SECRET not in text
    [refused] = asyncio.run(_send_and_close(adapter, [msg(3, kind)]))
    assert SECRET not in repr(refused)


async def _send_and_close(adapter, batch):
    try:
        return await adapter.send(batch)
    finally:
        await adapter.aclose()


def test_the_provider_rejects_a_tampered_body_or_an_old_timestamp(free_port):
    import urllib.error
    import urllib.request

    async def go():
        async with LocalProvider(webhook_secret=SECRET) as p:
            body = json.dumps({k: "x" for k in ("message_id", "user_id", "channel", "step", "variant", "to",
                                                "subject", "body", "send_at")}).encode()

            def post(ts: int, data: bytes, signed: bytes) -> int:
                req = urllib.request.Request(f"{p.url}/hooks/push", data=data, method="POST", headers={
                    "X-Winback-Timestamp": str(ts), "X-Winback-Signature": sign(SECRET, ts, signed)})
                try:
                    with urllib.request.urlopen(req, timeout=5) as resp:
                        return resp.status
                except urllib.error.HTTPError as exc:
                    return exc.code

            now = int(time.time())
            codes = [await asyncio.to_thread(post, now, body, body),
                     await asyncio.to_thread(post, now, body.replace(b'"x"', b'"y"', 1), body),
                     await asyncio.to_thread(post, now - 3600, body, body)]
            return codes, p.stats()

    codes, stats = asyncio.run(go())
    assert codes == [200, 401, 401]
    assert stats["rejected"] == {"signature": 1, "timestamp": 1}
