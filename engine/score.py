"""Step 1, score: one row per user with lapse risk, best send time and fatigue budget.

``score(users, events, as_of=...)`` reads users once, streams the events in record
batches through the fused numba pass (:mod:`engine.kernels`), fits BG/NBD on the
compressed (x, t_x, T) rows (:mod:`engine.bgnbd`), smooths send times toward each
timezone's population (:mod:`engine.sendtime`), and derives budgets and labels
(:mod:`engine.fatigue`).  Memory is O(users); events are never held whole.

Model inputs, in days: ``frequency`` = distinct active days in the model window
(default 730 days) minus one; ``recency_days`` = last minus first active day;
``tenure_days`` = ``as_of`` minus the first active day.  BG/NBD gives every user with
no repeat activity P(alive) = 1 by construction; winback instead lets the first
active day carry a dropout chance for those users (the MBG/NBD convention of
Batislam, Denizel & Filiztekin 2007): ``p_alive = 1 / (1 + a/b ((alpha+T)/alpha)^r)``
with ``T`` the days since their only activity (since ``signup_at`` when they never were
active, and the model window, 730 days, when that is unknown too), so a one-time
visitor from a year ago is not "certainly alive", and no user gets NaN.

Per-user columns are the ``docs/architecture.md`` scores table plus ``engagements``
(open/click/session events counted into the send-time histogram).  The unengaged
streak counts at most the 8 most recent sends per channel (``kernels.RECENT_SENDS``).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
import zoneinfo

import numpy as np
import pyarrow as pa
from pyarrow import ipc

from engine import fatigue, kernels, sendtime
from engine.bgnbd import BGNBD
from engine.errors import ConfigError, ModelError
from engine.io import iter_events, load_users
from engine.schema import (ADDRESS_COLUMN, CHANNELS, CONSENT_COLUMN, DEFAULT_ACTIVITY, EVENT_CODE, EVENTS, LIFECYCLE,
                           SECONDS_PER_DAY)
from engine.timeutil import from_epoch_seconds, parse_as_of, to_epoch_seconds

__all__ = ["score", "summary_of"]

NEVER = kernels.NEVER
_RFM_CODES = [f"{r}{f}{m}" for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)]


def _ts_col(values: np.ndarray) -> pa.Array:
    null = values == NEVER
    return from_epoch_seconds(np.where(null, 0, values), null_mask=null)


def _activity_mask(activity) -> np.ndarray:
    names = [a.strip() for a in (activity.split(",") if isinstance(activity, str) else activity) if a.strip()]
    unknown = [a for a in names if a not in EVENT_CODE]
    if unknown or not names:
        raise ConfigError(f"--activity {','.join(names) or '(empty)'}: unknown event name(s) {unknown}; "
                          f"choose from {', '.join(EVENTS)}")
    mask = np.zeros(len(EVENTS) + 1, np.bool_)
    for a in names:
        mask[EVENT_CODE[a]] = True
    return mask


def _user_zones(table: pa.Table, default_timezone: str) -> tuple[list[str], np.ndarray]:
    try:
        zoneinfo.ZoneInfo(default_timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"--default-timezone {default_timezone!r} is not an IANA timezone such as Europe/Paris") from None
    if "timezone" in table.column_names:
        tz = table["timezone"].fill_null(default_timezone).combine_chunks().dictionary_encode()
        zones = tz.dictionary.to_pylist()
        idx = tz.indices.to_numpy(zero_copy_only=False).astype(np.int32)
    else:
        zones, idx = [default_timezone], np.zeros(table.num_rows, np.int32)
    return zones, idx


def score(users, events, *, as_of=None, activity=DEFAULT_ACTIVITY, default_timezone: str = "UTC",
          on_bad_rows: str = "error", quarantine=None, policy_cap: int = 3, policy_window_days: int = 7,
          model_window_days: int = 730, half_life_days: float = 60.0, prior_weight: float = 4.0,
          batch_rows: int = 1 << 20, progress: bool = False) -> pa.Table:
    """Score every user as of ``as_of`` (UTC; default now); returns a ``pyarrow.Table``.

    ``users``/``events``: paths (Arrow IPC, Parquet, CSV or directories) or
    ``pyarrow.Table`` s (spilled once to a temporary Arrow IPC file and memory-mapped,
    so tables and files take the same validated path).  ``quarantine``: a directory
    that receives ``users.rejected.arrow`` and ``events.rejected.arrow`` when
    ``on_bad_rows="quarantine"``.  ``policy_cap`` messages per ``policy_window_days``
    (7 or 30) sets the fatigue budget; ``half_life_days`` the decay of the send-time
    histogram; ``prior_weight`` its Dirichlet prior (pseudo-events).
    The returned table's schema metadata ``winback.score`` holds as_of, the BG/NBD
    parameters and diagnostics and the timing; :func:`summary_of` reads it back.
    """
    with contextlib.ExitStack() as stack:
        if isinstance(users, pa.Table) or isinstance(events, pa.Table):
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="winback-score-"))
            users = _spill(users, os.path.join(tmp, "users.arrow"))
            events = _spill(events, os.path.join(tmp, "events.arrow"))
        return _score(users, events, as_of=as_of, activity=activity, default_timezone=default_timezone,
                      on_bad_rows=on_bad_rows, quarantine=quarantine, policy_cap=policy_cap,
                      policy_window_days=policy_window_days, model_window_days=model_window_days,
                      half_life_days=half_life_days, prior_weight=prior_weight, batch_rows=batch_rows,
                      progress=progress)


def _spill(source, path: str):
    """A pa.Table becomes an Arrow IPC file at ``path``; anything else is returned as is."""
    if not isinstance(source, pa.Table):
        return source
    import pyarrow.feather as feather

    feather.write_feather(source, path, compression="uncompressed")
    return path


def _score(users, events, *, as_of, activity, default_timezone, on_bad_rows, quarantine, policy_cap,
           policy_window_days, model_window_days, half_life_days, prior_weight, batch_rows, progress):
    t_start = time.perf_counter()
    as_of = parse_as_of(as_of)
    is_act = _activity_mask(activity)
    if policy_window_days not in (7, 30):
        raise ConfigError("policy_window_days must be 7 or 30 (the windows scored)")
    qu = qe = None
    if quarantine is not None:
        os.makedirs(quarantine, exist_ok=True)
        qu = os.path.join(quarantine, "users.rejected.arrow")
        qe = os.path.join(quarantine, "events.rejected.arrow")
    u = load_users(users, on_bad_rows=on_bad_rows, quarantine=qu)
    table = u.table
    n = table.num_rows
    zones, user_tz = _user_zones(table, default_timezone)
    window_start = as_of - model_window_days * SECONDS_PER_DAY
    off_table, off_t0 = sendtime.offset_table(zones, window_start, as_of)
    acc = kernels.Accumulators.zeros(n, model_window_days + 1)
    day0 = as_of // SECONDS_PER_DAY - (acc.day_bits.shape[1] * 64) + 1
    n_events = 0
    t_pass = time.perf_counter()
    for batch in iter_events(events, u, as_of=as_of, on_bad_rows=on_bad_rows, quarantine=qe,
                             batch_rows=batch_rows, progress=progress):
        kernels.accumulate(acc, batch, user_tz=user_tz, off_table=off_table, off_t0=off_t0, as_of=as_of,
                           is_activity=is_act, day0=day0, half_life_days=half_life_days)
        n_events += len(batch)
    pass_seconds = time.perf_counter() - t_pass
    events_rejected = 0
    if qe is not None and os.path.exists(qe):
        with pa.memory_map(qe) as src:
            events_rejected = ipc.open_file(src).read_all().num_rows
    cols, meta = _derive(acc, table, user_tz, zones, as_of, day0, policy_cap, policy_window_days,
                         prior_weight, model_window_days)
    out = table
    for name, arr in cols.items():
        if name in out.column_names:
            out = out.drop_columns([name])
        out = out.append_column(name, arr)
    meta.update(as_of=from_epoch_seconds(np.array([as_of])).to_pylist()[0].isoformat(),
                users=n, events=n_events, users_rejected=u.rejected, events_rejected=events_rejected,
                aggregation_seconds=round(pass_seconds, 3), seconds=round(time.perf_counter() - t_start, 3),
                activity=[EVENTS[i] for i in np.nonzero(is_act[:len(EVENTS)])[0]],
                default_timezone=default_timezone, policy={"cap": policy_cap, "window_days": policy_window_days})
    return out.replace_schema_metadata({**(table.schema.metadata or {}),
                                        b"winback.score": json.dumps(meta, default=float).encode()})


def summary_of(scores: pa.Table) -> dict:
    """The ``winback.score`` metadata of a scores table as a dict ({} when absent)."""
    raw = (scores.schema.metadata or {}).get(b"winback.score")
    return json.loads(raw) if raw else {}


def _derive(acc, table, user_tz, zones, as_of, day0, cap, window_days, prior_weight, model_window_days):
    n = table.num_rows
    cols: dict[str, pa.Array] = {}
    days_active = kernels.frequency_from_bits(acc.day_bits)
    in_window = days_active > 0
    first_day = np.where(in_window, acc.first_act_window // SECONDS_PER_DAY, 0)
    last_day = np.where(in_window, acc.last_act // SECONDS_PER_DAY, 0)
    as_of_day = as_of / SECONDS_PER_DAY
    x = np.maximum(days_active - 1, 0).astype(np.float64)
    t_x = np.where(in_window, last_day - first_day, 0).astype(np.float64)
    T = np.where(in_window, as_of_day - first_day, 0.0)
    model = BGNBD()
    try:
        model.fit(x[in_window], t_x[in_window], T[in_window])
    except ModelError as exc:
        raise ModelError(f"scoring stopped: {exc}", exc.diagnostics) from None
    p = model.params_
    p_alive = np.empty(n)
    exp30 = np.empty(n)
    rep = in_window & (x > 0)
    p_alive[rep] = model.p_alive(x[rep], t_x[rep], T[rep])
    exp30[rep] = model.expected(30.0, x[rep], t_x[rep], T[rep])
    # users with no repeat activity: MBG/NBD-style first-day dropout (see module docstring)
    zero = ~rep
    signup = (to_epoch_seconds(table["signup_at"]) if "signup_at" in table.column_names
              else np.full(n, NEVER, np.int64))
    since = np.where(acc.last_act != NEVER, acc.last_act, np.where(signup != NEVER, signup, as_of - model_window_days * SECONDS_PER_DAY))
    T0 = np.maximum((as_of - since) / SECONDS_PER_DAY, 0.0)
    p0 = 1.0 / (1.0 + p["a"] / p["b"] * ((p["alpha"] + T0) / p["alpha"]) ** p["r"])
    p_alive[zero] = p0[zero]
    exp0 = model.expected(30.0, np.zeros(n), np.zeros(n), T0) * p0
    exp30[zero] = exp0[zero]
    has_act = acc.last_act != NEVER
    days_inactive = np.where(has_act, (as_of - acc.last_act) / SECONDS_PER_DAY, np.nan)
    cols["last_active_at"] = _ts_col(acc.last_act)
    cols["days_inactive"] = pa.array(days_inactive, pa.float64(), mask=~has_act)
    cols["frequency"] = pa.array(x.astype(np.int32))
    cols["recency_days"] = pa.array(t_x)
    cols["tenure_days"] = pa.array(T)
    with np.errstate(invalid="ignore", divide="ignore"):
        monetary = np.where(acc.purchases > 0, acc.revenue / np.maximum(acc.purchases, 1), np.nan)
    cols["monetary"] = pa.array(monetary, pa.float64(), mask=acc.purchases == 0)
    cols["purchases"] = pa.array(acc.purchases)
    cols["last_purchase_at"] = _ts_col(acc.last_purchase)
    has_p = acc.last_purchase != NEVER
    cols["days_since_purchase"] = pa.array(np.where(has_p, (as_of - acc.last_purchase) / SECONDS_PER_DAY, np.nan),
                                           pa.float64(), mask=~has_p)
    streak = kernels.unengaged_streak(acc.recent_age, acc.last_eng, np.int64(as_of))
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
    cols["p_alive"] = pa.array(p_alive)
    cols["lapse_risk"] = pa.array(1.0 - p_alive)
    cols["expected_active_days_30d"] = pa.array(exp30)
    bt = sendtime.best_times(acc.hour_hist, acc.wd_hist, user_tz, len(zones), prior_weight)
    nxt = sendtime.next_local_hour(zones, as_of)
    cols["best_hour_local"] = pa.array(bt["best_hour"])
    cols["best_weekday"] = pa.array(bt["best_weekday"])
    cols["send_time_confidence"] = pa.array(bt["confidence"])
    cols["next_send_at"] = from_epoch_seconds(nxt[user_tz, bt["best_hour"].astype(np.int64)])
    cols["engagements"] = pa.array(acc.eng_count)
    cols["sends_7d"] = pa.array(acc.sends7)
    cols["sends_30d"] = pa.array(acc.sends30)
    complained = (acc.suppressed & kernels.SUPPRESS_COMPLAINT).any(axis=1)
    recent = acc.sends7 if window_days == 7 else acc.sends30
    cols["fatigue_budget"] = pa.array(fatigue.fatigue_budget(recent, streak, reachable, complained, cap))
    stage = fatigue.lifecycle(days_inactive, p_alive)
    cols["lifecycle"] = pa.array(list(LIFECYCLE), pa.string()).take(pa.array(stage.astype(np.int32)))
    cols["contact_rating"] = pa.array(fatigue.contact_rating(acc.sends90.sum(1), acc.opens90.sum(1), acc.clicks90.sum(1)))
    r = fatigue.quintiles(days_inactive, higher_is_better=False)
    f = fatigue.quintiles(x.astype(float), missing=~in_window)
    m = fatigue.quintiles(monetary)
    cols["rfm_r"], cols["rfm_f"], cols["rfm_m"] = pa.array(r), pa.array(f), pa.array(m)
    # "RFM" as three digits, by table look-up (125 codes) rather than per-user strings
    code = (r.astype(np.int32) - 1) * 25 + (f.astype(np.int32) - 1) * 5 + (m.astype(np.int32) - 1)
    cols["rfm"] = pa.array(_RFM_CODES, pa.string()).take(pa.array(code))
    counts = np.bincount(stage, minlength=5)
    meta = {
        "model": {"name": "BG/NBD", "units": "days", **model.params_, **model.diagnostics_},
        "lifecycle": {name: int(c) for name, c in zip(LIFECYCLE, counts)},
        "send_time": {"prior_weight": prior_weight,
                      "population_best_hour": {z: int(h) for z, h in zip(zones, bt["pop_best_hour"])}},
        "model_window_days": model_window_days,
    }
    return cols, meta
