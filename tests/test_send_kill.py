"""End to end against the local provider process: kills, faults and the provider-side rate.

Every test starts ``winback provider`` as a real process on 127.0.0.1 and reads its
own record (``/_stats``, ``/_messages``) to judge what ``winback send`` did.
"""

from __future__ import annotations

import asyncio
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

from engine.ledger import read_messages
from engine.schema import TIMESTAMP

pytest.importorskip("adapters.local_provider", reason="the local provider is not in this tree yet")

SECRET = "kill-test-secret"
ENV = {**os.environ, "WINBACK_WEBHOOK_SECRET": SECRET, "PYTHONUNBUFFERED": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def provider(tmp_path: Path, *args: str):
    """``winback provider`` as a process; yields (port, base url)."""
    port = free_port()
    record = tmp_path / "provider-record.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "provider", "--port", str(port), "--record", str(record), *args],
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.time() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"provider did not start: {proc.stderr.read().decode()[-800:]}")
                time.sleep(0.1)
        yield port, f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


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


def write_providers(path: Path, base: str, *, rate: float, concurrency: int = 20,
                    timeout: float = 2.0, max_attempts: int = 8) -> Path:
    path.write_text(
        "[channels.push]\n"
        'adapter = "webhook"\n'
        f'url = "{base}/hooks/push"\n'
        'secret_env = "WINBACK_WEBHOOK_SECRET"\n'
        f"rate_per_second = {rate}\n"
        f"concurrency = {concurrency}\n"
        f"timeout_seconds = {timeout}\n"
        f"max_attempts = {max_attempts}\n"
    )
    return path


def winback_send(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "engine", "send", *args, "--no-progress"],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def accepted_keys(base: str) -> list[str]:
    """Idempotency keys (message ids) the provider accepted, one entry per acceptance."""
    record = get_json(f"{base}/_messages")
    rows = record["messages"] if isinstance(record, dict) else record
    return [r.get("idempotency_key") or r.get("message_id") for r in rows]


def test_sigkill_at_random_moments_loses_nothing_and_sends_nothing_twice(tmp_path):
    # given a plan of 2,500 push messages, a provider process and a rate of 500/s
    n, rate = 2500, 500
    plan = tmp_path / "plan.arrow"
    ids = write_plan(plan, n)
    ledger = tmp_path / "ledger.db"
    rng = random.Random(6)
    with provider(tmp_path) as (_, base):
        providers = write_providers(tmp_path / "providers.toml", base, rate=rate)
        args = [str(plan), "--providers", str(providers), "--ledger", str(ledger), "--now"]

        # when `winback send` is killed with SIGKILL at random moments ten times while it
        # sends (each kill waits until the provider saw this run's traffic), resuming each time
        kills = 0
        while kills < 10:
            before = get_json(f"{base}/_stats")["accepted"]
            proc = winback_send(*args)
            deadline = time.time() + 30
            while get_json(f"{base}/_stats")["accepted"] == before and proc.poll() is None:
                assert time.time() < deadline, "winback send sent nothing for 30 s"
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.35))
            if proc.poll() is not None:
                break  # finished before the kill: nothing left to interrupt
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        final = winback_send(*args)
        out, err = final.communicate(timeout=60)

        # then the last run finishes, every planned message reached the provider exactly once
        # by key, and the ledger agrees with the provider's record
        assert final.returncode == 0, err.decode()
        assert kills >= 10, "the send finished before ten kills; raise n or lower the rate"
        keys = accepted_keys(base)
        assert sorted(keys) == ids  # none missing, none accepted twice
        stats = get_json(f"{base}/_stats")
    rows = read_messages(ledger).to_pylist()
    assert {r["state"] for r in rows} == {"sent"}
    assert sorted(r["message_id"] for r in rows if r["state"] == "sent") == sorted(keys)
    assert stats["accepted"] == n


def test_faults_end_sent_or_dead_and_no_retry_before_retry_after(tmp_path):
    # given a provider failing 20% of requests (5xx, timeouts, 429 with Retry-After)
    n = 400
    plan = tmp_path / "plan.arrow"
    ids = write_plan(plan, n)
    ledger = tmp_path / "ledger.db"
    with provider(tmp_path, "--fail-rate", "0.2", "--seed", "3") as (_, base):
        providers = write_providers(tmp_path / "providers.toml", base, rate=2000, timeout=0.5)

        # when the plan is sent through the real webhook adapter, observing each answer
        from adapters.config import build_adapter, load_providers
        from engine.dispatch import Channel, dispatch

        cfg = load_providers(providers)["push"]
        log: list[tuple[float, float, str, str, float | None]] = []

        class Observed:
            """The real adapter, with a log of when each message was tried and what came back."""

            def __init__(self, inner):
                self.inner, self.name, self.max_batch = inner, inner.name, inner.max_batch

            async def send(self, batch):
                start = time.time()
                results = await self.inner.send(batch)
                answered = time.time()
                for r in results:
                    log.append((start, answered, r.message_id, r.status, r.retry_after))
                return results

            async def aclose(self):
                await self.inner.aclose()

        async def main():
            adapter = Observed(build_adapter(cfg))
            try:
                return await dispatch(plan, {"push": Channel(adapter, rate_per_second=2000, concurrency=20,
                                                             max_attempts=8)}, ledger, now=True)
            finally:
                await adapter.aclose()

        summary = asyncio.run(main())
        keys = accepted_keys(base)

    # then every message is final: sent, or dead for a permanent reason
    rows = read_messages(ledger).to_pylist()
    assert summary.complete
    assert all(r["state"] == "sent" or (r["state"] == "dead" and r["last_error"]) for r in rows)
    assert {r["message_id"] for r in rows if r["state"] == "sent"} <= set(keys) <= set(ids)
    # and faults really happened and were retried
    assert sum(1 for *_, s, _ in log if s == "retry") >= n * 0.1
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
    assert waited > 0


@pytest.mark.parametrize("rate", [100, 1000, 5000])
def test_provider_never_sees_more_than_the_rate_in_any_second(tmp_path, rate):
    # given a plan of about two seconds of traffic at the channel's rate
    n = int(rate * 2.2)
    plan = tmp_path / "plan.arrow"
    write_plan(plan, n)
    with provider(tmp_path) as (_, base):
        providers = write_providers(tmp_path / "providers.toml", base, rate=rate, concurrency=50)

        # when it is sent
        proc = winback_send(str(plan), "--providers", str(providers), "--ledger", str(tmp_path / "l.db"), "--now")
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        stats = get_json(f"{base}/_stats")

    # then the provider's own record never shows more than `rate` in any one-second window
    per_route = stats["max_per_second"]
    worst = max(per_route.values()) if isinstance(per_route, dict) else per_route
    assert stats["accepted"] == n
    assert 0 < worst <= rate
