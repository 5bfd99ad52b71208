"""Replay protection for the receiver: signed requests and provider event ids seen before.

A signed request is remembered (its signature header) once it was acknowledged, for
``window`` seconds (twice the signature skew: any replay of it is refused by the skew
check after that).  Provider event ids (SendGrid's ``sg_event_id``, Twilio's message
id and status) are remembered for the receiver's run, the newest ``max_ids`` of them:
an event id is *claimed* before its batch is written (so two requests carrying it at
once do not both write it) and released again when the write fails (the provider's
retry must then be written).

Across a restart: both are written into the part files beside their events (columns
``event_id`` and ``request``), and :meth:`Replays.seed` reads them back from the parts of
the last :data:`SEED_SECONDS` when a receiver starts, so a provider retrying a delivery
the killed receiver had written (but not yet acknowledged), or a replayed request, is not
written twice.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path

__all__ = ["Replays", "SEED_SECONDS"]

#: how far back a starting receiver reads event ids from its part files (SendGrid retries for 72 h)
SEED_SECONDS = 3 * 86400.0


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

    def seed(self, out_dir, wall_clock=time.time) -> int:
        """Remember the event ids and request keys of ``out_dir``'s recent part files (newest
        first, at most ``max_ids`` ids; request keys with their part's age, within the window);
        returns how many ids.  Parts of an earlier version have neither column: nothing to read."""
        import pyarrow as pa
        import pyarrow.ipc as ipc

        from engine.feedback.parts import recent_parts

        now_wall, now = wall_clock(), self._clock()
        ids: list[str] = []
        keys: list[tuple[float, str]] = []
        for path, mtime in recent_parts(Path(out_dir), SEED_SECONDS, now_wall):
            try:
                with pa.memory_map(str(path)) as src:
                    t = ipc.open_file(src).read_all()
            except (OSError, pa.ArrowInvalid):
                continue  # a damaged part is the readers' to report; replay protection goes on
            if "event_id" in t.column_names:
                ids.extend(x for x in t["event_id"].to_pylist() if x)
            if "request" in t.column_names and now_wall - mtime <= self.window:
                age = now_wall - mtime
                keys.extend((now - age, k) for k in set(t["request"].to_pylist()) if k)
            if len(ids) >= self.max_ids:
                break
        for eid in reversed(ids[:self.max_ids]):  # oldest first, so the newest are kept longest
            self._ids[eid] = None
        for at, key in sorted(keys):
            self._keys[key] = at
        return min(len(ids), self.max_ids)

    def release(self, events: list[dict]) -> None:
        """Forget the event ids of a batch that could not be written."""
        for e in events:
            if e.get("event_id"):
                self._ids.pop(e["event_id"], None)
