"""Checks that the outcomes can measure the campaign at all, run before any lift is stated.

A lift is only as honest as its inputs.  These are the ways real outcome files break
the comparison without any error, each turned into a warning in the report (and, where
the lift means nothing, a headline that says so instead of a number):

- **a messaged holdout**: holdout users who received messages of this campaign (a
  re-plan changed the holdout share after sending; ``winback send`` refuses that now,
  older ledgers may hold it).  They are left out of the holdout: the rest of it is still
  a random hash of the user id.
- **no activity at all**: outcomes holding only message events (what a ``winback receive``
  directory holds) have no sessions or purchases, and a click or open exists only for a
  messaged user, so any "lift" would be mechanical.
- **an arm without events**: an export of messaged users only (or of everyone but them).
  When one arm's activity rate says the other should show at least :data:`EXPECTED_ACTIVE`
  active users even under a :data:`EFFECT_BOUND`-fold effect, and it shows none, its events
  are missing.
- **duplicate rows**: a row repeating another exactly; flags are per user, so rates do
  not change, but message counts do (deliveries are counted once per ``message_id``).
- **a short window**: outcomes whose last event comes before half the ``--days`` window.

Re-engagement counts sessions and purchases (:data:`REENGAGE_EVENTS`), not clicks: only a
messaged user can click one of the campaign's messages, so counting clicks would credit
the treated group with a lift the holdout cannot have.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.schema import SECONDS_PER_DAY
from engine.tz import iso_utc, to_epoch_seconds

__all__ = ["REENGAGE_EVENTS", "EXPECTED_ACTIVE", "dedupe_messages", "event_names", "outcome_checks", "unmeasurable",
           "significant"]

#: events that mean a user came back, for the lift (clicks and opens are message metrics)
REENGAGE_EVENTS = ("session", "purchase")
#: active users expected in one arm, at the other arm's rate over :data:`EFFECT_BOUND`, below which
#: none is no evidence that its events are missing
EXPECTED_ACTIVE = 3
#: the largest effect (a ratio of activity rates, either way) taken as real rather than missing data
EFFECT_BOUND = 30


def dedupe_messages(msgs: pa.Table) -> tuple[pa.Table, int]:
    """Deliveries once per ``message_id`` (a row repeated in the outcomes is one message), and how
    many rows were repeats."""
    if not msgs.num_rows or "message_id" not in msgs.column_names:
        return msgs, 0
    ids = msgs["message_id"].combine_chunks()
    if ids.null_count:
        return msgs, 0
    _, first = np.unique(np.asarray(ids.to_numpy(zero_copy_only=False), dtype=object), return_index=True)
    if len(first) == msgs.num_rows:
        return msgs, 0
    return msgs.take(pa.array(np.sort(first))), msgs.num_rows - len(first)


def event_names(events: pa.Table) -> np.ndarray:
    """The ``event`` column as a numpy object array of names (dictionary columns decoded)."""
    ev = events["event"]
    if pa.types.is_dictionary(ev.type):
        ev = ev.cast(pa.string())
    return np.asarray(ev.to_numpy(zero_copy_only=False), dtype=object)


def outcome_checks(events: pa.Table, msgs: pa.Table, users: np.ndarray, treat: np.ndarray, ctrl: np.ndarray,
                   start: int, end: int, duplicated_messages: int, names: np.ndarray | None = None) -> dict:
    """``{"warnings": [...], "holdout_messaged": bool[len(users)], "measurable": bool, "why": str | None}``.

    ``users`` sorted; ``treat``/``ctrl`` the arms over them; ``msgs`` the deliveries.
    ``measurable`` False means no re-engagement lift can be read from these outcomes; ``names``:
    :func:`event_names` of ``events`` when the caller has them."""
    warnings: list[str] = []
    messaged = np.zeros(len(users), bool)
    if msgs.num_rows and len(users):
        pos = np.searchsorted(users, msgs["user_id"].to_numpy())
        pos = np.minimum(pos, len(users) - 1)
        hit = users[pos] == msgs["user_id"].to_numpy()
        messaged[pos[hit]] = True
    bad = ctrl & messaged
    if bad.any():
        warnings.append(f"{int(bad.sum()):,} holdout users received messages of this campaign (was it re-planned "
                        "with another holdout share after sending?); they are left out of the holdout, whose "
                        "rest is still a random draw")
    names = event_names(events) if names is None else names
    active = np.isin(names, REENGAGE_EVENTS)
    why = None
    if not active.any():
        why = ("the outcomes hold no session or purchase event (only message events such as opens and clicks, "
               "which only messaged users can have); add the product's activity events to measure a lift")
    else:
        uid = events["user_id"].to_numpy()[active]
        pos = np.minimum(np.searchsorted(users, uid), max(len(users) - 1, 0))
        seen = np.zeros(len(users), bool)
        if len(users):
            seen[pos[users[pos] == uid]] = True
        hold = ctrl & ~bad
        n_t, n_c = int(treat.sum()), int(hold.sum())
        rate_t = seen[treat].mean() if n_t else 0.0
        rate_c = seen[hold].mean() if n_c else 0.0
        if n_c and not seen[hold].any() and rate_t * n_c / EFFECT_BOUND >= EXPECTED_ACTIVE:
            why = (f"the outcomes hold no activity of any of the {n_c:,} holdout users, while {rate_t:.1%} of the "
                   "treated were active: an export of messaged users only? export every audience user's activity")
        elif n_t and not seen[treat].any() and rate_c * n_t / EFFECT_BOUND >= EXPECTED_ACTIVE:
            why = (f"the outcomes hold no activity of any of the {n_t:,} treated users, while {rate_c:.1%} of the "
                   "holdout were active: an export missing the treated users? export every audience user's activity")
    if why:
        warnings.append("no lift can be measured: " + why)
    if duplicated_messages:
        warnings.append(f"{duplicated_messages:,} delivery rows repeat a message_id (outcomes delivered twice?); "
                        "each message counts once")
    if events.num_rows:
        ts = to_epoch_seconds(events["ts"])
        last = int(ts.max())
        if start <= last < start + (end - start) // 2:  # sparse outcomes may end early; half the window is not
            days = (last - start) / SECONDS_PER_DAY
            warnings.append(f"the outcomes' last event is at {iso_utc(last)}, {days:.1f} days into the "
                            f"{(end - start) // SECONDS_PER_DAY}-day window: if the export ended there, the rates "
                            "count only those days (--days sets the window)")
    return {"warnings": warnings, "holdout_messaged": bad, "measurable": why is None, "why": why}


def unmeasurable(metric: dict, why: str) -> dict:
    """``metric`` (measure._compare's dict) with no lift and the reason as its note."""
    return {**metric, "lift": None, "lift_ci": [None, None], "relative_lift": None, "relative_lift_ci": [None, None],
            "note": "not measurable: " + why}


def significant(metric: dict) -> bool:
    """Whether the lift's 95 % interval lies above 0 (a cost per incremental user means something)."""
    lo = (metric.get("lift_ci") or [None, None])[0]
    return lo is not None and lo > 0

