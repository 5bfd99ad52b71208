"""A bounded fuzz run of every receiver endpoint over real HTTP on 127.0.0.1.

Random bodies (JSON of any shape, events with wrong types, bytes that are not JSON or
not UTF-8), random headers (missing, forged, non-ASCII, non-finite timestamps), other
text encodings, and replays of whole requests.  Every answer is 2xx or 4xx, never
5xx, and no event is written twice: each generated event carries its own message id,
so a message id written twice for the same event type is a replay that got through.
"""

from __future__ import annotations

import asyncio
import http.client
import itertools
import json
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from engine.feedback.receiver import Receiver, sendgrid_hmac_signature, serve, twilio_signature
from engine.sending.signing import sign

SECRET, SG_SECRET, TW_TOKEN = "fuzz-secret", "fuzz-sg-secret", "fuzz-tw-token"
_ids = itertools.count()


class Server:
    """The receiver on its own event loop in a thread, for the whole module."""

    def __init__(self, out: Path):
        self.out = out
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self) -> None:
        async def main():
            self.rec = Receiver(self.out, secret=SECRET, sendgrid_secret=SG_SECRET, twilio_token=TW_TOKEN,
                                max_body=64 * 1024, flush_seconds=0.01, read_timeout=2.0, max_connections=64)
            runner = await serve(self.rec, "127.0.0.1", 0)
            self.port = runner.addresses[0][1]
            self.stop = asyncio.Event()
            self.ready.set()
            await self.stop.wait()
            await runner.cleanup()

        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(main())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("fuzz") / "events")
    yield s
    s.close()


def post(server: Server, path: str, body: bytes, headers: list[tuple[str, bytes]]) -> int | None:
    """The status of the request, or None when no HTTP client can send it (a header value
    with CR or LF: http.client refuses it before anything reaches the receiver)."""
    con = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        con.putrequest("POST", path, skip_accept_encoding=True)
        for k, v in headers:
            try:
                con.putheader(k, v)
            except ValueError:
                return None
        con.putheader("Content-Length", str(len(body)))
        con.endheaders(body)
        return con.getresponse().status
    finally:
        con.close()


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                      st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12))
json_any = st.recursive(json_leaf, lambda kids: st.lists(kids, max_size=4)
                        | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=12)
now_ts = st.integers(1_700_000_000, 1_900_000_000)
field = st.one_of(json_any, now_ts, st.sampled_from(["open", "click", "bounce", "spamreport", "unsubscribe",
                                                    "group_resubscribe", "dropped", "delivered", "x"]))


@st.composite
def sg_event(draw):
    e = {"event": draw(st.sampled_from(["open", "click", "bounce", "spamreport", "unsubscribe",
                                        "group_unsubscribe", "group_resubscribe", "dropped", "delivered",
                                        "brand_new"])),
         "message_id": f"fz{next(_ids)}", "user_id": draw(st.one_of(st.integers(1, 10**6), field)),
         "timestamp": draw(st.one_of(now_ts, field)), "email": draw(st.one_of(st.emails(), field))}
    if draw(st.booleans()):
        e["sg_event_id"] = draw(st.one_of(st.text(min_size=1, max_size=20), field))
    if draw(st.booleans()):
        e[draw(st.text(max_size=6))] = draw(json_any)
    return e


@st.composite
def generic_event(draw):
    return {"event": draw(st.sampled_from(["open", "click", "bounce", "complaint", "unsubscribe", "fly"])),
            "channel": draw(st.one_of(st.sampled_from(["email", "sms", "push", "webhook"]), field)),
            "message_id": f"fz{next(_ids)}", "user_id": draw(st.one_of(st.integers(1, 10**6), field)),
            "ts": draw(st.one_of(now_ts, field, st.just("2026-11-01T00:00:00Z"))),
            "hard": draw(st.one_of(st.booleans(), field)), "address": draw(st.one_of(st.none(), field))}


encodings = st.sampled_from(["utf-8", "utf-8", "utf-16", "latin-1"])
bad_header = st.one_of(st.text(max_size=30).map(lambda t: t.encode("utf-8")), st.binary(max_size=30).filter(
    lambda b: b"\r" not in b and b"\n" not in b), st.sampled_from([b"nan", b"inf", b"-1", b"1e400", b""]))


@st.composite
def request(draw):
    route = draw(st.sampled_from(["/sendgrid", "/events", "/twilio"]))
    shape = draw(st.sampled_from(["signed", "signed", "signed", "garbage", "headers"]))
    ts = str(int(time.time()))
    if route == "/twilio":
        params = {k: draw(st.one_of(st.text(max_size=10), st.sampled_from(["failed", "undelivered", "21610", "30005"])))
                  for k in draw(st.lists(st.sampled_from(["MessageSid", "MessageStatus", "ErrorCode", "To",
                                                          "user_id", "x"]), max_size=6, unique=True))}
        params.setdefault("MessageSid", f"SM{next(_ids)}")
        body = urlencode(params).encode()
        path = f"/twilio?message_id=fz{next(_ids)}&user_id={draw(st.integers(1, 100))}"
        url = f"http://127.0.0.1:{{port}}{path}"
        headers = [("Content-Type", b"application/x-www-form-urlencoded")]
        return route, path, body, headers, params, url, shape
    if route == "/sendgrid":
        doc = draw(st.one_of(st.lists(sg_event(), max_size=6), json_any))
    else:
        doc = draw(st.one_of(generic_event(), st.lists(generic_event(), max_size=5),
                             st.builds(lambda e: {"events": e}, st.lists(generic_event(), max_size=5)), json_any))
    text = json.dumps(doc, allow_nan=draw(st.booleans()))
    body = text.encode(draw(encodings), errors="replace") if shape != "garbage" else draw(st.binary(max_size=300))
    if draw(st.integers(0, 20)) == 0:
        body = b"[" * 5000 + b"]" * 5000
    if route == "/sendgrid":
        sig = sendgrid_hmac_signature(SG_SECRET, ts, body).encode()
        headers = [("X-Twilio-Email-Event-Webhook-Timestamp", ts.encode()),
                   ("X-Twilio-Email-Event-Webhook-Signature", sig)]
    else:
        headers = [("X-Winback-Timestamp", ts.encode()), ("X-Winback-Signature", sign(SECRET, ts, body).encode())]
    if shape == "headers":  # one header replaced by junk, or dropped
        i = draw(st.integers(0, 1))
        junk = draw(st.one_of(st.none(), bad_header))
        headers = [h for j, h in enumerate(headers) if j != i or junk is not None]
        if junk is not None:
            headers[i] = (headers[i][0], junk)
    headers.append(("Content-Type", draw(st.sampled_from([b"application/json", b"text/plain; charset=utf-16",
                                                          b"\xff\xfe", b""]))))
    return route, route, body, headers, None, None, shape


def _valid_request():
    """One signed, well-formed event, so every run writes (and replays) at least one."""
    ts = str(int(time.time()))
    body = json.dumps({"event": "open", "channel": "email", "message_id": "fz-valid", "user_id": 7,
                       "ts": "2026-11-01T00:00:00Z"}).encode()
    headers = [("X-Winback-Timestamp", ts.encode()), ("X-Winback-Signature", sign(SECRET, ts, body).encode()),
               ("Content-Type", b"application/json")]
    return "/events", "/events", body, headers, None, None, "signed"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@example(req=_valid_request(), replays=3)
@given(req=request(), replays=st.integers(1, 3))
def test_fuzzed_requests_get_2xx_or_4xx(server, req, replays):
    route, path, body, headers, params, url, shape = req
    if route == "/twilio":
        sig = twilio_signature(TW_TOKEN, url.format(port=server.port), params)
        if shape == "headers":
            sig = "ß" + sig
        headers = headers + [("X-Twilio-Signature", sig.encode("utf-8"))]
    for _ in range(replays):  # the same request again: a replay (or a provider's retry)
        status = post(server, path, body, headers)
        assume(status is not None)
        assert 200 <= status < 500, (route, status, body[:200], headers)


def test_no_event_was_written_twice(server):
    # runs after the fuzz test (file order): every part file written so far
    time.sleep(0.2)
    parts = sorted(server.out.glob("part-*.arrow"))
    tables = [pa.ipc.open_file(pa.memory_map(str(p))).read_all() for p in parts]
    if not tables:
        pytest.skip("the fuzz run wrote no event")
    t = pa.concat_tables(tables)
    keys = list(zip(t["message_id"].to_pylist(), t["event"].to_pylist()))
    assert len(keys) == len(set(keys))
    assert server.rec.stats["write_errors"] == 0
    assert server.rec.stats["written"] == t.num_rows > 0
