"""Helpers shared by the test files: the project root, small plans and input files."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import heapq
import itertools
import sqlite3
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq

from engine.schema import TIMESTAMP

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
EXAMPLES = ROOT / "examples"


# --------------------------------------------------------------------------- plans
#: the default send time of :func:`make_plan`: one instant per test (set by tests/conftest.py), so
#: two plans made in one test are the same plan; separate ``time.time()`` calls could straddle a
#: second and make the second plan a re-plan (refused without --replan)
PLAN_NOW = [time.time()]


def make_plan(n: int, *, send_at: float | None = None, step_index: int = 0, prefix: str = "m",
              channel: str = "push", exit_on: str | None = None, to=None) -> pa.Table:
    at = int((send_at if send_at is not None else PLAN_NOW[0]) * 1_000_000)
    return pa.table({
        "message_id": [f"{prefix}{i}" for i in range(n)],
        "campaign_id": ["c1"] * n,
        "user_id": pa.array(range(n), pa.int64()),
        "step": [f"step{step_index}"] * n,
        "step_index": pa.array([step_index] * n, pa.int16()),
        "variant": ["a"] * n,
        "channel": [channel] * n,
        "send_at": pa.array(np.full(n, at), TIMESTAMP),
        "reason": pa.nulls(n, pa.string()),
        "to": to or [f"tok{i}" for i in range(n)],
        "subject": ["We miss you"] * n,
        "body": ["Come back"] * n,
        "exit_on": pa.array([exit_on] * n, pa.string()),
    })


@contextlib.asynccontextmanager
async def local_server(handle):
    """An aiohttp server on 127.0.0.1 (a free port) answering every method and path with
    ``handle(request)``; yields its base URL and is cleaned up on exit."""
    from aiohttp import web

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def holdout_plan(n: int = 60, start: int = 1_790_000_000) -> pa.Table:
    """A one-step email plan of users 1..n sent at ``start`` (epoch s), every third user held out."""
    from engine.tz import from_epoch_seconds

    uid = np.arange(1, n + 1, dtype=np.int64)
    held = uid % 3 == 0
    return pa.table({
        "message_id": [f"m{u}" for u in uid], "user_id": uid, "step": ["s"] * n,
        "step_index": pa.array(np.zeros(n, np.int16)), "variant": ["A"] * n, "channel": ["email"] * n,
        "send_at": from_epoch_seconds(np.full(n, start, np.int64)),
        "reason": pa.array([("holdout" if h else None) for h in held], pa.string()), "holdout": pa.array(held),
    })


def ledger_rows(ledger, sql: str) -> list[tuple]:
    """The rows of one query on the ledger file (its own connection, closed after)."""
    con = sqlite3.connect(ledger)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# --------------------------------------------------------------------------- input files
FORMATS = ["feather", "parquet", "csv", "dir"]
AS_OF = 1_790_000_000  # 2026-09-21, epoch seconds
T0 = AS_OF - 86_400 * 30


def write(table: pa.Table, tmp_path: Path, fmt: str, name: str = "events") -> Path:
    """Write ``table`` as ``fmt``; "dir" is a directory of two Arrow IPC files."""
    if fmt == "feather":
        path = tmp_path / f"{name}.arrow"
        feather.write_feather(table, path)
    elif fmt == "parquet":
        path = tmp_path / f"{name}.parquet"
        pq.write_table(table, path)
    elif fmt == "csv":
        path = tmp_path / f"{name}.csv"
        pacsv.write_csv(table, path)
    else:
        path = tmp_path / name
        path.mkdir()
        half = table.num_rows // 2
        feather.write_feather(table.slice(0, half), path / "part-0.arrow")
        feather.write_feather(table.slice(half), path / "part-1.arrow")
    return path


def users_table(n: int = 5) -> pa.Table:
    return pa.table({"user_id": pa.array(range(1, n + 1), pa.int64())})


def events_table() -> pa.Table:
    """Eight good events of users 1-5."""
    return pa.table({
        "user_id": pa.array([1, 2, 3, 4, 5, 1, 2, 3], pa.int64()),
        "ts": pa.array([T0 + 3600 * i for i in range(8)], pa.timestamp("s", tz="UTC")),
        "event": ["session", "send", "open", "click", "purchase", "unsubscribe", "bounce", "complaint"],
        "channel": [None, "email", "email", "push", None, "sms", "email", "email"],
        "value": [None, None, None, None, 19.5, None, None, None],
    })


# --------------------------------------------------------------------------- clocks
class FakeClock:
    """A clock the test moves; ``sleep`` parks the caller until the clock passes its deadline."""

    def __init__(self, t: float = 1000.0):
        self.t = t
        self._heap: list = []
        self._seq = itertools.count()

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (self.t + seconds, next(self._seq), fut))
        await fut

    async def run_until_idle(self) -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    async def advance(self) -> bool:
        """Jump to the next deadline and wake its sleeper; False when nobody sleeps."""
        await self.run_until_idle()
        while self._heap:
            when, _, fut = heapq.heappop(self._heap)
            if fut.cancelled():
                continue
            self.t = max(self.t, when)
            fut.set_result(None)
            await self.run_until_idle()
            return True
        return False


class TimerClock:
    """Virtual time for the dispatcher: ``call_later`` timers fire when :meth:`run` moves
    the clock to them, a few real milliseconds apart, so nothing ever sleeps for hours."""

    def __init__(self, t: float):
        self.t = float(t)
        self._timers: list = []
        self._n = 0

    def __call__(self) -> float:
        return self.t

    def call_later(self, delay: float, callback):
        self._n += 1
        entry = [self.t + max(delay, 0.0), self._n, callback, False]
        heapq.heappush(self._timers, entry)
        return _Handle(entry)

    async def run(self, until: asyncio.Future, activity=lambda: 0) -> None:
        """Fire timers in time order until ``until`` is done; the clock moves only after
        ``activity()`` (e.g. messages sent so far) held still for two ticks."""
        seen = [None, None]
        while not until.done():
            await asyncio.sleep(0.003)
            seen = [seen[1], activity()]
            if seen[0] != seen[1]:
                continue
            while self._timers and self._timers[0][3]:
                heapq.heappop(self._timers)
            if self._timers:
                at, _, cb, _ = heapq.heappop(self._timers)
                self.t = max(self.t, at)
                cb()


class _Handle:
    def __init__(self, entry):
        self.entry = entry

    def cancel(self):
        self.entry[3] = True


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """Most events in any half-open window [t, t + window)."""
    times = sorted(times)
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


# --------------------------------------------------------------------------- scores and campaigns
#: a ledger of no earlier sends (planning with a ledger checks every guarantee)
NO_SENDS = str(Path(tempfile.mkdtemp(prefix="winback-no-sends-")) / "ledger.db")


def campaign_dict(policy: dict, holdout=0.2, steps=None) -> dict:
    return {
        "campaign": {"id": "prop-test", "timezone": "Europe/Paris", "holdout": holdout, "approved": True},
        "audience": {"where": "lapse_risk >= 0.2"},
        "policy": policy,
        "steps": steps or [
            {"name": "a", "delay_days": 0, "channels": ["push", "email", "sms"], "template": "t"},
            {"name": "b", "delay_days": 1, "channels": ["email", "sms"], "template": "t"},
            {"name": "c", "delay_days": 2, "channels": ["sms", "push"], "template": "t"},
        ],
        "templates": {"t": {"subject": "Hi {{ first_name | default(\"there\") }}", "body": "<p>{{ first_name }}</p>"}},
    }


def reachable_users(n: int, **overrides) -> pa.Table:
    """n UTC users with consent and an address on every channel, no history, budget 3."""
    cols = {
        "user_id": pa.array(np.arange(1000, 1000 + n, dtype=np.int64)),
        "timezone": pa.array(["UTC"] * n, pa.string()),
        "lapse_risk": pa.array([0.9] * n), "p_alive": pa.array([0.5] * n),
        "days_inactive": pa.array([60.0] * n), "monetary": pa.array([10.0] * n),
        "best_hour_local": pa.array([10] * n, pa.int8()),
        "send_time_confidence": pa.array([0.5] * n),
        "fatigue_budget": pa.array([3] * n), "sends_7d": pa.array([0] * n), "sends_30d": pa.array([0] * n),
        "first_name": pa.array(["Ann"] * n, pa.string()), "complained": pa.array([False] * n),
    }
    for c, addr in (("email", "email"), ("sms", "phone"), ("push", "push_token")):
        cols[f"consent_{c}"] = pa.array([True] * n)
        cols[addr] = pa.array([f"{c}-{i}" for i in range(n)], pa.string())
        cols[f"{c}_suppressed"] = pa.array([False] * n)
        cols[f"{c}_response_rate"] = pa.array([0.3] * n)
    for k, v in overrides.items():
        cols[k] = v if isinstance(v, pa.Array) else pa.array(v)
    return pa.table(cols)


def one_step(channels=("email",), holdout=0.0, **policy) -> dict:
    doc = campaign_dict({"quiet_hours": ["21:00", "08:00"]} | policy, holdout=holdout,
                        steps=[{"name": "a", "delay_days": 0, "channels": list(channels), "template": "t"}])
    doc["audience"] = {"where": "lapse_risk >= 0.2"}
    doc["campaign"]["approved"] = True
    return doc


class _Len(types.SimpleNamespace):
    """A namespace with a length (the number of items), standing in for engine.io.items.Items."""
    def __len__(self):
        return len(self.added)


def catalogue_items(n_cat, cats, added, expires, editorial):
    """The arrays of an items catalogue (categories as CSR) from the lists of tests.strategies.catalogues."""
    ptr = np.zeros(len(cats) + 1, np.int64)
    np.cumsum([len(c) for c in cats], out=ptr[1:])
    flat = np.array([c for cs in cats for c in cs], np.int32)
    return _Len(categories=tuple(f"c{i}" for i in range(n_cat)), cat_ptr=ptr, cat_idx=flat,
                added=np.array(added, np.int64), expires=np.array(expires, np.int64),
                editorial=np.array(editorial, bool))


# --------------------------------------------------------------------------- adapters
#: the secret every adapter test gives the local provider and the adapter
ADAPTER_SECRET = "s3cr3t-value-never-shown"


def adapter_message(i: int, channel: str, to: str):
    """Message ``msg-{i}`` to user ``i`` on ``channel``, addressed ``to``."""
    from engine.sending.protocol import Message

    return Message(message_id=f"msg-{i}", user_id=i, channel=channel, step="we-miss-you", variant="a",
                   to=to, subject="We miss you", body=f"Hello {i}", send_at=1_790_000_000.0, campaign_id="c1")


def run_adapter(build, batches: list, *, faults=None, timeout: float = 5.0, **provider_kw):
    """Given a local provider on 127.0.0.1 (with ``faults``), when the adapter ``build(url, timeout)``
    sends ``batches`` one after the other: (results per batch, the provider's stats, its messages)."""
    from adapters.local_provider import LocalProvider

    async def go():
        async with LocalProvider(faults=faults, webhook_secret=ADAPTER_SECRET, **provider_kw) as p:
            adapter = build(p.url, timeout)
            try:
                results = [await adapter.send(b) for b in batches]
            finally:
                await adapter.aclose()
            return results, p.stats(), p.messages()

    return asyncio.run(go())
