"""Quiet hours hold for every request that leaves, not only for a message's first one:
a retry whose backoff or Retry-After ends inside the user's quiet hours, and a message
claimed a few minutes late across the start of them, wait for their end.

A real HTTP server on 127.0.0.1 records each request's arrival on the sender's clock (an
injected clock set to the evening in the user's zone); the expected local times are
computed independently with ``zoneinfo``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pytest
from aiohttp import web

from adapters.webhook import WebhookAdapter
from engine.io.meta import PLAN, with_meta
from engine.schema import TIMESTAMP
from engine.sending.dispatcher import Channel, dispatch
from tests.helpers import ledger_rows, local_server

N = 3
QUIET = ["21:00", "08:00"]


def evening(zone: str, hh: int, mm: int, ss: int) -> float:
    """Epoch seconds of hh:mm:ss local in ``zone`` on 2026-11-20 (no DST change that day)."""
    return dt.datetime(2026, 11, 20, hh, mm, ss, tzinfo=ZoneInfo(zone)).timestamp()


def plan(zone: str, send_at: float, quiet: list[str] = QUIET) -> pa.Table:
    iso = lambda t: dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat()  # noqa: E731
    table = pa.table({
        "message_id": [f"m{i}" for i in range(N)], "campaign_id": ["c"] * N,
        "user_id": pa.array(range(N), pa.int64()), "step": ["s0"] * N, "channel": ["webhook"] * N,
        "send_at": pa.array(np.full(N, int(send_at * 1e6)), TIMESTAMP), "reason": pa.nulls(N, pa.string()),
        "to": [f"t{i}" for i in range(N)], "subject": ["Hi"] * N, "body": ["b"] * N, "timezone": [zone] * N})
    minutes = [int(q[:2]) * 60 + int(q[3:]) for q in quiet]
    return with_meta(table, PLAN, {"campaign_id": "c", "as_of": iso(send_at - 3600), "timezone": zone,
                                   "ends_at": iso(send_at + 5 * 86400),
                                   "policy": {"max_messages": 10, "window_days": 7, "min_gap_hours": 0,
                                              "quiet_hours": minutes}})


def run(table: pa.Table, ledger, clock, answer, arrivals: list, max_seconds: float):
    """One ``dispatch`` of ``table`` to a webhook server answering ``answer(n)`` to a
    message's n-th request; ``arrivals`` gets (message id, sender clock) per request."""

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        key = request.headers["Idempotency-Key"]
        arrivals.append((key, clock()))
        if len(arrivals) > 10 * N:  # bounded
            return web.Response(status=400, text="too many requests in this test")
        return answer(sum(1 for k, _ in arrivals if k == key))

    async def main():
        async with local_server(handle) as base:
            adapter = WebhookAdapter(base + "/hook", "secret")
            try:
                return await dispatch(table, {"webhook": Channel(adapter, max_attempts=4)}, ledger, clock=clock,
                                      handle_signals=False, max_seconds=max_seconds)
            finally:
                await adapter.aclose()

    return asyncio.run(main())


def clock_from(start: float):
    real0 = time.time()
    return lambda: start + (time.time() - real0)


def local(t: float, zone: str) -> str:
    return dt.datetime.fromtimestamp(t, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


def rows(ledger) -> list[tuple]:
    return ledger_rows(ledger, "SELECT state, attempts, next_attempt_at, sent_at FROM messages ORDER BY message_id")


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Pacific/Kiritimati"])
def test_a_retry_that_would_land_in_quiet_hours_waits_for_their_end(tmp_path, zone):
    # given a provider down at 20:59:58 local, asking to come back in 5 s (21:00:03, quiet)
    def answer(n):
        if n == 1:
            return web.Response(status=503, headers={"Retry-After": "5"}, text="down")
        return web.json_response({"id": "ok"})

    ledger, arrivals = tmp_path / "l.db", []
    start = evening(zone, 20, 59, 58)
    table = plan(zone, start - 60)
    run(table, ledger, clock_from(start), answer, arrivals, max_seconds=8)
    # then nothing went in the quiet hours: one request per message before 21:00 local, and
    # each waits for 08:00 local the next morning, still a retry (failed, one attempt made)
    assert [local(t, zone) for _, t in arrivals] == [local(start, zone)] * N
    got = rows(ledger)
    assert [(r[0], r[1]) for r in got] == [("failed", 1)] * N, got
    assert {local(r[2], zone) for r in got} == {"2026-11-21 08:00"}
    # and a send in the morning delivers each once more, at 08:00 local
    morning = dt.datetime(2026, 11, 21, 8, 0, 1, tzinfo=ZoneInfo(zone)).timestamp()
    run(table, ledger, clock_from(morning), answer, arrivals, max_seconds=20)
    assert [r[0] for r in rows(ledger)] == ["sent"] * N
    assert sorted(local(t, zone) for _, t in arrivals[N:]) == ["2026-11-21 08:00"] * N


def test_a_message_claimed_minutes_late_across_the_start_of_quiet_hours_waits(tmp_path):
    # given messages planned for 20:58 local in New York, and a sender that starts at 21:05
    # (seven minutes late: within the grace, where a late message used to go as it was)
    zone = "America/New_York"
    ledger, arrivals = tmp_path / "l.db", []
    start = evening(zone, 21, 5, 0)
    run(plan(zone, evening(zone, 20, 58, 0)), ledger, clock_from(start), lambda n: web.json_response({"id": "ok"}),
        arrivals, max_seconds=4)
    # then none went at 21:05; each waits for 08:00 local, not yet attempted
    assert arrivals == []
    got = rows(ledger)
    assert [(r[0], r[1]) for r in got] == [("planned", 0)] * N, got
    assert {local(r[2], zone) for r in got} == {"2026-11-21 08:00"}


def test_a_message_claimed_in_the_repeated_hour_of_a_dst_change_waits_for_the_second_end(tmp_path):
    # given quiet hours 00:30-01:30 in New York and a sender claiming at 01:10 EST on
    # 2026-11-01, the second pass of 01:00-02:00 (the first 01:30, EDT, was 40 minutes ago)
    zone = "America/New_York"
    ny = ZoneInfo(zone)
    start = dt.datetime(2026, 11, 1, 1, 10, 0, fold=1, tzinfo=ny).timestamp()
    assert dt.datetime.fromtimestamp(start, ny).utcoffset() == dt.timedelta(hours=-5)
    ledger, arrivals = tmp_path / "l.db", []
    run(plan(zone, start - 120, ["00:30", "01:30"]), ledger, clock_from(start),
        lambda n: web.json_response({"id": "ok"}), arrivals, max_seconds=4)
    # then nothing went at 01:10 EST; each waits for 01:30 EST (06:30 UTC)
    assert arrivals == []
    got = rows(ledger)
    assert [(r[0], r[1]) for r in got] == [("planned", 0)] * N, got
    assert {r[2] for r in got} == {dt.datetime(2026, 11, 1, 6, 30, tzinfo=dt.timezone.utc).timestamp()}


def test_a_user_timezone_that_is_no_timezone_keeps_the_campaigns_quiet_hours(tmp_path):
    # given a hand-edited plan: the campaign in New York, its users' timezone "Mars/Olympus",
    # and a sender claiming at 23:00 in New York (04:00 UTC)
    zone = "America/New_York"
    start = evening(zone, 23, 0, 0)
    table = plan(zone, start - 120)
    table = table.set_column(table.column_names.index("timezone"), "timezone", pa.array(["Mars/Olympus"] * N))
    ledger, arrivals = tmp_path / "l.db", []
    run(table, ledger, clock_from(start), lambda n: web.json_response({"id": "ok"}), arrivals, max_seconds=4)
    # then each waits for 08:00 in New York (UTC's quiet hours held them only until 08:00 UTC,
    # which is 03:00 in New York, inside the campaign's quiet hours)
    assert arrivals == []
    assert {local(r[2], zone) for r in rows(ledger)} == {"2026-11-21 08:00"}
