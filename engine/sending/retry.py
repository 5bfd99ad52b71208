"""When to try a message again, and when to give up.

Whether an answer is retryable is the adapter's call (``Result.status``: ``retry``
for 429, 5xx, timeouts and dropped connections; ``failed`` for a 4xx that will not
change).  This module decides *when* the next attempt goes and *when to stop*:

* :func:`compute_backoff`: capped exponential backoff with jitter, the "full jitter"
  scheme of Brooker, *Exponential Backoff And Jitter* (AWS Architecture Blog, 2015):
  ``delay = uniform(0, min(max_backoff, base * factor ** (attempts - 1)))`` seconds;
* :func:`next_attempt_at`: the backoff, but never earlier than the provider's
  ``Retry-After``;
* :func:`decide`: ``sent`` / ``retry`` / ``dead`` after an attempt, with a
  dead-letter after ``max_attempts``;
* :func:`unheeded`: a ``Retry-After`` that cannot be waited for (longer than
  :data:`MAX_RETRY_AFTER`, or past the campaign's end): the message is given up on at
  once instead of holding the send (and the channel's pause) for that long;
* :func:`suppresses`: whether a permanent failure means the address is gone
  (hard bounce, unregistered token, unsubscribed), so it is suppressed for every
  later plan.
"""

from __future__ import annotations

import random
from typing import Literal

from engine.sending.protocol import FAILED, RETRY, SENT, Result

__all__ = ["compute_backoff", "next_attempt_at", "decide", "unheeded", "suppresses", "DEFAULT_MAX_ATTEMPTS",
           "MAX_RETRY_AFTER"]

#: attempts per message before it is dead-lettered, unless the channel says otherwise
DEFAULT_MAX_ATTEMPTS = 8
#: the longest ``Retry-After`` (seconds) a send waits for; longer ones give the message up
MAX_RETRY_AFTER = 24 * 3600.0

#: words in a permanent error that mean the address will never work again
_GONE = (
    "unregistered",
    "hard bounce",
    "hard_bounce",
    "bounced",
    "unsubscribed",
    "complaint",
    "not_found",
    "invalid registration",
    "invalid_registration",
    "21211",  # Twilio: invalid 'To' phone number
    "21610",  # Twilio: recipient replied STOP
)


def compute_backoff(
    attempts: int,
    *,
    base: float = 0.5,
    factor: float = 2.0,
    max_backoff: float = 300.0,
    jitter: Literal["full", "equal", "none"] = "full",
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt (``attempts >= 1``).

    The cap is ``min(max_backoff, base * factor ** (attempts - 1))``; ``jitter="full"``
    draws uniformly from ``[0, cap]``, ``"equal"`` from ``[cap / 2, cap]``, ``"none"``
    returns the cap.  ``rng`` makes the draw reproducible.
    """
    if attempts < 1:
        raise ValueError(f"attempts counts tries made so far and starts at 1, not {attempts}")
    try:
        raw = base * float(factor) ** (attempts - 1)
    except OverflowError:  # far past the cap anyway
        raw = float("inf")
    cap = min(float(max_backoff), raw)
    if jitter == "none":
        return cap
    r = (rng or random).random()
    if jitter == "full":
        return cap * r
    if jitter == "equal":
        return cap / 2 + cap / 2 * r
    raise ValueError(f"jitter must be 'full', 'equal' or 'none', not {jitter!r}")


def next_attempt_at(
    result: Result,
    attempts: int,
    now: float,
    *,
    rng: random.Random | None = None,
    **backoff: float,
) -> float:
    """Epoch seconds of the next attempt: ``now`` + backoff, never before ``Retry-After``.

    ``result.retry_after`` (seconds, as the adapter parsed it from the header) is a
    floor: the provider asked not to be called earlier.
    """
    delay = compute_backoff(attempts, rng=rng, **backoff)
    if result.retry_after is not None and result.retry_after > delay:
        delay = float(result.retry_after)
    return now + delay


def decide(status: str, attempts: int, max_attempts: int) -> Literal["sent", "retry", "dead"]:
    """What becomes of a message after attempt number ``attempts`` answered ``status``.

    ``sent`` stays sent; ``failed`` (permanent) is ``dead`` at once; ``retry`` is
    ``retry`` until ``attempts`` reaches ``max_attempts``, then ``dead``.
    """
    if status == SENT:
        return "sent"
    if status == RETRY and attempts < max_attempts:
        return "retry"
    if status in (RETRY, FAILED):
        return "dead"
    raise ValueError(f"unknown result status {status!r}; adapters return sent, retry or failed")


def unheeded(result: Result, now: float, end: float | None = None) -> str | None:
    """Why the ``Retry-After`` of a ``retry`` answer cannot be waited for, or ``None``.

    ``now`` and ``end`` (the message's campaign end; ``None``: no end) in epoch seconds.
    A Retry-After longer than :data:`MAX_RETRY_AFTER` (a provider answering "not for
    years", an HTTP-date in 9999) would keep the send sleeping for that long and pause
    the channel's crash recovery with it; one that puts the next attempt after ``end``
    waits for a message that could no longer go.  Either way the message is dead now,
    and the provider is still never called before its Retry-After.
    """
    wait = result.retry_after
    if wait is None:
        return None
    if wait > MAX_RETRY_AFTER:
        return (f"the provider asked for no retry for {wait:,.0f} s (Retry-After), "
                f"longer than the {MAX_RETRY_AFTER / 3600:g} h a send waits")
    if end is not None and now + wait > end:
        return f"the provider's Retry-After ({wait:,.0f} s) falls after the campaign's end"
    return None


def suppresses(error: str | None) -> bool:
    """True when a permanent failure means the address is gone for good."""
    if not error:
        return False
    text = error.lower()
    return any(word in text for word in _GONE)
