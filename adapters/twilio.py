"""SMS in the Twilio Messages shape: one form-encoded request per message.

``POST {base}/2010-04-01/Accounts/{sid}/Messages.json`` with basic auth
(account SID, auth token) and form fields ``To``, ``From``, ``Body`` and, when
configured, ``StatusCallback`` (with ``?message_id=ID`` appended, so delivery
callbacks name the message).  201 with ``sid`` = sent.  A 400 with Twilio error code
21211 (invalid ``To`` number) is a permanent failure like any other 4xx.

Twilio's own idempotency is not guaranteed: the message id is sent as
``I-Twilio-Idempotency-Token`` and ``Idempotency-Key`` (the local provider dedupes by
it).  A message in flight at the moment of a crash may be resent once (at-least-once).
"""

from __future__ import annotations

import base64
from typing import Sequence
from urllib.parse import quote

import aiohttp

from engine.sending.protocol import Message, Result, refused
from adapters.http import HttpAdapter, Secret, each, result_for

__all__ = ["TwilioAdapter"]


class TwilioAdapter(HttpAdapter):
    """One request per message; ``timeout`` in seconds per request."""

    name = "twilio"
    max_batch = 1

    def __init__(self, base_url: str, account_sid: Secret | str, auth_token: Secret | str, *,
                 sender: str = "+15550000000", status_callback: str | None = None, timeout: float = 10.0,
                 session: aiohttp.ClientSession | None = None):
        super().__init__(timeout=timeout, session=session)
        self._sid = account_sid if isinstance(account_sid, Secret) else Secret(account_sid)
        self._token = auth_token if isinstance(auth_token, Secret) else Secret(auth_token)
        self.base_url = base_url.rstrip("/")
        self.sender, self.status_callback = sender, status_callback
        basic = base64.b64encode(f"{self._sid.reveal()}:{self._token.reveal()}".encode()).decode()
        self._auth = f"Basic {basic}"

    async def _one(self, m: Message) -> Result:
        bad = refused(m)
        if bad is not None:
            return bad
        form = {"To": m.to, "From": self.sender, "Body": m.body}
        if self.status_callback:
            sep = "&" if "?" in self.status_callback else "?"
            form["StatusCallback"] = f"{self.status_callback}{sep}message_id={quote(m.message_id)}"
        url = f"{self.base_url}/2010-04-01/Accounts/{quote(self._sid.reveal())}/Messages.json"
        headers = {"Authorization": self._auth, "Idempotency-Key": m.message_id,
                   "I-Twilio-Idempotency-Token": m.message_id}
        reply = await self.request("POST", url, data=form, headers=headers)
        doc = reply.json()
        pid = doc.get("sid") if isinstance(doc, dict) else None
        text = None
        if isinstance(doc, dict) and (doc.get("message") or doc.get("error")):
            code = doc.get("code")
            text = (f"code {code}: " if code else "") + str(doc.get("message") or doc.get("error"))
        return result_for(m.message_id, reply, provider_id=pid, error_text=text)

    async def send(self, batch: Sequence[Message]) -> list[Result]:
        """One request per message (concurrently when given several); results in order."""
        return await each(self._one, batch)

    def __repr__(self) -> str:
        return f"TwilioAdapter(base_url={self.base_url!r}, account_sid={self._sid!r}, auth_token={self._token!r})"
