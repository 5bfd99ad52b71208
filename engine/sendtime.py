"""Best send time per user: a decayed engagement histogram smoothed toward the population.

Each user's engagement (open, click, session) is counted by local hour of day (0-23)
and local weekday (0 = Monday), each event weighted ``2 ** (-age_days / half_life)``.
The posterior over hours is a Dirichlet-multinomial update (Gelman et al., BDA3 §3.4)::

    posterior[h] = user[h] + k * pop_share_tz[h]

where ``pop_share_tz`` is the normalised histogram of all users in the same timezone
and ``k`` (default 4 pseudo-events) is the prior weight: with little evidence the
population's habit dominates, and the user's own evidence takes over as it grows.
Users with no engagement get their timezone population's best hour.

``send_time_confidence`` = ``n / (n + k)`` x posterior share of the best hour +-1 hour,
in 0..1: high only when the user has evidence *and* it is concentrated.

``next_send_at`` is the first UTC instant strictly after ``as_of`` at which the user's
local clock reads ``best_hour_local``:00, computed with ``zoneinfo`` once per
(timezone, hour, day), never per user.  A local hour skipped by a DST change maps to
the instant after the gap (shift forward); a repeated hour takes its first occurrence.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np

__all__ = ["offset_table", "population_histograms", "best_times", "next_local_hour"]


def offset_table(zones: list[str], start: int, end: int) -> tuple[np.ndarray, int]:
    """UTC offsets (seconds, int32) per zone and UTC hour in [start, end]; returns (table, t0).

    Row ``z``, column ``h`` is the offset of ``zones[z]`` at ``t0 + 3600 h``.  Built from
    the zone's transitions: offsets are computed at each day's 00:00 UTC and refined by
    the hour only on days where the offset changes.
    """
    t0 = (start // 3600) * 3600
    n_hours = max(1, (end - t0) // 3600 + 2)
    table = np.zeros((len(zones), n_hours), np.int32)
    for z, name in enumerate(zones):
        tz = zoneinfo.ZoneInfo(name)
        n_days = n_hours // 24 + 2
        day_off = np.empty(n_days, np.int64)
        for d in range(n_days):
            inst = dt.datetime.fromtimestamp(t0 + d * 86400, dt.timezone.utc)
            day_off[d] = int(inst.astimezone(tz).utcoffset().total_seconds())
        hourly = np.repeat(day_off, 24)[:n_hours]
        for d in np.nonzero(np.diff(day_off))[0]:
            for h in range(24):
                idx = d * 24 + h
                if idx < n_hours:
                    inst = dt.datetime.fromtimestamp(t0 + idx * 3600, dt.timezone.utc)
                    hourly[idx] = int(inst.astimezone(tz).utcoffset().total_seconds())
        table[z] = hourly
    return table, t0


def population_histograms(hist: np.ndarray, user_tz: np.ndarray, n_zones: int) -> np.ndarray:
    """Sum of user histograms per timezone: [n_zones, bins] float64."""
    out = np.zeros((n_zones, hist.shape[1]))
    for j in range(hist.shape[1]):
        out[:, j] = np.bincount(user_tz, weights=hist[:, j], minlength=n_zones)
    return out


def _share(pop: np.ndarray) -> np.ndarray:
    tot = pop.sum(axis=1, keepdims=True)
    uniform = np.full_like(pop, 1.0 / pop.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(tot > 0, pop / np.where(tot > 0, tot, 1.0), uniform)
    # a tz with no evidence borrows the global habit
    glob = pop.sum(axis=0)
    if glob.sum() > 0:
        share[tot[:, 0] <= 0] = glob / glob.sum()
    return share


def best_times(hour_hist: np.ndarray, wd_hist: np.ndarray, user_tz: np.ndarray, n_zones: int,
               prior_weight: float = 4.0) -> dict:
    """Best local hour and weekday per user, with confidence; see module docstring.

    Returns dict with ``best_hour`` (int8), ``best_weekday`` (int8), ``confidence``
    (float32), ``pop_best_hour`` per zone (int8), and the population shares.
    """
    hour_hist = np.asarray(hour_hist, np.float64)
    wd_hist = np.asarray(wd_hist, np.float64)
    pop_h = _share(population_histograms(hour_hist, user_tz, n_zones))
    pop_w = _share(population_histograms(wd_hist, user_tz, n_zones))
    post_h = hour_hist + prior_weight * pop_h[user_tz]
    post_w = wd_hist + prior_weight * pop_w[user_tz]
    best_h = np.argmax(post_h, axis=1)
    best_w = np.argmax(post_w, axis=1)
    n = hour_hist.sum(axis=1)
    rows = np.arange(len(best_h))
    around = post_h[rows, best_h] + post_h[rows, (best_h + 1) % 24] + post_h[rows, (best_h - 1) % 24]
    conf = n / (n + prior_weight) * around / post_h.sum(axis=1)
    return {
        "best_hour": best_h.astype(np.int8),
        "best_weekday": best_w.astype(np.int8),
        "confidence": conf.astype(np.float32),
        "pop_best_hour": np.argmax(pop_h, axis=1).astype(np.int8),
        "pop_hour_share": pop_h,
    }


def next_local_hour(zones: list[str], after: int) -> np.ndarray:
    """[n_zones, 24] int64: the first UTC instant > ``after`` at local ``h``:00 in each zone."""
    out = np.empty((len(zones), 24), np.int64)
    for z, name in enumerate(zones):
        tz = zoneinfo.ZoneInfo(name)
        local_now = dt.datetime.fromtimestamp(after, tz)
        for h in range(24):
            for day in range(0, 3):
                date = local_now.date() + dt.timedelta(days=day)
                cand = int(dt.datetime(date.year, date.month, date.day, h, tzinfo=tz).timestamp())
                if cand > after:
                    out[z, h] = cand
                    break
    return out
