"""The webhook receiver over loopback HTTP, and the outcome/report pipeline in memory.

As a pytest-benchmark suite::

    pytest benchmarks/bench_receive.py -o python_files='bench_*.py' --benchmark-enable

* ``test_sendgrid_20x500``: 20 signed SendGrid requests of 500 events each, 10 in flight,
  acknowledged after their batch file is fsync'd (10,000 events per round);
* ``test_generic_200``: 200 signed single-event requests to /events, 20 in flight
  (the per-request cost: signature, JSON, batching, one fsync per flush);
* ``test_simulate_20k`` / ``test_report_20k``: simulate outcomes for a hand-built 20,000-user
  plan and compute its report summary (no plots).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np
import pyarrow as pa

from adapters.webhook import sign
from engine.feedback.receiver import Receiver, sendgrid_hmac_signature, serve
from engine.tz import from_epoch_seconds

_round = itertools.count()


def _run(benchmark, make_bodies, path: str, headers, concurrency: int):
    loop = asyncio.new_event_loop()
    tmp = Path(tempfile.mkdtemp(prefix="bench-receive-"))
    rec = Receiver(tmp / "ev", secret="s", sendgrid_secret="s", flush_events=2000, flush_seconds=0.005)
    runner = loop.run_until_complete(serve(rec, "127.0.0.1", 0))
    url = f"http://127.0.0.1:{runner.addresses[0][1]}{path}"
    session = loop.run_until_complete(_session())

    async def one_round():
        bodies = make_bodies(next(_round))
        sem = asyncio.Semaphore(concurrency)

        async def post(b):
            async with sem, session.post(url, data=b, headers=headers(b)) as r:
                assert r.status == 200, await r.text()

        await asyncio.gather(*(post(b) for b in bodies))

    try:
        benchmark(lambda: loop.run_until_complete(one_round()))
    finally:
        loop.run_until_complete(session.close())
        loop.run_until_complete(runner.cleanup())
        loop.close()


async def _session():
    return aiohttp.ClientSession()


def _sg_headers(b: bytes) -> dict:
    ts = str(int(time.time()))
    return {"X-Twilio-Email-Event-Webhook-Timestamp": ts,
            "X-Twilio-Email-Event-Webhook-Signature": sendgrid_hmac_signature("s", ts, b)}


def _ev_headers(b: bytes) -> dict:
    ts = str(int(time.time()))
    return {"X-Winback-Timestamp": ts, "X-Winback-Signature": sign("s", ts, b)}


def test_sendgrid_20x500(benchmark):
    def bodies(r):
        return [json.dumps([{"event": "open", "timestamp": 1_790_000_000 + i, "message_id": f"r{r}-{j}-{i}",
                             "user_id": str(i), "email": f"u{i}@example.com"} for i in range(500)]).encode()
                for j in range(20)]
    _run(benchmark, bodies, "/sendgrid", _sg_headers, 10)


def test_generic_200(benchmark):
    def bodies(r):
        return [json.dumps({"event": "open", "channel": "push", "message_id": f"r{r}-{i}", "user_id": i}).encode()
                for i in range(200)]
    _run(benchmark, bodies, "/events", _ev_headers, 20)


def _world(n=20_000):
    uid = np.arange(1, n + 1, dtype=np.int64)
    held = uid % 10 == 0
    plan = pa.table({
        "message_id": [f"m{u}" for u in uid], "user_id": uid, "step": ["s"] * n,
        "step_index": pa.array(np.zeros(n, np.int16)), "variant": ["A"] * n, "channel": ["email"] * n,
        "send_at": from_epoch_seconds(np.full(n, 1_790_071_200, np.int64)),
        "reason": pa.array([("holdout" if h else None) for h in held], pa.string()), "holdout": pa.array(held),
        "timezone": ["UTC"] * n,
    })
    truth = pa.table({"user_id": uid, "alive": pa.array(uid % 4 < 2), "activity_rate": np.full(n, 0.05),
                      "preferred_hour_local": pa.array(np.full(n, 10, np.int8)),
                      "fatigue_sensitivity": np.full(n, 0.3), "resp_email": np.full(n, 0.3)})
    return plan, truth


def test_simulate_20k(benchmark):
    from engine.synth.simulate import simulate

    plan, truth = _world()
    benchmark(lambda: simulate(plan, truth, seed=1))


def test_report_20k(benchmark):
    from engine.reporting.measure import report
    from engine.synth.simulate import simulate

    plan, truth = _world()
    ev = simulate(plan, truth, seed=1)
    benchmark(lambda: report(plan, ev))
