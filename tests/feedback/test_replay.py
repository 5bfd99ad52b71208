"""Replay protection: signatures remembered for a window, event ids claimed once and released on failure."""

from __future__ import annotations

from engine.feedback.replay import Replays


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_signature_is_seen_within_the_window_only():
    clock = Clock()
    r = Replays(window=600, clock=clock)
    assert not r.seen("sig-a")
    r.remember("sig-a")
    clock.t += 600
    assert r.seen("sig-a")
    clock.t += 1
    assert not r.seen("sig-a")


def test_event_ids_are_claimed_once_released_on_failure_and_bounded():
    r = Replays(window=60, max_ids=3)
    batch = [{"event_id": "a"}, {"event_id": "b"}, {"event": "no id"}, {"event_id": "a"}]
    kept, dropped = r.claim(batch)
    assert kept == batch[:3] and dropped == 1
    assert r.claim([{"event_id": "b"}]) == ([], 1)
    r.release([{"event_id": "b"}])
    assert r.claim([{"event_id": "b"}]) == ([{"event_id": "b"}], 0)
    r.claim([{"event_id": "c"}, {"event_id": "d"}])  # only the newest 3 ids are kept: "a" is forgotten
    assert r.claim([{"event_id": "a"}]) == ([{"event_id": "a"}], 0)
