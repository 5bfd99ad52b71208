"""The generic signed webhook: one JSON ``POST`` per message.

Body (compact JSON): ``message_id``, ``user_id``, ``channel``, ``step``, ``variant``,
``to``, ``subject``, ``body``, ``send_at`` (ISO 8601 UTC, ``Z``), plus ``campaign_id``
and ``template`` when set.  Headers:

- ``Idempotency-Key: <message_id>`` (the receiver accepts a key once);
- ``X-Winback-Timestamp: <unix seconds>``;
- ``X-Winback-Signature: sha256=<hex>`` with
  ``HMAC-SHA256(secret, f"{timestamp}.{body}")`` over the exact body bytes.

The receiver should reject a timestamp more than a few minutes away from its clock
(replay) and compare signatures in constant time (:func:`verify_signature`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from datetime import datetime, timezone
from typing import Sequence

import aiohttp

from engine.sending.protocol import SENT, Message, Result, refused
from engine.sending.signing import sign, verify_signature
from adapters.http import HttpAdapter, Reply, Secret, each, result_for

__all__ = ["WebhookAdapter", "sign", "verify_signature", "message_json", "iso_utc"]


#: recent ``iso_utc`` answers: a plan's messages share a few send times
_ISO: dict[float, str] = {}
#: one encoder for every body (``json.dumps`` with options builds a new one per call)
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
#: the encoder's own string quoting (C) for ensure_ascii=False
_quote_str = json.encoder.encode_basestring


def iso_utc(epoch_seconds: float) -> str:
    """``2026-11-23T09:00:00Z`` for epoch seconds (UTC)."""
    s = _ISO.get(epoch_seconds)
    if s is None:
        t = datetime.fromtimestamp(float(epoch_seconds), tz=timezone.utc)
        s = t.isoformat(timespec="seconds").replace("+00:00", "Z")
        if len(_ISO) >= 4096:
            _ISO.clear()
        _ISO[epoch_seconds] = s
    return s


def _json_doc(m: Message) -> dict:
    doc = {"message_id": m.message_id, "user_id": int(m.user_id), "channel": m.channel, "step": m.step,
           "variant": m.variant, "to": m.to, "subject": m.subject, "body": m.body,
           "send_at": iso_utc(m.send_at)}
    if m.campaign_id is not None:
        doc["campaign_id"] = m.campaign_id
    if m.template is not None:
        doc["template"] = m.template
    if m.content:
        doc["content"] = json.loads(m.content)
    return doc


def _quote(value) -> str:
    """A JSON string (or ``null``) exactly as ``json.dumps(..., ensure_ascii=False)`` writes it."""
    if value is None:
        return "null"
    if type(value) is not str:
        raise TypeError
    return _quote_str(value)


def message_json(m: Message) -> bytes:
    """The webhook body for ``m``: compact UTF-8 JSON.

    Written field by field with the ``json`` module's own string quoting (the same bytes
    as ``json.dumps(doc, separators=(",", ":"), ensure_ascii=False)``; tests/test_dispatch.py checks)
    because a dict and a general encoder pass cost twice as much per message.
    """
    try:
        out = ('{"message_id":' + _quote(m.message_id) + ',"user_id":' + int.__repr__(int(m.user_id))
               + ',"channel":' + _quote(m.channel) + ',"step":' + _quote(m.step)
               + ',"variant":' + _quote(m.variant) + ',"to":' + _quote(m.to)
               + ',"subject":' + _quote(m.subject) + ',"body":' + _quote(m.body)
               + ',"send_at":' + _quote_str(iso_utc(m.send_at)))
        if m.campaign_id is not None:
            out += ',"campaign_id":' + _quote(m.campaign_id)
        if m.template is not None:
            out += ',"template":' + _quote(m.template)
        if m.content:
            if type(m.content) is not str:
                raise TypeError
            out += ',"content":' + m.content  # compact JSON text written by the ledger
    except TypeError:  # a field that is not a str (or None): let the encoder decide
        return _ENCODE(_json_doc(m)).encode()
    return (out + "}").encode()


def _provider_id(text: str) -> str | None:
    """``id`` (else ``provider_id``) of a JSON answer, as a string; ``None`` when absent."""
    if text.startswith('{"id":"') and text.endswith('"}'):  # compact {"id":"..."}: no parse
        pid = text[7:-2]
        if '"' not in pid and "\\" not in pid and pid.isprintable():
            return pid or None
    try:
        doc = json.loads(text) if text else None
    except ValueError:
        return None
    pid = doc.get("id") or doc.get("provider_id") if isinstance(doc, dict) else None
    return None if pid is None else str(pid)


class _Signer:
    """``sign`` for one secret, keyed once: each message copies the keyed HMAC state."""

    __slots__ = ("_mac", "_second", "_ts", "_prefix")

    def __init__(self, secret: str | bytes):
        key = secret.encode() if isinstance(secret, str) else secret
        self._mac = hmac.new(key, digestmod=hashlib.sha256)
        self._second = None
        self._ts = ""
        self._prefix = b""

    def __call__(self, second: int, body: bytes) -> tuple[str, str]:
        """``(timestamp, signature)`` for ``body`` sent at ``second`` (unix seconds)."""
        if second != self._second:
            self._second, self._ts = second, str(second)
            self._prefix = (self._ts + ".").encode()
        mac = self._mac.copy()
        mac.update(self._prefix + body)
        return self._ts, "sha256=" + mac.hexdigest()


class WebhookAdapter(HttpAdapter):
    """POST each message to ``url``, signed with ``secret``; ``timeout`` in seconds per request."""

    name = "webhook"
    max_batch = 1

    def __init__(self, url: str, secret: Secret | str, *, timeout: float = 10.0,
                 session: aiohttp.ClientSession | None = None, clock=time.time):
        super().__init__(timeout=timeout, session=session)
        self.url = url
        self._secret = secret if isinstance(secret, Secret) else Secret(secret)
        self._clock = clock
        self._sign = _Signer(self._secret.reveal())
        # a session we made carries our timeout already; a borrowed one gets it per request
        self._request_options = {} if self._owns else {"timeout": self._timeout}

    async def send_one(self, m: Message) -> Result:
        """Deliver one message (``send([m])[0]`` without the list and one coroutine less)."""
        bad = refused(m)
        if bad is not None:
            return bad
        body = message_json(m)
        ts, signature = self._sign(int(self._clock()), body)
        headers = {"Content-Type": "application/json", "Idempotency-Key": m.message_id,
                   "X-Winback-Timestamp": ts, "X-Winback-Signature": signature}
        session = self._client()
        # HttpAdapter.request inlined: this is the per-message hot path of a webhook channel
        try:
            # awaited, not ``async with``: the response is read whole and released here,
            # which saves the context managers' coroutines on every message
            resp = await session.post(self.url, data=body, headers=headers, **self._request_options)
            try:
                text = (await resp.read()).decode("utf-8", errors="replace")
            finally:
                resp.release()
            status = resp.status
            if 200 <= status < 300:  # the common case, without Reply and result_for
                return Result(m.message_id, SENT, _provider_id(text))
            reply = Reply(status, resp.headers, text)
        except asyncio.TimeoutError:
            reply = Reply(None, {}, "", f"timeout after {self.timeout:g} s")
        except (aiohttp.ClientError, OSError) as exc:  # refused, reset, dropped, bad answer
            reply = Reply(None, {}, "", type(exc).__name__)
        return self._result(m.message_id, reply)

    _one = send_one

    @staticmethod
    def _result(message_id: str, reply: Reply) -> Result:
        doc = reply.json()
        pid = None
        error_text = None
        if isinstance(doc, dict):
            pid = doc.get("id") or doc.get("provider_id")
            if doc.get("error") is not None:
                error_text = str(doc["error"])
        return result_for(message_id, reply, provider_id=None if pid is None else str(pid),
                          error_text=error_text)

    async def send(self, batch: Sequence[Message]) -> list[Result]:
        """One request per message (concurrently when given several); results in order."""
        if len(batch) == 1:
            return [await self.send_one(batch[0])]
        return await each(self.send_one, batch)

    def __repr__(self) -> str:
        return f"WebhookAdapter(url={self.url!r}, secret={self._secret!r}, timeout={self.timeout:g})"
