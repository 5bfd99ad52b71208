"""One partition's planning state, step by step (used by :func:`engine.planning.planner.plan` and
:func:`engine.planning.partitioned.plan_partitioned`).

Everything the planner decides is per user except three things, which the caller
settles over the whole population: the broadcast guard (counts of the audience and
the reachable users, :meth:`PartitionPlan.prelude`), the value of users who never bought (the median
of the buyers' mean purchase value), and hourly capacity per channel.  So a partition is built,
reports its :meth:`~PartitionPlan.prelude`, takes the settled values
(:meth:`~PartitionPlan.settle`), and then each step is two calls: :meth:`PartitionPlan.candidates` returns the messages competing for capacity
(with their ordering keys: confident send time first, then expected value, then user
id), the caller levels them over every partition at once
(:func:`engine.planning.timing.level_capacity`), and :meth:`PartitionPlan.apply` takes the
new times back.  The result does not depend on how users are split into partitions or
ordered within them.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.planning import timing as pt
from engine.planning.assemble import assemble
from engine.planning.assign import assignments
from engine.planning.campaign import Campaign
from engine.planning.columns import col
from engine.planning.guard import check_guard_columns, complained_users, suppressed_matrix, unknown_guards
from engine.planning.pressure import clear_of_contacts, ledger_contacts, max_in_windows, over_other_caps
from engine.schema import (ADDRESS_COLUMN, CHANNELS, CONSENT_COLUMN, GRACE_SECONDS, PROVIDER_CHANNELS,
                           SECONDS_PER_DAY, NEVER, SKIP_REASONS)
from engine.scoring.fatigue_model import campaign_budget
from engine.io.meta import SCORE, read_meta
from engine.tz import Offsets, is_timezone, offset_table, zone_index

__all__ = ["PartitionPlan", "Leveller", "value_fill", "horizon_of", "end_of", "col", "REASONS", "R", "NEVER"]

REASONS = SKIP_REASONS
R = {name: i for i, name in enumerate(REASONS)}
#: seconds a message may go out after its planned instant and still be on time at send: steps keep
#: this far clear of an earlier one's window edge
EDGE = GRACE_SECONDS
#: a message whose send time is at least this confident keeps its hour first
CONFIDENT = 0.4
#: the response rate of a channel whose rate is unknown (missing, null, NaN): scoring's Beta(1, 9) prior
UNKNOWN_RESPONSE = 0.1


def horizon_of(cmp: Campaign, start: int) -> int:
    """Last instant (epoch s, UTC) the plan looks at: the summed delays plus 10 days."""
    return start + int((sum(s.delay_days for s in cmp.steps) + 10) * SECONDS_PER_DAY)


def end_of(cmp: Campaign, start: int) -> int:
    """The campaign's end (epoch s, UTC): ``[campaign] ends_at``, else the plan's horizon
    (:func:`horizon_of`).  No message is planned, or released by ``winback send``, after it."""
    if cmp.ends_at is None:
        return horizon_of(cmp, start)
    from engine.errors import ConfigError
    from engine.tz import parse_as_of

    end = parse_as_of(cmp.ends_at)
    if end <= start:
        raise ConfigError(f"{cmp.source}: [campaign] ends_at {cmp.ends_at} is not after the campaign start; "
                          "move ends_at later or start earlier (--as-of)")
    return end


def _reach(scores: pa.Table, suppressions, ledger, cmp: Campaign | None = None,
           src: str = "a scores partition") -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """[users, PROVIDER_CHANNELS] consent, address and reach (the last column: ``ads``,
    :mod:`engine.planning.ads`), and per opt-out column of ``cmp``'s channels the users whose
    value is null (:func:`~engine.planning.guard.unknown_guards`).

    Opt-outs fail safe like consent: scores without the ``<channel>_suppressed`` or
    ``complained`` column ``cmp`` needs are refused (:func:`~engine.planning.guard.check_guard_columns`),
    and a null there counts as suppressed (a null ``complained``: on every channel, whose
    reason is then ``suppressed``: the user is not known to have complained)."""
    n = scores.num_rows
    if cmp is not None:
        check_guard_columns(scores, cmp, src)
    unknown = unknown_guards(scores, cmp) if cmp is not None else {}
    consent = np.stack([col(scores, CONSENT_COLUMN[c], False, bool) for c in CHANNELS], axis=1)
    address = np.stack([scores[ADDRESS_COLUMN[c]].is_valid().to_numpy(zero_copy_only=False)
                        if ADDRESS_COLUMN[c] in scores.column_names else np.zeros(n, bool) for c in CHANNELS], axis=1)
    # a null is suppressed; a column of a channel the campaign does not use may be missing (not suppressed)
    suppressed = np.stack([col(scores, f"{c}_suppressed", True, bool) if f"{c}_suppressed" in scores.column_names
                           else np.zeros(n, bool) for c in CHANNELS], axis=1)
    suppressed |= suppressed_matrix(ledger, scores, suppressions)
    from engine.planning.ads import ads_reach, ledger_suppressions

    a_consent, a_address, a_supp = ads_reach(scores, [suppressions] + ledger_suppressions(ledger))
    consent = np.column_stack([consent, a_consent])
    address = np.column_stack([address, a_address])
    suppressed = np.column_stack([suppressed, a_supp])
    if "complained" in unknown:
        suppressed |= unknown["complained"][:, None]
    return consent, address, consent & address & ~suppressed, unknown


def _best_hour_in_campaign_zone(scores: pa.Table, campaign_tz: str, start: int) -> np.ndarray:
    """``best_hour_local`` per user, in the zone the plan sends in.

    The one timezone rule (:func:`engine.tz.infer_timezones`): a user with a timezone
    (given or inferred) keeps it; a user without one was scored in the scores'
    ``default_timezone`` and is planned in the campaign's, so their best hour moves by
    the difference of the two UTC offsets at the campaign start: the same UTC instant.
    """
    hour = col(scores, "best_hour_local", 12, np.int64)
    learned = read_meta(scores, SCORE).get("default_timezone")
    if not learned or learned == campaign_tz or "timezone" not in scores.column_names:
        return hour
    if not (is_timezone(learned) and is_timezone(campaign_tz)):
        return hour
    offsets = Offsets([campaign_tz, learned], start, start)
    shift = float(np.diff(offsets.at(np.array([1, 0]), np.array([start, start])))[0])
    unknown = scores["timezone"].is_null().to_numpy(zero_copy_only=False)
    return np.where(unknown, (hour + int(round(shift / 3600))) % 24, hour)


def value_fill(preludes: list[dict]) -> float:
    """The median buyers' value over all partitions (1.0 when nobody bought)."""
    m = np.concatenate([p["monetary"] for p in preludes]) if preludes else np.zeros(0)
    return float(np.median(m)) if m.size else 1.0


class PartitionPlan:
    """Per-user planning state of one partition; see the module docstring."""

    def __init__(self, scores: pa.Table, cmp: Campaign, start: int, *, suppressions=None, ledger=None, items=None):

        self.scores, self.cmp, self.start = scores, cmp, int(start)
        n = self.n = scores.num_rows
        self.uid = scores["user_id"].to_numpy()
        self._local_zones, self._local_zone = zone_index(scores, cmp.timezone)
        self.horizon = horizon_of(cmp, self.start)
        self.end = end_of(cmp, self.start)
        self.content = None
        if items is not None:
            from engine.planning.content import ContentPlanner

            self.content = ContentPlanner(scores, items, cmp, self.start, self.horizon)
        self.audience = cmp.audience(scores)
        self.step_where = [s.where(scores) if s.where is not None else None for s in cmp.steps]
        self.holdout, self.variant = assignments(self.uid, cmp)
        self.consent, self.address, self.reach, unknown = _reach(scores, suppressions, ledger, cmp)
        #: users per opt-out column whose value is null (planned as suppressed), for the plan's warnings
        self.unknown_guards = {name: int(v.sum()) for name, v in unknown.items()}
        # a spam complaint on one channel stops every marketing channel ([policy] complaint_suppresses)
        self.complained = np.zeros(n, bool)
        if getattr(cmp.policy, "complaint_suppresses", "all") == "all":
            self.complained = complained_users(ledger, scores, suppressions)
            self.reach &= ~self.complained[:, None]
        # a missing, null or NaN response rate is unknown: the prior 'winback score' gives a channel with no
        # history (0.1), so the channel is still ranked and chosen (NaN compares false: it would never be)
        resp = np.stack([col(scores, f"{c}_response_rate", UNKNOWN_RESPONSE, np.float64) for c in PROVIDER_CHANNELS], axis=1)
        self.resp = np.where(np.isfinite(resp), resp, UNKNOWN_RESPONSE)
        self._monetary = col(scores, "monetary", np.nan, np.float64)
        self.p_alive = col(scores, "p_alive", 0.5, np.float64)
        # the learned budget is recomputed for this campaign's cap and window (not the score-time cap)
        self.budget = campaign_budget(scores, cmp.policy.max_messages, cmp.policy.window_days,
                                      col(scores, "fatigue_budget", cmp.policy.max_messages, np.int64))
        self.hist_recent = col(scores, "sends_7d" if cmp.policy.window_days == 7 else "sends_30d", 0, np.int64)
        # held at 0 with no message in the window: not worth one message even at no load (the learned
        # budget's first message fails there, and a later window cannot lower the load): no step at all
        self.not_worth = (self.budget <= 0) & (self.hist_recent <= 0)
        # a sequence the first window's budget holds back starts in the next window (:meth:`_defer`),
        # whose budget counts the messages received before the campaign as aged out: the first
        # window's budget plus those messages, at most the cap (the learned budget at no load is
        # at most that, the fixed rule's is that); computed from the columns alone, so a plan from
        # scores read back from CSV (no metadata) is the same plan
        self.fresh = np.where(self.not_worth, 0, np.minimum(cmp.policy.max_messages,
                                                            self.budget + np.maximum(self.hist_recent, 0)))
        self.deferred = np.zeros(n, bool)
        if cmp.policy.survey_actions:  # earlier survey answers: a lower cap, or no message (engine.planning.survey)
            from engine.planning.survey import survey_masks

            lower, gone = survey_masks(cmp.policy.survey_actions, self.uid)
            self.budget = np.where(lower, np.minimum(self.budget, cmp.policy.survey_cap), self.budget)
            self.fresh = np.where(lower, np.minimum(self.fresh, cmp.policy.survey_cap), self.fresh)
            self.reach &= ~gone[:, None]
        # every other campaign's messages in the ledger, sent or scheduled (engine.pressure)
        # back as far as the cap window and every gap reaches (a gap may be longer than the window)
        window = cmp.policy.window_days * SECONDS_PER_DAY
        back = max(window, int(cmp.policy.min_gap_hours * 3600))
        self.ext_t, self.ext_c, self.ext_gap, self.ext_cap, self.ext_win = ledger_contacts(
            ledger, self.uid, cmp.id, self.start - back, self.horizon + back, gaps_before=self.start, caps=True)
        self.best_hour = _best_hour_in_campaign_zone(scores, cmp.timezone, self.start)
        self.conf = col(scores, "send_time_confidence", 0.0, np.float64)
        n_steps = len(cmp.steps)
        self.sent_at = np.full((n, n_steps), NEVER, np.int64)
        self.sent_ch = np.full((n, n_steps), -1, np.int64)
        self.prev_at = np.full(n, NEVER, np.int64)
        self.cols: dict[str, list] = {k: [] for k in ("reason", "channel", "send_at", "ev")}
        self.cum_delay = 0.0
        self._step = None

    def prelude(self) -> dict:
        """What the whole population must agree on, from this partition: its timezone names,
        audience and reach counts (broadcast guard), and its buyers' mean purchase values."""
        # the owned channels (plus ads when a step uses it): the guard's counts of a campaign
        # without an ads step do not change with consent_ads
        uses_ads = any("ads" in st.channels for st in self.cmp.steps)
        any_reach = self.reach[:, :None if uses_ads else len(CHANNELS)].any(axis=1)
        return {"zones": list(self._local_zones), "reachable": int(any_reach.sum()),
                "audience_reachable": int((self.audience & any_reach).sum()),
                "monetary": self._monetary[np.isfinite(self._monetary)]}

    def settle(self, zones: list[str], fill_value: float) -> "PartitionPlan":
        """Take the population's settled values: every partition's timezone names (the
        zone indexes shared with :class:`Leveller`) and the value of users who never bought."""
        gpos = {z: i for i, z in enumerate(zones)}
        self.zones = list(zones)
        self.zone = np.array([gpos[z] for z in self._local_zones], np.int64)[self._local_zone] if self.n \
            else np.zeros(0, np.int64)
        self.table, self.tab_t0 = offset_table(self.zones, self.start - 2 * SECONDS_PER_DAY, self.horizon)
        self.off = pt.OffsetLookup(self.table, self.tab_t0)
        self.value = np.where(np.isnan(self._monetary), fill_value, self._monetary)
        return self

    def sunset_counts(self) -> tuple[int, int | None]:
        """(users with a planned message, the last planned instant or None) for the sunset rule."""
        planned = self.sent_at != NEVER
        return int(planned.any(axis=1).sum()), (int(self.sent_at[planned].max()) if planned.any() else None)

    def candidates(self, k: int) -> dict[int, dict[str, np.ndarray]]:
        """Step ``k`` up to capacity; per capacity-limited channel the competing messages:
        ``t`` wanted instant, ``floor`` earliest allowed, ``zone`` (global index),
        ``confident``, ``ev``, ``uid`` (the ordering keys)."""
        cmp, n, pol, start = self.cmp, self.n, self.cmp.policy, self.start
        off, zone, sent_at, sent_ch, prev_at = self.off, self.zone, self.sent_at, self.sent_ch, self.prev_at
        step = cmp.steps[k]
        window = pol.window_days * SECONDS_PER_DAY
        gap = int(pol.min_gap_hours * 3600)
        quiet = pol.quiet_hours
        self.cum_delay += step.delay_days
        reason = np.zeros(n, np.int8)
        reason[~self.audience] = R["not_in_audience"]
        if self.step_where[k] is not None:  # the step's own rule (e.g. an ads step for unresponsive users),
            reason[(reason == 0) & ~self.step_where[k]] = R["not_in_step"]   # before the holdout: same in both arms
        reason[(reason == 0) & self.holdout] = R["holdout"]
        reason[(reason == 0) & self.complained] = R["complaint"]
        # the delay runs in the user's wall time: "3 days later at 09:00" stays 09:00 across DST
        delay = int(step.delay_days * SECONDS_PER_DAY)
        has_prev = prev_at != NEVER
        after_prev = pt.local_to_utc(off, zone, off.local(zone, np.where(has_prev, prev_at, start)) + delay)
        base = np.where(has_prev, after_prev, start + int(self.cum_delay * SECONDS_PER_DAY))
        # channel choice
        allowed = [PROVIDER_CHANNELS.index(c) for c in step.channels]
        best_c = np.full(n, -1, np.int64)
        best_r = np.full(n, -1.0)
        capped_any = np.zeros(n, bool)
        for c_i in allowed:
            ok = self.reach[:, c_i].copy()
            cap = pol.channel_caps.get(PROVIDER_CHANNELS[c_i])
            if cap is not None:  # this campaign's earlier steps and the ledger's messages on the channel
                on_channel = np.concatenate([np.where(sent_ch == c_i, sent_at, NEVER),
                                             np.where(self.ext_c == c_i, self.ext_t, NEVER)], axis=1)
                over = max_in_windows(on_channel, base, window) >= cap
                capped_any |= ok & over
                ok &= ~over
            better = ok & (self.resp[:, c_i] > best_r)
            best_c = np.where(better, c_i, best_c)
            best_r = np.where(better, self.resp[:, c_i], best_r)
        none = (reason == 0) & (best_c < 0)
        al = np.array(allowed)
        has_consent = self.consent[:, al].any(axis=1)
        has_addr = (self.consent[:, al] & self.address[:, al]).any(axis=1)
        reason[none & ~has_consent] = R["no_consent"]
        reason[none & has_consent & ~has_addr] = R["no_address"]
        reason[none & has_addr & ~capped_any] = R["suppressed"]
        reason[none & has_addr & capped_any] = R["channel_cap"]
        # time
        t = pt.next_local_time(off, zone, base, self.best_hour * 60)
        t = pt.apply_quiet_hours(off, zone, t, quiet)
        lower = np.where(prev_at != NEVER, prev_at + gap, start)
        pushed = t < lower
        if pushed.any():
            t = np.where(pushed, pt.apply_quiet_hours(off, zone, np.maximum(t, lower), quiet), t)
        # not on the edge of an earlier step's window: a message goes out up to EDGE late, and a step
        # planned exactly one window after it would meet it at send (the release check counts the real
        # sent_at) and be skipped as 'cap'; a few minutes later it is clear (quiet hours kept)
        edge = (sent_at != NEVER) & (sent_at > t[:, None] - window - EDGE) & (sent_at <= t[:, None] - window)
        if edge.any():
            near = edge.any(axis=1)
            clear = np.where(edge, sent_at, NEVER).max(axis=1) + window + EDGE
            t = np.where(near, pt.apply_quiet_hours(off, zone, np.maximum(t, clear), quiet), t)
        # the gap from every other campaign's messages in the ledger, sent or scheduled: the larger
        # of this campaign's and that message's campaign's, so each one's promise holds both ways
        own_t = t
        t, conflict = clear_of_contacts(self.ext_t, t, np.maximum(self.ext_gap, gap),
                                        lambda x: pt.apply_quiet_hours(off, zone, x, quiet))
        late = t - base > 2 * SECONDS_PER_DAY
        reason[(reason == 0) & late & (t != own_t)] = R["min_gap_other_campaigns"]
        reason[(reason == 0) & late] = R["min_gap"]
        reason[(reason == 0) & conflict] = R["min_gap_other_campaigns"]
        # fatigue: the score's budget, and the cross-channel cap at the send time
        in_window = ((sent_at != NEVER) & (sent_at > t[:, None] - window)).sum(axis=1)
        hist = np.where(t - start < window, self.hist_recent, 0)
        # the scored budget covers the first policy window; later windows get the full cap, except
        # a deferred sequence's own first window (the next one), under the budget with no load
        first_window = t - start < window
        second = self.deferred & (t >= start + window) & (t - start < 2 * window)
        budget = np.where(second, self.fresh, self.budget)
        tired = ((first_window | second) & (in_window >= budget)) | (hist + in_window >= pol.max_messages)
        tired |= self.not_worth
        # a sequence the first window's budget holds back starts when that window is over, rather
        # than losing its first steps and sending only the last ("last chance" as the one message)
        wait = (reason == 0) & tired & first_window & (prev_at == NEVER) & ~self.not_worth & ~self.deferred
        if wait.any():
            tired &= ~self._defer(np.nonzero(wait)[0], t, reason, best_c, window)
            hist = np.where(t - start < window, self.hist_recent, 0)
        reason[(reason == 0) & tired] = R["fatigue_budget"]
        if self.ext_t.shape[1]:  # the cap over every campaign: any window holding t, exactly
            every = max_in_windows(np.concatenate([sent_at, self.ext_t], axis=1), t, window + EDGE)
            reason[(reason == 0) & (hist + every >= pol.max_messages)] = R["cap_other_campaigns"]
            # ... and each other campaign's cap while its message is in its own window (send's rule)
            reason[(reason == 0) & over_other_caps(sent_at, self.ext_t, self.ext_cap, self.ext_win, t)] = \
                R["cap_other_campaigns"]
        ev = self.p_alive * self.value * np.where(best_c >= 0, self.resp[np.arange(n), np.maximum(best_c, 0)], 0.0)
        self._step = (k, reason, best_c, t, ev)
        out: dict[int, dict[str, np.ndarray]] = {}
        if not pol.capacity_per_hour:
            return out
        # A message may move earlier only as far as keeps the caps checked above true: not
        # into the first policy window (where the score's recent sends and budget count)
        # and not so far that an earlier message of this campaign re-enters its window; and
        # never before its step's delay after the previous step ("3 days later" stays 3 days).
        floor = np.maximum(np.maximum(lower, start), base)
        floor = np.where(t >= start + window, np.maximum(floor, start + window), floor)
        old = (sent_at != NEVER) & (sent_at <= t[:, None] - window)
        floor = np.maximum(floor, np.where(old, sent_at + window + EDGE, NEVER).max(axis=1, initial=NEVER))
        for c_i in allowed:
            if pol.capacity_per_hour.get(PROVIDER_CHANNELS[c_i]) is None:
                continue
            idx = np.nonzero((reason == 0) & (best_c == c_i))[0]
            out[c_i] = {"t": t[idx], "floor": floor[idx], "zone": zone[idx], "ev": ev[idx],
                        "confident": self.conf[idx] >= CONFIDENT, "uid": self.uid[idx]}
        return out

    def _defer(self, idx: np.ndarray, t: np.ndarray, reason: np.ndarray, best_c: np.ndarray,
               window: int) -> np.ndarray:
        """Move the first message of the users ``idx`` (held by the first window's budget, nothing
        planned yet) to their best hour after ``start + window``, out of quiet hours and clear of
        other campaigns' messages, where the cap over every campaign and the channel's cap still
        hold; ``t``/``reason`` are updated in place.  Returns bool[n]: the users moved (or now
        skipped for another reason), whom the budget no longer holds."""
        pol, off, zone = self.cmp.policy, self.off, self.zone[idx]
        quiet, gap = pol.quiet_hours, int(pol.min_gap_hours * 3600)
        after = np.full(len(idx), self.start + window, np.int64)
        # (the next best hour may come out before ``after`` on a DST day, as in candidates: never earlier)
        t2 = pt.apply_quiet_hours(off, zone, np.maximum(pt.next_local_time(off, zone, after, self.best_hour[idx] * 60),
                                                        after), quiet)
        ext_t = self.ext_t[idx]
        t2, conflict = clear_of_contacts(ext_t, t2, np.maximum(self.ext_gap[idx], gap),
                                         lambda x: pt.apply_quiet_hours(off, zone, x, quiet))
        r2 = np.zeros(len(idx), np.int8)
        r2[conflict] = R["min_gap_other_campaigns"]
        if ext_t.shape[1]:
            r2[(r2 == 0) & (max_in_windows(ext_t, t2, window + EDGE) >= pol.max_messages)] = R["cap_other_campaigns"]
            r2[(r2 == 0) & over_other_caps(self.sent_at[idx], ext_t, self.ext_cap[idx], self.ext_win[idx], t2)] = \
                R["cap_other_campaigns"]
            c = best_c[idx]
            for c_i in np.unique(c[c >= 0]):
                cap = pol.channel_caps.get(PROVIDER_CHANNELS[c_i])
                if cap is not None:
                    on = np.where(self.ext_c[idx] == c_i, ext_t, NEVER)
                    r2[(r2 == 0) & (c == c_i) & (max_in_windows(on, t2, window) >= cap)] = R["channel_cap"]
        r2[(r2 == 0) & (self.fresh[idx] <= 0)] = R["fatigue_budget"]  # (a survey's cap of 0: none)
        go = t2 <= self.end  # past the campaign's end the budget is the reason it is not sent
        idx, t2, r2 = idx[go], t2[go], r2[go]
        t[idx] = t2
        reason[idx] = r2
        self.deferred[idx] = True
        moved = np.zeros(len(t), bool)
        moved[idx] = True
        return moved

    def apply(self, k: int, leveled: dict[int, np.ndarray]) -> None:
        """Finish step ``k`` with the capacity-levelled instants (-1 = no hour had room)."""
        kk, reason, best_c, t, ev = self._step
        assert kk == k, "apply() the step that candidates() prepared"
        for c_i, new_t in leveled.items():
            idx = np.nonzero((reason == 0) & (best_c == c_i))[0]
            t[idx] = np.where(new_t >= 0, new_t, t[idx])
            reason[idx[new_t < 0]] = R["capacity"]
        reason[(reason == 0) & (t > self.end)] = R["campaign_end"]
        ok = reason == 0
        if self.content is not None:
            # every audience user, messaged or not: the theme is a function of the scores
            # alone, the same in both arms, so the report can compare them theme by theme
            self.content.step(self.cmp.steps[k], t, self.audience)
        self.sent_at[ok, k] = t[ok]
        self.sent_ch[ok, k] = best_c[ok]
        self.prev_at = np.where(ok, t, self.prev_at)
        self.cols["reason"].append(reason)
        self.cols["channel"].append(np.where(reason == 0, best_c, -1))
        self.cols["send_at"].append(np.where(ok, t, NEVER))
        self.cols["ev"].append(np.where(best_c >= 0, ev, 0.0))
        self._step = None

    def drop_scores(self) -> "PartitionPlan":
        """Forget the scores table (keep only the per-user arrays); :meth:`table_out`
        then needs the scores again.  Keeps the state small between steps."""
        self.scores = None
        return self

    def table_out(self, scores: pa.Table | None = None) -> pa.Table:
        """The partition's plan rows (no metadata); ``scores``: the partition's scores,
        when :meth:`drop_scores` was called."""

        scores = self.scores if scores is None else scores
        return assemble(scores, self.cmp, self.uid, self.holdout, self.variant, self.cols, self.start,
                         self.zone, self.zones, self.content)


class Leveller:
    """Hourly capacity per channel over the whole population, step after step."""

    def __init__(self, cmp: Campaign, start: int, zones: list[str]):
        self.cmp = cmp
        self.h_base = start // 3600 - 48
        hz = horizon_of(cmp, start)
        self.n_buckets = int((hz + 3 * SECONDS_PER_DAY) // 3600 - self.h_base)
        self.table, self.tab_t0 = offset_table(list(zones), start - 2 * SECONDS_PER_DAY, hz)
        self.counts: dict[int, np.ndarray] = {}

    def level(self, parts: list[dict[int, dict[str, np.ndarray]]]) -> list[dict[int, np.ndarray]]:
        """New instants for every partition's candidates, in one global order per channel:
        confident send times first, then higher expected value, then lower user id."""
        pol = self.cmp.policy
        qs, qe = pol.quiet_hours if pol.quiet_hours else (0, 0)
        out: list[dict[int, np.ndarray]] = [{} for _ in parts]
        channels = sorted({c for p in parts for c in p})
        for c_i in channels:
            have = [i for i, p in enumerate(parts) if c_i in p]
            cat = {key: np.concatenate([parts[i][c_i][key] for i in have]) for key in parts[have[0]][c_i]}
            counts = self.counts.setdefault(c_i, np.zeros(self.n_buckets, np.int64))
            order = np.lexsort((cat["uid"], -cat["ev"], -cat["confident"].astype(np.int64)))
            new_t = pt.level_capacity(cat["t"], order.astype(np.int64), cat["zone"], cat["floor"],
                                      int(pol.capacity_per_hour[PROVIDER_CHANNELS[c_i]]), self.table, np.int64(self.tab_t0),
                                      int(qs), int(qe), 12, counts, np.int64(self.h_base)) \
                if len(order) else np.zeros(0, np.int64)
            lo = 0
            for i in have:
                m = len(parts[i][c_i]["t"])
                out[i][c_i] = new_t[lo:lo + m]
                lo += m
        return out

