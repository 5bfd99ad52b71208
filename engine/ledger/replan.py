"""Re-plans and suppressions: how a new plan of a campaign meets the messages the ledger holds.

:meth:`engine.ledger.store.Ledger.load_plan` upserts a plan's messages (``sql._INSERT_TAIL``):
a message not yet attempted whose plan changed takes the new version only when asked
(``winback send --replan``); :func:`dropped_rowids` finds the pending messages the new
plan lists with a reason (no longer planned), and :func:`replan_error` says what a plain
send would have ignored.  :func:`messaged_holdout` refuses a re-plan whose holdout holds users
the campaign already messaged (a changed holdout share): that holdout would measure nothing.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import ConfigError

__all__ = ["dropped_rowids", "replan_error", "messaged_holdout", "holdout_users"]


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


def messaged_holdout(con, holdout_users: pa.Array, cids: list, source: str) -> None:
    """Raise :class:`ConfigError` when users the plan puts in the holdout already got (sent or in
    flight) messages of the same campaign: a re-plan with another holdout share or salt.  The
    report would count them as the untreated baseline; nothing is loaded (``--replan`` too)."""
    if not cids or not len(holdout_users):
        return
    con.execute("CREATE TEMP TABLE IF NOT EXISTS holdout_check (user_id INTEGER PRIMARY KEY)")
    con.execute("DELETE FROM holdout_check")
    con.executemany("INSERT OR IGNORE INTO holdout_check VALUES (?)",
                    ((int(u),) for u in holdout_users.to_numpy(zero_copy_only=False)))
    marks = ",".join("?" * len(cids))
    rows = con.execute(f"SELECT DISTINCT m.user_id FROM messages m JOIN holdout_check h ON h.user_id = m.user_id "
                       f"WHERE m.campaign_id IN ({marks}) AND m.state IN ('sent', 'in_flight') LIMIT 1000000",
                       cids).fetchall()
    con.execute("DELETE FROM holdout_check")
    if rows:
        cid = ", ".join(repr(c) for c in cids)
        examples = ", ".join(str(r[0]) for r in rows[:5])
        raise ConfigError(
            f"{source}: {len(rows):,} user{'s' if len(rows) != 1 else ''} this plan holds out already got messages "
            f"of campaign {cid} "
            f"(e.g. users {examples}): the holdout changed since the campaign was sent (another holdout share?), "
            "and a holdout that was messaged measures nothing. Re-plan with the campaign's original holdout, "
            "or plan the change as a new campaign id (a new, clean holdout); nothing was loaded.")


def holdout_users(plan: pa.Table) -> pa.Array | None:
    """The user ids a plan's rows put in the holdout (reason ``holdout``), or None without reasons."""
    if "reason" not in plan.column_names:
        return None
    return plan.column("user_id").filter(pc.fill_null(pc.equal(plan.column("reason"), "holdout"), False)) \
        .combine_chunks()
