"""Push in the FCM HTTP v1 shape: one request per message.

``POST {base}/v1/projects/{project}/messages:send`` with ``Authorization: Bearer
<token>`` and ``{"message": {"token": TO, "notification": {"title": SUBJECT,
"body": BODY}, "data": {"message_id": ID[, "theme": THEME, "items": "ID,ID"]}}}``.  200 with ``name`` = sent (the name
is the provider id).  A 404 (or 400) whose error details carry ``UNREGISTERED`` is a
permanent failure with error ``"404 unregistered: ..."`` so the dispatcher suppresses
the token.  iOS is reached through FCM (APNs needs HTTP/2, which aiohttp lacks).

FCM takes no idempotency key: the message id travels in ``data.message_id`` and an
``Idempotency-Key`` header is sent for receivers that honour it (the local provider).
"""

from __future__ import annotations

import json
from typing import Sequence

import aiohttp

from engine.sending.protocol import FAILED, Message, Result, content_fields, refused
from adapters.http import HttpAdapter, Secret, each, result_for

__all__ = ["FcmAdapter"]


def _unregistered(doc: object) -> bool:
    err = doc.get("error", doc) if isinstance(doc, dict) else None
    details = err.get("details") if isinstance(err, dict) else None
    return isinstance(details, list) and any(isinstance(d, dict) and d.get("errorCode") == "UNREGISTERED"
                                             for d in details)


class FcmAdapter(HttpAdapter):
    """One request per message to ``project``; ``timeout`` in seconds per request."""

    name = "fcm"
    max_batch = 1

    def __init__(self, base_url: str, project_id: str, token: Secret | str, *, timeout: float = 10.0,
                 session: aiohttp.ClientSession | None = None):
        super().__init__(timeout=timeout, session=session)
        self.url = f"{base_url.rstrip('/')}/v1/projects/{project_id}/messages:send"
        self._token = token if isinstance(token, Secret) else Secret(token)

    async def _one(self, m: Message) -> Result:
        bad = refused(m)
        if bad is not None:
            return bad
        doc = {"message": {"token": m.to, "notification": {"title": m.subject or "", "body": m.body},
                           "data": {"message_id": m.message_id, **content_fields(m)}}}
        headers = {"Authorization": f"Bearer {self._token.reveal()}", "Content-Type": "application/json",
                   "Idempotency-Key": m.message_id}
        reply = await self.request("POST", self.url, data=json.dumps(doc, separators=(",", ":")).encode(),
                                   headers=headers)
        answer = reply.json()
        if reply.status is not None and 400 <= reply.status < 500 and _unregistered(answer):
            return Result(m.message_id, FAILED, error=f"{reply.status} unregistered: token is no longer valid")
        pid = answer.get("name") if isinstance(answer, dict) else None
        err = answer.get("error", answer) if isinstance(answer, dict) else None
        text = str(err.get("message") or err.get("error")) if isinstance(err, dict) and \
            (err.get("message") or err.get("error")) else None
        return result_for(m.message_id, reply, provider_id=pid, error_text=text)

    async def send(self, batch: Sequence[Message]) -> list[Result]:
        """One request per message (concurrently when given several); results in order."""
        return await each(self._one, batch)

    def __repr__(self) -> str:
        return f"FcmAdapter(url={self.url!r}, token={self._token!r})"
