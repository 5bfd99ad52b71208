"""Feedback intake: provider event webhooks -> an Arrow events directory.

Three signed endpoints, each mapped to contract events (``open``, ``click``,
``bounce``, ``complaint``, ``unsubscribe``) with ``channel`` and ``message_id``:

``POST /sendgrid``
    SendGrid Event Webhook: a JSON array of events (``delivered``, ``open``, ``click``,
    ``bounce`` with ``type`` "bounce" (hard) or "blocked" (soft), ``dropped``,
    ``spamreport``, ``unsubscribe``, ``group_unsubscribe``) carrying our custom args
    (``message_id``, ``user_id``), ``sg_message_id``, ``email`` and ``timestamp`` (epoch
    seconds, UTC).  Signature headers ``X-Twilio-Email-Event-Webhook-Signature`` and
    ``X-Twilio-Email-Event-Webhook-Timestamp``.  With ``sendgrid_public_key`` (the
    base64 DER key SendGrid shows) the signature is SendGrid's ECDSA P-256/SHA-256 over
    ``timestamp + body`` (needs the ``cryptography`` package).  Without the package, or
    for senders that cannot do ECDSA, a shared ``sendgrid_secret`` selects HMAC mode:
    the signature header is base64 HMAC-SHA256(secret, ``timestamp + body``).
``POST /twilio``
    Twilio status callback (form: ``MessageSid``, ``MessageStatus`` delivered /
    undelivered / failed, ``ErrorCode``, ``To``), signed with ``X-Twilio-Signature`` =
    base64 HMAC-SHA1(auth token, URL + every POST parameter name and value, sorted by
    name).  The URL is the one Twilio called: pass ``public_url`` behind a proxy.  The
    callback URL may carry ``?message_id=...&user_id=...``; else the ledger is asked.
``POST /events``
    Generic JSON for push and our webhook adapter: one event object, a list, or
    ``{"events": [...]}``; fields ``event``, ``channel``, ``message_id``, optional
    ``user_id`` and ``ts`` (epoch seconds or ISO 8601).  ``event: "reason"`` is a survey
    answer (a survey step's page posts it) with ``reason``: the reason's name.  Signed like the webhook adapter
    (DESIGN.md): ``X-Winback-Timestamp`` and ``X-Winback-Signature: sha256=<hex>`` of
    HMAC-SHA256(secret, ``timestamp + "." + body``), timestamp within ``skew_seconds``.

``user_id`` comes from the payload, else from the ledger (by ``message_id`` or the
provider's id; :mod:`engine.feedback.lookup`, off the event loop).  Events whose user cannot
be found are acknowledged and counted as ``unmatched`` (retrying would not find them
either); a ledger that cannot be read right now (locked, an I/O error) answers 503 so the
provider retries.  An event on channel ``webhook`` takes the ledger's channel of its message.  ``delivered`` / ``dropped`` are
counted as ``ignored``; a ``dropped`` for a "Bounced/Unsubscribed/Spam Reporting Address"
still suppresses that address in the ledger.

Durability: accepted events are buffered and written as one Arrow IPC file per batch,
``part-XXXXXX.arrow`` (fsync'd, then renamed into place; :mod:`engine.feedback.parts`), every ``flush_events``
events or ``flush_seconds`` seconds.  A request is answered 200 only after the batch
holding its events is on disk, so a restart loses nothing acknowledged; a failed write
answers 500 and the provider retries (delivery is at least once: a batch whose
suppressions fail after its file was written is written again on the retry).  Hard bounces, unsubscribes and complaints go to
the ledger's ``suppressions`` table when a ledger is given.  Bad, unsigned or
oversized payloads get 4xx and are counted by reason (``GET /_stats``).

Each event of a batch is checked on its own: an unknown event type (such as SendGrid's
``group_resubscribe``) is counted as ``unknown`` and skipped, a malformed event (a bad
time, user id or address) is skipped with its reason in the answer's ``rejected`` list,
and the rest of the batch is kept (a batch whose every event is malformed gets 400).

Hostile clients: the signature headers (present, ASCII, a finite timestamp within
``skew_seconds``) are checked before the body is read; a body must arrive within
``read_timeout`` seconds, and so must the request headers of a new connection; at most
``max_connections`` connections are open (more get 503); JSON nested deeper than
:data:`MAX_JSON_DEPTH` is 400.  A signed request seen again within the skew window
(a replay, or a provider's retry of a request already acknowledged) is answered 200
and not written again; copies of one signed request arriving together are stored once (the
first copy claims its signature before anything is awaited, the others wait for its answer
and are answered 200 with ``replay: true``, or try themselves when it failed); so is an event whose SendGrid ``sg_event_id`` was already
written during this run.  ``GET /_stats`` answers loopback clients of a receiver
listening on loopback, otherwise only with ``Authorization: Bearer <a configured
secret>``.  Every client error is a 4xx, never a 500.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os
import re
import time
from pathlib import Path
from urllib.parse import parse_qsl

from aiohttp import web

from engine.feedback.events import (
    MAX_JSON_DEPTH,
    TWILIO_HARD,
    TWILIO_OPTOUT,
    BadPayload,
    generic_events,
    load_json,
    sendgrid_events,
    twilio_events,
)
from engine.feedback.lookup import LOOKUP_TIMEOUT, LedgerUnavailable, needs_lookup, resolve
from engine.feedback.parts import EVENT_SCHEMA, clean_temporary, next_part, write_part
from engine.feedback.replay import Replays
from engine.feedback.signatures import ecdsa_verifier, sendgrid_hmac_signature, twilio_signature
from engine.errors import InputError
from engine.schema import CHANNELS

__all__ = ["Receiver", "EVENT_SCHEMA", "MAX_JSON_DEPTH", "TWILIO_HARD", "TWILIO_OPTOUT", "twilio_signature",
           "sendgrid_hmac_signature", "serve"]

_EPOCH_TEXT = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,9})?$")  # a signed timestamp: plain epoch seconds


class _Reject(Exception):
    def __init__(self, status: int, reason: str, text: str):
        super().__init__(text)
        self.status, self.reason, self.text = status, reason, text


class Receiver:
    """The webhook receiver; ``app()`` gives the aiohttp application, ``stats`` the counters.

    ``flush_events``: events per batch file; ``flush_seconds``: longest wait before a
    partial batch is written; ``max_body``: largest accepted body in bytes;
    ``skew_seconds``: largest clock difference for signed timestamps (also how long a
    signature is remembered against replays); ``read_timeout``: seconds a client has for
    its request headers and for its body; ``max_connections``: open connections at most;
    ``lookup_timeout``: seconds a ledger look-up waits for a locked ledger (then 503).
    """

    def __init__(self, out_dir: str | os.PathLike, *, ledger: str | os.PathLike | None = None,
                 secret: str | None = None, sendgrid_public_key: str | None = None,
                 sendgrid_secret: str | None = None, twilio_token: str | None = None,
                 public_url: str | None = None, max_body: int = 1024 * 1024, flush_events: int = 1000,
                 flush_seconds: float = 1.0, skew_seconds: float = 300.0, read_timeout: float = 10.0,
                 max_connections: int = 256, lookup_timeout: float = LOOKUP_TIMEOUT, clock=time.time):
        self.out_dir = Path(out_dir)
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            probe = self.out_dir / ".winback-write-test"
            probe.touch()
            probe.unlink()
        except OSError as exc:
            raise InputError(f"events directory {self.out_dir} is not writable ({exc.strerror}); pass -o a "
                             "directory this user can write") from None
        self.ledger = Path(ledger) if ledger is not None else None
        if self.ledger is not None and not self.ledger.is_file():
            raise InputError(f"ledger {self.ledger} does not exist; pass the ledger 'winback send' wrote, or "
                             "leave --ledger out (then user ids must come in the payloads)")
        self._secret = secret
        self._sg_verify = ecdsa_verifier(sendgrid_public_key) if sendgrid_public_key else None
        self._sg_secret = sendgrid_secret
        self._twilio_token = twilio_token
        self._bearers = [x.encode() for x in (secret, sendgrid_secret, twilio_token) if x]
        self.public_url = public_url.rstrip("/") if public_url else None
        self.max_body = int(max_body)
        self.flush_events = max(1, int(flush_events))
        self.flush_seconds = float(flush_seconds)
        self.skew_seconds = float(skew_seconds)
        self.read_timeout = float(read_timeout)
        self.max_connections = max(1, int(max_connections))
        self.lookup_timeout = float(lookup_timeout)
        #: ``GET /_stats`` without a secret from a loopback client of a loopback listener
        self.stats_loopback_only = True
        self._loopback_listener = True
        self._clock = clock
        clean_temporary(self.out_dir)  # a killed receiver's half-written batch: never acknowledged
        self._next_part = next_part(self.out_dir)
        self._buf: list[dict] = []
        self._supp: list[dict] = []
        self._waiters: list[asyncio.Future] = []
        self._timer: asyncio.TimerHandle | None = None
        self._lock: asyncio.Lock | None = None
        self._led = None
        self._pending: dict[str, asyncio.Future] = {}  # signature -> done when its first copy is answered
        self._replays = Replays(2 * self.skew_seconds)
        self._replays.seed(self.out_dir)  # what an earlier run wrote is not written again after a restart
        self.stats = {"requests": 0, "accepted": 0, "written": 0, "batches": 0, "ignored": 0,
                      "unmatched": 0, "unknown": 0, "renamed": 0, "malformed_events": 0, "replays": 0,
                      "suppressions": 0, "rejected": {}, "write_errors": 0, "ledger_errors": 0}

    # -- application -----------------------------------------------------------------
    def app(self) -> web.Application:
        """The aiohttp application (bodies above ``max_body`` are refused with 413)."""
        from engine.feedback.guard import Watch, track_requests

        self._watch = Watch(self.read_timeout)
        app = web.Application(client_max_size=self.max_body, middlewares=[track_requests(self._watch)])
        app.router.add_post("/sendgrid", self._sendgrid)
        app.router.add_post("/twilio", self._twilio)
        app.router.add_post("/events", self._generic)
        app.router.add_get("/_stats", self._stats)
        app.on_shutdown.append(lambda _app: self.close())
        return app

    async def close(self) -> None:
        """Write what is buffered and close the ledger."""
        await self.flush()
        if self._led is not None:
            self._led.close()
            self._led = None

    async def _stats(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        token = auth[7:].encode("utf-8", "surrogateescape") if auth.startswith("Bearer ") else b""
        ok = any(hmac.compare_digest(token, b) for b in self._bearers)
        if not ok and self.stats_loopback_only and self._loopback_listener and _loopback(request.remote):
            ok = True
        if not ok:
            self._reject("stats_auth")
            return web.json_response({"error": "GET /_stats needs Authorization: Bearer <a receiver secret>"},
                                     status=401)
        return web.json_response(self.stats)

    def _reject(self, reason: str) -> None:
        self.stats["rejected"][reason] = self.stats["rejected"].get(reason, 0) + 1

    async def _body(self, request: web.Request) -> bytes:
        if request.content_length is not None and request.content_length > self.max_body:
            raise _Reject(413, "oversized", f"body of {request.content_length} bytes is over {self.max_body}")
        try:
            return await asyncio.wait_for(request.read(), self.read_timeout)
        except web.HTTPRequestEntityTooLarge:
            raise _Reject(413, "oversized", f"body is over {self.max_body} bytes") from None
        except asyncio.TimeoutError:
            raise _Reject(408, "slow_body", f"the body did not arrive within {self.read_timeout:g} s") from None

    async def _handle(self, request: web.Request, precheck, parse) -> web.Response:
        self.stats["requests"] += 1
        try:
            key = precheck(request)  # signature headers, before a byte of the body is read
        except _Reject as r:
            return self._refuse(r)
        # claim the signature with no await between the look and the claim: of copies of one
        # signed request arriving together only the first is stored, the others wait for it
        while (first := self._pending.get(key)) is not None:
            await asyncio.shield(first)  # then: acknowledged (a replay below), or failed (try ourselves)
        if self._replays.seen(key):
            self.stats["replays"] += 1
            return web.json_response({"accepted": 0, "replay": True})
        done = asyncio.get_running_loop().create_future()
        self._pending[key] = done
        try:
            resp = await self._receive(request, parse, key)
            if resp.status == 200:
                self._replays.remember(key)
            return resp
        finally:
            del self._pending[key]
            done.set_result(None)

    async def _receive(self, request: web.Request, parse, key: str) -> web.Response:
        try:
            raw = await self._body(request)
            try:
                events, supp, report = parse(raw, request)
            except BadPayload as exc:
                raise _Reject(400, "malformed", str(exc)) from None
            except (ValueError, TypeError, KeyError, AttributeError, RecursionError, UnicodeError) as exc:
                raise _Reject(400, "malformed", f"the body is not a valid payload ({type(exc).__name__})") \
                    from None
        except _Reject as r:
            return self._refuse(r)
        st = self.stats
        st["unknown"] += report["unknown"]
        st["ignored"] += report["ignored"]
        st["renamed"] += report.get("renamed", 0)
        st["malformed_events"] += len(report["rejected"])
        for e in events:  # written beside the events: a replay after a restart is known (Replays.seed)
            e["request"] = key
        return await self._store(events, supp, report)

    def _refuse(self, r: "_Reject") -> web.Response:
        self._reject(r.reason)
        resp = web.json_response({"error": r.text}, status=r.status)
        if r.status in (401, 403, 408, 413):
            resp.force_close()  # an unread body is not drained
        return resp

    async def _store(self, events: list[dict], supp: list[dict], report: dict) -> web.Response:
        try:
            events = await self._resolve(events)
        except LedgerUnavailable as exc:  # the provider retries: the event may well be placed then
            self.stats["ledger_errors"] += 1
            return web.json_response({"error": f"{exc}; retry later"}, status=503, headers={"Retry-After": "5"})
        events, again = self._replays.claim(events)  # provider event ids already written: not again
        self.stats["replays"] += again
        rejected = report["rejected"]
        if rejected and not events and not supp and not report["unknown"] and not report["ignored"]:
            self._reject("malformed")
            return web.json_response({"error": "every event of the batch is malformed", "accepted": 0,
                                      "rejected": rejected[:20]}, status=400)
        body = {"accepted": len(events), "unknown": report["unknown"], "rejected": rejected[:20]}
        if report.get("renamed"):
            body["renamed"] = report["renamed"]  # names read under their obvious spelling
        if events or supp:
            try:
                await self._enqueue(events, supp)
            except Exception as exc:  # noqa: BLE001 - the provider retries on 5xx
                self._replays.release(events)
                return web.json_response({"error": f"could not store events: {exc}"}, status=500)
        return web.json_response(body)

    # -- the three shapes --------------------------------------------------------------
    async def _sendgrid(self, request: web.Request) -> web.Response:
        return await self._handle(request, self._precheck_sendgrid, self._parse_sendgrid)

    def _precheck_sendgrid(self, request: web.Request) -> str:
        sig = request.headers.get("X-Twilio-Email-Event-Webhook-Signature", "")
        ts = request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp", "")
        if not sig or not ts:
            raise _Reject(401, "unsigned", "missing X-Twilio-Email-Event-Webhook-Signature/-Timestamp")
        if self._sg_verify is None and self._sg_secret is None:
            raise _Reject(403, "signature", "/sendgrid has no verification key configured")
        _ascii(sig)
        self._check_skew(ts)
        return "sg:" + sig

    def _parse_sendgrid(self, raw: bytes, request: web.Request):
        sig = request.headers["X-Twilio-Email-Event-Webhook-Signature"]
        ts = request.headers["X-Twilio-Email-Event-Webhook-Timestamp"]
        ok = False
        if self._sg_verify is not None:
            ok = self._sg_verify(ts, raw, sig)
        if not ok and self._sg_secret is not None:
            ok = hmac.compare_digest(sendgrid_hmac_signature(self._sg_secret, ts, raw).encode(), sig.encode())
        if not ok:
            raise _Reject(401, "signature", "signature does not match")
        return sendgrid_events(load_json(raw), self._clock())

    async def _twilio(self, request: web.Request) -> web.Response:
        return await self._handle(request, self._precheck_twilio, self._parse_twilio)

    def _precheck_twilio(self, request: web.Request) -> str:
        sig = request.headers.get("X-Twilio-Signature", "")
        if not sig:
            raise _Reject(401, "unsigned", "missing X-Twilio-Signature")
        if self._twilio_token is None:
            raise _Reject(403, "signature", "/twilio has no auth token configured")
        _ascii(sig)
        return "tw:" + sig

    def _parse_twilio(self, raw: bytes, request: web.Request):
        sig = request.headers["X-Twilio-Signature"]
        try:
            params = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(raw)))
        except (UnicodeDecodeError, ValueError):
            raise _Reject(400, "malformed", "the body is not a form") from None
        url = (self.public_url + request.path_qs) if self.public_url else str(request.url)
        if not hmac.compare_digest(twilio_signature(self._twilio_token, url, params).encode(), sig.encode()):
            raise _Reject(401, "signature", "signature does not match")
        # a StatusCallback URL may carry ?message_id=...&user_id=...
        return twilio_events(params, request.query, self._clock())

    async def _generic(self, request: web.Request) -> web.Response:
        return await self._handle(request, self._precheck_generic, self._parse_generic)

    def _precheck_generic(self, request: web.Request) -> str:
        ts = request.headers.get("X-Winback-Timestamp", "")
        sig = request.headers.get("X-Winback-Signature", "")
        if not ts or not sig:
            raise _Reject(401, "unsigned", "missing X-Winback-Timestamp/X-Winback-Signature")
        if self._secret is None:
            raise _Reject(403, "signature", "/events has no secret configured")
        _ascii(sig)
        self._check_skew(ts)
        return "ev:" + sig

    def _parse_generic(self, raw: bytes, request: web.Request):
        from engine.sending.signing import verify_signature

        ts = request.headers["X-Winback-Timestamp"]
        if not verify_signature(self._secret, ts, raw, request.headers["X-Winback-Signature"]):
            raise _Reject(401, "signature", "signature does not match")
        return generic_events(load_json(raw), self._clock())

    # -- helpers -----------------------------------------------------------------------
    def _check_skew(self, ts: str) -> None:
        if not _EPOCH_TEXT.match(ts):
            raise _Reject(401, "timestamp", "the signature timestamp is not epoch seconds")
        skew = abs(self._clock() - float(ts))
        if not skew <= self.skew_seconds:
            raise _Reject(401, "timestamp", f"signature timestamp {skew:.0f} s away from the server clock")

    async def _resolve(self, events: list[dict]) -> list[dict]:
        """Fill user_id, message_id and a webhook channel from the ledger (in a worker thread);
        drop and count what stays without a user."""
        if self.ledger is not None and any(needs_lookup(e) for e in events):
            await asyncio.to_thread(resolve, self.ledger, events, self.lookup_timeout)
        kept = [e for e in events if e["user_id"] is not None]
        self.stats["unmatched"] += len(events) - len(kept)
        return kept

    # -- batching ----------------------------------------------------------------------
    async def _enqueue(self, events: list[dict], supp: list[dict]) -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._buf.extend(events)
        self._supp.extend(supp)
        self._waiters.append(fut)
        self.stats["accepted"] += len(events)
        if len(self._buf) >= self.flush_events:
            loop.create_task(self.flush())
        elif self._timer is None:
            self._timer = loop.call_later(self.flush_seconds, lambda: loop.create_task(self.flush()))
        await fut

    async def flush(self) -> int:
        """Write the buffered events as one part file and wake their requests; returns events written."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            buf, supp, waiters = self._buf, self._supp, self._waiters
            self._buf, self._supp, self._waiters = [], [], []
            if not waiters:
                return 0
            try:
                # suppressions first: adding one twice is harmless (a retry after a failed
                # part file), a part file written twice would duplicate its events
                if supp and self.ledger is not None:
                    self.stats["suppressions"] += await asyncio.to_thread(self._suppress, supp)
                if buf:
                    await asyncio.to_thread(self._write_part, buf, self._next_part)
                    self._next_part += 1
                    self.stats["batches"] += 1
                    self.stats["written"] += len(buf)
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                self.stats["write_errors"] += 1
                for w in waiters:
                    if not w.done():
                        w.set_exception(exc)
                return 0
            for w in waiters:
                if not w.done():
                    w.set_result(None)
            return len(buf)

    def _write_part(self, buf: list[dict], number: int):
        return write_part(self.out_dir, buf, number)

    def _suppress(self, supp: list[dict]) -> int:
        from engine.ledger.store import Ledger

        if self._led is None:
            self._led = Ledger(self.ledger)
        rows = []
        for s in supp:
            ev = s["event"]
            channel = ev["channel"] if s["channel"] == "webhook" else s["channel"]  # the ledger's, when known
            if channel not in CHANNELS:  # a webhook post the ledger cannot place: every channel of the user
                rows += [{"channel": c, "address": None, "user_id": ev["user_id"], "reason": s["reason"],
                          "at": ev["ts"] / 1e6} for c in CHANNELS if ev["user_id"] is not None]
            elif s["address"] is not None or ev["user_id"] is not None:
                rows.append({"channel": channel, "address": s["address"], "user_id": ev["user_id"],
                             "reason": s["reason"], "at": ev["ts"] / 1e6})
        return self._led.add_suppressions(rows) if rows else 0


def _loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote.split("%")[0]).is_loopback
    except ValueError:
        return False


def _ascii(signature: str) -> None:
    if not signature.isascii() or len(signature) > 1024:
        raise _Reject(401, "signature", "signature does not match")


async def serve(receiver: Receiver, host: str = "127.0.0.1", port: int = 8025) -> web.AppRunner:
    """Start ``receiver`` on ``host:port``; returns the runner (``await runner.cleanup()`` to stop).

    At most ``receiver.max_connections`` connections; ``receiver.read_timeout`` seconds for
    request headers (and for an idle keep-alive connection)."""
    from engine.feedback.guard import GuardedSite

    runner = web.AppRunner(receiver.app(), access_log=None, keepalive_timeout=receiver.read_timeout)
    await runner.setup()
    receiver._loopback_listener = _loopback(host) or host == "localhost"
    await GuardedSite(runner, host, port, watch=receiver._watch, max_connections=receiver.max_connections).start()
    return runner
