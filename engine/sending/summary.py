"""What a send did: :class:`DispatchSummary`, returned by ``dispatch`` and ``send``."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

__all__ = ["DispatchSummary"]


@dataclass
class DispatchSummary:
    """What a :func:`dispatch` run did.  Counts are messages; ``seconds`` is wall time."""

    ledger: str
    loaded: int = 0
    recovered: int = 0
    #: with ``retry_dead``: messages that had died of retryable failures, given a new round
    revived: int = 0
    #: messages (this run and earlier) that died of retryable failures: ``--retry-dead`` revives them
    gave_up: int = 0
    exited: int = 0
    suppressed: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    seconds: float = 0.0
    per_channel: dict[str, dict[str, float]] = field(default_factory=dict)
    states: dict[str, dict[str, int]] = field(default_factory=dict)
    complete: bool = False
    stopped: str | None = None
    dry_run: pa.Table | None = None
    samples: list[dict] = field(default_factory=list)
    #: messages the release checks skipped, by reason (engine.sending.release.RELEASE_SKIPS)
    skipped: dict[str, int] = field(default_factory=dict)
    #: late messages moved to a later allowed instant
    retimed: int = 0
    #: with ``replan``: pending messages given the new plan's version, and skipped as no longer planned
    replanned: dict[str, int] = field(default_factory=dict)
    #: lines about the inputs as read, e.g. ``--events: read 2 event names as 'unsubscribe' (case/whitespace)``
    notes: list[str] = field(default_factory=list)

    @property
    def pending(self) -> int:
        """Messages not yet final (planned, failed with a retry pending, in flight)."""
        return sum(n for c in self.states.values() for s, n in c.items()
                   if s in ("planned", "failed", "in_flight"))
