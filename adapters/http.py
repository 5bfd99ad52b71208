"""Shared HTTP plumbing for the provider adapters: one session, one status mapping.

Every HTTP adapter sends through :class:`HttpAdapter`, so the answer of any provider
is mapped to a :class:`~adapters.base.Result` in one place (:func:`result_for`):

==========================================  ===========  ==============================
provider answer                             status       notes
==========================================  ===========  ==============================
2xx                                         ``sent``     provider id from the adapter
429, any 5xx                                ``retry``    ``retry_after`` from the
                                                         ``Retry-After`` header
                                                         (seconds or HTTP-date, RFC 9110
                                                         section 10.2.3)
timeout, refused or dropped connection      ``retry``    error names the exception class
any other 4xx                               ``failed``   error is ``"<status> <text>"``
==========================================  ===========  ==============================

Secrets (API keys, tokens, webhook secrets) are held in :class:`Secret`, whose
``repr`` and ``str`` never show the value; error strings are built from the status
code and the provider's answer only, never from request headers or exception text
that could carry a URL with credentials.  A provider whose answer echoes the request
headers would still put the key in that answer: every :class:`Secret` is registered
with :mod:`engine.sending.scrub`, and :func:`result_for` scrubs the error text (the secret,
its base64 forms as in ``Authorization: Basic``, its percent-encoding).
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from dataclasses import dataclass
from typing import Any, Mapping

import aiohttp

from engine.sending import scrub
from engine.sending.protocol import Secret, FAILED, RETRY, SENT, Result

__all__ = ["Secret", "Reply", "HttpAdapter", "parse_retry_after", "classify", "result_for",
           "ERROR_TEXT_LIMIT"]

#: characters of a provider's error text kept in ``Result.error``
ERROR_TEXT_LIMIT = 300


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value, or ``None`` when absent/unreadable.

    Accepts delay-seconds (``"120"``, also fractional ``"0.4"``) or an HTTP-date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``), which becomes ``max(0, date - now)``
    seconds with ``now`` in epoch seconds UTC (default ``time.time()``).
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:  # HTTP-dates are always GMT
            import datetime as _dt

            when = when.replace(tzinfo=_dt.timezone.utc)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)


def classify(status: int) -> str:
    """``sent`` for 2xx, ``retry`` for 429 and 5xx, ``failed`` for anything else."""
    if 200 <= status < 300:
        return SENT
    if status == 429 or status >= 500:
        return RETRY
    return FAILED


@dataclass(slots=True)
class Reply:
    """What came back for one request: ``status`` is ``None`` when no answer arrived."""

    status: int | None
    headers: Mapping[str, str]
    text: str
    error: str | None = None  # transport error ("timeout after 10 s", "ServerDisconnectedError")

    def json(self) -> Any:
        """The body as JSON, or ``None`` when it is not JSON."""
        import json

        try:
            return json.loads(self.text) if self.text else None
        except ValueError:
            return None


def result_for(message_id: str, reply: Reply, *, provider_id: str | None = None,
               error_text: str | None = None) -> Result:
    """Map ``reply`` to the :class:`Result` for ``message_id`` (the table in the module doc).

    ``error_text`` replaces the raw body in the error string when the adapter has read a
    better reason from the provider's error JSON.
    """
    if reply.status is None:
        return Result(message_id, RETRY, error=reply.error or "no answer")
    status = classify(reply.status)
    if status == SENT:  # an id that is not text is stored as text by the ledger (Ledger.sent)
        return Result(message_id, SENT, provider_id=provider_id)
    text = (error_text if error_text is not None else reply.text).strip().replace("\n", " ")
    error = scrub.scrub(f"{reply.status} {text}")[:ERROR_TEXT_LIMIT + 4].rstrip()
    if status == RETRY:
        return Result(message_id, RETRY, retry_after=parse_retry_after(reply.headers.get("Retry-After")),
                      error=error)
    return Result(message_id, FAILED, error=error)


class HttpAdapter:
    """Base of the HTTP adapters: a lazily opened (or borrowed) ``aiohttp`` session.

    ``timeout`` is the total seconds per request.  A ``session`` passed in is borrowed
    and not closed by :meth:`aclose`; otherwise the adapter opens its own on first use.
    """

    name = "http"
    max_batch = 1

    def __init__(self, *, timeout: float = 10.0, session: aiohttp.ClientSession | None = None):
        self.timeout = float(timeout)
        self._timeout = aiohttp.ClientTimeout(total=self.timeout)
        self._session = session
        self._owns = session is None
        self._closed = False

    def _client(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError(f"the {self.name} adapter was closed; build a new one")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300))
        return self._session

    async def request(self, method: str, url: str, **kwargs: Any) -> Reply:
        """One HTTP request; transport failures come back as ``Reply(status=None, error=...)``."""
        session = self._client()
        try:
            if not self._owns:  # a session we made carries our timeout already
                kwargs.setdefault("timeout", self._timeout)
            async with session.request(method, url, **kwargs) as resp:
                # provider answers are JSON or plain text in UTF-8: skip charset sniffing
                text = (await resp.read()).decode("utf-8", errors="replace")
                return Reply(resp.status, resp.headers, text)
        except asyncio.TimeoutError:
            return Reply(None, {}, "", f"timeout after {self.timeout:g} s")
        except (aiohttp.ClientError, OSError) as exc:  # refused, reset, dropped, bad answer
            return Reply(None, {}, "", type(exc).__name__)

    async def aclose(self) -> None:
        """Close the session if this adapter opened it; safe to call twice."""
        self._closed = True
        if self._owns and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, max_batch={self.max_batch}, timeout={self.timeout:g})"


async def each(one, batch):
    """Send ``batch`` one request per message, concurrently; results in the batch's order."""
    import asyncio

    if len(batch) == 1:
        return [await one(batch[0])]
    return list(await asyncio.gather(*(one(m) for m in batch)))
