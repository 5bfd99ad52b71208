"""Email in the SendGrid v3 ``mail/send`` shape: many recipients per request.

``POST {base}/v3/mail/send`` with ``Authorization: Bearer <key>`` and one
personalization per message::

    {"from": {"email": SENDER},
     "personalizations": [{"to": [{"email": TO}], "subject": SUBJECT,
                           "custom_args": {"message_id": ID[, "theme": T, "items": "ID,ID"]}}, ...],
     "content": [{"type": "text/html", "value": "{{body}}"}]}

Each message's own body goes in ``substitutions`` (``{"{{body}}": BODY}``), so one
request carries up to ``batch_size`` (<= 1000) different messages.  A 202 means every
message of the request was accepted (provider id from ``X-Message-Id``); any other
answer applies to the whole request, mapped by :func:`adapters.http.result_for`.

SendGrid takes no idempotency key: the message id travels in ``custom_args`` (it comes
back in event webhooks), and an ``Idempotency-Key`` header is sent as well for
receivers that honour it (:func:`batch_key`: the message id of a batch of one, else a
digest of the batch's message ids, so that a retry regrouped into another batch never
reuses a key an idempotency proxy already answered for other messages).  The local
provider dedupes per ``custom_args.message_id``.  A request in flight at the moment of a
crash may be resent once to the real SendGrid (at-least-once).
"""

from __future__ import annotations

import hashlib
import json
from typing import Sequence

import aiohttp

from engine.sending.protocol import FAILED, Message, Result, content_fields, refused
from adapters.http import HttpAdapter, Secret, result_for

__all__ = ["SendGridAdapter", "MAX_PERSONALIZATIONS", "batch_key"]

#: SendGrid's limit of personalizations per ``mail/send`` request
MAX_PERSONALIZATIONS = 1000


def _errors(doc: object) -> str | None:
    if isinstance(doc, dict) and isinstance(doc.get("errors"), list):
        return "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in doc["errors"])
    if isinstance(doc, dict) and doc.get("error") is not None:
        return str(doc["error"])
    return None


def _plausible(address: str | None) -> bool:
    local, at, domain = (address or "").strip().partition("@")
    return bool(at and local and "." in domain and " " not in domain)


def batch_key(batch: Sequence[Message]) -> str:
    """The ``Idempotency-Key`` of one request: the message id for a batch of one, else
    ``batch-`` and the SHA-256 (first 32 hex digits) of the batch's sorted message ids.

    The same messages give the same key however they are ordered (a resent request is
    recognised); any other set of messages gives another key.  With the first message's
    id as the key, a retry batch that starts with the same message but carries others
    would be answered from the proxy's memory and its other messages never sent.
    """
    if len(batch) == 1:
        return str(batch[0].message_id)
    ids = "\n".join(sorted(str(m.message_id) for m in batch))
    return "batch-" + hashlib.sha256(ids.encode("utf-8")).hexdigest()[:32]


class SendGridAdapter(HttpAdapter):
    """``batch_size`` messages per request (<= 1000); ``timeout`` in seconds per request."""

    name = "sendgrid"

    def __init__(self, base_url: str, api_key: Secret | str, *, sender: str = "winback@example.com",
                 batch_size: int = MAX_PERSONALIZATIONS, timeout: float = 10.0,
                 session: aiohttp.ClientSession | None = None):
        super().__init__(timeout=timeout, session=session)
        if not 1 <= int(batch_size) <= MAX_PERSONALIZATIONS:
            raise ValueError(f"batch_size must be 1..{MAX_PERSONALIZATIONS}, got {batch_size}")
        self.max_batch = int(batch_size)
        self.url = base_url.rstrip("/") + "/v3/mail/send"
        self.sender = sender
        self._key = api_key if isinstance(api_key, Secret) else Secret(api_key)

    def payload(self, batch: Sequence[Message]) -> bytes:
        """The JSON request body for ``batch``."""
        pers = [{"to": [{"email": m.to}], "subject": m.subject or "", "substitutions": {"{{body}}": m.body},
                 "custom_args": {"message_id": m.message_id, **content_fields(m)}} for m in batch]
        doc = {"from": {"email": self.sender}, "personalizations": pers,
               "content": [{"type": "text/html", "value": "{{body}}"}]}
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()

    async def send(self, batch: Sequence[Message]) -> list[Result]:
        """One request for the whole batch; the answer applies to every message in it.

        An address without text on both sides of an ``@`` fails at once, without a
        request, so one bad row does not sink the 400 of a whole batch.
        """
        if not batch:
            return []
        if len(batch) > self.max_batch:
            raise ValueError(f"batch of {len(batch)} exceeds max_batch {self.max_batch}")
        bad = {m.message_id: refused(m) or Result(m.message_id, FAILED, error=f"invalid email address {m.to!r}")
               for m in batch if not _plausible(m.to) or refused(m) is not None}
        if bad:
            good = [m for m in batch if m.message_id not in bad]
            sent = iter(await self.send(good) if good else [])
            return [bad[m.message_id] if m.message_id in bad else next(sent) for m in batch]
        headers = {"Authorization": f"Bearer {self._key.reveal()}", "Content-Type": "application/json",
                   "Idempotency-Key": batch_key(batch)}
        reply = await self.request("POST", self.url, data=self.payload(batch), headers=headers)
        pid = reply.headers.get("X-Message-Id") if reply.status is not None else None
        text = None if reply.status is None or reply.status < 300 else _errors(reply.json())
        return [result_for(m.message_id, reply, provider_id=pid, error_text=text) for m in batch]

    def __repr__(self) -> str:
        return f"SendGridAdapter(url={self.url!r}, key={self._key!r}, max_batch={self.max_batch})"
