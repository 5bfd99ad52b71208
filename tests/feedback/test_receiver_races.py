"""The receiver under copies of one request at once, poison text, loose names, soft bounces and an
unreadable ledger, over real HTTP on 127.0.0.1 (bounded requests and time)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import pyarrow as pa

from engine.feedback.receiver import Receiver
from engine.ledger.store import read_suppressions
from tests.feedback.test_receiver import make_ledger as make_ledger_with_push
from tests.feedback.test_receiver_hostile import (T0, ev_headers, make_ledger, post, read_events, run_receiver,
                                                  sg_headers)


async def _raw_post(port: int, path: str, body: bytes, headers: dict, pause: float) -> tuple[int, dict]:
    """One POST over its own connection, the body sent ``pause`` seconds after the headers."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    w.write((head + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode())
    await w.drain()
    await asyncio.sleep(pause)
    w.write(body)
    await w.drain()
    data = await asyncio.wait_for(r.read(), 10)
    w.close()
    status = int(data.split(b" ", 2)[1])
    return status, json.loads(data.split(b"\r\n\r\n", 1)[1] or b"{}")


# -- F1: copies of one signed request at once ------------------------------------------------
def test_copies_of_one_signed_request_arriving_together_are_written_once_and_all_answered_200(tmp_path):
    # given one signed event, sent as 20 copies at once whose bodies all arrive after a pause
    # (so every copy's headers are in before any body), and 20 more with no pause
    body = json.dumps({"event": "click", "channel": "email", "user_id": 2, "message_id": "m-2"}).encode()
    h = ev_headers(body)

    async def scenario(s, base, rec):
        port = int(base.rsplit(":", 1)[1])
        slow = await asyncio.gather(*[_raw_post(port, "/events", body, h, 0.2) for _ in range(20)])
        fast = await asyncio.gather(*[post(s, base + "/events", body, h) for _ in range(20)])
        return slow, fast, dict(rec.stats)

    # when they are received
    slow, fast, stats = run_receiver(tmp_path, scenario, flush_seconds=0.1)
    # then every copy is answered 200, exactly one is stored and the others say replay; one row
    assert [st for st, _ in slow] == [200] * 20, slow
    assert sorted(doc.get("replay", False) for _, doc in slow) == [False] + [True] * 19
    assert [st for st, _ in fast] == [200] * 20 and all(json.loads(t)["replay"] for _, t in fast)
    assert read_events(tmp_path / "events")["message_id"].to_pylist() == ["m-2"]
    assert stats["replays"] == 39 and stats["written"] == 1


def test_a_retry_arriving_while_the_first_copy_waits_for_its_batch_gets_its_own_answer(tmp_path):
    # given a receiver that writes a batch every 0.6 s and one signed event
    body = json.dumps({"event": "open", "channel": "email", "user_id": 5, "message_id": "pend-5"}).encode()
    h = ev_headers(body)

    async def scenario(s, base, rec):
        async def later(delay):
            await asyncio.sleep(delay)
            return await post(s, base + "/events", body, h)
        # when two retries arrive while the first copy still waits for its batch
        return await asyncio.gather(later(0), later(0.2), later(0.3))

    out = run_receiver(tmp_path, scenario, flush_seconds=0.6)
    # then each gets a 200 of its own (the retries: replay) and the event is on disk once
    assert [st for st, _ in out] == [200, 200, 200], out
    assert [json.loads(t).get("replay", False) for _, t in out] == [False, True, True]
    assert read_events(tmp_path / "events").num_rows == 1


def test_a_forged_body_under_a_copied_signature_does_not_make_the_genuine_request_fail(tmp_path):
    # given a genuine signed request and a copy of its headers carrying another body, sent first
    body = json.dumps({"event": "unsubscribe", "channel": "email", "user_id": 7}).encode()
    forged = json.dumps({"event": "unsubscribe", "channel": "email", "user_id": 8}).encode()
    h = ev_headers(body)

    async def scenario(s, base, rec):
        port = int(base.rsplit(":", 1)[1])
        bad = asyncio.ensure_future(_raw_post(port, "/events", forged, h, 0.2))
        await asyncio.sleep(0.05)
        good = await post(s, base + "/events", body, h)  # waits for the forged copy's answer
        return (await bad)[0], good[0]

    # when both arrive
    bad, good = run_receiver(tmp_path, scenario)
    # then the forgery is 401 and the genuine request is still stored (200)
    assert (bad, good) == (401, 200)
    assert read_events(tmp_path / "events")["user_id"].to_pylist() == [7]


# -- F2: a lone surrogate ----------------------------------------------------------------------
def test_an_event_with_a_lone_surrogate_is_refused_alone_and_the_rest_of_its_batch_is_written(tmp_path):
    # given five good signed requests and one whose message_id is a lone surrogate (valid JSON)
    good = [json.dumps({"event": "unsubscribe", "channel": "email", "user_id": 100 + i,
                        "message_id": f"g{i}"}).encode() for i in range(5)]
    poison = b'{"event":"open","channel":"email","user_id":1,"message_id":"\\ud800"}'
    mixed = b'[{"event":"open","channel":"email","user_id":2,"message_id":"\\udc80"},' \
            b'{"event":"open","channel":"email","user_id":3,"message_id":"ok3"}]'

    async def scenario(s, base, rec):
        return await asyncio.gather(*[post(s, base + "/events", b, ev_headers(b)) for b in good + [poison, mixed]])

    # when they all land in one batch
    out = run_receiver(tmp_path, scenario, flush_seconds=0.2)
    # then the good requests are 200 and written, the poison request alone is 400 (its only event
    # is malformed), and the mixed request keeps its good event and names the bad one
    assert [st for st, _ in out] == [200] * 5 + [400, 200], out
    assert "lone surrogate" in out[5][1]
    assert json.loads(out[6][1])["rejected"][0]["index"] == 0
    assert sorted(read_events(tmp_path / "events")["user_id"].to_pylist()) == [3, 100, 101, 102, 103, 104]


def test_a_surrogate_provider_id_never_reaches_the_ledger_lookup(tmp_path):
    # given a receiver with a ledger and a SendGrid event whose sg_message_id is a lone surrogate
    led = make_ledger(tmp_path / "ledger.db")
    sg = b'[{"event":"open","email":"a@b.c","timestamp":1796000000,"sg_message_id":"\\udc80x"}]'

    async def scenario(s, base, rec):
        return await post(s, base + "/sendgrid", sg, sg_headers(sg))

    # when it is posted, then it is a 400 naming the field, not a 500
    status, text = run_receiver(tmp_path, scenario, ledger=led)
    assert status == 400 and "sg_message_id" in text, text


# -- F3: names with another case or spaces ------------------------------------------------------
def test_event_names_and_channels_with_another_case_or_spaces_are_read_as_the_names_they_are(tmp_path):
    # given unsubscribes spelt 'Unsubscribe' and ' unsubscribe ', a complaint on channel 'Email',
    # and one truly unknown name, all in one request
    led = make_ledger(tmp_path / "ledger.db")
    body = json.dumps({"events": [
        {"event": "Unsubscribe", "channel": "email", "user_id": 21},
        {"event": " unsubscribe ", "channel": "email", "user_id": 22},
        {"event": "complaint", "channel": "Email", "user_id": 23},
        {"event": "resubscribe", "channel": "email", "user_id": 24}]}).encode()

    async def scenario(s, base, rec):
        st, text = await post(s, base + "/events", body, ev_headers(body))
        return st, json.loads(text), dict(rec.stats)

    # when posted
    status, doc, stats = run_receiver(tmp_path, scenario, ledger=led)
    # then the three are written under their names and suppressed, counted as renamed; the unknown
    # one stays unknown
    assert status == 200 and doc["accepted"] == 3 and doc["renamed"] == 3 and doc["unknown"] == 1, doc
    assert stats["renamed"] == 3 and stats["unknown"] == 1
    t = read_events(tmp_path / "events")
    assert sorted(zip(t["user_id"].to_pylist(), t["event"].to_pylist(), t["channel"].to_pylist())) == [
        (21, "unsubscribe", "email"), (22, "unsubscribe", "email"), (23, "complaint", "email")]
    assert sorted(read_suppressions(led)["user_id"].to_pylist()) == [21, 22, 23]


# -- F5: hard and soft bounces --------------------------------------------------------------------
def test_part_files_say_whether_a_bounce_is_hard(tmp_path):
    # given a SendGrid hard bounce and a 'blocked' one, a generic hard:false bounce and an open
    sg = json.dumps([
        {"event": "bounce", "type": "bounce", "email": "h@x.test", "timestamp": T0, "user_id": 31},
        {"event": "bounce", "type": "blocked", "email": "s@x.test", "timestamp": T0, "user_id": 32}]).encode()
    gen = json.dumps([{"event": "bounce", "hard": False, "channel": "push", "user_id": 33},
                      {"event": "open", "channel": "push", "user_id": 34}]).encode()

    async def scenario(s, base, rec):
        return [(await post(s, base + "/sendgrid", sg, sg_headers(sg)))[0],
                (await post(s, base + "/events", gen, ev_headers(gen)))[0]]

    # when received
    assert run_receiver(tmp_path, scenario) == [200, 200]
    # then the part files carry hard true/false on bounces and null elsewhere
    t = read_events(tmp_path / "events")
    assert sorted(zip(t["user_id"].to_pylist(), t["hard"].to_pylist())) == [
        (31, True), (32, False), (33, False), (34, None)]


# -- F7: a ledger that cannot be read ------------------------------------------------------------
def test_a_locked_ledger_is_a_503_off_the_event_loop_and_the_retry_is_placed(tmp_path):
    # given a receiver with a ledger another connection holds exclusively, and an unsubscribe naming
    # only its message
    led = make_ledger(tmp_path / "ledger.db")
    holder = sqlite3.connect(led, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    body = json.dumps({"event": "unsubscribe", "channel": "email", "message_id": "m1"}).encode()

    async def scenario(s, base, rec):
        t0 = time.monotonic()
        first = asyncio.ensure_future(post(s, base + "/events", body, ev_headers(body)))
        await asyncio.sleep(0.1)
        async with s.get(base + "/_stats") as r:  # the loop still answers during the look-up
            stats_at = time.monotonic() - t0
            assert r.status == 200
        locked = await first
        holder.execute("COMMIT")
        holder.close()
        again = await post(s, base + "/events", body, ev_headers(body))
        return locked, stats_at, again, dict(rec.stats)

    # when posted while locked, then again after the lock is gone
    locked, stats_at, again, stats = run_receiver(tmp_path, scenario, ledger=led, lookup_timeout=0.5)
    # then the first is 503 (the provider retries), /_stats answered before the look-up gave up,
    # and the retry places the event (200, accepted) rather than calling it unmatched
    assert locked[0] == 503 and "retry" in locked[1], locked
    assert stats_at < 0.5
    assert again[0] == 200 and json.loads(again[1])["accepted"] == 1, again
    assert stats["unmatched"] == 0 and stats["ledger_errors"] == 1
    assert read_events(tmp_path / "events")["user_id"].to_pylist() == [11]


def test_a_damaged_ledger_is_a_503_and_an_unknown_message_is_unmatched(tmp_path):
    # given a ledger file that is not a database, and a good ledger
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    body = json.dumps({"event": "unsubscribe", "channel": "email", "message_id": "nope"}).encode()

    async def scenario(s, base, rec):
        return await post(s, base + "/events", body, ev_headers(body))

    # when an unsubscribe naming only an unknown message is posted to each
    status, text = run_receiver(tmp_path / "a", scenario, ledger=bad)
    (tmp_path / "b").mkdir()
    ok_status, ok_text = run_receiver(tmp_path / "b", scenario, ledger=make_ledger(tmp_path / "b" / "l.db"))
    # then the damaged one is 503, the good one 200 with the event unmatched (accepted 0)
    assert status == 503, text
    assert ok_status == 200 and json.loads(ok_text)["accepted"] == 0


# -- F4: a webhook post --------------------------------------------------------------------------
def test_a_webhook_unsubscribe_stops_the_channel_its_message_went_out_on(tmp_path):
    # given a ledger whose message m3 went out on push, and an unsubscribe posted on channel 'webhook'
    led = make_ledger_with_push(tmp_path / "ledger.db")
    body = json.dumps({"event": "unsubscribe", "channel": "webhook", "message_id": "m3"}).encode()

    async def scenario(s, base, rec):
        return (await post(s, base + "/events", body, ev_headers(body)))[0]

    # when received
    assert run_receiver(tmp_path, scenario, ledger=led) == 200
    # then the row and the suppression are on push, the channel the ledger sent m3 on
    t = read_events(tmp_path / "events")
    assert (t["user_id"].to_pylist(), t["channel"].to_pylist()) == ([13], ["push"])
    sup = read_suppressions(led)
    assert list(zip(sup["channel"].to_pylist(), sup["user_id"].to_pylist())) == [("push", 13)]


# -- F10: leftovers of a killed receiver, --flush-seconds ----------------------------------------
def test_temporary_part_files_of_a_killed_receiver_are_removed_at_start(tmp_path):
    # given an events directory with a kept part file and a temporary one a kill -9 left
    out = tmp_path / "events"
    out.mkdir()
    (out / "part-000000.arrow").write_bytes(b"kept")
    (out / ".part-000001.arrow.abc123.tmp").write_bytes(b"half")
    # when a receiver starts on it
    rec = Receiver(out, secret="s")
    # then the temporary file is gone, the part file kept and the next part is 1
    assert sorted(p.name for p in out.iterdir()) == ["part-000000.arrow"]
    assert rec._next_part == 1


def test_flush_seconds_above_ten_is_one_clear_error(tmp_path, capsys, monkeypatch):
    from engine.cli import main

    # given a secret in the environment
    monkeypatch.setenv("WINBACK_WEBHOOK_SECRET", "s")
    # when receive is asked to hold requests 60 s for a batch
    code = main(["receive", "-o", str(tmp_path / "ev"), "--port", "0", "--flush-seconds", "60",
                 "--max-seconds", "1"])
    # then it refuses in one line before listening
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--flush-seconds must be above 0 and at most 10" in err, err


def test_a_bounce_row_schema_includes_hard():
    # given the part file schema, then it has a nullable boolean 'hard'
    from engine.feedback.parts import EVENT_SCHEMA

    assert EVENT_SCHEMA.field("hard").type == pa.bool_() and EVENT_SCHEMA.field("hard").nullable


def test_a_restarted_receiver_does_not_write_again_what_the_last_run_wrote(tmp_path):
    # given a receiver that wrote a SendGrid open (sg_event_id ev-1) and a signed /events click, then stopped
    import json as _json
    import time as _time

    from engine.feedback.receiver import sendgrid_hmac_signature
    from tests.feedback.test_receiver import SECRET, SG_SECRET, ev_headers, read_events, run_receiver

    sg = _json.dumps([{"event": "open", "email": "a@example.com", "timestamp": 1_790_000_060, "user_id": "11",
                       "message_id": "m1", "sg_event_id": "ev-1"}]).encode()
    ts = str(int(_time.time()))
    sg_headers = {"Content-Type": "application/json", "X-Twilio-Email-Event-Webhook-Timestamp": ts,
                  "X-Twilio-Email-Event-Webhook-Signature": sendgrid_hmac_signature(SG_SECRET, ts, sg)}
    ev = _json.dumps({"events": [{"event": "click", "channel": "push", "user_id": 5, "message_id": "p5",
                                  "ts": 1_790_000_100}]}).encode()
    ev_h = ev_headers(ev, SECRET)

    async def first(s, base, rec):
        for path, body, h in (("/sendgrid", sg, sg_headers), ("/events", ev, ev_h)):
            async with s.post(base + path, data=body, headers=h) as r:
                assert r.status == 200
    run_receiver(tmp_path, first)
    assert read_events(tmp_path / "events").num_rows == 2

    # when a new run gets the same signed request again (a replay within the skew window), and the provider's
    # retry of the open under a new signature (it never saw the first run's answer)
    retry_ts = str(int(_time.time()) + 1)
    retry_h = {"Content-Type": "application/json", "X-Twilio-Email-Event-Webhook-Timestamp": retry_ts,
               "X-Twilio-Email-Event-Webhook-Signature": sendgrid_hmac_signature(SG_SECRET, retry_ts, sg)}

    async def second(s, base, rec):
        out = []
        for path, body, h in (("/events", ev, ev_h), ("/sendgrid", sg, retry_h)):
            async with s.post(base + path, data=body, headers=h) as r:
                out.append((r.status, await r.json()))
        return out
    answers = run_receiver(tmp_path, second)
    # then both are acknowledged and nothing is written twice
    assert [a[0] for a in answers] == [200, 200] and answers[0][1].get("replay") is True
    assert answers[1][1]["accepted"] == 0
    assert read_events(tmp_path / "events").num_rows == 2
