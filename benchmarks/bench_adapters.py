"""Adapters against the in-process local provider over loopback HTTP.

As a pytest-benchmark suite::

    pytest benchmarks/bench_adapters.py -o python_files='bench_*.py' --benchmark-enable

* ``test_webhook_200``: 200 signed webhook requests, 20 in flight (JSON, HMAC, POST);
* ``test_sendgrid_batch_1000``: one SendGrid request carrying 1,000 personalizations;
* ``test_fcm_200`` / ``test_twilio_200``: 200 single-message requests, 20 in flight;
* ``test_file_export_1000``: 1,000 hashed audience rows appended with one fsync;
* ``test_message_json_sign``: building and signing one webhook body (no network).

Each round uses fresh message ids, so the provider records every message.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from engine.sending.protocol import SENT, Message
from adapters.fcm import FcmAdapter
from adapters.file import FileAdapter
from adapters.local_provider import LocalProvider
from adapters.sendgrid import SendGridAdapter
from adapters.twilio import TwilioAdapter
from adapters.webhook import WebhookAdapter, message_json, sign

_round = itertools.count()


def _msgs(n: int, channel: str, to) -> list[Message]:
    r = next(_round)
    return [Message(f"b{r}-{i}", i, channel, "s", "a", to(i), "Hi", "Come back", 1_790_000_000.0)
            for i in range(n)]


def _run_http(benchmark, make, channel: str, to, n: int, per_request: int, concurrency: int = 20):
    loop = asyncio.new_event_loop()
    provider = LocalProvider(webhook_secret="bench")
    loop.run_until_complete(provider.start())
    adapter = make(provider.url)

    async def once():
        batches = [b for b in (lambda ms: [ms[i:i + per_request] for i in range(0, n, per_request)])(
            _msgs(n, channel, to))]
        sem = asyncio.Semaphore(concurrency)

        async def one(b):
            async with sem:
                return await adapter.send(b)

        out = await asyncio.gather(*(one(b) for b in batches))
        assert all(r.status == SENT for rs in out for r in rs)

    try:
        benchmark.pedantic(lambda: loop.run_until_complete(once()), rounds=5, warmup_rounds=1)
    finally:
        loop.run_until_complete(adapter.aclose())
        loop.run_until_complete(provider.stop())
        loop.close()


def test_webhook_200(benchmark):
    _run_http(benchmark, lambda url: WebhookAdapter(f"{url}/hooks/push", "bench"), "push", lambda i: f"t{i}", 200, 1)


def test_sendgrid_batch_1000(benchmark):
    _run_http(benchmark, lambda url: SendGridAdapter(url, "key"), "email", lambda i: f"u{i}@example.com", 1000, 1000)


def test_fcm_200(benchmark):
    _run_http(benchmark, lambda url: FcmAdapter(url, "p", "tok"), "push", lambda i: f"t{i}", 200, 1)


def test_twilio_200(benchmark):
    _run_http(benchmark, lambda url: TwilioAdapter(url, "AC1", "tok"), "sms", lambda i: f"+1555{i:07d}", 200, 1)


def test_file_export_1000(benchmark, tmp_path):
    adapter = FileAdapter(tmp_path / "audience.csv")

    def once():
        res = asyncio.run(adapter.send(_msgs(1000, "ads", lambda i: f"user{i}@example.com")))
        assert all(r.status == SENT for r in res)

    benchmark.pedantic(once, rounds=5, warmup_rounds=1)


@pytest.mark.parametrize("platform", ["meta", "google"])
def test_ads_audience_1000(benchmark, tmp_path, platform):
    """1,000 audience rows (email, phone, name, country: normalised and hashed), one part file."""
    from adapters.ads import AdsAdapter

    adapter = AdsAdapter(tmp_path / "audience.csv", platform=platform)
    ids = (lambda i: '{"email":"User%d@Example.com","phone":"+1555%07d","first_name":"Ann","last_name":"Lee",'
           '"country":"US","zip":"94043"}' % (i, i))
    state = {"k": 0}

    def once():
        k = state["k"]
        state["k"] += 1000
        res = asyncio.run(adapter.send(_msgs(1000, "ads", lambda i: ids(k + i))))
        assert all(r.status == SENT for r in res)

    benchmark.pedantic(once, rounds=5, warmup_rounds=1)


def test_message_json_sign(benchmark):
    [m] = _msgs(1, "push", lambda i: "tok")

    def once():
        body = message_json(m)
        return sign("bench", 1_790_000_000, body)

    assert benchmark(once).startswith("sha256=")
