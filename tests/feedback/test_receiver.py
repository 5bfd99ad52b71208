"""The webhook receiver over real HTTP on 127.0.0.1: every payload shape, forgeries, restarts."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import numpy as np
import pyarrow as pa
import pytest

from adapters.webhook import sign
from engine.ledger.store import Ledger, read_suppressions
from engine.feedback.receiver import EVENT_SCHEMA, Receiver, sendgrid_hmac_signature, serve, twilio_signature
from engine.tz import from_epoch_seconds

SECRET = "hook-secret"
SG_SECRET = "sg-secret"
TW_TOKEN = "tw-token"
T0 = 1_790_000_000  # campaign-ish epoch seconds


def read_events(d: Path) -> pa.Table:
    parts = sorted(d.glob("part-*.arrow"))
    tables = [pa.ipc.open_file(pa.memory_map(str(p))).read_all() for p in parts]
    return pa.concat_tables(tables) if tables else EVENT_SCHEMA.empty_table()


def rows(t: pa.Table) -> list[tuple]:
    ts = [None if v is None else int(v.timestamp()) for v in t["ts"].to_pylist()]
    return sorted(zip(t["user_id"].to_pylist(), ts, t["event"].to_pylist(), t["channel"].to_pylist(),
                      t["message_id"].to_pylist()), key=str)


def make_ledger(path: Path) -> Path:
    plan = pa.table({
        "message_id": ["m1", "m2", "m3"], "user_id": pa.array([11, 12, 13], pa.int64()),
        "channel": ["email", "sms", "push"],
        "send_at": from_epoch_seconds(np.array([T0, T0, T0], np.int64)),
        "to": ["a@example.com", "+15550001", "tok3"],
    })
    with Ledger(path) as led:
        led.load_plan(plan)
    con = sqlite3.connect(path)
    con.executemany("UPDATE messages SET state='sent', provider_id=? WHERE message_id=?",
                    [("sgid1", "m1"), ("SM0002", "m2")])
    con.commit()
    con.close()
    return path


def run_receiver(tmp: Path, scenario, *, ledger=None, max_body=4096, flush_events=100, flush_seconds=0.05):
    """Given a receiver on a real port, when ``scenario(session, base, rec)`` runs, return its result."""
    async def main():
        rec = Receiver(tmp / "events", ledger=ledger, secret=SECRET, sendgrid_secret=SG_SECRET,
                       twilio_token=TW_TOKEN, max_body=max_body, flush_events=flush_events,
                       flush_seconds=flush_seconds)
        runner = await serve(rec, "127.0.0.1", 0)
        port = runner.addresses[0][1]
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
                return await scenario(s, f"http://127.0.0.1:{port}", rec)
        finally:
            await runner.cleanup()
    return asyncio.run(main())


def sg_headers(body: bytes, ts: str | None = None, secret: str = SG_SECRET) -> dict:
    ts = ts or str(int(time.time()))
    return {"Content-Type": "application/json", "X-Twilio-Email-Event-Webhook-Timestamp": ts,
            "X-Twilio-Email-Event-Webhook-Signature": sendgrid_hmac_signature(secret, ts, body)}


def ev_headers(body: bytes, secret: str = SECRET) -> dict:
    ts = str(int(time.time()))
    return {"Content-Type": "application/json", "X-Winback-Timestamp": ts,
            "X-Winback-Signature": sign(secret, ts, body)}


SG_EVENTS = [
    {"event": "delivered", "email": "a@example.com", "timestamp": T0, "message_id": "m1", "user_id": "11"},
    {"event": "open", "email": "a@example.com", "timestamp": T0 + 60, "message_id": "m1", "user_id": "11"},
    {"event": "click", "email": "a@example.com", "timestamp": T0 + 90, "message_id": "m1", "user_id": "11"},
    {"event": "bounce", "type": "blocked", "email": "b@example.com", "timestamp": T0 + 1, "message_id": "m9",
     "user_id": "19"},
    {"event": "bounce", "type": "bounce", "email": "c@example.com", "timestamp": T0 + 2, "message_id": "m8",
     "user_id": "18"},
    {"event": "spamreport", "email": "d@example.com", "timestamp": T0 + 3, "message_id": "m7", "user_id": "17"},
    {"event": "group_unsubscribe", "email": "e@example.com", "timestamp": T0 + 4, "message_id": "m6",
     "user_id": "16"},
    # no custom args: the user is found in the ledger by sg_message_id (prefix of the provider id)
    {"event": "unsubscribe", "email": "a@example.com", "timestamp": T0 + 5,
     "sg_message_id": "sgid1.filter0001.16648.5515E0B88.0"},
    {"event": "dropped", "email": "z@example.com", "timestamp": T0 + 6, "message_id": "m5", "user_id": "15",
     "reason": "Bounced Address"},
    {"event": "dropped", "email": "y@example.com", "timestamp": T0 + 7, "reason": "Invalid SMTPAPI header"},
]


def test_sendgrid_batch_becomes_contract_events_and_suppressions(tmp_path):
    led = make_ledger(tmp_path / "ledger.db")
    body = json.dumps(SG_EVENTS).encode()

    async def scenario(s, base, rec):
        async with s.post(base + "/sendgrid", data=body, headers=sg_headers(body)) as r:
            return r.status, await r.json()

    status, doc = run_receiver(tmp_path, scenario, ledger=led)
    assert status == 200 and doc == {"accepted": 7, "unknown": 0, "rejected": []}
    assert rows(read_events(tmp_path / "events")) == sorted([
        (11, T0 + 60, "open", "email", "m1"), (11, T0 + 90, "click", "email", "m1"),
        (19, T0 + 1, "bounce", "email", "m9"), (18, T0 + 2, "bounce", "email", "m8"),
        (17, T0 + 3, "complaint", "email", "m7"), (16, T0 + 4, "unsubscribe", "email", "m6"),
        (11, T0 + 5, "unsubscribe", "email", "m1")], key=str)
    sup = read_suppressions(led)
    # the soft ("blocked") bounce is not suppressed; the hard one, the complaint and both unsubscribes are
    assert sorted(zip(sup["address"].to_pylist(), sup["reason"].to_pylist())) == [
        ("a@example.com", "unsubscribe"), ("c@example.com", "hard_bounce"), ("d@example.com", "complaint"),
        ("e@example.com", "unsubscribe"), ("z@example.com", "hard_bounce")]


def test_sendgrid_ecdsa_signature_verified_with_the_public_key(tmp_path):
    ec = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ec")
    from cryptography.hazmat.primitives import hashes, serialization

    key = ec.generate_private_key(ec.SECP256R1())
    pub = base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    body = json.dumps([SG_EVENTS[1]]).encode()
    ts = str(int(time.time()))
    good = base64.b64encode(key.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
    forged = base64.b64encode(key.sign(ts.encode() + body + b" ", ec.ECDSA(hashes.SHA256()))).decode()

    async def main():
        rec = Receiver(tmp_path / "ev", sendgrid_public_key=pub, flush_seconds=0.05)
        runner = await serve(rec, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/sendgrid"
        out = []
        async with aiohttp.ClientSession() as s:
            for sig in (good, forged):
                h = {"X-Twilio-Email-Event-Webhook-Timestamp": ts, "X-Twilio-Email-Event-Webhook-Signature": sig}
                async with s.post(url, data=body, headers=h) as r:
                    out.append(r.status)
        await runner.cleanup()
        return out

    assert asyncio.run(main()) == [200, 401]
    assert rows(read_events(tmp_path / "ev")) == [(11, T0 + 60, "open", "email", "m1")]


def test_twilio_status_callbacks_signed_over_url_and_sorted_params(tmp_path):
    led = make_ledger(tmp_path / "ledger.db")
    forms = [
        {"MessageSid": "SM0002", "MessageStatus": "delivered", "To": "+15550001"},
        {"MessageSid": "SM0002", "MessageStatus": "undelivered", "ErrorCode": "30005", "To": "+15550001"},
        {"MessageSid": "SMxx", "MessageStatus": "failed", "ErrorCode": "21610", "To": "+15550009",
         "user_id": "99"},
        {"MessageSid": "SMunknown", "MessageStatus": "failed", "ErrorCode": "30003", "To": "+15550008"},
        {"MessageSid": "SMq", "MessageStatus": "undelivered", "ErrorCode": "30003", "To": "+15550007"},
    ]
    query = [""] * 4 + ["?message_id=m77&user_id=77"]

    async def scenario(s, base, rec):
        out = []
        for f, q in zip(forms, query):
            sig = twilio_signature(TW_TOKEN, base + "/twilio" + q, f)
            async with s.post(base + "/twilio" + q, data=f, headers={"X-Twilio-Signature": sig}) as r:
                out.append(r.status)
        return out, dict(rec.stats)

    statuses, stats = run_receiver(tmp_path, scenario, ledger=led)
    assert statuses == [200] * 5
    t = read_events(tmp_path / "events")
    # a soft failure (30003) is a bounce event without a suppression
    assert [r[0::2] for r in rows(t)] == [(12, "bounce", "m2"), (77, "bounce", "m77"), (99, "unsubscribe", None)]
    assert stats["ignored"] == 1 and stats["unmatched"] == 1
    sup = read_suppressions(led)
    assert sorted(zip(sup["address"].to_pylist(), sup["reason"].to_pylist())) == [
        ("+15550001", "hard_bounce"), ("+15550009", "unsubscribe")]


def test_generic_events_every_body_form(tmp_path):
    led = make_ledger(tmp_path / "ledger.db")
    bodies = [
        {"event": "open", "channel": "push", "message_id": "m3", "ts": T0 + 10},
        [{"event": "click", "channel": "push", "message_id": "m3", "user_id": 13, "ts": "2026-09-21T13:20:00Z"}],
        {"events": [{"event": "complaint", "channel": "webhook", "user_id": 40, "ts": T0 + 30,
                     "address": "https://x.example"}]},
    ]

    async def scenario(s, base, rec):
        out = []
        for b in bodies:
            raw = json.dumps(b).encode()
            async with s.post(base + "/events", data=raw, headers=ev_headers(raw)) as r:
                out.append(r.status)
        return out

    assert run_receiver(tmp_path, scenario, ledger=led) == [200, 200, 200]
    iso = int(pa.scalar("2026-09-21T13:20:00").cast(pa.timestamp("s")).value)
    assert rows(read_events(tmp_path / "events")) == sorted([
        (13, T0 + 10, "open", "push", "m3"), (13, iso, "click", "push", "m3"),
        (40, T0 + 30, "complaint", "webhook", None)], key=str)
    # a webhook complaint the ledger cannot place on a channel (no message_id) stops the user on
    # every channel: the webhook adapter carries whichever channel the providers file gives it
    sup = read_suppressions(led)
    assert sorted(zip(sup["channel"].to_pylist(), sup["user_id"].to_pylist())) == [
        ("email", 40), ("push", 40), ("sms", 40)]


def test_forged_unsigned_malformed_and_oversized_get_4xx_and_are_counted(tmp_path):
    ok = json.dumps([SG_EVENTS[1]]).encode()
    gen = json.dumps({"event": "open", "channel": "push", "user_id": 1}).encode()
    old = str(int(time.time()) - 3600)
    cases = [
        ("/sendgrid", ok, sg_headers(ok, secret="wrong"), 401),                  # forged
        ("/sendgrid", ok, {"Content-Type": "application/json"}, 401),            # unsigned
        ("/sendgrid", ok, sg_headers(ok, ts=old), 401),                         # replayed
        ("/sendgrid", b"[{not json", sg_headers(b"[{not json"), 400),           # malformed
        ("/sendgrid", b'{"event":"open"}', sg_headers(b'{"event":"open"}'), 400),  # not an array
        ("/events", gen, ev_headers(gen, secret="nope"), 401),
        ("/events", b'{"event":"fly","channel":"push","user_id":1}',               # unknown: skipped
         ev_headers(b'{"event":"fly","channel":"push","user_id":1}'), 200),
        ("/events", b'{"event":"open","channel":"push","user_id":1,"ts":1e300}',
         ev_headers(b'{"event":"open","channel":"push","user_id":1,"ts":1e300}'), 400),
        ("/events", b'{"event":"open","channel":"push","user_id":1,"ts":NaN}',
         ev_headers(b'{"event":"open","channel":"push","user_id":1,"ts":NaN}'), 400),
        ("/events", b'{"event":"open","channel":"push","user_id":99999999999999999999}',
         ev_headers(b'{"event":"open","channel":"push","user_id":99999999999999999999}'), 400),
        ("/twilio", b"MessageSid=SM1&MessageStatus=failed", {"X-Twilio-Signature": "AAAA",
                                                             "Content-Type": "application/x-www-form-urlencoded"}, 401),
    ]
    big = json.dumps([SG_EVENTS[1]] * 200).encode()

    async def scenario(s, base, rec):
        out = []
        for path, body, headers, _ in cases:
            async with s.post(base + path, data=body, headers=headers) as r:
                out.append(r.status)
        async with s.post(base + "/sendgrid", data=big, headers=sg_headers(big)) as r:
            out.append(r.status)
        async with s.get(base + "/_stats") as r:
            return out, await r.json()

    statuses, stats = run_receiver(tmp_path, scenario, max_body=4096)
    assert statuses == [c[3] for c in cases] + [413]
    assert stats["rejected"] == {"signature": 3, "unsigned": 1, "timestamp": 1, "malformed": 5, "oversized": 1}
    assert read_events(tmp_path / "events").num_rows == 0


def test_acknowledged_only_after_the_batch_is_on_disk(tmp_path):
    """Given a long flush interval, a request is answered once its batch file exists."""
    body = json.dumps([SG_EVENTS[1]]).encode()

    async def scenario(s, base, rec):
        t = time.monotonic()
        async with s.post(base + "/sendgrid", data=body, headers=sg_headers(body)) as r:
            assert r.status == 200
        waited = time.monotonic() - t
        return waited, sorted(p.name for p in (tmp_path / "events").iterdir())

    waited, files = run_receiver(tmp_path, scenario, flush_seconds=0.3)
    assert waited >= 0.25 and files == ["part-000000.arrow"]


def _post(url: str, body: bytes, headers: dict) -> int:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def _start(port: int, out: Path) -> subprocess.Popen:
    env = dict(os.environ, SENDGRID_WEBHOOK_SECRET=SG_SECRET)
    proc = subprocess.Popen([sys.executable, "-m", "engine", "receive", "--port", str(port), "-o", str(out),
                             "--flush-seconds", "0.05", "--max-seconds", "60"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stats", timeout=1).read()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read().decode())
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("receiver did not start")


def test_a_killed_receiver_loses_nothing_it_acknowledged(tmp_path, free_port):
    out = tmp_path / "events"
    sent = []
    proc = _start(free_port, out)
    try:
        for i in range(20):
            e = dict(SG_EVENTS[1], timestamp=T0 + i, user_id=str(100 + i))
            body = json.dumps([e]).encode()
            assert _post(f"http://127.0.0.1:{free_port}/sendgrid", body, sg_headers(body)) == 200
            sent.append(100 + i)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    proc = _start(free_port, out)
    try:
        body = json.dumps([dict(SG_EVENTS[1], user_id="500")]).encode()
        assert _post(f"http://127.0.0.1:{free_port}/sendgrid", body, sg_headers(body)) == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0 and b"events in" in stdout
    got = read_events(out)["user_id"].to_pylist()
    assert sorted(got) == sent + [500]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_cli_refuses_to_start_without_any_secret(tmp_path, capsys, monkeypatch):
    from engine.cli import main

    for v in ("WINBACK_WEBHOOK_SECRET", "SENDGRID_WEBHOOK_PUBLIC_KEY", "SENDGRID_WEBHOOK_SECRET", "TWILIO_AUTH_TOKEN"):
        monkeypatch.delenv(v, raising=False)
    assert main(["receive", "-o", str(tmp_path / "ev"), "--max-seconds", "0.1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ConfigError:") and err.count("\n") == 1


def test_received_events_feed_the_report(tmp_path):
    """Given clicks received for two treated users, the report counts them as clicks; with no session or
    purchase in the outcomes it says the re-engagement lift cannot be measured (only messaged users click)."""
    from engine.reporting.measure import report

    n = 30
    uid = np.arange(1, n + 1, dtype=np.int64)
    held = uid % 3 == 0
    plan = pa.table({
        "message_id": [f"m{u}" for u in uid], "user_id": uid, "step": ["s"] * n,
        "step_index": pa.array(np.zeros(n, np.int16)), "variant": ["A"] * n, "channel": ["push"] * n,
        "send_at": from_epoch_seconds(np.full(n, T0, np.int64)),
        "reason": pa.array([("holdout" if h else None) for h in held], pa.string()), "holdout": pa.array(held),
    })
    body = json.dumps({"events": [{"event": "click", "channel": "push", "user_id": u, "message_id": f"m{u}",
                                   "ts": T0 + 600} for u in (1, 2)]}).encode()

    async def scenario(s, base, rec):
        async with s.post(base + "/events", data=body, headers=ev_headers(body)) as r:
            return r.status

    assert run_receiver(tmp_path, scenario) == 200
    s = report(plan, tmp_path / "events")
    assert s["metrics"]["clicked"]["treated"]["count"] == 2
    assert s["metrics"]["reengaged"]["lift"] is None and s["metrics"]["reengaged"]["note"].startswith("not measurable")
    assert any("no session or purchase event" in w for w in s["warnings"])


def test_cli_names_a_missing_ledger_and_an_unwritable_directory(tmp_path, capsys, monkeypatch):
    from engine.cli import main

    monkeypatch.setenv("WINBACK_WEBHOOK_SECRET", "x")
    assert main(["receive", "-o", str(tmp_path / "ev"), "--ledger", str(tmp_path / "no.db"),
                 "--max-seconds", "0.1"]) == 2
    assert "ledger" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["receive", "-o", str(tmp_path / "file" / "ev"), "--max-seconds", "0.1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("InputError:") and "not writable" in err and err.count("\n") == 1


def test_survey_reason_events_flow_into_the_report(tmp_path):
    """Given signed survey answers posted to /events, the report tallies them by reason;
    a reason that is not a name is refused with 400."""
    from engine.reporting.measure import report

    n = 20
    uid = np.arange(1, n + 1, dtype=np.int64)
    plan = pa.table({
        "message_id": [f"m{u}" for u in uid], "user_id": uid, "step": ["why"] * n,
        "step_index": pa.array(np.zeros(n, np.int16)), "variant": ["A"] * n, "channel": ["email"] * n,
        "send_at": from_epoch_seconds(np.full(n, T0, np.int64)),
        "reason": pa.nulls(n, pa.string()), "holdout": pa.array(np.zeros(n, bool)),
        "lifecycle": ["lapsed"] * 10 + ["dormant"] * 10,
    })
    answers = [{"event": "reason", "channel": "email", "message_id": f"m{u}", "user_id": u, "ts": T0 + 60,
                "reason": "too_many_messages" if u <= 3 else "not_relevant"} for u in (1, 2, 3, 15)]
    good = json.dumps({"events": answers}).encode()
    bad = json.dumps({"event": "reason", "channel": "email", "message_id": "m1", "reason": "Too Many!"}).encode()

    async def scenario(s, base, rec):
        out = []
        for body in (good, bad):
            async with s.post(base + "/events", data=body, headers=ev_headers(body)) as r:
                out.append(r.status)
        return out

    assert run_receiver(tmp_path, scenario) == [200, 400]
    got = read_events(tmp_path / "events")
    assert sorted(got["reason"].to_pylist()) == ["not_relevant"] + ["too_many_messages"] * 3
    s = report(plan, tmp_path / "events", out_dir=tmp_path / "report")
    assert s["survey"]["by_reason"] == {"not_relevant": 1, "too_many_messages": 3}
    assert s["survey"]["by_segment"] == {"dormant": {"not_relevant": 1}, "lapsed": {"too_many_messages": 3}}
    assert (tmp_path / "report/survey_actions.csv").exists()
    sunset = (tmp_path / "report/sunset.csv").read_text()
    assert "survey: not_relevant" in sunset


def test_a_second_receiver_on_the_same_directory_stops_with_one_line(tmp_path, capsys, monkeypatch):
    # given a receiver holding the events directory (the lock a running 'winback receive' takes)
    from engine.cli import main
    from engine.feedback.parts import DirectoryLock

    monkeypatch.setenv("WINBACK_WEBHOOK_SECRET", "x")
    out = tmp_path / "ev"
    with DirectoryLock(out):
        # when a second one starts on it, through a path with '..' in it
        code = main(["receive", "-o", str(tmp_path / "x" / ".." / "ev"), "--max-seconds", "0.1", "--port", "0"])
        # then it stops at once with one line, before touching the first one's files
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("ConfigError: another 'winback receive' is writing to")
        assert err.count("\n") == 1
    # and once the first is gone, it starts
    assert main(["receive", "-o", str(out), "--max-seconds", "0.1", "--port", "0"]) == 0
