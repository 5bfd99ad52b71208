"""RateLimiter: pacing, FIFO, the one-second-window bound, cancellation; a fake clock, no sleeping."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import FakeClock, max_in_window
from engine.sending.limiter import RateLimiter


async def grant_times(limiter: RateLimiter, clock: FakeClock, arrivals: list[float], costs: list[int]):
    """Start one acquire per arrival (in order, at its fake time); return when each was granted."""
    granted: dict[int, float] = {}

    async def one(i: int, cost: int) -> None:
        await limiter.acquire(cost)
        granted[i] = clock()

    tasks = []
    for i, (at, cost) in enumerate(zip(arrivals, costs)):
        while clock._heap and clock._heap[0][0] <= at:
            await clock.advance()
        clock.t = max(clock.t, at)
        tasks.append(asyncio.ensure_future(one(i, cost)))
        await clock.run_until_idle()
    while await clock.advance():
        pass
    await asyncio.gather(*tasks)
    return [granted[i] for i in range(len(arrivals))]


def test_first_acquire_does_not_wait_and_next_is_paced():
    # given a limiter of 100 per second on a fake clock
    clock = FakeClock()
    lim = RateLimiter(100, clock=clock, sleep=clock.sleep)

    # when ten callers acquire at the same instant
    times = asyncio.run(grant_times(lim, clock, [0.0 + clock.t] * 10, [1] * 10))

    # then the first goes at once and the rest are spaced (1 + 0.05 s jitter) / 100 s apart
    assert times[0] == pytest.approx(1000.0)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert lim.interval == pytest.approx(1.05 / 100)
    assert gaps == pytest.approx([1.05 / 100] * 9)


def test_waiters_are_served_in_call_order():
    # given 50 callers arriving together at 10 per second
    clock = FakeClock()
    lim = RateLimiter(10, clock=clock, sleep=clock.sleep)
    order: list[int] = []

    async def main():
        async def one(i):
            await lim.acquire()
            order.append(i)

        tasks = [asyncio.ensure_future(one(i)) for i in range(50)]
        await clock.run_until_idle()
        while await clock.advance():
            pass
        await asyncio.gather(*tasks)

    # when the clock runs
    asyncio.run(main())

    # then they were granted first come, first served
    assert order == list(range(50))


def test_idle_limiter_does_not_save_up_a_burst():
    # given a limiter that was idle for a minute after one call
    clock = FakeClock()
    lim = RateLimiter(1000, clock=clock, sleep=clock.sleep)
    asyncio.run(grant_times(lim, clock, [clock.t], [1]))
    clock.t += 60

    # when 1000 callers arrive at once
    times = asyncio.run(grant_times(lim, clock, [clock.t] * 1000, [1] * 1000))

    # then they are paced, not let through at once: at most 1000 in any second, spread over ~1 s
    assert max_in_window(times) <= 1000
    assert times[-1] - times[0] == pytest.approx(999 * lim.interval)


@given(
    rate=st.one_of(st.integers(min_value=3, max_value=5000), st.floats(min_value=3.0, max_value=5000.0)),
    arrivals=st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=150),
    costs=st.lists(st.integers(min_value=1, max_value=3), min_size=150, max_size=150),
)
def test_never_more_than_rate_in_any_one_second_window(rate, arrivals, costs):
    """For any arrival pattern and costs (<= rate), the units granted never exceed
    ``floor(rate)`` in any half-open one-second window, nobody is granted before
    arriving, and grants follow call order."""
    clock = FakeClock(0.0)
    lim = RateLimiter(rate, clock=clock, sleep=clock.sleep)
    arrivals = sorted(arrivals)
    costs = costs[: len(arrivals)]
    times = asyncio.run(grant_times(lim, clock, arrivals, costs))
    units = [t for t, c in zip(times, costs) for _ in range(c)]
    assert max_in_window(units) <= math.floor(rate)
    assert all(t >= a - 1e-12 for t, a in zip(times, arrivals))
    assert times == sorted(times)


@given(
    rate=st.integers(min_value=1, max_value=3000),
    n=st.integers(min_value=1, max_value=400),
    delays=st.lists(st.floats(min_value=0.0, max_value=0.0499), min_size=400, max_size=400),
)
def test_arrivals_up_to_jitter_late_still_respect_the_rate(rate, n, delays):
    """Requests leaving at their grants and arriving up to ``jitter`` (50 ms) late never
    put more than ``rate`` arrivals in any one-second window at the provider."""
    clock = FakeClock(0.0)
    lim = RateLimiter(rate, clock=clock, sleep=clock.sleep)
    times = asyncio.run(grant_times(lim, clock, [0.0] * n, [1] * n))
    arrivals = [t + d for t, d in zip(times, delays)]
    assert max_in_window(arrivals) <= rate


def test_a_stalled_loop_does_not_release_a_burst_over_the_limit():
    # given a limiter of 10 per second and 30 callers
    clock = FakeClock(0.0)
    lim = RateLimiter(10, pace=1.0, jitter=0.0, clock=clock, sleep=clock.sleep)
    granted: list[float] = []

    async def main():
        async def one():
            await lim.acquire()
            granted.append(clock())

        tasks = [asyncio.ensure_future(one()) for _ in range(30)]
        await clock.run_until_idle()
        # when the loop stalls from 0.05 s to 1.05 s: ten sleepers wake together at 1.05 s
        clock.t = 1.05
        while clock._heap and clock._heap[0][0] <= 1.05:
            await clock.advance()
        while await clock.advance():
            pass
        await asyncio.gather(*tasks)

    asyncio.run(main())

    # then the window guard still keeps every one-second window at 10 or fewer
    # (without it, the 10 late ones and the 9 on time after them would share a second)
    assert len(granted) == 30
    assert max_in_window(granted, 1.0 - 1e-9) <= 10


def test_cancelled_tail_waiter_gives_its_slot_back():
    # given three waiters at 1 per second, the last one cancelled while it waits
    clock = FakeClock(0.0)
    lim = RateLimiter(1, pace=1.0, jitter=0.0, clock=clock, sleep=clock.sleep)

    async def main():
        a = asyncio.ensure_future(lim.acquire())
        b = asyncio.ensure_future(lim.acquire())
        c = asyncio.ensure_future(lim.acquire())
        await clock.run_until_idle()
        c.cancel()
        await clock.run_until_idle()
        # when a new caller comes
        d = asyncio.ensure_future(lim.acquire())
        while await clock.advance():
            pass
        await asyncio.gather(a, b, d)
        return c.cancelled(), clock.t

    cancelled, t_end = asyncio.run(main())

    # then the cancelled slot (t=2) went to the newcomer instead of being wasted
    assert cancelled
    assert t_end == pytest.approx(2.0)
    assert lim.acquired == 3


def test_cancelled_middle_waiter_leaves_a_gap_never_a_burst():
    # given three waiters at 1 per second, the middle one cancelled
    clock = FakeClock(0.0)
    lim = RateLimiter(1, pace=1.0, jitter=0.0, clock=clock, sleep=clock.sleep)

    async def main():
        a = asyncio.ensure_future(lim.acquire())
        b = asyncio.ensure_future(lim.acquire())
        c = asyncio.ensure_future(lim.acquire())
        await clock.run_until_idle()
        b.cancel()
        d = asyncio.ensure_future(lim.acquire())
        while await clock.advance():
            pass
        await asyncio.gather(a, c, d)
        return clock.t

    # when it runs, then the later waiters keep their slots (the gap stays unused)
    assert asyncio.run(main()) == pytest.approx(3.0)


def test_unlimited_never_sleeps_and_reuse_keeps_state():
    # given an unlimited limiter
    clock = FakeClock()
    lim = RateLimiter(None, clock=clock, sleep=clock.sleep)

    # when it is used many times, then nobody ever sleeps
    async def main():
        for _ in range(1000):
            await lim.acquire()

    asyncio.run(main())
    assert clock._heap == [] and lim.acquired == 1000
    assert "rate=inf" in repr(lim)


def test_bad_rate_is_refused():
    with pytest.raises(ValueError, match="rate must be > 0"):
        RateLimiter(0)
    with pytest.raises(ValueError, match="pace"):
        RateLimiter(10, pace=1.5)
    with pytest.raises(ValueError, match="jitter"):
        RateLimiter(10, jitter=2)


def test_real_clock_paces_a_short_run():
    # given a limiter of 200 per second on the real loop clock
    lim = RateLimiter(200)
    loop_times: list[float] = []

    async def main():
        loop = asyncio.get_running_loop()

        async def one():
            await lim.acquire()
            loop_times.append(loop.time())

        await asyncio.gather(*(one() for _ in range(60)))

    # when 60 callers wait, then they are spread over about 60 / 198 s, never all at once
    asyncio.run(main())
    assert max(loop_times) - min(loop_times) >= 59 / 198 * 0.9


@given(
    rate=st.one_of(st.integers(min_value=3, max_value=5000), st.floats(min_value=3.0, max_value=5000.0)),
    arrivals=st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=150),
    use_ready=st.lists(st.booleans(), min_size=150, max_size=150),
)
def test_ready_grants_exactly_what_acquire_would_without_waiting(rate, arrivals, use_ready):
    """``ready()`` (the dispatcher's no-coroutine fast path) grants only when ``acquire``
    would not sleep, and mixed with ``acquire`` the window bound and call order hold."""
    clock = FakeClock(0.0)
    lim = RateLimiter(rate, clock=clock, sleep=clock.sleep)
    arrivals = sorted(arrivals)
    granted: dict[int, float] = {}

    async def slow(i: int) -> None:
        await lim.acquire()
        granted[i] = clock()

    async def main():
        tasks = []
        for i, at in enumerate(arrivals):
            while clock._heap and clock._heap[0][0] <= at:
                await clock.advance()
            clock.t = max(clock.t, at)
            if use_ready[i]:
                would_wait = lim._next > clock.t  # a plain acquire would sleep
                ok = lim.ready()
                assert not (ok and would_wait)
                if ok:
                    granted[i] = clock.t
                    continue
            tasks.append(asyncio.ensure_future(slow(i)))
            await clock.run_until_idle()
        while await clock.advance():
            pass
        await asyncio.gather(*tasks)

    asyncio.run(main())
    times = [granted[i] for i in range(len(arrivals))]
    assert max_in_window(times) <= math.floor(rate)
    assert all(t >= a - 1e-12 for t, a in zip(times, arrivals))
    assert times == sorted(times)
    assert lim.acquired == len(arrivals)


def test_ready_takes_a_free_slot_and_refuses_a_busy_one():
    clock = FakeClock()
    lim = RateLimiter(100, clock=clock, sleep=clock.sleep)
    assert lim.ready() and lim.acquired == 1
    assert not lim.ready() and lim.acquired == 1  # the next slot is 10.5 ms away: nothing taken
    clock.t += lim.interval
    assert lim.ready()
    unlimited = RateLimiter(None)
    assert all(unlimited.ready() for _ in range(1000))
