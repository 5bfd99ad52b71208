"""No secret reaches the ledger or the terminal, and header injection is refused as a bad row.

The provider here is hostile in the way real ones are careless: every answer is an error
that echoes the request's headers (as a debugging proxy or a misconfigured gateway does).
"""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import time

import numpy as np
import pyarrow as pa
from aiohttp import web

from adapters.fcm import FcmAdapter
from adapters.sendgrid import SendGridAdapter
from adapters.twilio import TwilioAdapter
from adapters.webhook import WebhookAdapter
from engine.sending.dispatcher import Channel, dispatch
from engine.schema import TIMESTAMP
from tests.helpers import local_server

KEY = "SG.live-key-7f3a9c1e55d04b2a"
SID = "AC0123456789abcdef0123456789abcd"
TOKEN = "twilio-token-9b8a7c6d5e4f"
FCM = "ya29.fcm-access-token-4242"
HOOK = "webhook-secret-31337"


def echo_app(status: int) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        await request.read()
        dump = "; ".join(f"{k}: {v}" for k, v in request.headers.items())
        return web.json_response({"error": f"bad request, you sent {dump}",
                                  "errors": [{"message": f"headers were {dump}"}], "message": dump},
                                 status=status, headers={"Retry-After": "0"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


def plan(channel: str, n: int, to: list[str], subject: list[str] | None = None) -> pa.Table:
    at = int(time.time() * 1e6)
    return pa.table({
        "message_id": [f"{channel}-{i}" for i in range(n)], "campaign_id": ["c"] * n,
        "user_id": pa.array(range(n), pa.int64()), "step": ["s0"] * n, "channel": [channel] * n,
        "send_at": pa.array(np.full(n, at), TIMESTAMP), "reason": pa.nulls(n, pa.string()),
        "to": to, "subject": subject or ["Hello"] * n, "body": ["line one\nline two"] * n})


def forms(secret: str) -> list[str]:
    out = [secret, base64.b64encode(secret.encode()).decode()]
    if secret == TOKEN:
        out.append(base64.b64encode(f"{SID}:{TOKEN}".encode()).decode())
    return out


def run(status: int, tmp_path):
    async def main():
        runner = web.AppRunner(echo_app(status))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            out = {}
            for ch, adapter, to in (
                ("email", SendGridAdapter(base, KEY, batch_size=10), [f"u{i}@example.com" for i in range(6)]),
                ("sms", TwilioAdapter(base, SID, TOKEN), [f"+1555000{i:04d}" for i in range(6)]),
                ("push", FcmAdapter(base, "proj", FCM), [f"tok{i}" for i in range(6)]),
                ("webhook", WebhookAdapter(base + "/hook", HOOK), [f"hook{i}" for i in range(6)]),
            ):
                led = tmp_path / f"{ch}-{status}.db"
                out[ch] = await dispatch(plan(ch, 6, to), {ch: Channel(adapter, max_attempts=2)}, led,
                                         now=True, handle_signals=False)
                await adapter.aclose()
            return out
        finally:
            await runner.cleanup()

    return asyncio.run(main())


def test_secrets_echoed_by_a_provider_never_reach_the_ledger(tmp_path):
    for status in (400, 503):
        run(status, tmp_path)
    texts = []
    for db in tmp_path.glob("*.db"):
        con = sqlite3.connect(db)
        texts += [r[0] for r in con.execute("SELECT last_error FROM messages") if r[0]]
        con.close()
    assert len(texts) == 48  # every message failed with an echo of its request
    assert any("***" in t for t in texts)
    for secret in (KEY, SID, TOKEN, FCM, HOOK):
        for form in forms(secret):
            leaked = [t for t in texts if form in t]
            assert not leaked, (secret, leaked[:1])
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("*.db*"))
    for secret in (KEY, TOKEN, FCM):
        assert secret.encode() not in raw


def test_control_characters_in_addresses_and_subjects_are_bad_rows(tmp_path):
    got = []

    async def record(request: web.Request) -> web.Response:
        body = await request.read()
        got.append(body)
        return web.json_response({"sid": "SM1", "name": "n1", "id": "h1"}, status=201,
                                 headers={"X-Message-Id": "x1"})

    async def main():
        async with local_server(record) as base:
            email = plan("email", 4, ["a@b.c\r\nbcc: all@victim.example", "ok@example.com", "ok2@example.com",
                                      "ok3@example.com"],
                         subject=["Hi", "Hi\r\nBcc: x@evil.example", "Hi\u2028there", "fine"])
            sms = plan("sms", 2, ["+15550001111\n+15559999999", "+15550002222"])
            s1 = await dispatch(email, {"email": Channel(SendGridAdapter(base, KEY, batch_size=10))},
                                tmp_path / "e.db", now=True, handle_signals=False)
            s2 = await dispatch(sms, {"sms": Channel(TwilioAdapter(base, SID, TOKEN))}, tmp_path / "s.db",
                                now=True, handle_signals=False)
            return s1, s2

    s1, s2 = asyncio.run(main())
    assert (s1.sent, s1.dead, s2.sent, s2.dead) == (1, 3, 1, 1)
    assert not any(b"\r\n" in b or b"\\r\\n" in b or b"%0D" in b.upper() for b in got)
    con = sqlite3.connect(tmp_path / "e.db")
    errs = dict(con.execute("SELECT message_id, last_error FROM messages WHERE state = 'dead'"))
    assert all(e.startswith("bad row: a control character") for e in errs.values()), errs
    # a bad row is not a bounce: the address is not suppressed
    assert con.execute("SELECT COUNT(*) FROM suppressions").fetchone()[0] == 0
