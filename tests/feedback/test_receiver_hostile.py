"""The receiver against hostile clients and malformed events, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import time
from pathlib import Path

import aiohttp
import numpy as np
import pyarrow as pa
import pytest

from engine.sending.signing import sign
from engine.ledger.store import Ledger, read_suppressions
from engine.feedback.receiver import EVENT_SCHEMA, Receiver, sendgrid_hmac_signature, serve
from engine.tz import from_epoch_seconds

SECRET = "hook-secret"
SG_SECRET = "sg-secret"
TW_TOKEN = "tw-token"
T0 = 1_790_000_000


def read_events(d: Path) -> pa.Table:
    parts = sorted(d.glob("part-*.arrow"))
    tables = [pa.ipc.open_file(pa.memory_map(str(p))).read_all() for p in parts]
    return pa.concat_tables(tables) if tables else EVENT_SCHEMA.empty_table()


def make_ledger(path: Path) -> Path:
    plan = pa.table({
        "message_id": ["m1", "m2"], "user_id": pa.array([11, 12], pa.int64()), "channel": ["email", "sms"],
        "send_at": from_epoch_seconds(np.array([T0, T0], np.int64)), "to": ["a@example.com", "+15550001"]})
    with Ledger(path) as led:
        led.load_plan(plan)
    return path


def run_receiver(tmp: Path, scenario, *, ledger=None, **kw):
    """Given a receiver on a real port, when ``scenario(session, base, rec)`` runs, return its result."""
    kw.setdefault("flush_seconds", 0.02)

    async def main():
        rec = Receiver(tmp / "events", ledger=ledger, secret=SECRET, sendgrid_secret=SG_SECRET,
                       twilio_token=TW_TOKEN, **kw)
        runner = await serve(rec, "127.0.0.1", 0)
        port = runner.addresses[0][1]
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
                return await scenario(s, f"http://127.0.0.1:{port}", rec)
        finally:
            await runner.cleanup()
    return asyncio.run(main())


def sg_headers(body: bytes, ts: str | None = None) -> dict:
    ts = ts or str(int(time.time()))
    return {"Content-Type": "application/json", "X-Twilio-Email-Event-Webhook-Timestamp": ts,
            "X-Twilio-Email-Event-Webhook-Signature": sendgrid_hmac_signature(SG_SECRET, ts, body)}


def ev_headers(body: bytes, ts: str | None = None) -> dict:
    ts = ts or str(int(time.time()))
    return {"Content-Type": "application/json", "X-Winback-Timestamp": ts, "X-Winback-Signature": sign(SECRET, ts, body)}


async def post(s, url, body, headers):
    async with s.post(url, data=body, headers=headers) as r:
        return r.status, await r.text()


# -- a malformed suppression must not wedge the ledger --------------------------------
def test_a_malformed_bounce_does_not_wedge_the_ledger(tmp_path):
    led = make_ledger(tmp_path / "ledger.db")
    bad = json.dumps([{"event": "bounce", "type": "bounce", "email": ["x@example.com"], "timestamp": T0,
                       "message_id": "m1", "user_id": "11"}]).encode()
    good = json.dumps([{"event": "bounce", "type": "bounce", "email": "c@example.com", "timestamp": T0,
                        "message_id": "m1", "user_id": "11"}]).encode()

    async def scenario(s, base, rec):
        out = [await post(s, base + "/sendgrid", bad, sg_headers(bad))]
        for _ in range(3):
            out.append(await post(s, base + "/sendgrid", good, sg_headers(good)))
        return out

    out = run_receiver(tmp_path, scenario, ledger=led)
    assert out[0][0] == 400 and "email" in out[0][1]
    assert [st for st, _ in out[1:]] == [200, 200, 200]
    sup = read_suppressions(led)
    assert sup["address"].to_pylist() == ["c@example.com"]
    # the ledger is not write-locked: a sender can take it at once
    con = sqlite3.connect(led, timeout=0.5)
    con.execute("BEGIN IMMEDIATE")
    con.execute("ROLLBACK")
    con.close()


# -- per-event validation ------------------------------------------------------------
def test_unknown_and_malformed_events_are_skipped_the_rest_kept(tmp_path):
    batch = [
        {"event": "open", "timestamp": T0, "message_id": "m1", "user_id": "11"},
        {"event": "group_resubscribe", "timestamp": T0, "message_id": "m1", "user_id": "11"},
        {"event": "brand_new_kind", "timestamp": T0, "message_id": "m1", "user_id": "11"},
        {"event": "click", "timestamp": "not a time", "message_id": "m1", "user_id": "11"},
        "not an object",
        {"event": "click", "timestamp": T0 + 5, "message_id": "m1", "user_id": "11"},
    ]
    body = json.dumps(batch).encode()
    generic = json.dumps({"events": [
        {"event": "open", "channel": "push", "message_id": "p1", "user_id": 5, "ts": T0},
        {"event": "teleport", "channel": "push", "message_id": "p1", "user_id": 5, "ts": T0},
        {"event": "open", "channel": "pigeon", "message_id": "p1", "user_id": 5, "ts": T0},
    ]}).encode()

    async def scenario(s, base, rec):
        a = await post(s, base + "/sendgrid", body, sg_headers(body))
        b = await post(s, base + "/events", generic, ev_headers(generic))
        return a, b, json.loads(json.dumps(rec.stats))

    (sa, ta), (sb, tb), stats = run_receiver(tmp_path, scenario)
    assert sa == 200 and sb == 200, (ta, tb)
    da, db = json.loads(ta), json.loads(tb)
    assert da["accepted"] == 2 and da["unknown"] == 1 and len(da["rejected"]) == 2  # group_resubscribe: ignored
    assert db["accepted"] == 1 and db["unknown"] == 1 and len(db["rejected"]) == 1
    t = read_events(tmp_path / "events")
    assert sorted(t["event"].to_pylist()) == ["click", "open", "open"]
    assert stats["unknown"] == 2 and stats["ignored"] == 1


# -- replays and non-finite timestamps ----------------------------------------------
def test_a_replayed_request_is_not_written_twice(tmp_path):
    body = json.dumps([{"event": "open", "timestamp": T0, "message_id": "m1", "user_id": "11",
                        "sg_event_id": "evt-1"}]).encode()
    again = json.dumps([{"event": "open", "timestamp": T0, "message_id": "m1", "user_id": "11",
                         "sg_event_id": "evt-1"}, {"event": "click", "timestamp": T0, "message_id": "m1",
                                                   "user_id": "11", "sg_event_id": "evt-2"}]).encode()
    gen = json.dumps({"event": "open", "channel": "push", "message_id": "p1", "user_id": 5, "ts": T0}).encode()

    async def scenario(s, base, rec):
        h, g = sg_headers(body), ev_headers(gen)
        out = [await post(s, base + "/sendgrid", body, h) for _ in range(3)]
        out.append(await post(s, base + "/sendgrid", again, sg_headers(again)))  # new request, one old event
        out += [await post(s, base + "/events", gen, g) for _ in range(3)]
        return out

    out = run_receiver(tmp_path, scenario)
    assert all(st == 200 for st, _ in out), out
    t = read_events(tmp_path / "events")
    assert sorted(t["event"].to_pylist()) == ["click", "open", "open"]


@pytest.mark.parametrize("ts", ["nan", "NaN", "inf", "-inf", "1e400", " 0x10 "])
def test_a_non_finite_signed_timestamp_is_refused(tmp_path, ts):
    body = json.dumps([{"event": "open", "timestamp": T0, "message_id": "m1", "user_id": "11"}]).encode()
    gen = json.dumps({"event": "open", "channel": "push", "message_id": "p1", "user_id": 5, "ts": T0}).encode()

    async def scenario(s, base, rec):
        return (await post(s, base + "/sendgrid", body, sg_headers(body, ts)),
                await post(s, base + "/events", gen, ev_headers(gen, ts)))

    (a, _), (b, _) = run_receiver(tmp_path, scenario)
    assert a == 401 and b == 401
    assert read_events(tmp_path / "events").num_rows == 0


def test_event_timestamps_nan_inf_are_malformed_events(tmp_path):
    body = b'[{"event":"open","timestamp":NaN,"message_id":"m1","user_id":"11"},' \
           b'{"event":"open","timestamp":Infinity,"message_id":"m1","user_id":"11"},' \
           b'{"event":"open","timestamp":"nan","message_id":"m1","user_id":"11"}]'

    async def scenario(s, base, rec):
        return await post(s, base + "/sendgrid", body, sg_headers(body))

    st, text = run_receiver(tmp_path, scenario)
    assert st in (200, 400), text
    assert read_events(tmp_path / "events").num_rows == 0


# -- hostile clients -----------------------------------------------------------------
def test_non_ascii_signatures_and_deep_json_get_4xx(tmp_path):
    deep = b"[" * 100_000 + b"]" * 100_000
    gen_deep = b'{"events":' + b"[" * 50_000 + b"]" * 50_000 + b"}"

    async def scenario(s, base, rec):
        out = []
        ts = str(int(time.time()))
        for path, hdr in (("/sendgrid", {"X-Twilio-Email-Event-Webhook-Timestamp": ts,
                                         "X-Twilio-Email-Event-Webhook-Signature": "sïg"}),
                          ("/events", {"X-Winback-Timestamp": ts, "X-Winback-Signature": "sha256=ünï"}),
                          ("/twilio", {"X-Twilio-Signature": "ßig"})):
            # raw latin-1 bytes in the header value
            out.append(await post(s, base + path, b"[]", {k: v.encode("utf-8").decode("latin-1")
                                                              for k, v in hdr.items()}))
        out.append(await post(s, base + "/sendgrid", deep, sg_headers(deep)))
        out.append(await post(s, base + "/events", gen_deep, ev_headers(gen_deep)))
        return out

    out = run_receiver(tmp_path, scenario, max_body=1 << 20)
    assert [st for st, _ in out] == [401, 401, 401, 400, 400], out


def test_stats_needs_the_secret_or_loopback(tmp_path):
    async def scenario(s, base, rec):
        async with s.get(base + "/_stats") as r:
            local = r.status
        return local

    # a receiver on loopback answers its own machine
    assert run_receiver(tmp_path, scenario) == 200

    async def scenario2(s, base, rec):
        rec.stats_loopback_only = False
        async with s.get(base + "/_stats") as r:
            anon = r.status
        async with s.get(base + "/_stats", headers={"Authorization": f"Bearer {SECRET}"}) as r:
            auth = r.status
        return anon, auth

    assert run_receiver(tmp_path, scenario2) == (401, 200)


def _raw_connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return s


def test_unsigned_bodies_are_refused_before_they_are_read_and_slow_clients_time_out(tmp_path):
    async def scenario(s, base, rec):
        port = int(base.rsplit(":", 1)[1])
        loop = asyncio.get_running_loop()
        # an unsigned request announcing 1 MiB gets its 401 before sending a byte of body
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"POST /sendgrid HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000000\r\n\r\n")
        await w.drain()
        line = await asyncio.wait_for(r.readline(), 5)
        w.close()
        # a slow client (headers never finished) is cut off after the read timeout
        t0 = loop.time()
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        w2.write(b"POST /events HTTP/1.1\r\nHost: x\r\n")
        await w2.drain()
        data = await asyncio.wait_for(r2.read(), 10)
        took = loop.time() - t0
        w2.close()
        return line, data, took

    line, data, took = run_receiver(tmp_path, scenario, read_timeout=0.5)
    assert line.startswith(b"HTTP/1.1 401")
    assert took < 5


def test_connection_limit(tmp_path):
    async def scenario(s, base, rec):
        port = int(base.rsplit(":", 1)[1])
        conns = []
        for _ in range(30):
            r, w = await asyncio.open_connection("127.0.0.1", port)
            conns.append((r, w))
        await asyncio.sleep(0.2)
        closed = 0
        for r, w in conns:
            try:
                data = await asyncio.wait_for(r.read(), 0.5)
                closed += data == b"" or data.startswith(b"HTTP/1.1 503")
            except asyncio.TimeoutError:
                pass
        for _, w in conns:
            w.close()
        await asyncio.sleep(0.3)  # the server sees the closes
        async with s.get(base + "/_stats") as resp:
            ok = resp.status
        return closed, ok

    closed, ok = run_receiver(tmp_path, scenario, max_connections=10, read_timeout=30)
    assert closed >= 20 and ok == 200
