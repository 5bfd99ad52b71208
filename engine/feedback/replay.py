"""Replay protection for the receiver: signed requests and provider event ids seen before.

A signed request is remembered (its signature header) once it was acknowledged, for
``window`` seconds (twice the signature skew: any replay of it is refused by the skew
check after that).  Provider event ids (SendGrid's ``sg_event_id``, Twilio's message
id and status) are remembered for the receiver's run, the newest ``max_ids`` of them:
an event id is *claimed* before its batch is written (so two requests carrying it at
once do not both write it) and released again when the write fails (the provider's
retry must then be written).
"""

from __future__ import annotations

import time
from collections import OrderedDict

__all__ = ["Replays"]


class Replays:
    """Signatures seen within ``window`` seconds; the newest ``max_ids`` event ids."""

    def __init__(self, window: float, max_ids: int = 200_000, clock=time.monotonic):
        self.window = float(window)
        self.max_ids = int(max_ids)
        self._clock = clock
        self._keys: OrderedDict[str, float] = OrderedDict()
        self._ids: OrderedDict[str, None] = OrderedDict()

    def seen(self, key: str) -> bool:
        """True when the request ``key`` was acknowledged within the window."""
        now, keys = self._clock(), self._keys
        while keys:
            _, at = next(iter(keys.items()))
            if now - at <= self.window:
                break
            keys.popitem(last=False)
        return key in keys

    def remember(self, key: str) -> None:
        """The request ``key`` was acknowledged."""
        self._keys[key] = self._clock()

    def claim(self, events: list[dict]) -> tuple[list[dict], int]:
        """The events whose ``event_id`` is new (or absent), and how many were dropped."""
        ids, kept, dropped = self._ids, [], 0
        for e in events:
            eid = e.get("event_id")
            if eid:
                if eid in ids:
                    dropped += 1
                    continue
                ids[eid] = None
            kept.append(e)
        while len(ids) > self.max_ids:
            ids.popitem(last=False)
        return kept, dropped

    def release(self, events: list[dict]) -> None:
        """Forget the event ids of a batch that could not be written."""
        for e in events:
            if e.get("event_id"):
                self._ids.pop(e["event_id"], None)
