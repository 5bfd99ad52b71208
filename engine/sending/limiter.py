"""A reservation-based token-bucket rate limiter for asyncio (burst 1, FIFO).

Each :meth:`RateLimiter.acquire` reserves the next free *slot* on a timeline whose
slots are ``interval = max(1 / (pace * rate), (1 + jitter) / floor(rate))`` seconds
apart, then sleeps once until its slot.  So:

* **never over the limit, even as the provider sees it**: requests leave at their
  slots and may reach the provider up to ``jitter`` seconds late (a late timer
  wake-up, the provider's own event loop bunching requests); a half-open one-second
  window of arrivals then holds slots from an open span of ``1 + jitter`` seconds,
  at most ``(1 + jitter) / interval <= floor(rate)`` of them.  Defaults:
  ``pace = 0.99`` and ``jitter = 0.05`` s (with 0.99 alone, a loaded 2-core machine
  measured 1,021 arrivals in one second at 1,000/s, and 30 ms still let 101 through at
  100/s under a load average of 6), so a channel runs at ~95% of its limit;
* **even pacing**: burst 1; an idle limiter does not save up tokens, so there is no
  "whole second's budget at once" spike at start (unlike a bucket that starts full);
* **FIFO**: slots are handed out in call order and sleep deadlines are strictly
  increasing, so waiters wake in the order they called;
* **constant CPU per acquisition**: one clock read, two float operations and one
  ``sleep`` per call, however many tasks wait; nothing polls.

Timer jitter has a second line of defence: the grant times of the last
``floor(rate)`` slots are kept in a ring, and a waiter that wakes late (the event
loop stalled) waits until the grant ``floor(rate)`` places back is a full second
old.  So the grant times themselves never put more than ``rate`` in any half-open
one-second window, even after a stall, while pacing stays even in the normal case.

The clock and the sleep function are injectable (``clock() -> seconds`` and
``async sleep(seconds)``), so tests move a fake clock instead of sleeping.

Requests in flight (``track=True``, as the dispatcher uses it): a grant is *pending*
until :meth:`complete` says its request was answered (or failed, or never left).  A
grant may leave only once every grant ``floor(rate)`` places back or earlier has
completed, and one second after the latest of those completions.  As a request reaches
the provider after it left and before its answer came back, any ``floor(rate) + 1``
consecutive grants then span more than a second *of arrivals at the provider*,
whatever the network or either event loop did: **no one-second window of the
provider's clock holds more than ``floor(rate)`` requests**.  The cost is throughput
when answers are slow: about ``floor(rate) / (1 + latency)`` per second at most, e.g.
~95% of the limit at 50 ms latency (no cost below ~50 ms, where the pacing is slower
anyway).  A request that hangs holds its place until its timeout.

Cancellation: a waiter cancelled while it sleeps gives its slot back only when no
later reservation was made after it (it was the tail of the timeline); otherwise
its slot stays unused.  An unused slot only ever makes traffic slower, never
faster, so cancellation cannot push the rate over the limit.
"""

from __future__ import annotations

import asyncio
import math
import time
from array import array
from typing import Awaitable, Callable

__all__ = ["RateLimiter"]

#: above this rate (per second) the one-second window guard is off (its ring would be large)
_MAX_RING = 100_000


class RateLimiter:
    """Pace calls to at most ``rate`` per second (reservation token bucket, burst 1).

    ``cost`` units are reserved per :meth:`acquire` (one request, or one message):
    a call with ``cost = 3`` takes three slots.  ``rate=None`` or ``math.inf``
    means unlimited: :meth:`acquire` returns at once.
    """

    __slots__ = ("rate", "pace", "jitter", "interval", "_next", "_clock", "_sleep", "acquired",
                 "_ring", "_ri", "_last", "track", "granted", "_floor", "_tail", "_waiter")

    def __init__(
        self,
        rate: float | None,
        *,
        pace: float = 0.99,
        jitter: float = 0.05,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[object]] | None = None,
        track: bool = False,
    ) -> None:
        if rate is not None and not (rate > 0):
            raise ValueError(f"rate must be > 0 per second or None for unlimited, not {rate!r}")
        if not (0 < pace <= 1):
            raise ValueError(f"pace must be in (0, 1], not {pace!r}")
        self.rate = math.inf if rate is None else float(rate)
        if not (0 <= jitter < 1):
            raise ValueError(f"jitter must be in [0, 1) seconds, not {jitter!r}")
        self.pace = float(pace)
        #: seconds a request may arrive late at the provider without breaking the limit
        self.jitter = float(jitter)
        #: seconds between two slots
        if math.isinf(self.rate):
            self.interval = 0.0
        else:
            per_window = math.floor(self.rate)
            spread = (1.0 + self.jitter) / (per_window if per_window >= 1 else self.rate)
            self.interval = max(1.0 / (self.rate * self.pace), spread)
        self._clock = clock or time.monotonic
        self._sleep = sleep or asyncio.sleep
        self._next = -math.inf  # the earliest free slot (clock seconds)
        #: total cost units granted so far
        self.acquired = 0
        # window guard: the grant times of the last floor(rate) units (a ring), so a late
        # wake-up (event loop stalled) cannot let more than ``rate`` through in one second
        k = 0 if math.isinf(self.rate) or self.rate > _MAX_RING else max(1, int(self.rate))
        self._ring = array("d", [-math.inf]) * k if k else None
        self._ri = 0
        self._last = -math.inf
        #: completion tracking (see the module doc): ring entries of pending grants are inf
        self.track = bool(track) and self._ring is not None
        #: index of the first unit of the latest grant (for :meth:`complete`)
        self.granted = -1
        self._floor = -math.inf  # latest completion among grants that left the ring
        self._tail: asyncio.Future | None = None  # the previous acquirer's turn at the ring
        self._waiter: asyncio.Future | None = None  # the acquirer waiting for a completion

    async def acquire(self, cost: int = 1) -> int:
        """Wait until ``cost`` slots are ours; return at the first one's instant.

        Returns the index of the grant's first unit (for :meth:`complete`)."""
        interval = self.interval
        self.acquired += cost
        if interval == 0.0:
            return -1
        now = self._clock()
        slot = self._next if self._next > now else now
        end = slot + cost * interval
        self._next = end
        delay = slot - now
        ring = self._ring
        turn = prev = None
        if ring is not None:  # our place in the ring and in the order of grants, taken now
            prev = self._tail
            turn = self._tail = asyncio.get_running_loop().create_future()
        try:
            if delay > 0.0:
                try:
                    await self._sleep(delay)
                except asyncio.CancelledError:
                    self.acquired -= cost
                    if self._next == end:  # nobody reserved after us: hand the slots back
                        self._next = slot
                    raise
                now = self._clock()
            if ring is None:
                return -1
            if prev is not None and not prev.done():
                await prev  # grants leave in call order
                now = self._clock()
            return await self._grant(cost, now)
        finally:
            if turn is not None and not turn.done():
                turn.set_result(None)

    async def _grant(self, cost: int, now: float) -> int:
        ring = self._ring
        k = len(ring)
        i = self._ri
        n = cost if cost < k else k
        if self.track:  # the grants we push out of the ring must have completed
            for j in range(n):
                while ring[(i + j) % k] == math.inf:
                    self._waiter = asyncio.get_running_loop().create_future()
                    try:
                        await self._waiter
                    finally:
                        self._waiter = None
            now = self._clock()
        floor = self._floor
        for j in range(n):
            v = ring[(i + j) % k]
            if v > floor:
                floor = v
        self._floor = floor
        # the newest of the entries we overwrite must be a full second old
        at = floor + 1.0
        if at < now:
            at = now
        if at < self._last:
            at = self._last  # keep grants in call order
        value = math.inf if self.track else at
        for j in range(n):
            ring[(i + j) % k] = value
        first = self.granted = i
        self._ri = (i + cost) % k
        self._last = at
        if at > now:
            try:
                await self._sleep(at - now)
            except asyncio.CancelledError:
                self.complete(first, cost)  # never sent: its place must not stay pending
                raise
        return first

    def complete(self, grant: int, cost: int = 1, at: float | None = None) -> None:
        """The request of ``grant`` (the index :meth:`acquire` returned, or :attr:`granted`
        after :meth:`ready`) was answered, failed, or never left; ``at`` defaults to now."""
        ring = self._ring
        if not self.track or grant < 0:
            return
        at = self._clock() if at is None else at
        k = len(ring)
        for j in range(cost if cost < k else k):
            pos = (grant + j) % k
            if ring[pos] == math.inf:
                ring[pos] = at
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def ready(self, cost: int = 1) -> bool:
        """Take ``cost`` slots now if that needs no waiting, without a coroutine.

        True: granted, exactly as :meth:`acquire` would have granted them without
        sleeping (the grant's index is :attr:`granted`).  False: nothing was taken;
        call :meth:`acquire`.
        """
        interval = self.interval
        if interval == 0.0:
            self.acquired += cost
            return True
        now = self._clock()
        if self._next > now:
            return False
        ring = self._ring
        if ring is not None:
            if self._tail is not None and not self._tail.done():
                return False  # an earlier acquirer has not been granted yet
            k = len(ring)
            i = self._ri
            n = cost if cost < k else k
            floor = self._floor
            for j in range(n):
                v = ring[(i + j) % k]
                if v > floor:
                    floor = v
            if floor + 1.0 > now or self._last > now:
                return False
            self._floor = floor
            value = math.inf if self.track else now
            for j in range(n):
                ring[(i + j) % k] = value
            self.granted = self._ri
            self._ri = (i + cost) % k
            self._last = now
        self._next = now + cost * interval
        self.acquired += cost
        return True

    def hold(self, seconds: float) -> None:
        """No grant before ``seconds`` from now (a resumed run after a crash: requests of the
        killed run may still be arriving at the provider)."""
        self._next = max(self._next, self._clock() + float(seconds))

    def next_free_in(self) -> float:
        """Seconds until the next free slot (0 when a call would not wait)."""
        return max(0.0, self._next - self._clock())

    async def __aenter__(self) -> "RateLimiter":
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def __repr__(self) -> str:
        return (
            f"<RateLimiter rate={self.rate:g}/s pace={self.pace:g} "
            f"next_free_in={self.next_free_in():.4f}s acquired={self.acquired}>"
        )
