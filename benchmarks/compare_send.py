"""Side by side: winback send vs a bare aiohttp loop, and winback's limiter vs the alternatives.

Default mode, in one run against one local provider process with no limits:

1. **bare**: an aiohttp client loop (``concurrency`` tasks, one keep-alive session)
   POSTing the same webhook JSON to the provider: the ceiling of this machine;
2. **winback**: ``winback send``'s library call (``engine.send``) with the SQLite
   ledger, the rate limiter (at a rate far above what is reachable) and the
   webhook adapter, from plan table to every message recorded as sent.

The two alternate for ``--rounds`` rounds and the best of each is compared; it
prints messages per second for every run and ``ratio = winback / bare``.
``--min-ratio R`` exits 1 when the ratio is below ``R`` (the CI guard);
``--quick`` uses fewer messages.

``--limiters`` instead compares rate limiters in-process (no network): winback's
``RateLimiter``, ``aiolimiter.AsyncLimiter`` and ``asyncio_throttle.Throttler``,
with many tasks waiting at 100, 1000 and 5000 per second, and prints the worst
one-second window, the first second, the longest single wait and CPU microseconds
per acquisition.

    python benchmarks/compare_send.py --quick --min-ratio 0.35
    python benchmarks/compare_send.py --messages 30000
    python benchmarks/compare_send.py --scheduled   # without --now: every release check
    python benchmarks/compare_send.py --limiters
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from engine.sending.protocol import Result  # noqa: E402


# -- limiters -------------------------------------------------------------------------------
def _worst_window(times: list[float]) -> int:
    times = sorted(times)
    return max((bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


async def _limiter_run(kind: str, rate: int, waiters: int, seconds: float) -> dict:
    if kind == "winback":
        from engine.sending.limiter import RateLimiter

        lim = RateLimiter(rate)
        acquire = lim.acquire
    elif kind == "aiolimiter":
        from aiolimiter import AsyncLimiter

        lim = AsyncLimiter(rate, 1.0)
        acquire = lim.acquire
    else:
        from asyncio_throttle import Throttler

        lim = Throttler(rate_limit=rate, period=1.0)
        acquire = lim.acquire
    loop = asyncio.get_running_loop()
    grants: list[float] = []
    longest = 0.0
    t0 = loop.time()
    end = t0 + seconds

    async def one() -> None:
        nonlocal longest
        while True:
            asked = loop.time()
            await acquire()
            now = loop.time()
            if now >= end:
                return
            grants.append(now)
            longest = max(longest, now - asked)
            if kind == "asyncio-throttle":
                pass  # its acquire records the call itself; nothing to release

    cpu0 = time.process_time()
    tasks = [asyncio.ensure_future(one()) for _ in range(waiters)]
    await asyncio.wait(tasks, timeout=seconds + 5)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    cpu = time.process_time() - cpu0
    first = sum(1 for g in grants if g < t0 + 1.0)
    return {"limiter": kind, "rate": rate, "waiters": waiters, "granted": len(grants),
            "worst_1s": _worst_window(grants), "first_1s": first, "longest_wait_s": round(longest, 3),
            "cpu_us_per_acquire": round(cpu / max(1, len(grants)) * 1e6, 1)}


def compare_limiters(seconds: float, waiters: int) -> None:
    print(f"{'limiter':<17}{'rate/s':>7}{'worst 1 s':>10}{'first 1 s':>10}{'longest wait':>13}{'cpu us/acq':>11}")
    for rate in (100, 1000, 5000):
        for kind in ("winback", "aiolimiter", "asyncio-throttle"):
            try:
                r = asyncio.run(_limiter_run(kind, rate, waiters, seconds))
            except ModuleNotFoundError as exc:
                print(f"{kind:<17}{rate:>7}  not installed ({exc.name})")
                continue
            flag = "" if r["worst_1s"] <= rate else "  OVER"
            print(f"{kind:<17}{rate:>7}{r['worst_1s']:>10}{r['first_1s']:>10}{r['longest_wait_s']:>12}s"
                  f"{r['cpu_us_per_acquire']:>11}{flag}")


# -- bare loop vs winback ---------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_SERVER = r"""
import sys
from aiohttp import web

seen = set()


async def hook(request):
    body = await request.json()
    key = request.headers.get("Idempotency-Key") or body.get("message_id")
    seen.add(key)
    return web.json_response({"id": "p-" + key})


app = web.Application()
app.router.add_post("/hooks/{channel}", hook)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def _has(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _start_provider(port: int, workdir: Path) -> subprocess.Popen:
    """``winback provider`` when the adapters package has it, else a minimal aiohttp webhook server."""
    if _has("adapters.local_provider"):
        cmd = [sys.executable, "-m", "engine", "provider", "--port", str(port)]
    else:
        (workdir / "server.py").write_text(_SERVER)
        cmd = [sys.executable, str(workdir / "server.py"), str(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"local provider did not start: {proc.stderr.read().decode()[-500:]}")
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("local provider did not start within 20 s")


class _Webhook:
    """The signed webhook request of DESIGN.md, used when ``adapters.webhook`` is not available."""

    name, max_batch = "webhook", 1

    def __init__(self, url: str, secret: bytes, concurrency: int):
        self.url, self.secret, self.concurrency, self.session = url, secret, concurrency, None

    async def send(self, batch):
        if self.session is None:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.concurrency))
        m = batch[0]
        body = json.dumps({"message_id": m.message_id, "user_id": m.user_id, "channel": m.channel,
                           "step": m.step, "variant": m.variant, "to": m.to, "subject": m.subject,
                           "body": m.body, "send_at": m.send_at}).encode()
        ts = str(int(time.time()))
        sig = hmac.new(self.secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        try:
            async with self.session.post(self.url, data=body, headers={
                    "Content-Type": "application/json", "Idempotency-Key": m.message_id,
                    "X-Winback-Timestamp": ts, "X-Winback-Signature": f"sha256={sig}"}) as resp:
                await resp.read()
                status = "sent" if resp.status < 300 else "retry" if resp.status == 429 or resp.status >= 500 else "failed"
                return [Result(m.message_id, status, error=None if status == "sent" else str(resp.status))]
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            return [Result(m.message_id, "retry", error=type(exc).__name__)]

    async def aclose(self):
        if self.session is not None:
            await self.session.close()


#: zones of the --scheduled plan (the quiet-hours check asks each user's zone)
_ZONES = ["UTC", "America/New_York", "America/Los_Angeles", "Europe/Paris", "Europe/London", "Asia/Tokyo",
          "Asia/Kolkata", "Australia/Sydney", "America/Sao_Paulo", "Africa/Lagos", "Asia/Kathmandu",
          "Pacific/Auckland"]


def _plan(n: int, tag: str = "", scheduled: bool = False):
    import numpy as np
    import pyarrow as pa

    from engine.schema import TIMESTAMP

    now = int(time.time()) * 1_000_000
    table = pa.table({
        "message_id": [f"bench-{os.getpid()}-{tag}-{i}" for i in range(n)],
        "campaign_id": ["bench"] * n,
        "user_id": pa.array(np.arange(n), pa.int64()),
        "step": ["we-miss-you"] * n,
        "step_index": pa.array(np.zeros(n, np.int16)),
        "variant": ["plain"] * n,
        "channel": ["push"] * n,
        "send_at": pa.array(np.full(n, now), TIMESTAMP),
        "reason": pa.nulls(n, pa.string()),
        "to": [f"token-{i}" for i in range(n)],
        "subject": ["We miss you"] * n,
        "body": ["Come back and see what is new."] * n,
    })
    if not scheduled:
        return table
    # the path of a send without --now: the campaign's policy (quiet hours, gap, cap) is checked
    # for every message at release, in each user's zone; quiet hours of one minute, never now
    from engine.io.meta import PLAN, with_meta

    zones = pa.array([_ZONES[i % len(_ZONES)] for i in range(n)])
    table = table.append_column("timezone", zones)
    policy = {"quiet_hours": [240, 241], "max_messages": 1_000_000, "window_days": 7, "min_gap_hours": 1}
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now // 1_000_000 - 60))
    return with_meta(table, PLAN, {"campaign_id": "bench", "policy": policy, "timezone": "UTC", "as_of": iso,
                                    "steps": [{"name": "we-miss-you", "delay_days": 0}]})


async def _bare(url: str, n: int, concurrency: int, secret: bytes, prefix: str) -> float:
    counter = iter(range(n))
    t0 = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def worker() -> None:
            for i in counter:
                body = json.dumps({"message_id": f"{prefix}{i}", "user_id": i, "channel": "push",
                                   "step": "we-miss-you", "variant": "plain", "to": f"token-{i}",
                                   "subject": "We miss you", "body": "Come back and see what is new.",
                                   "send_at": 0}).encode()
                ts = str(int(time.time()))
                sig = hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
                async with session.post(url, data=body, headers={
                    "Content-Type": "application/json", "Idempotency-Key": f"{prefix}{i}",
                    "X-Winback-Timestamp": ts, "X-Winback-Signature": f"sha256={sig}"}) as resp:
                    await resp.read()
                    if resp.status >= 300:
                        raise SystemExit(f"bare loop got HTTP {resp.status}: {await resp.text()}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - t0)


def _winback_once(url: str, n: int, concurrency: int, secret: str, work: Path, tag: str,
                  scheduled: bool = False) -> float:
    """One ``engine.send`` of ``n`` fresh messages into a fresh ledger; messages per second
    (``scheduled``: without ``--now``, every release check on, see :func:`_plan`)."""
    from engine.sending.dispatcher import Channel, send

    plan = _plan(n, tag, scheduled)
    adapter = None
    if _has("adapters.config") and _has("adapters.webhook"):
        providers = work / "providers.toml"
        providers.write_text(
            "[channels.push]\nadapter = \"webhook\"\n"
            f"url = \"{url}\"\nsecret_env = \"WINBACK_BENCH_SECRET\"\n"
            f"rate_per_second = 1000000\nconcurrency = {concurrency}\n")
    else:
        adapter = _Webhook(url, secret.encode(), concurrency)
        providers = {"push": Channel(adapter, rate_per_second=1_000_000, concurrency=concurrency)}
    t0 = time.perf_counter()
    summary = send(plan, providers, work / f"ledger-{tag}.db", now=not scheduled)
    took = time.perf_counter() - t0
    if adapter is not None:
        asyncio.run(adapter.aclose())
    if summary.sent != n:
        raise SystemExit(f"winback sent {summary.sent} of {n}: {summary.states}")
    return n / took


def compare_send(n: int, concurrency: int, rounds: int, min_ratio: float | None, scheduled: bool = False) -> int:
    """Alternate bare and winback runs ``rounds`` times; compare the best of each (less noise
    from other processes on a shared machine)."""
    secret = "bench-secret"
    os.environ["WINBACK_BENCH_SECRET"] = secret
    bare_runs, ours_runs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        port = _free_port()
        provider = _start_provider(port, work)
        try:
            url = f"http://127.0.0.1:{port}/hooks/push"
            asyncio.run(_bare(url, 200, concurrency, secret.encode(), "warm-"))  # connections, imports
            _winback_once(url, 200, concurrency, secret, work, "warm", scheduled)  # winback's modules too
            for r in range(rounds):
                bare_runs.append(asyncio.run(_bare(url, n, concurrency, secret.encode(), f"bare{r}-")))
                ours_runs.append(_winback_once(url, n, concurrency, secret, work, f"r{r}", scheduled))
        finally:
            provider.terminate()
            provider.wait(10)
    bare, ours = max(bare_runs), max(ours_runs)
    ratio = ours / bare
    print(f"messages: {n:,} x {rounds} rounds  concurrency: {concurrency}  cores: {os.cpu_count()}"
          + ("  (scheduled: without --now, quiet hours in 12 zones, gap and cap checked)" if scheduled else ""))
    print("bare aiohttp loop:           " + "  ".join(f"{x:,.0f}" for x in bare_runs) + f"  best {bare:,.0f} msg/s")
    print("winback send (ledger+limit): " + "  ".join(f"{x:,.0f}" for x in ours_runs) + f"  best {ours:,.0f} msg/s")
    print(f"ratio winback / bare: {ratio:.2f}")
    if min_ratio is not None and ratio < min_ratio:
        print(f"FAIL: send ratio {ratio:.2f} is below the floor {min_ratio}; the send hot loop "
              "(ledger writes, limiter, adapter) regressed; profile engine/dispatch.py")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer messages (CI guard)")
    ap.add_argument("--messages", type=int, default=20_000, help="messages per side (default 20000)")
    ap.add_argument("--concurrency", type=int, default=50, help="requests in flight (default 50)")
    ap.add_argument("--rounds", type=int, help="alternating bare/winback rounds, best of each (default 3; --quick 2)")
    ap.add_argument("--min-ratio", type=float, help="exit 1 when winback / bare is below this")
    ap.add_argument("--scheduled", action="store_true",
                    help="send without --now: quiet hours in 12 zones, the gap and the cap checked at release")
    ap.add_argument("--limiters", action="store_true", help="compare rate limiters instead")
    ap.add_argument("--seconds", type=float, default=3.0, help="limiter run length (default 3)")
    ap.add_argument("--waiters", type=int, default=2000, help="tasks waiting on a limiter (default 2000)")
    args = ap.parse_args(argv)
    if args.limiters:
        compare_limiters(args.seconds, args.waiters)
        return 0
    n = 5_000 if args.quick else args.messages
    rounds = args.rounds or (2 if args.quick else 3)
    return compare_send(n, args.concurrency, rounds, args.min_ratio, args.scheduled)


if __name__ == "__main__":
    sys.exit(main())
