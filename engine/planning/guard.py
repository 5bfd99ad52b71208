"""Guards around planning: the scores are fit to plan, suppressions, and the broadcast guard.

- :func:`check_scores`: InputError for null or duplicate user ids, unknown timezones, and
  negative counts (``sends_7d``, ``fatigue_budget``, ...);
- :func:`check_guard_columns`: InputError for scores without the opt-out columns of a
  campaign's channels (``<channel>_suppressed``, ``complained``); a null in them counts as
  suppressed (:func:`unknown_guards`, said in the plan's warnings by :func:`unknown_guard_warning`);
- :func:`suppressed_matrix`: which users are suppressed per channel in the ledger's
  ``suppressions`` table (or a table shaped like it), by user id or by address;
- :func:`broadcast_guard`: an audience covering at least ``[policy] broadcast_share``
  (default 80 %) of the reachable base is a "batch and blast": refused unless the
  campaign is ``approved``, and then at most once per 90 days, checked against the
  ledger's ``broadcasts`` table (written by ``winback send``); an approved broadcast
  without a ledger is refused, since the 90-day rule could not be checked.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.planning.campaign import Campaign
from engine.errors import InputError, PolicyError
from engine.schema import ADDRESS_COLUMN, CHANNELS, SECONDS_PER_DAY
from engine.tz import is_timezone, to_epoch_seconds

__all__ = ["check_scores", "check_guard_columns", "guard_columns", "unknown_guards", "unknown_guard_warning",
           "suppressed_matrix", "complained_users", "broadcast_guard", "guard_counts", "BROADCAST_SHARE", "BROADCAST_DAYS"]

BROADCAST_SHARE = 0.80  # default share of the reachable base that makes an audience "the whole base"
BROADCAST_DAYS = 90     # days between two approved broadcasts
#: counts and budgets in the scores: never negative (a negative recent-send count loosens the cap)
COUNT_COLUMNS = ("sends_7d", "sends_30d", "fatigue_budget", "frequency", "purchases", "engagements",
                 *(f"{c}_{k}" for c in CHANNELS for k in ("sends_90d", "opens_90d", "clicks_90d", "unengaged_streak")))


def checked_scores(scores: pa.Table, src: str) -> pa.Table:
    """``scores`` with every score column in the type 'winback score' writes
    (:func:`engine.planning.scores_in.normalised_scores`), after :func:`check_scores`."""
    from engine.planning.scores_in import normalised_scores

    scores = normalised_scores(scores, src)
    check_scores(scores, src)
    return scores


def check_scores(scores: pa.Table, src: str) -> None:
    """InputError for what would make a wrong plan: missing columns, null or duplicate
    user ids, unknown timezones; naming the column, the row count and example rows."""
    for need in ("user_id", "best_hour_local", "p_alive"):
        if need not in scores.column_names:
            raise InputError(f"{src} has no column {need!r} (it has {', '.join(scores.column_names[:8])}, ...); "
                             "pass the output of 'winback score'")
    ids = scores["user_id"]
    if not pa.types.is_integer(ids.type) and not (pa.types.is_null(ids.type) and not len(ids)):
        ex = ids.drop_null()[:3].to_pylist()
        raise InputError(f"{src}: column 'user_id' is {ids.type} (e.g. {ex}), not whole numbers; pass the scores "
                         "'winback score' wrote (its user_id is int64), not a re-saved or edited copy")
    _scored_at(scores, src)
    _in_range(scores, "best_hour_local", 0, 23, src, "an hour of the day 0-23")
    for col in ("p_alive", "lapse_risk", *(f"{c}_response_rate" for c in CHANNELS)):
        _in_range(scores, col, 0, 1, src, "a probability from 0 to 1")
    for col in COUNT_COLUMNS:
        _in_range(scores, col, 0, np.inf, src, "a count of 0 or more (a negative one would loosen the caps)")
    if ids.null_count:
        rows = np.nonzero(ids.is_null().to_numpy(zero_copy_only=False))[0][:5].tolist()
        raise InputError(f"{src}: column 'user_id' is null in {ids.null_count:,} rows (e.g. rows {rows}); "
                         "every scored user needs an id - rescore the users file after fixing it")
    counts = pc.value_counts(ids)
    dup = counts.filter(pc.greater(counts.field("counts"), 1))
    if len(dup):
        ex = dup.field("values")[:5].to_pylist()
        raise InputError(f"{src}: column 'user_id' repeats {len(dup):,} ids (e.g. {ex}); one row per user is "
                         "needed so message ids stay unique - deduplicate the users file and rescore")
    if "timezone" in scores.column_names:
        names = pc.unique(pc.cast(scores["timezone"], pa.string()).drop_null()).to_pylist()
        bad = [name for name in names if not is_timezone(name)]
        if bad:
            hit = pc.is_in(pc.cast(scores["timezone"], pa.string()), value_set=pa.array(bad, pa.string()))
            rows = np.nonzero(hit.to_numpy(zero_copy_only=False))[0]
            ex = [(int(ids[int(i)].as_py()), scores["timezone"][int(i)].as_py()) for i in rows[:5]]
            raise InputError(f"{src}: column 'timezone' has {len(rows):,} rows with unknown IANA timezones "
                             f"(e.g. user_id, timezone: {ex}); fix them (e.g. Europe/Paris) or set them "
                             "null to use the campaign's timezone")


def guard_columns(cmp: Campaign) -> list[str]:
    """The scores columns that say who opted out on ``cmp``'s channels: ``<channel>_suppressed``
    for every owned channel its steps use, and ``complained`` unless ``complaint_suppresses =
    "channel"`` (a complaint then suppresses only its channel, in ``<channel>_suppressed``)."""
    used = {c for step in cmp.steps for c in step.channels}
    out = [f"{c}_suppressed" for c in CHANNELS if c in used]
    if getattr(cmp.policy, "complaint_suppresses", "all") == "all":
        out.append("complained")
    return out


def check_guard_columns(scores: pa.Table, cmp: Campaign, src: str) -> None:
    """InputError when ``scores`` lack a column of :func:`guard_columns`: without it the plan
    could not tell who unsubscribed, bounced or complained, and would message them (a
    missing consent column is no consent; a missing suppression column is refused)."""
    missing = [c for c in guard_columns(cmp) if c not in scores.column_names]
    if not missing:
        return
    names = ", ".join(repr(c) for c in missing)
    s = "s" if len(missing) > 1 else ""
    raise InputError(
        f"{src} has no column{s} {names}, which campaign {cmp.id!r} needs to leave out users who unsubscribed, "
        f"bounced or complained (it has {', '.join(scores.column_names[:8])}, ...); without {'them' if s else 'it'} "
        "they would be messaged. Re-score with 'winback score' (it writes every one), or add the column"
        f"{s} to the scores: <channel>_suppressed true for a user unsubscribed or bounced on that channel, "
        "complained true for a user who ever complained, false otherwise (a blank counts as suppressed)")


def unknown_guards(scores: pa.Table, cmp: Campaign) -> dict[str, np.ndarray]:
    """Per column of :func:`guard_columns` present in ``scores``: bool[users], null there (not
    known whether the user opted out: planned as suppressed)."""
    out = {}
    for name in guard_columns(cmp):
        if name in scores.column_names:
            values = scores[name]
            out[name] = np.ones(scores.num_rows, bool) if pa.types.is_null(values.type) else \
                values.is_null().to_numpy(zero_copy_only=False)
    return out


def unknown_guard_warning(counts: dict[str, int], src: str) -> str | None:
    """One warning for the users whose opt-out columns are null (``counts``: column -> users),
    None when there are none."""
    counts = {k: v for k, v in counts.items() if v}
    if not counts:
        return None
    each = ", ".join(f"{k} {v:,}" for k, v in counts.items())
    return (f"{src}: blank opt-out values ({each} users) are not known to be clear, so they count as suppressed: "
            "not messaged on that channel (complained: on any channel; reason suppressed). Re-score with "
            "'winback score', or fill them (false for users who did not opt out) to message them")


def _scored_at(scores: pa.Table, src: str) -> None:
    """InputError when the scores' ``winback.score`` metadata has an ``as_of`` that is not an
    ISO 8601 instant from 1970 to 2199 (the plan's start defaults to it)."""
    from engine.io.meta import SCORE, read_meta
    from engine.planning.campaign_schema import instant_in_range

    value = read_meta(scores, SCORE).get("as_of")
    if value is None:
        return
    if instant_in_range(value) is None:
        raise InputError(f"{src}: metadata winback.score key as_of must be an ISO 8601 instant like "
                         f"\"2026-11-01T00:00:00+00:00\" between 1970 and 2199, got {value!r}; rescore with "
                         "'winback score' instead of editing it")


def _in_range(scores: pa.Table, col: str, lo: float, hi: float, src: str, what: str) -> None:
    """InputError when the scores' ``col`` (if present) is not numeric or has a value outside
    [lo, hi] (nulls and NaN pass: "unknown"), naming the rows."""
    if col not in scores.column_names:
        return
    values = scores[col]
    if pa.types.is_null(values.type):  # every value unknown
        return
    if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
        raise InputError(f"{src}: column {col!r} is {values.type}, not numbers ({what}); pass the scores "
                         "'winback score' wrote, not an edited copy")
    bad = pc.fill_null(pc.or_(pc.less(values, lo), pc.greater(values, hi)), False)
    rows = np.nonzero(bad.to_numpy(zero_copy_only=False))[0]
    if rows.size:
        ex = [(scores["user_id"][int(i)].as_py(), values[int(i)].as_py()) for i in rows[:5]]
        where = "negative" if hi == np.inf and lo == 0 else f"outside {lo}-{hi}"
        raise InputError(f"{src}: column {col!r} is {where} in {rows.size:,} rows (e.g. user_id, "
                         f"{col}: {ex}); it must be {what}: rescore with 'winback score' instead of editing it")


def suppressed_matrix(ledger, table: pa.Table, extra: pa.Table | None = None) -> np.ndarray:
    """[users, channels] bool: suppressed by user id or address in the ledger or ``extra``.

    Both are tables shaped like the ledger's ``suppressions(channel, address, user_id,
    reason, at)``; a row matches a user by ``user_id`` or by the channel's address.
    """
    out = np.zeros((table.num_rows, len(CHANNELS)), bool)
    sups = [] if extra is None else [extra]
    if ledger is not None and os.path.exists(ledger):
        from engine.ledger.store import read_suppressions

        sups.append(read_suppressions(ledger))
    for sup in sups:
        out |= _match_suppressions(sup, table)
    return out


def complained_users(ledger, table: pa.Table, extra: pa.Table | None = None) -> np.ndarray:
    """[users] bool: a spam complaint on any channel, from the scores' ``complained``
    column and the ledger's (or ``extra``'s) suppressions with reason ``complaint``,
    matched by user id or by that channel's address."""
    out = np.zeros(table.num_rows, bool)
    if "complained" in table.column_names and not pa.types.is_null(table["complained"].type):
        out |= pc.fill_null(table["complained"], False).to_numpy(zero_copy_only=False).astype(bool)
    sups = [] if extra is None else [extra]
    if ledger is not None and os.path.exists(ledger):
        from engine.ledger.store import read_suppressions

        sups.append(read_suppressions(ledger))
    for sup in sups:
        if sup.num_rows and "reason" in sup.column_names:
            rows = sup.filter(pc.fill_null(pc.equal(sup["reason"], "complaint"), False))
            if rows.num_rows:
                out |= _match_suppressions(rows, table).any(axis=1)
    return out


def _match_suppressions(sup: pa.Table, table: pa.Table) -> np.ndarray:
    out = np.zeros((table.num_rows, len(CHANNELS)), bool)
    if sup.num_rows == 0 or "channel" not in sup.column_names:
        return out
    for c_i, c in enumerate(CHANNELS):
        rows = sup.filter(pc.equal(sup["channel"], c))
        if rows.num_rows == 0:
            continue
        hit = np.zeros(table.num_rows, bool)
        if "user_id" in rows.column_names:
            hit |= pc.is_in(table["user_id"], value_set=rows["user_id"].drop_null().cast(pa.int64())).to_numpy(zero_copy_only=False)
        addr_col = ADDRESS_COLUMN[c]
        if addr_col in table.column_names and "address" in rows.column_names:
            hit |= pc.fill_null(pc.is_in(table[addr_col], value_set=rows["address"].drop_null().cast(pa.string())), False) \
                .to_numpy(zero_copy_only=False)
        out[:, c_i] = hit
    return out


def broadcast_guard(campaign: Campaign, audience: np.ndarray, reachable: np.ndarray, ledger, as_of: int) -> bool:
    return guard_counts(campaign, int((audience & reachable).sum()), int(reachable.sum()), ledger, as_of)


def guard_counts(campaign: Campaign, n_audience_reach: int, n_reach: int, ledger, as_of: int) -> bool:
    """The broadcast guard from counts (summed over partitions): True for an approved
    broadcast, False for a targeted campaign; raises for an unapproved or too-soon one."""
    share = getattr(campaign.policy, "broadcast_share", BROADCAST_SHARE)
    if n_reach == 0 or n_audience_reach < share * n_reach:
        return False
    if not campaign.approved:
        raise PolicyError(
            f"{campaign.source}: the audience selects {n_audience_reach:,} of {n_reach:,} reachable "
            f"users ({n_audience_reach / n_reach:.0%}, at least the broadcast share {share:.0%}) - the whole base "
            "('batch and blast'), which burns sender reputation. Narrow [audience] where, or set approved = true "
            "in [campaign] to send a broadcast (at most once per 90 days).")
    if ledger is None:
        raise PolicyError(
            f"{campaign.source}: an approved broadcast ({n_audience_reach:,} of {n_reach:,} reachable users) needs "
            "the ledger of earlier sends to check the 90-day rule: pass --ledger LEDGER (a new path for a first send)")
    if os.path.exists(ledger):
        from engine.ledger.store import read_broadcasts

        b = read_broadcasts(ledger)
        if b.num_rows:
            last = float(np.max(to_epoch_seconds(b["at"])))
            if as_of - last < BROADCAST_DAYS * SECONDS_PER_DAY and time.time() - last < BROADCAST_DAYS * SECONDS_PER_DAY:
                raise PolicyError(f"a whole-base broadcast already went out {((time.time() - last) / 86400):.0f} days ago "
                                  f"(ledger {ledger}); approved broadcasts are allowed at most once per 90 days")
    return True
