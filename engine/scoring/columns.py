"""The scores table's per-user columns, derived from one partition's accumulators and the
population's fits (phase 3 of :mod:`engine.scoring.pipeline`).

Units: epoch seconds (UTC) in the accumulators, days in the BG/NBD columns and
``days_inactive``; timestamps out as ``timestamp[s, UTC]``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.schema import ADDRESS_COLUMN, CHANNELS, CONSENT_COLUMN, LIFECYCLE, NEVER, SECONDS_PER_DAY
from engine.scoring import cohorts, fatigue, fatigue_model, kernels, lapse, lapse_learned, lapse_models, sendtime
from engine.scoring.fatigue import quintile_of as _quintile
from engine.tz import from_epoch_seconds, iso_utc, next_local_hour, to_epoch_seconds

__all__ = ["derive", "rfm_keys"]


_RFM_CODES = [f"{r}{f}{m}" for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)]


def _ts_col(values: np.ndarray) -> pa.Array:
    null = values == NEVER
    return from_epoch_seconds(np.where(null, 0, values), null_mask=null)


#: the newest activity this many days or more before as_of is said (an old export, a mistyped --as-of)
STALE_DAYS = 7.0


def stale_warning(newest: int, as_of: int) -> str | None:
    """A warning when no user was active in the :data:`STALE_DAYS` days before ``as_of`` (epoch s UTC).

    Every user then looks at least that long inactive, and lapse_risk, the lifecycle and a
    campaign's audience follow: the usual cause is an export older than ``as_of`` (scored
    with the default, now) or a mistyped ``--as-of``."""
    if newest == NEVER or as_of - newest < STALE_DAYS * SECONDS_PER_DAY:
        return None
    day = from_epoch_seconds(np.array([newest // SECONDS_PER_DAY * SECONDS_PER_DAY + SECONDS_PER_DAY])).to_pylist()[0]
    return (f"the newest activity in the events is {(as_of - newest) / SECONDS_PER_DAY:.1f} days before as_of "
            f"{iso_utc(as_of)}, so every user looks inactive for at least that long; if the export ends earlier, "
            f"score as of its end (e.g. --as-of {day.date().isoformat()})")


def rfm_keys(acc, as_of, x, in_window) -> dict[str, np.ndarray]:
    """Per user the RFM ranking keys (higher is better), NaN when the user has none."""
    has_act = acc.last_act != NEVER
    days_inactive = np.where(has_act, (as_of - acc.last_act) / SECONDS_PER_DAY, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        # the mean of the values that are known: a purchase without a value is no purchase of 0
        monetary = np.where(acc.valued > 0, acc.revenue / np.maximum(acc.valued, 1), np.nan)
    return {"r": -days_inactive, "f": np.where(in_window, x, np.nan), "m": monetary}


def derive(part, pop):
    """Every per-user column :func:`engine.scoring.pipeline.finalize` adds, and the summary's
    model parts: ``(columns by name, in output order; meta)``, given one partition's
    ``Partial`` and the population's ``Population``."""
    cfg, acc, table, zones, user_tz = part.cfg, part.acc, part.table, part.zones, part.user_tz
    x, t_x, T, in_window = part.x, part.t_x, part.T, part.in_window
    as_of, model_window_days = cfg.as_of, cfg.model_window_days
    n = table.num_rows
    cols: dict[str, pa.Array] = {}
    rep = in_window & (x > 0)
    # users with no repeat activity: MBG/NBD-style first-day dropout (see module docstring)
    signup = (to_epoch_seconds(table["signup_at"]) if "signup_at" in table.column_names
              else np.full(n, NEVER, np.int64))
    since = np.where(acc.last_act != NEVER, acc.last_act,
                     np.where(signup != NEVER, signup, as_of - model_window_days * SECONDS_PER_DAY))
    T0 = np.maximum((as_of - since) / SECONDS_PER_DAY, 0.0)
    pop_h = np.array([pop.hour_share[z] for z in zones]).reshape(len(zones), 24)
    pop_w = np.array([pop.wd_share[z] for z in zones]).reshape(len(zones), 7)
    group = user_tz
    if getattr(pop, "cohorts", None):  # the send-time prior per (timezone, cohort): engine.scoring.cohorts
        group, pop_h, pop_w = cohorts.group_priors(pop_h, pop_w, user_tz, *part.cohort_codes, pop.cohorts)
    bt = sendtime.best_times_given(acc.hour_hist, acc.wd_hist, group, pop_h, pop_w, cfg.prior_weight,
                                   pop.hour_spread)
    acc.hour_hist = acc.wd_hist = None
    beta_u, q_u = fatigue_model.user_params(part.fatigue, pop.fatigue)
    keys = part.rfm if getattr(part, "rfm", None) is not None else rfm_keys(acc, as_of, x, in_window)
    part.rfm = None
    days_inactive = -keys["r"]
    has_act = acc.last_act != NEVER
    cols["last_active_at"] = _ts_col(acc.last_act)
    cols["days_inactive"] = pa.array(days_inactive, pa.float64(), mask=~has_act)
    cols["frequency"] = pa.array(x.astype(np.int32))
    cols["recency_days"] = pa.array(t_x)
    cols["tenure_days"] = pa.array(T)
    monetary = keys["m"]
    cols["monetary"] = pa.array(monetary, pa.float64(), mask=acc.valued == 0)
    cols["purchases"] = pa.array(acc.purchases)
    cols["last_purchase_at"] = _ts_col(acc.last_purchase)
    has_p = acc.last_purchase != NEVER
    cols["days_since_purchase"] = pa.array(np.where(has_p, (as_of - acc.last_purchase) / SECONDS_PER_DAY, np.nan),
                                           pa.float64(), mask=~has_p)
    streak = kernels.unengaged_streak(acc.recent_age, acc.last_eng, np.int64(as_of))
    acc.recent_age = None  # spent (96 bytes a user): see finalize
    reachable = np.zeros((n, 3), bool)
    for c_i, c in enumerate(CHANNELS):
        supp = acc.suppressed[:, c_i] != 0
        cols[f"{c}_sends_90d"] = pa.array(acc.sends90[:, c_i])
        cols[f"{c}_opens_90d"] = pa.array(acc.opens90[:, c_i])
        cols[f"{c}_clicks_90d"] = pa.array(acc.clicks90[:, c_i])
        cols[f"{c}_unengaged_streak"] = pa.array(streak[:, c_i])
        cols[f"{c}_last_engaged_at"] = _ts_col(acc.last_eng[:, c_i])
        cols[f"{c}_suppressed"] = pa.array(supp)
        # Beta(1, 9) prior: a channel with no history is assumed to answer 10 % of the time
        resp = (acc.opens90[:, c_i] + acc.clicks90[:, c_i] + 1.0) / (acc.sends90[:, c_i] + 10.0)
        cols[f"{c}_response_rate"] = pa.array(np.minimum(resp, 1.0))
        consent = table[CONSENT_COLUMN[c]].fill_null(False).to_numpy(zero_copy_only=False) \
            if CONSENT_COLUMN[c] in table.column_names else np.zeros(n, bool)
        addr = table[ADDRESS_COLUMN[c]].is_valid().to_numpy(zero_copy_only=False) \
            if ADDRESS_COLUMN[c] in table.column_names else np.zeros(n, bool)
        reachable[:, c_i] = consent & addr & ~supp
    acc.last_eng = None
    # the lapse columns (and lifecycle) come last: the lapse model may still be being chosen beside
    # this (Population.lapse); their places in the output are kept
    cols["p_alive"] = cols["lapse_risk"] = cols["expected_active_days_30d"] = None
    nxt = next_local_hour(zones, as_of)
    cols["best_hour_local"] = pa.array(bt["best_hour"])
    cols["best_weekday"] = pa.array(bt["best_weekday"])
    cols["send_time_confidence"] = pa.array(bt["confidence"])
    cols["next_send_at"] = from_epoch_seconds(nxt[user_tz, bt["best_hour"].astype(np.int64)])
    cols["engagements"] = pa.array(acc.eng_count)
    cols["sends_7d"] = pa.array(acc.sends7)
    cols["sends_30d"] = pa.array(acc.sends30)
    complained = (acc.suppressed & kernels.SUPPRESS_COMPLAINT).any(axis=1)
    cols["complained"] = pa.array(complained)  # on any channel: planning stops every marketing channel
    recent = acc.sends7 if cfg.policy_window_days == 7 else acc.sends30
    cols["fatigue_sensitivity"], cols["fatigue_response"] = pa.array(beta_u), pa.array(q_u)
    fatigue_used, fatigue_warning = fatigue_model.effective(cfg.fatigue, pop.fatigue)
    cols["fatigue_budget"] = pa.array(
        fatigue.fatigue_budget(recent, streak, reachable, complained, cfg.policy_cap) if fatigue_used == "rule" else
        fatigue_model.budget(beta_u, q_u, recent, complained, cap=cfg.policy_cap, window_days=cfg.policy_window_days,
                             u0=pop.fatigue["unsubscribe_per_message"]))
    part.fatigue = None
    cols["lifecycle"] = None
    cols["contact_rating"] = pa.array(fatigue.contact_rating(acc.sends90.sum(1), acc.opens90.sum(1),
                                                             acc.clicks90.sum(1)))
    r, f, m = (_quintile(keys[k], pop.rfm_cuts[k]) for k in ("r", "f", "m"))
    cols["rfm_r"], cols["rfm_f"], cols["rfm_m"] = pa.array(r), pa.array(f), pa.array(m)
    # "RFM" as three digits, by table look-up (125 codes) rather than per-user strings
    code = (r.astype(np.int32) - 1) * 25 + (f.astype(np.int32) - 1) * 5 + (m.astype(np.int32) - 1)
    cols["rfm"] = pa.array(_RFM_CODES, pa.string()).take(pa.array(code))
    lapse_model, pareto = pop.lapse()
    choice = dict(lapse_model or {"mode": cfg.lapse_model, "used": "closed_form", "reason": "no lapse model"})
    closed, closed_warning = lapse_models.closed_form_of(choice, pop.model, pareto)
    p_alive, exp30, risk = lapse.scores_for(closed, x, t_x, T, rep, T0, cfg.horizon_days)
    risk = lapse_learned.apply(choice, in_window, x, acc.first_act_window // SECONDS_PER_DAY,
                               acc.last_act // SECONDS_PER_DAY, as_of=as_of, horizon_days=cfg.horizon_days,
                               params=pop.params, risk=risk)
    cols["p_alive"] = pa.array(p_alive)
    cols["lapse_risk"] = pa.array(risk)
    cols["expected_active_days_30d"] = pa.array(exp30)
    stage = fatigue.lifecycle(days_inactive, p_alive)
    cols["lifecycle"] = pa.array(list(LIFECYCLE), pa.string()).take(pa.array(stage.astype(np.int32)))
    counts = np.bincount(stage, minlength=5)
    meta = {
        "model": dict(pop.model),
        "lifecycle": {name: int(c) for name, c in zip(LIFECYCLE, counts)},
        "timezone_sources": ({v["values"]: int(v["counts"]) for v in pc.value_counts(table["timezone_source"]).to_pylist()}
                             if "timezone_source" in table.column_names else {}),  # engine.tz.infer_timezones
        "send_time": {"prior_weight": cfg.prior_weight, "sparse_spread": pop.hour_spread and {
                          k: pop.hour_spread[k] for k in ("rho", "sigma")},
                      "population_best_hour": {z: int(np.argmax(s)) for z, s in pop.hour_share.items()},
                      "cohorts": cohorts.summary(getattr(pop, "cohorts", None))},
        "model_window_days": model_window_days,
        "lapse_horizon_days": cfg.horizon_days,
        "lapse_model": {**choice, "name": lapse_models.NAMES.get(choice["used"], choice["used"])},
        "pareto_nbd": pareto,
        "fatigue": {"model": fatigue_used, **pop.fatigue},
        "warnings": list(closed.get("warnings", pop.model.get("warnings", []))) +
                    [w for w in (closed_warning, choice.get("warning"), fatigue_warning,
                                 stale_warning(getattr(pop, "newest_activity", NEVER), cfg.as_of)) if w],
    }
    return cols, meta
