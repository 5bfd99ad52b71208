"""The limiter's promise on the provider's clock: requests in flight count until answered.

Workers acquire a grant, "send" (the request reaches the provider some time after it
left and before its answer comes back: random latencies, some hanging requests) and
complete the grant.  Whatever the latencies, no half-open one-second window of
arrivals holds more than ``floor(rate)`` requests.  A fake clock, no sleeping.
"""

from __future__ import annotations

import asyncio
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.sending.limiter import RateLimiter
from tests.helpers import FakeClock, max_in_window


async def traffic(rate: float, n: int, workers: int, latencies: list[float], where: list[float], track: bool):
    clock = FakeClock()
    lim = RateLimiter(rate, clock=clock, sleep=clock.sleep, track=track)
    arrivals: list[float] = []
    todo = list(range(n))

    async def worker() -> None:
        while todo:
            i = todo.pop(0)
            grant = await lim.acquire(1) if not lim.ready() else lim.granted
            sent = clock()
            lat = latencies[i % len(latencies)]
            arrivals.append(sent + lat * where[i % len(where)])  # reaches the provider on the way
            await clock.sleep(lat)
            lim.complete(grant)

    tasks = [asyncio.ensure_future(worker()) for _ in range(workers)]
    while not all(t.done() for t in tasks):
        if not await clock.advance():
            await clock.run_until_idle()
    await asyncio.gather(*tasks)
    return arrivals


@settings(max_examples=40, deadline=None)
@given(rate=st.sampled_from([5, 50, 500]), seed=st.integers(0, 10_000), workers=st.integers(1, 64))
def test_no_one_second_window_of_arrivals_over_the_limit(rate, seed, workers):
    rng = random.Random(seed)
    n = rate * 4
    latencies = [rng.choice([0.001, 0.02, 0.3, 1.5]) * rng.random() for _ in range(97)]
    where = [rng.random() for _ in range(89)]
    arrivals = asyncio.run(traffic(rate, n, workers, latencies, where, track=True))
    assert len(arrivals) == n
    assert max_in_window(arrivals) <= rate


def test_without_tracking_late_arrivals_do_overshoot():
    # the same traffic through the pacing alone: the first half of each second arrives late,
    # bunched with the next second's requests -- the failure the tracking prevents
    rate, n = 50, 400
    latencies = [0.9 if i % 100 < 50 else 0.0 for i in range(100)]
    where = [1.0]
    untracked = asyncio.run(traffic(rate, n, 64, latencies, where, track=False))
    tracked = asyncio.run(traffic(rate, n, 64, latencies, where, track=True))
    assert max_in_window(untracked) > rate
    assert max_in_window(tracked) <= rate


def test_a_waiter_cancelled_after_its_grant_does_not_block_the_ring():
    async def main():
        clock = FakeClock()
        lim = RateLimiter(2, pace=1.0, jitter=0.0, clock=clock, sleep=clock.sleep, track=True)

        async def run(fut):
            while not fut.done():
                if not await clock.advance():
                    await clock.run_until_idle()
                    if not fut.done() and not clock._heap:
                        return False
            return True

        first = None
        for _ in range(2):  # two grants; the first is answered 0.8 s after it left
            f = asyncio.ensure_future(lim.acquire())
            assert await run(f)
            first = f.result() if first is None else first
            lim.complete(f.result(), at=clock() + 0.8 if f.result() == first else None)
        # the third takes the first's place in the ring and must wait one second after the
        # first's answer: cancel it while it waits there
        c = asyncio.ensure_future(lim.acquire())
        await clock.advance()  # its pacing slot (t + 1 s) comes; the ring holds it until t + 1.8 s
        assert not c.done()
        c.cancel()
        await clock.run_until_idle()
        # later acquirers (the fifth takes that same place again) are still served
        d = asyncio.ensure_future(lim.acquire())
        e = asyncio.ensure_future(lim.acquire())
        served = await run(d) and await run(e)
        return served, c.cancelled()

    served, cancelled = asyncio.run(asyncio.wait_for(main(), 10))
    assert served and cancelled
