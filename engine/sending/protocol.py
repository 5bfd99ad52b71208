"""The one small interface every channel provider implements.

An adapter takes a batch of :class:`Message` (at most ``max_batch``) and returns one
:class:`Result` per message, in the same order.  It never raises for a provider's
answer: HTTP errors, timeouts and dropped connections become ``retry`` or ``failed``
results.  It raises only for programming or configuration errors.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple, Protocol, Sequence, runtime_checkable

from engine.sending import scrub

__all__ = ["Secret", "Message", "Result", "Adapter", "SENT", "RETRY", "FAILED", "content_fields", "refused"]

SENT: Literal["sent"] = "sent"
RETRY: Literal["retry"] = "retry"
FAILED: Literal["failed"] = "failed"


class Message(NamedTuple):
    """One message ready to go out. ``send_at`` is epoch seconds (UTC).

    Immutable; a named tuple rather than a frozen dataclass because the send loop
    builds one per message and a frozen dataclass costs ~4x more to construct.
    """

    message_id: str
    user_id: int
    channel: str
    step: str
    variant: str | None
    to: str
    subject: str | None
    body: str
    send_at: float
    template: str | None = None
    campaign_id: str | None = None
    #: the planner's content as JSON text, ``{"theme": "...", "items": [item ids]}``, or None
    content: str | None = None


class Result(NamedTuple):
    """The provider's answer for one message (immutable, a named tuple like :class:`Message`).

    ``status``: ``sent`` (accepted; ``provider_id`` when the provider gave one),
    ``retry`` (transient: 429, 5xx, timeout, dropped connection; ``retry_after`` in
    seconds when the provider asked for a delay) or ``failed`` (permanent; ``error``
    says why, e.g. ``"400 invalid phone number"``).
    """

    message_id: str
    status: Literal["sent", "retry", "failed"]
    provider_id: str | None = None
    retry_after: float | None = None
    error: str | None = None


@runtime_checkable
class Adapter(Protocol):
    """A channel provider. ``max_batch`` messages per :meth:`send` call at most."""

    name: str
    max_batch: int

    async def send(self, batch: Sequence[Message]) -> list[Result]:
        """Deliver ``batch``; one :class:`Result` per message, same order."""
        ...

    async def aclose(self) -> None:
        """Release connections; idempotent."""
        ...

# Optional: an adapter with ``max_batch == 1`` may also define
# ``async def send_one(self, message: Message) -> Result``, the same as
# ``(await send([message]))[0]``; the dispatcher then calls it directly (one list and
# one coroutine less per message on the hot path).


def content_fields(m: Message) -> dict[str, str]:
    """The message's content as flat string fields for providers whose custom fields take
    strings only (FCM ``data``, SendGrid ``custom_args``): ``theme`` and ``items`` (item
    ids joined by commas); {} when the message has none."""
    if not m.content:
        return {}
    import json

    doc = json.loads(m.content)
    return {"theme": str(doc.get("theme") or ""), "items": ",".join(str(i) for i in doc.get("items") or [])}


class Secret:
    """A credential read from the environment; shows as ``Secret(NAME=***)`` everywhere."""

    __slots__ = ("_value", "env")

    def __init__(self, value: str, env: str = "?"):
        self._value = value
        self.env = env
        scrub.register(value)  # never stored or logged, in any encoding (engine.sending.scrub)

    def reveal(self) -> str:
        """The secret itself, for building a request header only."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.env}=***)"

    __str__ = __repr__

    def __reduce__(self):  # never pickled into a log or a ledger
        raise TypeError("a Secret cannot be pickled")


#: control characters (C0, DEL, C1) and the Unicode line/paragraph separators: in a header
#: value or an address they end the line and start a new header (``a@b.c\r\nBcc: ...``)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


_HEADER_FIELDS = tuple(Message._fields.index(f) for f in ("to", "subject", "message_id", "step", "variant",
                                                           "campaign_id", "template"))


def refused(m: Message) -> Result | None:
    """A ``failed`` result (a bad row, never retried) when a field that travels in a header
    or as an address (``message_id``, ``to``, ``subject``, ``step``, ``variant``,
    ``campaign_id``, ``template``) holds a control character such as CR or LF; else None.
    Bodies may hold newlines."""
    for i in _HEADER_FIELDS:
        value = m[i]
        # isprintable() is the fast path: control characters are never printable
        if value and type(value) is str and not value.isprintable() and _CONTROL.search(value):
            return Result(m.message_id, FAILED, error=f"bad row: a control character in {Message._fields[i]!r} "
                          f"({value[:40]!r}); fix the plan row, it is not sent")
    return None
