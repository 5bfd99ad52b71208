"""Send hot paths without the network: limiter acquisitions, ledger claim/record, the loop.

As a pytest-benchmark suite::

    pytest benchmarks/bench_send.py -o python_files='bench_*.py' --benchmark-enable

* ``test_limiter_acquire_uncontended``: one ``RateLimiter.acquire`` at a rate far above
  the call rate (the cost every request pays);
* ``test_ledger_claim_and_record``: claim 1,000 messages in batches of 200 and record
  them as sent with flushes every 100 rows (the ledger's share of the loop);
* ``test_dispatch_loop``: ``engine.send`` of 5,000 messages through an in-process
  adapter that answers at once (everything but HTTP), from plan table to ledger.

The side-by-side numbers against a bare aiohttp loop are in ``compare_send.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import time

import numpy as np
import pyarrow as pa

from engine.sending.protocol import Result
from engine.sending.dispatcher import Channel, send
from engine.ledger.store import Ledger
from engine.sending.limiter import RateLimiter
from engine.schema import TIMESTAMP


def _plan(n: int, prefix: str) -> pa.Table:
    now = int(time.time()) * 1_000_000
    return pa.table({
        "message_id": [f"{prefix}{i}" for i in range(n)],
        "user_id": pa.array(np.arange(n), pa.int64()),
        "channel": ["push"] * n,
        "step": ["s"] * n,
        "send_at": pa.array(np.full(n, now), TIMESTAMP),
        "to": [f"tok{i}" for i in range(n)],
        "body": ["hello"] * n,
    })


class _Instant:
    name = "instant"
    max_batch = 1

    async def send(self, batch):
        return [Result(m.message_id, "sent") for m in batch]

    async def aclose(self):
        pass


def test_limiter_acquire_uncontended(benchmark):
    lim = RateLimiter(10_000_000)

    async def many():
        for _ in range(10_000):
            await lim.acquire()

    benchmark(lambda: asyncio.run(many()))


def test_ledger_claim_and_record(benchmark, tmp_path):
    runs = itertools.count()

    def one():
        path = tmp_path / f"l{next(runs)}.db"
        with Ledger(path) as led:
            led.load_plan(_plan(1000, "m"))
            t = time.time()
            while rows := led.claim("push", 200, now=t, release_until=t + 1):
                for r in rows:
                    led.sent(r[-1], None, t)
                    if led.pending_writes >= 100:
                        led.flush()
            led.flush()

    benchmark(one)


def test_dispatch_loop(benchmark, tmp_path):
    runs = itertools.count()

    def one():
        k = next(runs)
        summary = send(_plan(5000, f"r{k}-"), {"push": Channel(_Instant(), concurrency=50)},
                       tmp_path / f"l{k}.db", now=True)
        assert summary.sent == 5000

    benchmark.pedantic(one, rounds=3, iterations=1)
