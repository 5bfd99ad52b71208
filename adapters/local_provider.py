"""A local stand-in for the providers: every adapter's request shape on 127.0.0.1.

Routes (the ``channel`` of each route in brackets, for rate limits and stats):

- ``POST /hooks/{channel}``: the signed webhook (``Idempotency-Key``,
  ``X-Winback-Timestamp`` within ``skew_seconds`` of the server clock,
  ``X-Winback-Signature`` checked when a ``webhook_secret`` is set); 200 ``{"id"}``;
- ``POST /v3/mail/send`` [email]: SendGrid v3, bearer key, one personalization per
  message with ``custom_args.message_id``; 202 with ``X-Message-Id``;
- ``POST /2010-04-01/Accounts/{sid}/Messages.json`` [sms]: Twilio, form-encoded,
  basic auth; 201 ``{"sid"}``; 400 with code 21211 for a number that is not E.164;
- ``POST /v1/projects/{project}/messages:send`` [push]: FCM HTTP v1, bearer token;
  200 ``{"name"}``; 404 ``UNREGISTERED`` for a token starting with ``unregistered``;
- ``GET /_stats``: ``accepted``, ``duplicates``, ``rejected`` by reason,
  ``max_per_second`` per channel, ``requests``;
- ``GET /_messages``: the record, one entry per accepted message id;
- ``GET /_attempts``: every request that carried an ``Idempotency-Key``: key, arrival
  time, status, and the Retry-After it was given (seconds) -- to check that no retry
  came before the Retry-After it was told; ``max_arrivals_per_second`` in the stats
  counts every request of a channel, answered or not (the first million attempts are
  kept: the provider is a test and demo tool).

Addresses are checked per channel: email needs an ``@``, sms an E.164 number, push a
non-empty token; a bad one is a 400 with a JSON error (reason ``invalid_address``).

Every message is recorded once by its idempotency key (the ``Idempotency-Key`` header
for one-message requests, else the message id in the provider's custom field).  A
second accept of the same key answers success again and counts a duplicate.

Rate limit: at most ``rates[channel]`` accepted requests in any sliding one-second
window per channel; beyond that a 429 with ``Retry-After`` (seconds until a slot
frees, rounded up to whole seconds, at least 1).  A request that takes a slot and is
then rejected (auth, schema, an injected fault) still used it, so accepted requests
never exceed the rate.  The webhook route ``/hooks/push`` and FCM share the ``push``
limit.  The accept times are kept so ``max_per_second`` is the exact maximum over all
one-second windows (:func:`max_in_window`).

Faults (:class:`Faults`, drawn from ``random.Random(seed)`` once per request that
passed the rate limit): ``latency_ms`` (mean of an exponential delay, milliseconds),
``error_rate`` (503), ``rate_429`` (429 with ``Retry-After``: ``retry_after`` seconds,
as an HTTP-date when ``retry_after_date``), ``timeout_rate`` (hang ``hang_seconds``,
longer than any client timeout), ``drop_rate`` (close the connection, no answer).
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import time
import itertools
from collections import Counter, deque
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any, Mapping

from aiohttp import web

from adapters.http import parse_retry_after

from adapters.webhook import verify_signature

__all__ = ["LocalProvider", "Faults", "max_in_window", "serve", "write_record"]

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_MAX_ATTEMPTS = 1_000_000  # attempts kept for GET /_attempts
_WEBHOOK_FIELDS = ("message_id", "user_id", "channel", "step", "variant", "to", "subject", "body", "send_at")


@dataclass(frozen=True)
class Faults:
    """Injected faults; rates are probabilities per request in [0, 1]."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    rate_429: float = 0.0
    timeout_rate: float = 0.0
    drop_rate: float = 0.0
    retry_after: float = 1.0
    retry_after_date: bool = False
    hang_seconds: float = 30.0

    def any(self) -> bool:
        return bool(self.latency_ms or self.error_rate or self.rate_429 or self.timeout_rate or self.drop_rate)


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The largest number of ``times`` (sorted, seconds) inside any half-open window of ``window`` s."""
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


class _Reject(Exception):
    def __init__(self, status: int, reason: str, error: str, extra: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None):
        super().__init__(error)
        self.status, self.reason, self.error = status, reason, error
        self.extra, self.headers = dict(extra or {}), dict(headers or {})


def _check_address(channel: str, to: Any) -> None:
    ok = isinstance(to, str) and bool(to.strip())
    if ok and channel == "email":
        ok = "@" in to and " " not in to
    elif ok and channel == "sms":
        ok = bool(E164.match(to))
    if not ok:
        code = {"sms": 21211}.get(channel)
        raise _Reject(400, "invalid_address", f"invalid {channel} address {to!r}",
                      {"code": code} if code else None)


def _error_body(shape: str, rej: _Reject) -> dict[str, Any]:
    """The error JSON in the shape the real provider uses."""
    if shape == "sendgrid":
        return {"errors": [{"message": rej.error, "field": None, "help": None}]}
    if shape == "twilio":
        return {"code": rej.extra.get("code"), "message": rej.error, "status": rej.status}
    if shape == "fcm":
        return {"error": {"code": rej.status, "message": rej.error, **rej.extra}}
    return {"error": rej.error, **rej.extra}


class LocalProvider:
    """The local provider; ``async with LocalProvider(port=0) as p`` serves on ``p.port``.

    ``rates``: channel -> accepted requests per second (sliding 1 s window);
    ``webhook_secret`` / ``api_key`` / ``account_sid`` + ``auth_token``: when set, the
    credentials that must match (when ``None``, any non-empty credential passes);
    ``skew_seconds``: allowed webhook timestamp distance from the server clock.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, rates: Mapping[str, float] | None = None,
                 faults: Faults | None = None, seed: int = 0, webhook_secret: str | None = None,
                 api_key: str | None = None, account_sid: str | None = None, auth_token: str | None = None,
                 skew_seconds: float = 300.0):
        self.host, self.port = host, port
        self.rates = {k: float(v) for k, v in (rates or {}).items()}
        self.faults = faults or Faults()
        self._rng = random.Random(seed)
        self._secret, self._api_key = webhook_secret, api_key
        self._sid, self._token = account_sid, auth_token
        self.skew_seconds = skew_seconds
        self._window: dict[str, deque] = {}
        self._accept_times: dict[str, list[float]] = {}
        self._arrivals: dict[str, list[float]] = {}  # every request, answered or not
        self._attempts: list[tuple] = []  # (key, at, status, retry_after seconds or None)
        # key -> (message_id, channel, to, provider_id, at): tuples of atoms, which the
        # garbage collector stops tracking, so a large record does not slow every request
        self._record: dict[str, tuple] = {}
        self.duplicates = 0
        self.requests = 0
        self.rejected: Counter[str] = Counter()
        self.version = 0  # bumps on every change of the record (for periodic saving)
        self._runner: web.AppRunner | None = None
        self._ids = itertools.count(1)
        self._prefix = f"{seed & 0xffff:04x}"

    # -- app -------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_post("/hooks/{channel}", self._webhook)
        app.router.add_post("/v3/mail/send", self._sendgrid)
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._twilio)
        app.router.add_post("/v1/projects/{project}/messages:send", self._fcm)
        app.router.add_get("/_stats", self._stats)
        app.router.add_get("/_messages", self._messages)
        app.router.add_get("/_attempts", self._attempts_route)
        return app

    async def start(self) -> "LocalProvider":
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # the bound port when 0 was asked
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> "LocalProvider":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- record ----------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """``accepted`` messages, ``duplicates``, ``rejected`` by reason, ``max_per_second`` per channel."""
        return {"accepted": len(self._record), "duplicates": self.duplicates, "requests": self.requests,
                "rejected": dict(self.rejected),
                "max_per_second": {ch: max_in_window(sorted(ts)) for ch, ts in self._accept_times.items()},
                "max_arrivals_per_second": {ch: max_in_window(sorted(ts)) for ch, ts in self._arrivals.items()}}

    def attempts(self) -> list[dict[str, Any]]:
        """Every request with an ``Idempotency-Key``: key, at (epoch s), status, retry_after (s or None)."""
        return [{"key": k, "at": at, "status": st, "retry_after": ra} for k, at, st, ra in self._attempts]

    def messages(self) -> list[dict[str, Any]]:
        """Every accepted message once: key, message_id, channel, to, provider_id, at (epoch s)."""
        return [{"key": k, "message_id": r[0], "channel": r[1], "to": r[2], "provider_id": r[3], "at": r[4]}
                for k, r in self._record.items()]

    def snapshot(self) -> dict[str, Any]:
        """Stats and messages together (what ``--record FILE`` writes)."""
        return {"stats": self.stats(), "messages": self.messages()}

    # -- shared request path ---------------------------------------------------------------
    def _limited(self, channel: str, now: float) -> float | None:
        """Seconds until a slot frees when ``channel`` is at its rate, else ``None`` (and take the slot)."""
        rate = self.rates.get(channel)
        if rate is None:
            return None
        window = self._window.setdefault(channel, deque())
        while window and now - window[0] >= 1.0:
            window.popleft()
        if len(window) >= rate:
            return 1.0 - (now - window[0])
        window.append(now)
        return None

    async def _handle(self, request: web.Request, channel: str, parse, shape: str = "webhook") -> web.StreamResponse:
        self.requests += 1
        key = request.headers.get("Idempotency-Key")
        try:
            now = time.time()
            self._arrivals.setdefault(channel, []).append(now)
            wait = self._limited(channel, now)
            if wait is not None:
                secs = max(1, int(wait + 0.999))
                raise _Reject(429, "rate_limited", f"rate limit {self.rates[channel]:g}/s exceeded",
                              headers={"Retry-After": str(secs)})
            if self.faults.any():
                await self._inject(request)
            items, ok = await parse(request)  # [(key, message_id, to, extra)], success builder
        except _Reject as rej:
            self.rejected[rej.reason] += 1
            if key is not None and len(self._attempts) < _MAX_ATTEMPTS:
                after = rej.headers.get("Retry-After")
                wait = None
                if after is not None:
                    wait = parse_retry_after(after, now=now)
                self._attempts.append((key, now, rej.status, wait))
            if rej.status == 0:  # drop the connection: no answer at all
                if request.transport is not None:
                    request.transport.close()
                raise web.HTTPServiceUnavailable()  # never reaches the client
            return web.json_response(_error_body(shape, rej), status=rej.status, headers=rej.headers)
        # stamp the accept with its admission time (the rate window's entry): injected
        # latency and body parsing happen after admission, so a later stamp could put more
        # than the rate into a one-second window of the record than the limit ever let in
        at = now
        self._accept_times.setdefault(channel, []).append(at)
        if key is not None and len(self._attempts) < _MAX_ATTEMPTS:
            self._attempts.append((key, at, 200, None))
        ids = []
        for key, message_id, to in items:
            seen = self._record.get(key)
            if seen is not None:
                self.duplicates += 1
                ids.append(seen[3])
                continue
            pid = f"{self._prefix}{next(self._ids):012x}"
            self._record[key] = (str(message_id), channel, str(to), pid, at)
            ids.append(pid)
        self.version += 1
        return ok(ids)

    async def _inject(self, request: web.Request) -> None:
        f, r = self.faults, self._rng.random()
        if f.latency_ms:
            await asyncio.sleep(self._rng.expovariate(1000.0 / f.latency_ms))
        if r < f.drop_rate:
            raise _Reject(0, "fault_drop", "connection dropped")
        r -= f.drop_rate
        if r < f.timeout_rate:
            await asyncio.sleep(f.hang_seconds)
            raise _Reject(504, "fault_timeout", "answered after hanging")
        r -= f.timeout_rate
        if r < f.error_rate:
            raise _Reject(503, "fault_5xx", "injected server error")
        r -= f.error_rate
        if r < f.rate_429:
            after = formatdate(time.time() + f.retry_after, usegmt=True) if f.retry_after_date \
                else f"{f.retry_after:g}"
            raise _Reject(429, "fault_429", "injected rate limit", headers={"Retry-After": after})

    async def _json(self, request: web.Request) -> Any:
        try:
            return await request.json()
        except (ValueError, UnicodeDecodeError):
            raise _Reject(400, "schema", "the body is not JSON") from None

    def _bearer(self, request: web.Request) -> None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            raise _Reject(401, "auth", "missing bearer token")
        if self._api_key is not None and auth[7:] != self._api_key:
            raise _Reject(401, "auth", "wrong bearer token")

    # -- the four shapes -------------------------------------------------------------------
    async def _webhook(self, request: web.Request) -> web.StreamResponse:
        channel = request.match_info["channel"]

        async def parse(req):
            raw = await req.read()
            ts = req.headers.get("X-Winback-Timestamp", "")
            sig = req.headers.get("X-Winback-Signature", "")
            try:
                skew = abs(time.time() - int(ts))
            except ValueError:
                raise _Reject(401, "timestamp", "missing or malformed X-Winback-Timestamp") from None
            if skew > self.skew_seconds:
                raise _Reject(401, "timestamp", f"timestamp {skew:.0f} s away from the server clock")
            if not sig.startswith("sha256="):
                raise _Reject(401, "signature", "missing X-Winback-Signature")
            if self._secret is not None and not verify_signature(self._secret, ts, raw, sig):
                raise _Reject(401, "signature", "signature does not match")
            try:
                doc = json.loads(raw)
            except ValueError:
                raise _Reject(400, "schema", "the body is not JSON") from None
            missing = [k for k in _WEBHOOK_FIELDS if not isinstance(doc, dict) or k not in doc]
            if missing:
                raise _Reject(400, "schema", f"missing field {missing[0]}")
            _check_address(channel, doc["to"])
            key = req.headers.get("Idempotency-Key") or doc["message_id"]
            return [(key, doc["message_id"], doc["to"])], lambda ids: web.json_response({"id": ids[0]})

        return await self._handle(request, channel, parse)

    async def _sendgrid(self, request: web.Request) -> web.StreamResponse:
        async def parse(req):
            self._bearer(req)
            doc = await self._json(req)
            pers = doc.get("personalizations") if isinstance(doc, dict) else None
            if not isinstance(pers, list) or not pers or len(pers) > 1000:
                raise _Reject(400, "schema", "personalizations must be a list of 1..1000")
            if not isinstance(doc.get("from"), dict) or not doc["from"].get("email"):
                raise _Reject(400, "schema", "from.email is required")
            items = []
            for p in pers:
                to = p.get("to") if isinstance(p, dict) else None
                mid = (p.get("custom_args") or {}).get("message_id") if isinstance(p, dict) else None
                if not isinstance(to, list) or len(to) != 1 or not isinstance(to[0], dict) or not mid:
                    raise _Reject(400, "schema", "each personalization needs one to[] and custom_args.message_id")
                _check_address("email", to[0].get("email"))
                items.append((mid, mid, to[0]["email"]))
            return items, lambda ids: web.Response(status=202, headers={"X-Message-Id": ids[0]})

        return await self._handle(request, "email", parse, "sendgrid")

    async def _twilio(self, request: web.Request) -> web.StreamResponse:
        async def parse(req):
            auth = req.headers.get("Authorization", "")
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":") \
                    if auth.startswith("Basic ") else ("", "", "")
            except ValueError:
                user, password = "", ""
            if not user or not password or user != req.match_info["sid"]:
                raise _Reject(401, "auth", "basic auth must be the account SID and auth token")
            if (self._sid is not None and user != self._sid) or (self._token is not None and password != self._token):
                raise _Reject(401, "auth", "wrong account SID or auth token")
            form = await req.post()
            for k in ("To", "From", "Body"):
                if not form.get(k):
                    raise _Reject(400, "schema", f"missing parameter {k}", {"code": 21604})
            _check_address("sms", form["To"])
            key = req.headers.get("Idempotency-Key") or req.headers.get("I-Twilio-Idempotency-Token")
            if not key:
                raise _Reject(400, "schema", "no Idempotency-Key to record the message by")
            return [(key, key, form["To"])], lambda ids: web.json_response(
                {"sid": "SM" + ids[0], "status": "queued"}, status=201)

        return await self._handle(request, "sms", parse, "twilio")

    async def _fcm(self, request: web.Request) -> web.StreamResponse:
        project = request.match_info["project"]

        async def parse(req):
            self._bearer(req)
            doc = await self._json(req)
            msg = doc.get("message") if isinstance(doc, dict) else None
            if not isinstance(msg, dict) or not msg.get("token") or not isinstance(msg.get("notification"), dict):
                raise _Reject(400, "schema", "message.token and message.notification are required",
                              {"status": "INVALID_ARGUMENT"})
            mid = (msg.get("data") or {}).get("message_id")
            if not mid:
                raise _Reject(400, "schema", "message.data.message_id is required", {"status": "INVALID_ARGUMENT"})
            if str(msg["token"]).startswith("unregistered"):
                raise _Reject(404, "unregistered", "Requested entity was not found.",
                              {"status": "NOT_FOUND", "details": [
                                  {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                   "errorCode": "UNREGISTERED"}]})
            key = req.headers.get("Idempotency-Key") or mid
            return [(key, mid, msg["token"])], lambda ids: web.json_response(
                {"name": f"projects/{project}/messages/{ids[0]}"})

        return await self._handle(request, "push", parse, "fcm")

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _messages(self, request: web.Request) -> web.Response:
        return web.json_response(self.messages())

    async def _attempts_route(self, request: web.Request) -> web.Response:
        return web.json_response(self.attempts())


def _env(var: str | None, what: str) -> str | None:
    import os

    from engine.errors import ConfigError

    if var is None:
        return None
    value = os.environ.get(var)
    if not value:
        raise ConfigError(f"{what} names the environment variable {var}, which is not set (or empty); "
                          f"export {var} or leave the option out")
    return value


def write_record(provider: LocalProvider | dict, path: str) -> None:
    """Write ``provider.snapshot()`` (or a snapshot already taken) to ``path`` as JSON, atomically."""
    from engine.io.atomic import atomic_path

    snap = provider if isinstance(provider, dict) else provider.snapshot()
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(snap, separators=(",", ":")))


def serve(*, port: int, rates: Mapping[str, float] | None = None, faults: Faults | None = None, seed: int = 0,
          webhook_secret_env: str | None = None, api_key_env: str | None = None,
          twilio_env: tuple[str, str] | None = None, record: str | None = None, record_every: float = 0.5,
          on_ready=None) -> dict[str, Any]:
    """Run a :class:`LocalProvider` until SIGINT/SIGTERM; returns its final stats.

    Credentials to check come from the named environment variables (``ConfigError``
    naming a missing one).  With ``record``, the snapshot is written there atomically
    every ``record_every`` seconds when it changed, and once more on exit.
    """
    import signal

    secret = _env(webhook_secret_env, "--webhook-secret-env")
    api_key = _env(api_key_env, "--api-key-env")
    sid = _env(twilio_env[0], "--twilio-env") if twilio_env else None
    token = _env(twilio_env[1], "--twilio-env") if twilio_env else None

    async def main() -> dict[str, Any]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        provider = LocalProvider(port=port, rates=rates, faults=faults, seed=seed, webhook_secret=secret,
                                 api_key=api_key, account_sid=sid, auth_token=token)
        try:
            await provider.start()
        except OSError as exc:
            from engine.errors import ConfigError

            raise ConfigError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror or exc}); "
                              "pick another --port or stop what is using it") from None
        if on_ready is not None:
            on_ready(provider.port)
        saved = -1
        try:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), timeout=record_every)
                except asyncio.TimeoutError:
                    pass
                if record and provider.version != saved:
                    saved = provider.version
                    # snapshot on the loop (requests mutate the record there), write in a thread
                    await asyncio.to_thread(write_record, provider.snapshot(), record)
        finally:
            await provider.stop()
            if record:
                write_record(provider, record)
        return provider.stats()

    return asyncio.run(main())
