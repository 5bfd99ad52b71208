"""Step 2, plan: who gets which message, on which channel, when - and why not.

``plan(scores, campaign)`` returns one row per (user, step) with a deterministic
``message_id``, the channel, ``send_at`` (UTC) and, for users not messaged, the
``reason``.  Rules, in the order they are applied per step:

1. ``not_in_audience``: the audience rule is false; ``holdout``: the user's hash of
   (campaign id, user id) puts them in the holdout (``campaign.holdout`` share).
2. Channel: among the step's channels, those with consent, an address and no
   suppression (scores or the ledger's suppressions), under the per-channel cap; the
   one with the highest ``c_response_rate`` wins, ties by the step's order.  Reasons:
   ``no_consent``, ``no_address``, ``suppressed``, ``channel_cap``.
3. Fatigue: the user's ``fatigue_budget`` bounds the campaign's messages in the first
   policy window (it was scored for the window after ``as_of``), and the cross-channel
   cap (``max_messages`` per ``window_days``, counting earlier steps of this campaign
   in the rolling window and, inside the first window, the scores' ``sends_7d`` or
   ``sends_30d``: their times are not known, so they count in full) must hold at the
   send time: ``fatigue_budget``.  A user held back this way before any step of theirs
   is planned starts the sequence at their best hour after the first window instead
   (the later steps follow it), so a drip never shrinks to its last step; a user held
   at 0 with no message in the window (not worth one message at all) gets no step.
4. Time: the first instant at the user's ``best_hour_local`` at or after the previous
   step's send time plus ``delay_days`` counted in the user's wall time (so "3 days
   later at 09:00" stays 09:00 across a DST change), or the campaign start plus the
   summed delays; moved out of local quiet hours [start, end) to the window's end
   (same or next day, never dropped); at least ``min_gap_hours`` after the user's
   previous message (reason ``min_gap`` when that pushes it more than two days).
5. Capacity per channel and UTC hour: messages are placed in order of
   (``send_time_confidence`` >= 0.4 first, then expected win-back value); those that
   find their hour full try +1 h, -1 h, +2 h, -2 h, ... up to 12 h, skipping local
   quiet hours, hours before the minimum gap, and earlier hours that would break a
   fatigue cap checked in 3; else ``capacity``.

Expected win-back value = ``p_alive x value x c_response_rate`` with value the user's
mean purchase value (the median of buyers for users who never bought).

Holdout and variant use SplitMix64 of (user id XOR a 64-bit hash of the campaign id)
with two salts, so a rerun picks the same users and a new campaign id reshuffles.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import ConfigError
from engine.io.meta import PLAN, SCORE, read_meta, with_meta
from engine.planning import steps as ps
from engine.planning.campaign import Campaign, load_campaign
from engine.planning.campaign_schema import INSTANT_MAX, INSTANT_MIN
from engine.planning.guard import check_guard_columns, checked_scores, guard_counts, unknown_guard_warning
from engine.planning.steps import REASONS, end_of
from engine.schema import SECONDS_PER_DAY
from engine.tz import from_epoch_seconds, iso_utc, parse_as_of

__all__ = ["plan", "REASONS", "plan_summary"]





def plan(scores, campaign, *, as_of=None, suppressions: pa.Table | None = None, ledger=None,
         progress: bool = False, items=None) -> pa.Table:
    """Plan ``campaign`` over ``scores`` (table or path); returns the plan table.

    ``as_of`` (campaign start, UTC) defaults to the campaign's ``as_of``, then the
    scores' ``as_of``.  ``ledger`` (SQLite path): its suppressions are honoured and
    its broadcasts feed the broadcast guard.  ``suppressions``: a table shaped like the
    ledger's (``channel``, ``address``, ``user_id``), honoured the same way.
    ``items``: the catalogue (path, table or :class:`engine.items.Items`) that the
    scores were computed with: each audience row (messaged, held out or stopped by a
    rule) then gets a ``theme`` and
    ``items`` (item ids) from :mod:`engine.plan_content`, and templates may use
    ``{{ theme }}`` and ``{{ items[0].title }}``.  Without it both columns are null.
    """
    t0 = time.perf_counter()
    if not isinstance(scores, pa.Table):
        from engine.io.readers import read_table

        src = f"scores {scores}"
        scores = read_table(scores, "scores")
    else:
        src = "scores table"
    cmp = campaign if isinstance(campaign, Campaign) else load_campaign(campaign)
    scores = checked_scores(scores, src)
    lost = lost_metadata_warning(scores, src)
    score_meta = scores_meta(scores)
    if lost and score_meta.get("as_of"):  # days_since() in the rules counts to the recovered as_of too
        scores = with_meta(scores, SCORE, {"as_of": score_meta["as_of"]})
    start, stale = campaign_start(as_of, cmp, score_meta)
    check_guard_columns(scores, cmp, src)  # (PartitionPlan checks too; here the error names the file)
    part = ps.PartitionPlan(scores, cmp, start, suppressions=suppressions, ledger=ledger, items=items)
    pre = part.prelude()
    broadcast = guard_counts(cmp, pre["audience_reachable"], pre["reachable"], ledger, start)
    part.settle(pre["zones"], ps.value_fill([pre]))
    leveller = ps.Leveller(cmp, start, pre["zones"])
    for k in range(len(cmp.steps)):
        part.apply(k, leveller.level([part.candidates(k)])[0])
    result = part.table_out()
    meta = plan_meta_of(cmp, start, broadcast, time.perf_counter() - t0, ledger)
    meta["summary"] = plan_summary(result)
    meta["summary"]["timezones"] = timezone_counts(scores, cmp)
    meta["sunset"] = sunset_meta(cmp, *part.sunset_counts(), start)
    from engine.planning.assemble import absent_fields_warning

    new_ledger = (f"ledger {ledger} does not exist yet: this plan knows no earlier sends or suppressions; if this "
                  "is not the first campaign, re-plan with the ledger 'winback send' uses"
                  if ledger is not None and not os.path.exists(ledger) else None)
    unknown = unknown_guard_warning(part.unknown_guards, src)
    warnings = [w for w in (lost, stale, unknown, absent_fields_warning(cmp, scores), new_ledger) if w]
    if warnings:
        meta["summary"]["warnings"] = warnings
    return with_meta(result, PLAN, meta, keep=False)


#: scores older than this (seconds) at the campaign's start are flagged in the plan's summary
STALE_SCORES_SECONDS = 2 * SECONDS_PER_DAY


def scores_meta(scores: pa.Table) -> dict:
    """The scores' ``winback.score`` metadata, with its ``as_of`` recovered from the columns
    when the file lost it (a CSV keeps no metadata): for every user with activity,
    ``last_active_at`` plus ``days_inactive`` days is the instant the scores were made as of,
    so the campaign starts where it would from the Arrow file, and a stale file is flagged,
    instead of the plan silently starting now."""
    meta = read_meta(scores, SCORE)
    if meta.get("as_of") or not {"last_active_at", "days_inactive"} <= set(scores.column_names):
        return meta
    from engine.io import coerce

    try:
        secs, null, bad = coerce.to_epoch_seconds(scores["last_active_at"])
        days, bad_days = coerce.to_float64(scores["days_inactive"])
    except coerce.ColumnTypeError:
        return meta  # check_scores names columns of the wrong type
    with np.errstate(invalid="ignore"):
        ok = ~null & ~bad & ~bad_days & np.isfinite(days) & (days >= 0)
    if not ok.any():
        return meta
    at = np.sort(secs[ok] + np.rint(days[ok] * SECONDS_PER_DAY).astype(np.int64))
    return {**meta, "as_of": from_epoch_seconds(at[len(at) // 2:][:1]).to_pylist()[0].isoformat()}


def lost_metadata_warning(scores: pa.Table, src: str) -> str | None:
    """One warning when ``scores`` carry no ``winback.score`` metadata (a CSV keeps none): what
    is lost and what to do; None when it is there (Arrow and Parquet keep it)."""
    if (scores.schema.metadata or {}).get(SCORE) or "user_id" not in scores.column_names:
        return None
    return (f"{src}: no winback.score metadata (a CSV keeps none); as_of is recovered from "
            "last_active_at + days_inactive, but the rest is lost: the learned fatigue parameters (fatigue_budget "
            "stays the one scored for the score-time cap instead of being recomputed for the campaign's policy), "
            "default_timezone (the best hour of users without a timezone is not moved into the campaign's "
            "timezone), the lapse model, the BG/NBD fit and the scoring warnings; write the scores as .arrow or "
            ".parquet ('winback score ... -o scores.arrow') and use that file")


def campaign_start(as_of, cmp: Campaign, score_meta: dict) -> tuple[int, str | None]:
    """The campaign's start (epoch s, UTC): ``as_of``, else the campaign's, else the scores'
    ``as_of``; and a warning when the scores are more than two days older than it.

    A start before the scores' ``as_of`` is refused: the scores would know what users did
    after the campaign began, and its messages would be due in the past."""
    start = parse_as_of(as_of or cmp.as_of or score_meta.get("as_of"))
    if not INSTANT_MIN <= start < INSTANT_MAX:
        raise ConfigError(f"the campaign start {as_of or cmp.as_of or score_meta.get('as_of')!r} is not between "
                          "1970 and 2199; pass a start such as --as-of 2026-11-01T00:00:00Z")
    scored = score_meta.get("as_of")
    if not scored:
        return start, None
    scored_at = parse_as_of(scored)
    if start < scored_at - 3600:
        raise ConfigError(
            f"the campaign starts at {iso_utc(start)}, before the scores' as_of {iso_utc(scored_at)}: the scores "
            "describe users after the campaign began and its messages would be due in the past. Pass a later "
            "--as-of (or [campaign] as_of), or score as of the campaign's start")
    age = start - scored_at
    if age > STALE_SCORES_SECONDS:
        return start, (f"the scores are {age / SECONDS_PER_DAY:.0f} days older than the campaign's start "
                       f"({iso_utc(scored_at)} vs {iso_utc(start)}): users who came back since are still in the "
                       "audience and fatigue counts miss what they got since. Rescore as of the start, or "
                       "send with --events so users who return leave the sequence")
    return start, None


def plan_meta_of(cmp: Campaign, start: int, broadcast: bool, seconds: float, ledger=None) -> dict:
    """The ``winback.plan`` metadata besides the summary and the sunset rule; ``ledger``: the
    ledger planned against, whose path and id ``winback send`` checks (:mod:`engine.ledger.identity`)."""
    from engine.ledger.identity import describe

    return {"campaign_id": cmp.id, "as_of": from_epoch_seconds(np.array([start])).to_pylist()[0].isoformat(),
            "broadcast": broadcast, "seconds": round(seconds, 3), **cmp.to_meta(),
            "ledger": describe(ledger) if ledger is not None else None,
            "ends_at": from_epoch_seconds(np.array([end_of(cmp, start)])).to_pylist()[0].isoformat()}


def timezone_counts(scores: pa.Table, cmp: Campaign) -> dict:
    """Scored users by where their timezone came from (``given``, ``phone``) and how many
    are planned in the campaign's timezone for want of one (``campaign_default``)."""
    if "timezone_source" in scores.column_names:
        counts = {v["values"]: int(v["counts"]) for v in pc.value_counts(scores["timezone_source"]).to_pylist()
                  if v["values"] != "default"}
    else:
        counts = {"given": scores.num_rows - int(scores["timezone"].null_count) if "timezone" in scores.column_names else 0}
    missing = int(scores["timezone"].null_count) if "timezone" in scores.column_names else scores.num_rows
    return counts | {f"campaign_default ({cmp.timezone})": missing}


def sunset_meta(cmp: Campaign, candidates: int, last_sent: int | None, start: int) -> dict:
    """The sunset rule as the report applies it: users messaged by this campaign who show
    no activity by ``review_at`` (the last planned send + ``window_days``) are sunset."""
    review = (last_sent if last_sent is not None else start) + cmp.policy.window_days * SECONDS_PER_DAY
    after = getattr(cmp.policy, "sunset_after", 0)
    got = f"{after} messages" if after else "every step"
    return {"enabled": cmp.policy.sunset_after_steps, "candidates": candidates, "after": after,
            "review_at": from_epoch_seconds(np.array([review])).to_pylist()[0].isoformat(),
            "rule": f"received {got} of this campaign and no activity (session, purchase, click) by review_at"}


def plan_summary(p: pa.Table) -> dict:
    """Counts per step x channel, per reason, and per UTC send hour."""
    planned = p.filter(pc.is_null(p["reason"]))
    by_step = planned.group_by(["step", "channel"]).aggregate([("user_id", "count")]).to_pylist()
    reasons = p.filter(pc.is_valid(p["reason"])).group_by(["reason"]).aggregate([("user_id", "count")]).to_pylist()
    hours = pc.hour(planned["send_at"]) if planned.num_rows else pa.array([], pa.int64())
    hour_counts = np.bincount(np.asarray(hours.to_numpy(zero_copy_only=False), np.int64), minlength=24).tolist() \
        if planned.num_rows else [0] * 24
    themes = {}
    if "theme" in p.column_names and planned.num_rows:
        themes = {r["theme"]: r["user_id_count"] for r in planned.filter(pc.is_valid(planned["theme"]))
                  .group_by(["theme"]).aggregate([("user_id", "count")]).to_pylist()}
    return {"rows": p.num_rows, "planned": planned.num_rows, "by_theme": dict(sorted(themes.items())),
            "by_step_channel": {f"{r['step']}/{r['channel']}": r["user_id_count"] for r in by_step},
            "by_reason": {r["reason"]: r["user_id_count"] for r in reasons},
            "by_utc_hour": hour_counts}


