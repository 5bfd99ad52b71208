"""End to end with the real pieces: `winback provider` and `winback send` as processes.

The local provider runs as its own process on 127.0.0.1 and keeps its own record
(``/_stats``, ``/_messages``): every accepted message once by its Idempotency-Key with
its arrival time, duplicates, and the faults it injected.  ``winback send`` runs as a
real subprocess with a providers file pointing at it, is killed with SIGKILL and
resumed.  The tests judge the sender only by the provider's record and the ledger file.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import os
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

from tests.helpers import ROOT
from engine.ledger.store import read_messages
from engine.schema import TIMESTAMP

SECRET_ENV = "WINBACK_WEBHOOK_SECRET"
ENV = {**os.environ, SECRET_ENV: "kill-test-secret"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


@contextmanager
def provider(tmp_path: Path, *args: str):
    """``winback provider`` as a process checking webhook signatures; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "provider", "--port", str(port), "--webhook-secret-env", SECRET_ENV,
         *args],
        cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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


def write_providers(path: Path, base: str, *, rate: float, concurrency: int = 20, timeout: float = 2.0) -> Path:
    path.write_text(
        "[channels.push]\n"
        'adapter = "webhook"\n'
        f'url = "{base}/hooks/push"\n'
        f'secret_env = "{SECRET_ENV}"\n'
        f"rate_per_second = {rate}\n"
        f"concurrency = {concurrency}\n"
        f"timeout_seconds = {timeout}\n"
        "max_attempts = 8\n")
    return path


def winback_send(tmp_path: Path, plan: Path, ledger: Path, base: str, *, rate: float, concurrency: int = 20):
    """``winback send PLAN --providers ... --ledger ... --now`` as a process."""
    providers = write_providers(tmp_path / "providers.toml", base, rate=rate, concurrency=concurrency)
    return subprocess.Popen(
        [sys.executable, "-m", "engine", "send", str(plan), "--providers", str(providers), "--ledger", str(ledger),
         "--now", "--no-progress"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


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
    # given 2,500 planned push messages, a provider process answering 3% of requests 429
    # with Retry-After 1 s, and a sender at 500/s
    n, rate = 2500, 500
    plan, ledger = tmp_path / "plan.arrow", tmp_path / "ledger.db"
    ids = write_plan(plan, n)
    rng = random.Random(6)
    with provider(tmp_path, "--rate-429", "0.03", "--retry-after", "1", "--seed", "6") as base:
        # when `winback send` is killed with SIGKILL at a random moment of its traffic ten
        # times (each kill waits until the provider saw this run's traffic), resuming each time
        kills = 0
        while kills < 10:
            before = get_json(f"{base}/_stats")["accepted"]
            proc = winback_send(tmp_path, plan, ledger, base, rate=rate)
            deadline = time.time() + 30
            while get_json(f"{base}/_stats")["accepted"] == before and proc.poll() is None:
                assert time.time() < deadline, "winback send sent nothing for 30 s"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        final = winback_send(tmp_path, plan, ledger, base, rate=rate)
        _, err = final.communicate(timeout=120)
        record = get_json(f"{base}/_messages")
        stats = get_json(f"{base}/_stats")
        attempts = get_json(f"{base}/_attempts")

    # then ten kills happened, the last run finished, every planned message reached the
    # provider, none was accepted twice by key, and the ledger agrees with the record;
    # no retry came before the Retry-After its 429 gave (across the kills too), and no
    # one-second window of the provider's clock saw more than 500 requests
    assert kills == 10, "the send finished before ten kills; plan more messages"
    assert final.returncode == 0, err.decode()
    keys = [r["key"] for r in record]
    assert sorted(keys) == ids
    assert stats["accepted"] == n
    rows = read_messages(ledger).to_pylist()
    assert {r["state"] for r in rows} == {"sent"}
    assert {r["message_id"]: r["provider_id"] for r in rows} == {r["key"]: r["provider_id"] for r in record}
    by_key: dict[str, list] = {}
    for a in sorted(attempts, key=lambda a: a["at"]):
        by_key.setdefault(a["key"], []).append(a)
    told = [(a, b) for tries in by_key.values() for a, b in zip(tries, tries[1:]) if a["status"] == 429]
    assert len(told) >= 20, "too few 429s to judge; raise --rate-429"
    early = [(a["key"], round(b["at"] - a["at"], 3)) for a, b in told if b["at"] < a["at"] + a["retry_after"] - 1e-3]
    assert early == []
    assert stats["max_arrivals_per_second"]["push"] <= rate


def test_faults_end_sent_or_dead_and_no_retry_before_retry_after(tmp_path):
    # given a provider failing 20% of requests, evenly 503s, 429s with Retry-After 0.4 s,
    # hangs past the client's timeout and dropped connections
    n = 300
    plan, ledger = tmp_path / "plan.arrow", tmp_path / "ledger.db"
    ids = write_plan(plan, n)
    from engine.sending.providers import build_adapter, load_providers
    from engine.sending.dispatcher import Channel, dispatch

    log: list[tuple[float, float, str, str, float | None]] = []

    class Observed:
        """The real webhook adapter, with a log of when each message was tried and what came back."""

        def __init__(self, inner):
            self.inner, self.name, self.max_batch = inner, inner.name, inner.max_batch

        async def send(self, batch):
            start = time.time()
            results = await self.inner.send(batch)
            answered = time.time()
            log.extend((start, answered, r.message_id, r.status, r.retry_after) for r in results)
            return results

        async def aclose(self):
            await self.inner.aclose()

    with provider(tmp_path, "--fail-rate", "0.2", "--seed", "3", "--retry-after", "0.4",
                  "--hang-seconds", "1") as base:
        os.environ.setdefault(SECRET_ENV, ENV[SECRET_ENV])
        cfg = load_providers(write_providers(tmp_path / "providers.toml", base, rate=1000, timeout=0.5))["push"]

        # when the plan is sent through it
        async def main():
            adapter = Observed(build_adapter(cfg))
            try:
                return await dispatch(plan, {"push": Channel(adapter, rate_per_second=1000, concurrency=20)},
                                      ledger, now=True)
            finally:
                await adapter.aclose()

        summary = asyncio.run(main())
        time.sleep(1.2)  # the provider counts a hung request once its hang is over
        stats = get_json(f"{base}/_stats")

    # then every message ends final: sent (here every one, as no fault is permanent) or dead
    rows = read_messages(ledger).to_pylist()
    assert summary.complete
    assert all(r["state"] == "sent" or (r["state"] == "dead" and r["last_error"]) for r in rows)
    assert sorted(r["message_id"] for r in rows if r["state"] == "sent") == ids
    assert stats["accepted"] == n and stats["duplicates"] == 0
    # and every kind of fault really happened and was retried
    faults = {k: v for k, v in stats["rejected"].items() if k.startswith("fault_")}
    assert set(faults) == {"fault_5xx", "fault_429", "fault_timeout", "fault_drop"}, stats
    assert sum(1 for e in log if e[3] == "retry") == sum(faults.values())
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
    assert waited == faults["fault_429"]


@pytest.mark.parametrize("rate", [100, 1000, 5000])
def test_provider_never_sees_more_than_the_rate_in_any_second(tmp_path, rate):
    # given about two seconds of traffic at the channel's rate
    n = int(rate * 2.2)
    plan, ledger = tmp_path / "plan.arrow", tmp_path / "ledger.db"
    write_plan(plan, n)
    with provider(tmp_path) as base:
        # when `winback send` sends it
        proc = winback_send(tmp_path, plan, ledger, base, rate=rate, concurrency=50)
        _, err = proc.communicate(timeout=120)
        stats = get_json(f"{base}/_stats")
        arrivals = sorted(r["at"] for r in get_json(f"{base}/_messages"))

    # then the provider's own record never has more than `rate` in any one-second window
    assert proc.returncode == 0, err.decode()
    assert stats["accepted"] == n
    assert 0 < stats["max_per_second"]["push"] <= rate
    worst = max(bisect.bisect_left(arrivals, t + 1.0) - i for i, t in enumerate(arrivals))
    assert worst <= rate


def test_messages_that_died_of_an_outage_go_once_with_retry_dead_and_permanent_failures_stay_dead(tmp_path):
    """A real webhook server on 127.0.0.1 that is down (503) for the first run, then up:
    the outage's messages die after max_attempts; a rerun leaves them dead and says so;
    --retry-dead sends each exactly once; a message refused for good (400) stays dead."""
    import asyncio

    from aiohttp import web

    from adapters.webhook import WebhookAdapter
    from engine.ledger.store import read_messages
    from engine.sending.dispatcher import Channel, dispatch
    from tests.helpers import local_server, make_plan

    up = {"now": False}
    delivered = []

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        key = request.headers["Idempotency-Key"]
        if key == "m3":
            return web.Response(status=400, text="invalid push address")
        if not up["now"]:
            return web.Response(status=503, text="down for maintenance")
        delivered.append(key)
        return web.json_response({"ok": True})

    def run(**kw):
        async def main():
            async with local_server(handle) as base:
                adapter = WebhookAdapter(base + "/hook", "secret")
                try:
                    return await dispatch(make_plan(4), {"push": Channel(adapter, max_attempts=2)},
                                          tmp_path / "l.db", now=True, handle_signals=False, max_seconds=30, **kw)
                finally:
                    await adapter.aclose()
        return asyncio.run(main())

    first = run()
    assert first.dead == 4 and first.gave_up == 3 and delivered == []
    from engine.sending.dispatcher import send

    assert send(make_plan(4), {"push": Channel(WebhookAdapter("http://127.0.0.1:9/hook", "s"))}, tmp_path / "l.db",
                dry_run=True).gave_up == 3  # the dry run says what --retry-dead would revive
    up["now"] = True
    again = run()
    assert again.sent == 0 and again.gave_up == 3  # dead stays dead without the flag
    revived = run(retry_dead=True)
    assert revived.revived == 3 and revived.sent == 3 and revived.gave_up == 0
    assert sorted(delivered) == ["m0", "m1", "m2"]
    assert run(retry_dead=True).sent == 0 and sorted(delivered) == ["m0", "m1", "m2"]  # exactly once
    m = read_messages(tmp_path / "l.db")
    states = dict(zip(m["message_id"].to_pylist(), m["state"].to_pylist()))
    assert states == {"m0": "sent", "m1": "sent", "m2": "sent", "m3": "dead"}
