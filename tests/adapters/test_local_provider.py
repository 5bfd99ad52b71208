"""The local provider: rate limit, duplicates, stats, seeded faults, and the process."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import urllib.request

from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import ROOT
from engine.sending.protocol import RETRY, SENT, Message
from adapters.local_provider import Faults, LocalProvider, max_in_window
from adapters.webhook import WebhookAdapter

SECRET = "local-test-secret"


def naive_max_in_window(times: list[float], window: float = 1.0) -> int:
    """For every start time, count the times in [start, start + window)."""
    return max((sum(1 for u in times if t <= u < t + window) for t in times), default=0)


@given(st.lists(st.floats(0, 10, allow_nan=False), max_size=60))
def test_max_in_window_agrees_with_the_obvious_count(times):
    times = sorted(times)
    assert max_in_window(times) == naive_max_in_window(times)


def test_max_in_window_empty_and_single():
    assert max_in_window([]) == 0
    assert max_in_window([3.0]) == 1


def push(i: int) -> Message:
    return Message(f"m-{i}", i, "push", "s", None, f"tok-{i}", "t", "b", 1_790_000_000.0)


async def blast(p: LocalProvider, ids: list[int], concurrency: int = 20) -> list:
    adapter = WebhookAdapter(f"{p.url}/hooks/push", SECRET, timeout=5)
    queue = list(ids)
    out: dict[int, object] = {}

    async def worker():
        while queue:
            i = queue.pop(0)
            out[i] = (await adapter.send([push(i)]))[0]

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await adapter.aclose()
    return [out[i] for i in ids]


def get(url: str):
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def test_rate_limit_holds_in_every_one_second_window_and_answers_429_with_retry_after():
    async def go():
        async with LocalProvider(rates={"push": 20}, webhook_secret=SECRET) as p:
            t0 = time.monotonic()
            done: set[str] = set()
            limited = []
            while len(done) < 50 and time.monotonic() - t0 < 20:
                todo = [i for i in range(50) if f"m-{i}" not in done]
                for i, r in zip(todo, await blast(p, todo)):
                    if r.status == SENT:
                        done.add(r.message_id)
                    else:
                        limited.append(r)
                await asyncio.sleep(0.2)
            return done, limited, p.stats(), await asyncio.to_thread(get, f"{p.url}/_stats")

    done, limited, stats, http_stats = asyncio.run(go())
    assert len(done) == 50
    assert limited and all(r.status == RETRY and r.error.startswith("429") and r.retry_after >= 1
                           for r in limited)
    assert stats["max_per_second"]["push"] <= 20
    assert stats["rejected"]["rate_limited"] == len(limited)
    assert http_stats == json.loads(json.dumps(stats))



def test_rate_limit_holds_in_the_record_when_latency_delays_the_answers():
    """The record stamps an accept with its admission time, so latency added after the
    rate check cannot crowd more than the limit into one second of the record."""
    async def go():
        # given a provider limited to 50/s that delays every answer (exponential, mean 30 ms)
        async with LocalProvider(rates={"push": 50}, faults=Faults(latency_ms=30), seed=1,
                                 webhook_secret=SECRET) as p:
            adapter = WebhookAdapter(f"{p.url}/hooks/push", SECRET, timeout=5)

            async def sender(ids):
                for i in ids:
                    while (await adapter.send([push(i)]))[0].status != SENT:
                        await asyncio.sleep(0.01)

            # when 40 senders each keep retrying their share of 200 messages until sent
            try:
                await asyncio.wait_for(asyncio.gather(*(sender(range(k, 200, 40)) for k in range(40))), 30)
            finally:
                await adapter.aclose()
            return p.stats(), p.messages()

    stats, record = asyncio.run(go())
    # then all were sent and neither the stats nor the record exceed 50 in any second
    assert stats["accepted"] == 200
    assert stats["max_per_second"]["push"] <= 50
    assert max_in_window(sorted(m["at"] for m in record)) <= 50

def test_duplicates_are_answered_again_and_counted_once_and_messages_lists_each_once():
    async def go():
        async with LocalProvider(webhook_secret=SECRET) as p:
            first = await blast(p, list(range(10)))
            again = await blast(p, [0, 1, 2])
            return first, again, p.stats(), await asyncio.to_thread(get, f"{p.url}/_messages")

    first, again, stats, listed = asyncio.run(go())
    assert all(r.status == SENT for r in first + again)
    assert [r.provider_id for r in again] == [r.provider_id for r in first[:3]]  # same answer as the first time
    assert stats["accepted"] == 10 and stats["duplicates"] == 3
    assert sorted(m["message_id"] for m in listed) == sorted(f"m-{i}" for i in range(10))


def test_faults_follow_the_seed():
    def outcome(seed: int) -> list[str]:
        async def go():
            async with LocalProvider(webhook_secret=SECRET, seed=seed,
                                     faults=Faults(error_rate=0.3, rate_429=0.2)) as p:
                return [r.status + (r.error or "")[:3] for r in await blast(p, list(range(40)), concurrency=1)]

        return asyncio.run(go())

    a, b = outcome(7), outcome(7)
    assert a == b
    assert any(s.startswith("retry503") for s in a) and any(s.startswith("retry429") for s in a)
    assert any(s == "sent" for s in a)


def test_the_provider_process_prints_its_port_records_and_stops_on_sigterm(tmp_path):
    record = tmp_path / "record.json"
    proc = subprocess.Popen([sys.executable, "-m", "engine", "provider", "--port", "0", "--record", str(record),
                             "--record-every", "0.1", "--rate", "push=1000"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("local provider on http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[-1]
        p = type("P", (), {"url": url})()
        results = asyncio.run(blast(p, list(range(5))))
        assert all(r.status == SENT for r in results)
        deadline = time.time() + 10
        while time.time() < deadline:  # the periodic record, readable while it runs
            if record.exists() and json.loads(record.read_text())["stats"]["accepted"] == 5:
                break
            time.sleep(0.05)
        assert json.loads(record.read_text())["stats"]["accepted"] == 5
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "5 accepted" in out and "Traceback" not in err
    final = json.loads(record.read_text())
    assert sorted(m["message_id"] for m in final["messages"]) == [f"m-{i}" for i in range(5)]
    assert final["stats"]["max_per_second"]["push"] <= 5


def test_the_provider_process_names_a_missing_secret_variable_in_one_line():
    proc = subprocess.run([sys.executable, "-m", "engine", "provider", "--port", "0",
                           "--webhook-secret-env", "WINBACK_SURELY_UNSET_VAR"],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert "WINBACK_SURELY_UNSET_VAR" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_winback_send_through_every_adapter_from_a_providers_file(tmp_path, monkeypatch):
    import numpy as np
    import pyarrow as pa

    from engine.sending.dispatcher import send
    from engine.schema import TIMESTAMP

    # given the provider process checking real credentials, and a providers file like the local example
    env = {"WINBACK_WEBHOOK_SECRET": "wh-secret", "SENDGRID_API_KEY": "sg-key", "TWILIO_ACCOUNT_SID": "AC9",
           "TWILIO_AUTH_TOKEN": "tw-token"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    proc = subprocess.Popen([sys.executable, "-m", "engine", "provider", "--port", "0",
                             "--webhook-secret-env", "WINBACK_WEBHOOK_SECRET", "--api-key-env", "SENDGRID_API_KEY",
                             "--twilio-env", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().split()[-1]
        text = (ROOT / "examples/providers.local.toml").read_text().replace("http://127.0.0.1:8025", url)
        providers = tmp_path / "providers.toml"
        providers.write_text(text.replace("out/audience.csv", str(tmp_path / "audience.csv")))
        n = 12
        channels = ["email"] * n + ["sms"] * n + ["push"] * n + ["ads"] * n
        to = ([f"u{i}@example.com" for i in range(n)] + [f"+1555000{i:04d}" for i in range(n - 1)] + ["12"]
              + [f"tok{i}" for i in range(n)] + [f"a{i}@example.com" for i in range(n)])
        m = len(channels)
        plan = pa.table({
            "message_id": [f"e2e-{i}" for i in range(m)], "campaign_id": ["c"] * m,
            "user_id": pa.array(range(m), pa.int64()), "step": ["s"] * m,
            "step_index": pa.array([0] * m, pa.int16()), "variant": ["a"] * m, "channel": channels,
            "send_at": pa.array(np.full(m, int(time.time() * 1e6)), TIMESTAMP),
            "reason": pa.nulls(m, pa.string()), "to": to, "subject": ["Hi"] * m, "body": ["Come back"] * m,
        })

        # when winback sends the plan now
        summary = send(plan, providers, tmp_path / "ledger.db", now=True)
        stats = get(f"{url}/_stats")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)

    # then every good message is sent, the bad number is dead, the provider saw each once
    assert summary.sent == m - 1
    assert stats["accepted"] == 3 * n - 1 and stats["duplicates"] == 0
    assert stats["rejected"] == {"invalid_address": 1}
    assert len((tmp_path / "audience.csv").read_text().splitlines()) == n + 1  # header + rows
