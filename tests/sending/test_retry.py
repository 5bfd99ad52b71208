"""Backoff, Retry-After and giving up: pure functions, no clock."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.sending.protocol import Result
from engine.sending.retry import compute_backoff, decide, next_attempt_at, suppresses


def naive_cap(attempts: int, base: float, factor: float, max_backoff: float) -> float:
    """The backoff cap by repeated multiplication (the obvious way)."""
    cap = base
    for _ in range(attempts - 1):
        cap *= factor
        if cap > max_backoff:
            return max_backoff
    return min(cap, max_backoff)


@given(
    attempts=st.integers(min_value=1, max_value=200),
    base=st.floats(min_value=0.01, max_value=10),
    factor=st.floats(min_value=1.0, max_value=4.0),
    max_backoff=st.floats(min_value=0.1, max_value=3600),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_stays_within_its_capped_exponential(attempts, base, factor, max_backoff, seed):
    """Full jitter draws from [0, cap], equal jitter from [cap/2, cap], none is the cap,
    where cap = min(max_backoff, base * factor ** (attempts - 1))."""
    cap = naive_cap(attempts, base, factor, max_backoff)
    kw = dict(base=base, factor=factor, max_backoff=max_backoff)
    full = compute_backoff(attempts, jitter="full", rng=random.Random(seed), **kw)
    equal = compute_backoff(attempts, jitter="equal", rng=random.Random(seed), **kw)
    assert 0.0 <= full <= cap * (1 + 1e-9)
    assert cap / 2 * (1 - 1e-9) <= equal <= cap * (1 + 1e-9)
    assert compute_backoff(attempts, jitter="none", **kw) == pytest.approx(cap)


def test_default_backoff_doubles_from_half_a_second_up_to_five_minutes():
    # given the defaults without jitter, when attempts grow, then the delay doubles and caps at 300 s
    assert [compute_backoff(n, jitter="none") for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert compute_backoff(50, jitter="none") == 300.0
    assert compute_backoff(10_000, jitter="none") == 300.0


def test_full_jitter_spreads_retries():
    # given many clients after their third failure, when each draws a delay
    rng = random.Random(1)
    delays = [compute_backoff(3, rng=rng) for _ in range(2000)]
    # then the delays cover [0, 2] s evenly rather than piling up at one instant
    assert min(delays) < 0.1 and max(delays) > 1.9
    assert 0.9 < sum(delays) / len(delays) < 1.1


@given(
    retry_after=st.one_of(st.none(), st.floats(min_value=0, max_value=7200)),
    attempts=st.integers(min_value=1, max_value=30),
    now=st.floats(min_value=0, max_value=2e9),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_next_attempt_never_before_retry_after(retry_after, attempts, now, seed):
    """The next attempt is after the backoff and never earlier than Retry-After."""
    res = Result("m1", "retry", retry_after=retry_after)
    at = next_attempt_at(res, attempts, now, rng=random.Random(seed))
    assert at >= now
    if retry_after is not None:
        assert at >= now + retry_after
    assert at <= now + max(300.0, retry_after or 0.0) + 1e-6


def test_decide_gives_up_on_permanent_failures_and_after_max_attempts():
    assert decide("sent", 1, 8) == "sent"
    assert decide("retry", 1, 8) == "retry"
    assert decide("retry", 7, 8) == "retry"
    assert decide("retry", 8, 8) == "dead"
    assert decide("failed", 1, 8) == "dead"
    with pytest.raises(ValueError, match="unknown result status"):
        decide("maybe", 1, 8)


def test_bad_arguments_say_what_is_expected():
    with pytest.raises(ValueError, match="starts at 1"):
        compute_backoff(0)
    with pytest.raises(ValueError, match="jitter"):
        compute_backoff(1, jitter="some")


def test_gone_addresses_are_recognised():
    assert suppresses("400 hard bounce: mailbox does not exist")
    assert suppresses("404 UNREGISTERED")
    assert suppresses("21610 recipient unsubscribed")
    assert not suppresses("400 invalid payload")
    assert not suppresses(None)
