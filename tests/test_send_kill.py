"""End to end over real HTTP and real processes: kills, faults and the rate seen by the provider.

A small webhook provider runs as its own process on 127.0.0.1 and keeps its own
record (``/_stats``, ``/_messages``): every accepted Idempotency-Key with its arrival
time, duplicates, and the faults it injected.  The sender is a real process running
``engine.send`` with a webhook adapter over aiohttp, killed with SIGKILL and resumed.
The tests judge the sender only by the provider's record and the ledger file.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest

from engine.ledger import read_messages
from engine.schema import TIMESTAMP

ROOT = Path(__file__).resolve().parent.parent

PROVIDER = r'''
import asyncio, json, random, sys, time
from aiohttp import web

port, fail_rate, seed = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
accepted = {}        # idempotency key -> arrival time (epoch s)
duplicates = 0
injected = {"503": 0, "timeout": 0, "429": 0}


async def hook(request):
    global duplicates
    body = await request.json()
    key = request.headers.get("Idempotency-Key")
    if not key or key != body.get("message_id"):
        return web.json_response({"error": "Idempotency-Key must equal message_id"}, status=400)
    if fail_rate and rng.random() < fail_rate:
        kind = rng.choice(["503", "timeout", "429"])
        injected[kind] += 1
        if kind == "503":
            return web.json_response({"error": "unavailable"}, status=503)
        if kind == "429":
            return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "0.4"})
        await asyncio.sleep(3.0)  # longer than the client's timeout
        return web.json_response({"error": "late"}, status=504)
    if key in accepted:
        duplicates += 1
        return web.json_response({"id": "p-" + key, "duplicate": True})
    accepted[key] = time.time()
    return web.json_response({"id": "p-" + key})


async def stats(request):
    times = sorted(accepted.values())
    worst = 0
    for i, t in enumerate(times):
        j = i
        lo, hi = i, len(times)
        while lo < hi:
            mid = (lo + hi) // 2
            if times[mid] < t + 1.0:
                lo = mid + 1
            else:
                hi = mid
        worst = max(worst, lo - i)
    return web.json_response({"accepted": len(accepted), "duplicates": duplicates,
                              "injected": injected, "max_per_second": worst})


async def messages(request):
    return web.json_response([{"key": k, "at": t} for k, t in accepted.items()])


app = web.Application()
app.router.add_post("/hooks/{channel}", hook)
app.router.add_get("/_stats", stats)
app.router.add_get("/_messages", messages)
web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)
'''

SENDER = r'''
import asyncio, sys
import aiohttp
from adapters.base import Result
from engine.dispatch import Channel, send
from engine.errors import WinbackError


class Webhook:
    """POST one JSON message per request with an Idempotency-Key; map the answer to a Result."""
    name, max_batch = "webhook", 1

    def __init__(self, url, timeout):
        self.url, self.timeout, self.session = url, aiohttp.ClientTimeout(total=timeout), None

    async def send(self, batch):
        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=self.timeout)
        m = batch[0]
        body = {"message_id": m.message_id, "user_id": m.user_id, "channel": m.channel, "to": m.to,
                "step": m.step, "variant": m.variant, "subject": m.subject, "body": m.body}
        try:
            async with self.session.post(self.url, json=body, headers={"Idempotency-Key": m.message_id}) as r:
                data = await r.json()
                if r.status < 300:
                    return [Result(m.message_id, "sent", provider_id=data.get("id"))]
                after = r.headers.get("Retry-After")
                status = "retry" if r.status == 429 or r.status >= 500 else "failed"
                return [Result(m.message_id, status, retry_after=float(after) if after else None,
                               error=f"{r.status} {data.get('error')}")]
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            return [Result(m.message_id, "retry", error=f"{type(exc).__name__}")]

    async def aclose(self):
        if self.session is not None:
            await self.session.close()


plan, ledger, url, rate, concurrency = sys.argv[1:6]
adapter = Webhook(url, timeout=1.0)
try:
    summary = send(plan, {"push": Channel(adapter, rate_per_second=float(rate), concurrency=int(concurrency))},
                   ledger, now=True)
except WinbackError as exc:
    sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
    sys.exit(exc.exit_code)
finally:
    asyncio.run(adapter.aclose())
sys.exit(0 if summary.complete else 75)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


@contextmanager
def provider(tmp_path: Path, *, fail_rate: float = 0.0, seed: int = 0):
    """The webhook provider as its own process; yields its base URL."""
    script = tmp_path / "provider.py"
    script.write_text(PROVIDER)
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(script), str(port), str(fail_rate), str(seed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"provider did not start: {proc.stderr.read().decode()[-800:]}")
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_sender(tmp_path: Path, plan: Path, ledger: Path, base: str, *, rate: float, concurrency: int = 20):
    script = tmp_path / "sender.py"
    script.write_text(SENDER)
    return subprocess.Popen(
        [sys.executable, str(script), str(plan), str(ledger), f"{base}/hooks/push", str(rate), str(concurrency)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def write_plan(path: Path, n: int) -> list[str]:
    ids = [f"k{i:05d}" for i in range(n)]
    now = int(time.time()) * 1_000_000
    feather.write_feather(pa.table({
        "message_id": ids,
        "campaign_id": ["kill"] * n,
        "user_id": pa.array(np.arange(n), pa.int64()),
        "step": ["we-miss-you"] * n,
        "step_index": pa.array(np.zeros(n, np.int16)),
        "variant": ["plain"] * n,
        "channel": ["push"] * n,
        "send_at": pa.array(np.full(n, now), TIMESTAMP),
        "reason": pa.nulls(n, pa.string()),
        "to": [f"token-{i}" for i in range(n)],
        "subject": ["We miss you"] * n,
        "body": ["Come back"] * n,
    }), path)
    return ids


def test_sigkill_at_random_moments_loses_nothing_and_sends_nothing_twice(tmp_path):
    # given 2,500 planned push messages, a provider process and a sender at 500/s
    n, rate = 2500, 500
    plan, ledger = tmp_path / "plan.arrow", tmp_path / "ledger.db"
    ids = write_plan(plan, n)
    rng = random.Random(6)
    with provider(tmp_path) as base:
        # when the sender is killed with SIGKILL at a random moment of its traffic ten
        # times (each kill waits until the provider saw this run's traffic), resuming each time
        kills = 0
        while kills < 10:
            before = get_json(f"{base}/_stats")["accepted"]
            proc = start_sender(tmp_path, plan, ledger, base, rate=rate)
            deadline = time.time() + 30
            while get_json(f"{base}/_stats")["accepted"] == before and proc.poll() is None:
                assert time.time() < deadline, "the sender sent nothing for 30 s"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        final = start_sender(tmp_path, plan, ledger, base, rate=rate)
        _, err = final.communicate(timeout=120)
        record = get_json(f"{base}/_messages")
        stats = get_json(f"{base}/_stats")

    # then ten kills happened, the last run finished, every planned message reached the
    # provider, none was accepted twice by key, and the ledger agrees with the record
    assert kills == 10, "the send finished before ten kills; plan more messages"
    assert final.returncode == 0, err.decode()
    keys = [r["key"] for r in record]
    assert sorted(keys) == ids
    assert stats["accepted"] == n
    rows = read_messages(ledger).to_pylist()
    assert {r["state"] for r in rows} == {"sent"}
    assert {r["message_id"]: r["provider_id"] for r in rows} == {k: "p-" + k for k in keys}


def test_faults_end_sent_or_dead_and_no_retry_before_retry_after(tmp_path):
    # given a provider that fails 20% of requests: 503, hangs past the timeout, 429 Retry-After 0.4 s
    n = 300
    plan, ledger = tmp_path / "plan.arrow", tmp_path / "ledger.db"
    ids = write_plan(plan, n)
    sys.path.insert(0, str(tmp_path))
    (tmp_path / "sender_mod.py").write_text(SENDER.split("\nplan, ledger, url")[0])
    from sender_mod import Webhook  # the same adapter the sender process uses

    from engine.dispatch import Channel, dispatch

    log: list[tuple[float, float, str, str, float | None]] = []

    class Observed(Webhook):
        """The webhook adapter, logging when each message was tried and what came back."""

        async def send(self, batch):
            start = time.time()
            results = await super().send(batch)
            answered = time.time()
            log.extend((start, answered, r.message_id, r.status, r.retry_after) for r in results)
            return results

    with provider(tmp_path, fail_rate=0.2, seed=3) as base:
        # when the plan is sent through it
        async def main():
            adapter = Observed(f"{base}/hooks/push", timeout=0.5)
            try:
                return await dispatch(plan, {"push": Channel(adapter, rate_per_second=1000, concurrency=20)},
                                      ledger, now=True)
            finally:
                await adapter.aclose()

        summary = asyncio.run(main())
        stats = get_json(f"{base}/_stats")

    # then every message ends final: sent (here every one, as no fault is permanent) or dead
    rows = read_messages(ledger).to_pylist()
    assert summary.complete
    assert all(r["state"] == "sent" or (r["state"] == "dead" and r["last_error"]) for r in rows)
    assert sorted(r["message_id"] for r in rows if r["state"] == "sent") == ids
    assert stats["accepted"] == n and stats["duplicates"] == 0
    # and every kind of fault really happened and was retried
    assert all(v > 0 for v in stats["injected"].values()), stats
    assert sum(1 for e in log if e[3] == "retry") == sum(stats["injected"].values())
    # and no retry started before the Retry-After the provider asked for had passed
    by_id: dict[str, list] = {}
    for entry in sorted(log):
        by_id.setdefault(entry[2], []).append(entry)
    waited = 0
    for tries in by_id.values():
        for (_, answered, _, status, after), (started, *_rest) in zip(tries, tries[1:]):
            assert status == "retry"
            if after:
                waited += 1
                assert started >= answered + after - 0.005
    assert waited == stats["injected"]["429"]


@pytest.mark.parametrize("rate", [100, 1000, 5000])
def test_provider_never_sees_more_than_the_rate_in_any_second(tmp_path, rate):
    # given about two seconds of traffic at the channel's rate
    n = int(rate * 2.2)
    plan, ledger = tmp_path / "plan.arrow", tmp_path / "ledger.db"
    write_plan(plan, n)
    with provider(tmp_path) as base:
        # when the sender process sends it
        proc = start_sender(tmp_path, plan, ledger, base, rate=rate, concurrency=50)
        _, err = proc.communicate(timeout=120)
        stats = get_json(f"{base}/_stats")
        arrivals = sorted(r["at"] for r in get_json(f"{base}/_messages"))

    # then the provider's own record never has more than `rate` in any one-second window
    assert proc.returncode == 0, err.decode()
    assert stats["accepted"] == n
    assert 0 < stats["max_per_second"] <= rate
    worst = max(bisect.bisect_left(arrivals, t + 1.0) - i for i, t in enumerate(arrivals))
    assert worst == stats["max_per_second"]
