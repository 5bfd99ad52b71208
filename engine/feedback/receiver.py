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
provider's id).  Events whose user cannot be found are acknowledged and counted as
``unmatched`` (retrying would not find them either).  ``delivered`` / ``dropped`` are
counted as ``ignored``; a ``dropped`` for a "Bounced/Unsubscribed/Spam Reporting Address"
still suppresses that address in the ledger.

Durability: accepted events are buffered and written as one Arrow IPC file per batch,
``part-XXXXXX.arrow`` (fsync'd, then renamed into place), every ``flush_events``
events or ``flush_seconds`` seconds.  A request is answered 200 only after the batch
holding its events is on disk, so a restart loses nothing acknowledged; a failed write
answers 500 and the provider retries (delivery is at least once: a batch whose
suppressions fail after its file was written is written again on the retry).  Hard bounces, unsubscribes and complaints go to
the ledger's ``suppressions`` table when a ledger is given.  Bad, unsigned or
oversized payloads get 4xx and are counted by reason (``GET /_stats``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import sqlite3
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qsl

import pyarrow as pa
from aiohttp import web

from engine.io.atomic import atomic_path
from engine.errors import ConfigError, DependencyError, InputError
from engine.schema import TIMESTAMP

__all__ = ["Receiver", "EVENT_SCHEMA", "twilio_signature", "sendgrid_hmac_signature", "serve"]

#: schema of every part file: the contract's events plus the provider message id
EVENT_SCHEMA = pa.schema([("user_id", pa.int64()), ("ts", TIMESTAMP), ("event", pa.string()),
                          ("channel", pa.string()), ("value", pa.float64()), ("message_id", pa.string()),
                          ("reason", pa.string())])

_SG_MAP = {"open": "open", "click": "click", "bounce": "bounce", "spamreport": "complaint",
           "unsubscribe": "unsubscribe", "group_unsubscribe": "unsubscribe"}
_SG_IGNORED = {"delivered", "dropped", "processed", "deferred"}
_SG_DROPPED = {"bounced address": "hard_bounce", "unsubscribed address": "unsubscribe",
               "spam reporting address": "complaint"}
_GENERIC_EVENTS = {"open", "click", "bounce", "complaint", "unsubscribe", "reason"}
#: a survey answer's ``reason`` (the names a survey step lists)
_REASON = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_CHANNELS = {"email", "sms", "push", "webhook"}
#: Twilio error codes meaning the number will never take messages (hard bounce) ...
TWILIO_HARD = {"21211", "21612", "21614", "30005", "30006"}
#: ... and meaning the recipient opted out (STOP)
TWILIO_OPTOUT = {"21610", "30004"}
_MIN_TS, _MAX_TS = 946_684_800.0, 4_102_444_800.0  # 2000-01-01 .. 2100-01-01 UTC, epoch seconds
_PART = re.compile(r"^part-(\d{6,})\.arrow$")


class _Reject(Exception):
    def __init__(self, status: int, reason: str, text: str):
        super().__init__(text)
        self.status, self.reason, self.text = status, reason, text


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's ``X-Twilio-Signature``: base64 HMAC-SHA1 of URL + sorted name/value pairs."""
    data = url + "".join(k + params[k] for k in sorted(params))
    mac = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def sendgrid_hmac_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Shared-secret mode for /sendgrid: base64 HMAC-SHA256(secret, timestamp + body)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def _ecdsa_verifier(public_key_b64: str):
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import load_der_public_key
    except ImportError:
        raise DependencyError("SendGrid ECDSA signatures need the 'cryptography' package: pip install "
                              "cryptography (or use the shared-secret HMAC mode)") from None
    try:
        key = load_der_public_key(base64.b64decode(public_key_b64))
    except ValueError:
        raise ConfigError("the SendGrid verification key is not a base64 DER public key; copy it from "
                          "SendGrid's Mail Settings > Signed Event Webhook") from None

    def verify(timestamp: str, body: bytes, signature: str) -> bool:
        try:
            key.verify(base64.b64decode(signature), timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
            return True
        except (InvalidSignature, ValueError):
            return False

    return verify


def _epoch(value, fallback: float) -> float:
    if value is None:
        return fallback
    if isinstance(value, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(value, (int, float)):
        return float(value)
    s = str(value)
    try:
        return float(s)
    except ValueError:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            raise ValueError(f"time {s!r} has no UTC offset") from None
        return dt.timestamp()


class Receiver:
    """The webhook receiver; ``app()`` gives the aiohttp application, ``stats`` the counters.

    ``flush_events``: events per batch file; ``flush_seconds``: longest wait before a
    partial batch is written; ``max_body``: largest accepted body in bytes;
    ``skew_seconds``: largest clock difference for signed timestamps.
    """

    def __init__(self, out_dir: str | os.PathLike, *, ledger: str | os.PathLike | None = None,
                 secret: str | None = None, sendgrid_public_key: str | None = None,
                 sendgrid_secret: str | None = None, twilio_token: str | None = None,
                 public_url: str | None = None, max_body: int = 1024 * 1024, flush_events: int = 1000,
                 flush_seconds: float = 1.0, skew_seconds: float = 300.0, clock=time.time):
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
        self._sg_verify = _ecdsa_verifier(sendgrid_public_key) if sendgrid_public_key else None
        self._sg_secret = sendgrid_secret
        self._twilio_token = twilio_token
        self.public_url = public_url.rstrip("/") if public_url else None
        self.max_body = int(max_body)
        self.flush_events = max(1, int(flush_events))
        self.flush_seconds = float(flush_seconds)
        self.skew_seconds = float(skew_seconds)
        self._clock = clock
        parts = [int(m.group(1)) for p in self.out_dir.iterdir() if (m := _PART.match(p.name))]
        self._next_part = max(parts, default=-1) + 1
        self._buf: list[dict] = []
        self._supp: list[dict] = []
        self._waiters: list[asyncio.Future] = []
        self._timer: asyncio.TimerHandle | None = None
        self._lock: asyncio.Lock | None = None
        self._led = None
        self.stats = {"requests": 0, "accepted": 0, "written": 0, "batches": 0, "ignored": 0,
                      "unmatched": 0, "suppressions": 0, "rejected": {}, "write_errors": 0}

    # -- application -----------------------------------------------------------------
    def app(self) -> web.Application:
        """The aiohttp application (bodies above ``max_body`` are refused with 413)."""
        app = web.Application(client_max_size=self.max_body)
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
        return web.json_response(self.stats)

    def _reject(self, reason: str) -> None:
        self.stats["rejected"][reason] = self.stats["rejected"].get(reason, 0) + 1

    async def _body(self, request: web.Request) -> bytes:
        if request.content_length is not None and request.content_length > self.max_body:
            raise _Reject(413, "oversized", f"body of {request.content_length} bytes is over {self.max_body}")
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _Reject(413, "oversized", f"body is over {self.max_body} bytes") from None

    async def _handle(self, request: web.Request, parse) -> web.Response:
        self.stats["requests"] += 1
        try:
            events, supp = parse(await self._body(request), request)
        except _Reject as r:
            self._reject(r.reason)
            return web.json_response({"error": r.text}, status=r.status)
        events = self._resolve(events)
        if not events and not supp:
            return web.json_response({"accepted": 0})
        try:
            await self._enqueue(events, supp)
        except Exception as exc:  # noqa: BLE001 - the provider retries on 5xx
            return web.json_response({"error": f"could not store events: {exc}"}, status=500)
        return web.json_response({"accepted": len(events)})

    # -- the three shapes --------------------------------------------------------------
    async def _sendgrid(self, request: web.Request) -> web.Response:
        return await self._handle(request, self._parse_sendgrid)

    def _parse_sendgrid(self, raw: bytes, request: web.Request):
        sig = request.headers.get("X-Twilio-Email-Event-Webhook-Signature", "")
        ts = request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp", "")
        if not sig or not ts:
            raise _Reject(401, "unsigned", "missing X-Twilio-Email-Event-Webhook-Signature/-Timestamp")
        ok = False
        if self._sg_verify is not None:
            ok = self._sg_verify(ts, raw, sig)
        if not ok and self._sg_secret is not None:
            ok = hmac.compare_digest(sendgrid_hmac_signature(self._sg_secret, ts, raw), sig)
        if not ok:
            raise _Reject(401 if (self._sg_verify or self._sg_secret) else 403, "signature",
                          "signature does not match" if (self._sg_verify or self._sg_secret)
                          else "/sendgrid has no verification key configured")
        self._check_skew(ts)
        doc = self._json(raw)
        if not isinstance(doc, list):
            raise _Reject(400, "malformed", "a SendGrid event webhook body is a JSON array")
        now = self._clock()
        events, supp = [], []
        for e in doc:
            if not isinstance(e, dict) or "event" not in e:
                raise _Reject(400, "malformed", "every SendGrid event is an object with 'event'")
            kind = str(e["event"])
            if kind in _SG_IGNORED:
                self.stats["ignored"] += 1
                why = str(e.get("reason", "")).lower()  # dropped for an address SendGrid already suppresses
                reason = next((r for k, r in _SG_DROPPED.items() if kind == "dropped" and k in why), None)
                if reason and e.get("email"):
                    ev = self._event("bounce", "email", e.get("message_id"), e.get("user_id"), e.get("timestamp"), now)
                    supp.append({"channel": "email", "address": e["email"], "event": ev, "reason": reason})
                continue
            if kind not in _SG_MAP:
                raise _Reject(400, "malformed", f"unknown SendGrid event {kind!r}")
            ev = self._event(_SG_MAP[kind], "email", e.get("message_id"), e.get("user_id"),
                             e.get("timestamp"), now, provider_id=e.get("sg_message_id"))
            events.append(ev)
            hard = kind == "bounce" and str(e.get("type", "bounce")) == "bounce"
            if hard or ev["event"] in ("unsubscribe", "complaint"):
                supp.append({"channel": "email", "address": e.get("email"), "event": ev,
                             "reason": "hard_bounce" if hard else ev["event"]})
        return events, supp

    async def _twilio(self, request: web.Request) -> web.Response:
        return await self._handle(request, self._parse_twilio)

    def _parse_twilio(self, raw: bytes, request: web.Request):
        sig = request.headers.get("X-Twilio-Signature", "")
        if not sig:
            raise _Reject(401, "unsigned", "missing X-Twilio-Signature")
        try:
            params = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(raw)))
        except (UnicodeDecodeError, ValueError):
            raise _Reject(400, "malformed", "the body is not a form") from None
        if self._twilio_token is None:
            raise _Reject(403, "signature", "/twilio has no auth token configured")
        url = (self.public_url + request.path_qs) if self.public_url else str(request.url)
        if not hmac.compare_digest(twilio_signature(self._twilio_token, url, params), sig):
            raise _Reject(401, "signature", "signature does not match")
        status, sid = params.get("MessageStatus"), params.get("MessageSid")
        if not status or not sid:
            raise _Reject(400, "malformed", "a Twilio status callback has MessageSid and MessageStatus")
        if status not in ("undelivered", "failed"):
            self.stats["ignored"] += 1
            return [], []
        code = params.get("ErrorCode", "")
        kind = "unsubscribe" if code in TWILIO_OPTOUT else "bounce"
        q = request.query  # a StatusCallback URL may carry ?message_id=...&user_id=...
        ev = self._event(kind, "sms", q.get("message_id"), q.get("user_id") or params.get("user_id"), None,
                         self._clock(), provider_id=sid)
        supp = []
        if code in TWILIO_OPTOUT or code in TWILIO_HARD:
            supp.append({"channel": "sms", "address": params.get("To"), "event": ev,
                         "reason": "unsubscribe" if kind == "unsubscribe" else "hard_bounce"})
        return [ev], supp

    async def _generic(self, request: web.Request) -> web.Response:
        return await self._handle(request, self._parse_generic)

    def _parse_generic(self, raw: bytes, request: web.Request):
        ts = request.headers.get("X-Winback-Timestamp", "")
        sig = request.headers.get("X-Winback-Signature", "")
        if not ts or not sig:
            raise _Reject(401, "unsigned", "missing X-Winback-Timestamp/X-Winback-Signature")
        if self._secret is None:
            raise _Reject(403, "signature", "/events has no secret configured")
        from engine.sending.signing import verify_signature

        if not verify_signature(self._secret, ts, raw, sig):
            raise _Reject(401, "signature", "signature does not match")
        self._check_skew(ts)
        doc = self._json(raw)
        items = doc.get("events") if isinstance(doc, dict) and "events" in doc else doc
        items = [items] if isinstance(items, dict) else items
        if not isinstance(items, list):
            raise _Reject(400, "malformed", "the body is an event object, a list, or {\"events\": [...]}")
        now = self._clock()
        events, supp = [], []
        for e in items:
            if not isinstance(e, dict) or e.get("event") not in _GENERIC_EVENTS or e.get("channel") not in _CHANNELS:
                raise _Reject(400, "malformed", f"every event needs 'event' in {sorted(_GENERIC_EVENTS)} and "
                                                f"'channel' in {sorted(_CHANNELS)}")
            if e.get("message_id") is None and e.get("user_id") is None:
                raise _Reject(400, "malformed", "every event needs 'message_id' or 'user_id'")
            ev = self._event(e["event"], e["channel"], e.get("message_id"), e.get("user_id"), e.get("ts"), now)
            if e["event"] == "reason":  # a survey answer: why the user left (a survey step's reasons)
                if not isinstance(e.get("reason"), str) or not _REASON.match(e["reason"]):
                    raise _Reject(400, "malformed", "a 'reason' event needs 'reason': a survey reason name such as "
                                                    "\"too_many_messages\" (lower-case letters, digits, '_')")
                ev["reason"] = e["reason"]
            events.append(ev)
            if ev["event"] in ("unsubscribe", "complaint") or (ev["event"] == "bounce" and e.get("hard", True)):
                supp.append({"channel": e["channel"], "address": e.get("address"), "event": ev,
                             "reason": "hard_bounce" if ev["event"] == "bounce" else ev["event"]})
        return events, supp

    # -- helpers -----------------------------------------------------------------------
    def _json(self, raw: bytes):
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise _Reject(400, "malformed", "the body is not JSON") from None

    def _check_skew(self, ts: str) -> None:
        try:
            skew = abs(self._clock() - float(ts))
        except ValueError:
            raise _Reject(401, "timestamp", "the signature timestamp is not epoch seconds") from None
        if skew > self.skew_seconds:
            raise _Reject(401, "timestamp", f"signature timestamp {skew:.0f} s away from the server clock")

    def _event(self, kind, channel, message_id, user_id, ts, now, provider_id=None) -> dict:
        try:
            at = _epoch(ts, now)
            uid = None if user_id in (None, "") else int(user_id)
            if not _MIN_TS <= at < _MAX_TS:
                raise ValueError(f"time {ts!r} is not between 2000 and 2100")
            if uid is not None and not -(2**63) <= uid < 2**63:
                raise ValueError(f"user_id {user_id!r} does not fit 64 bits")
        except (TypeError, ValueError, OverflowError) as exc:
            raise _Reject(400, "malformed", f"bad user_id or timestamp: {exc}") from None
        return {"user_id": uid, "ts": int(round(at * 1e6)), "event": kind, "channel": channel,
                "message_id": None if message_id is None else str(message_id),
                "provider_id": None if provider_id is None else str(provider_id)}

    def _resolve(self, events: list[dict]) -> list[dict]:
        """Fill user_id (and message_id) from the ledger; drop and count what stays unknown."""
        need = [e for e in events if e["user_id"] is None or e["message_id"] is None]
        if need and self.ledger is not None and self.ledger.exists():
            keys = {e["message_id"] for e in need if e["message_id"]}
            pids = {e["provider_id"] for e in need if e["provider_id"]}
            pids |= {p.split(".")[0] for p in pids}  # SendGrid: X-Message-Id is the prefix of sg_message_id
            by_mid, by_pid = {}, {}
            con = sqlite3.connect(f"file:{self.ledger}?mode=ro", uri=True, timeout=30.0)
            try:
                for col, vals, into in (("message_id", keys, by_mid), ("provider_id", pids, by_pid)):
                    vals = list(vals)
                    for i in range(0, len(vals), 500):
                        chunk = vals[i:i + 500]
                        q = (f"SELECT {col}, message_id, user_id FROM messages WHERE {col} IN "
                             f"({','.join('?' * len(chunk))})")
                        into.update({k: (m, u) for k, m, u in con.execute(q, chunk)})
            except sqlite3.DatabaseError:
                pass  # no messages table yet: nothing to look up
            finally:
                con.close()
            for e in need:
                hit = by_mid.get(e["message_id"]) or by_pid.get(e["provider_id"]) or (
                    by_pid.get(e["provider_id"].split(".")[0]) if e["provider_id"] else None)
                if hit:
                    e["message_id"] = e["message_id"] or hit[0]
                    e["user_id"] = e["user_id"] if e["user_id"] is not None else hit[1]
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
                if buf:
                    await asyncio.to_thread(self._write_part, buf, self._next_part)
                    self._next_part += 1
                    self.stats["batches"] += 1
                    self.stats["written"] += len(buf)
                if supp and self.ledger is not None:
                    self.stats["suppressions"] += await asyncio.to_thread(self._suppress, supp)
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

    def _write_part(self, buf: list[dict], number: int) -> Path:
        table = pa.table({
            "user_id": pa.array([e["user_id"] for e in buf], pa.int64()),
            "ts": pa.array([e["ts"] for e in buf], pa.int64()).cast(TIMESTAMP),
            "event": pa.array([e["event"] for e in buf], pa.string()),
            "channel": pa.array([e["channel"] for e in buf], pa.string()),
            "value": pa.nulls(len(buf), pa.float64()),
            "message_id": pa.array([e["message_id"] for e in buf], pa.string()),
            "reason": pa.array([e.get("reason") for e in buf], pa.string()),
        }, schema=EVENT_SCHEMA)
        final = self.out_dir / f"part-{number:06d}.arrow"
        with atomic_path(final) as tmp:
            with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, EVENT_SCHEMA) as writer:
                writer.write_table(table)
            _fsync(tmp)
        _fsync(self.out_dir)  # the rename itself
        return final

    def _suppress(self, supp: list[dict]) -> int:
        from engine.ledger.store import Ledger

        if self._led is None:
            self._led = Ledger(self.ledger)
        rows = [{"channel": s["channel"], "address": s["address"], "user_id": s["event"]["user_id"],
                 "reason": s["reason"], "at": s["event"]["ts"] / 1e6}
                for s in supp if s["address"] is not None or s["event"]["user_id"] is not None]
        return self._led.add_suppressions(rows) if rows else 0


def _fsync(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def serve(receiver: Receiver, host: str = "127.0.0.1", port: int = 8025) -> web.AppRunner:
    """Start ``receiver`` on ``host:port``; returns the runner (``await runner.cleanup()`` to stop)."""
    runner = web.AppRunner(receiver.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
