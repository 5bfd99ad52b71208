"""Re-plans and suppressions: how a new plan of a campaign meets the messages the ledger holds.

:meth:`engine.ledger.store.Ledger.load_plan` upserts a plan's messages (``sql._INSERT_TAIL``):
a message not yet attempted whose plan changed takes the new version only when asked
(``winback send --replan``); :func:`dropped_rowids` finds the pending messages the new
plan lists with a reason (no longer planned), and :func:`replan_error` says what a plain
send would have ignored.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import ConfigError

__all__ = ["dropped_rowids", "replan_error"]


def dropped_rowids(con, unplanned: pa.Array, cids: list) -> list[int]:
    """Rowids of messages not yet attempted whose ids the new plan lists with a reason
    (holdout, not in the audience, ...): it no longer plans them.  Ids the plan does
    not list at all are left alone (a plan may add users to a campaign)."""
    if not cids or not len(unplanned):
        return []
    marks = ",".join("?" * len(cids))
    pending = con.execute(f"SELECT rowid, message_id FROM messages WHERE campaign_id IN ({marks}) "
                          "AND state = 'planned' AND attempts = 0", cids).fetchall()
    if not pending:
        return []
    ids = pa.array([m for _, m in pending], pa.string())
    hit = pc.is_in(ids, value_set=unplanned.cast(pa.string())).to_numpy(zero_copy_only=False)
    return [pending[i][0] for i in np.flatnonzero(hit)]


def replan_error(source: str, cids: list, changed: int, dropped: list[int]) -> ConfigError:
    cid = ", ".join(repr(c) for c in cids) or "(none)"
    parts = []
    if changed:
        parts.append(f"{changed:,} that this plan changes (channel, address, time, variant or content)")
    if dropped:
        parts.append(f"{len(dropped):,} that it no longer plans")
    return ConfigError(
        f"{source}: the ledger already holds pending messages of campaign {cid}: "
        + " and ".join(parts) + ". It keeps what it was given first, so sending this plan as it is would send "
        "the old versions. Pass --replan to give the pending messages this plan's version (and skip the ones "
        "it no longer plans; sent and in-flight messages are never touched), or send the plan the ledger holds.")
