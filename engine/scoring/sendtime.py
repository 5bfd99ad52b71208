"""Best send time per user: a decayed engagement histogram smoothed toward the population.

Each user's engagement (open, click, session) is counted by local hour of day (0-23)
and local weekday (0 = Monday), each event weighted ``2 ** (-age_days / half_life)``.
The posterior over hours is a Dirichlet-multinomial update (Gelman et al., BDA3 §3.4)::

    posterior[h] = user[h] + k * pop_share_tz[h]

where ``pop_share_tz`` is the normalised histogram of all users in the same timezone
and ``k`` (default 4 pseudo-events) is the prior weight: with little evidence the
population's habit dominates, and the user's own evidence takes over as it grows.
Users with no engagement get their timezone population's best hour.  An event at exactly
midnight UTC is taken for a date without a time of day (a daily export, CDNOW's purchase
dates): it counts for its weekday, not for hour 0; when no event has a time of day, every
user gets :data:`DEFAULT_HOUR` (10:00 local) with confidence 0.

**The preferred hour** (with ``spread``, as ``score`` does): rather than the mode of that
posterior, each user with evidence gets the mode of a hierarchical posterior over their
preferred hour ``h*``: the timezone population's shares are its prior, and each
engagement lands near ``h*`` with the population's own spread, so a sparse user seen at
18:00 and 20:00 gets 19:00 rather than the population mode, and a rich user's noisy
peak is smoothed over neighbouring hours::

    log P(h* | user) = log pop_tz[h*] + sum_h user[h] log(rho K(h - h*) + (1 - rho) pop_tz[h])

with ``K`` a circular discretised normal of width ``sigma`` hours and ``rho`` the share of
engagements "on" the preferred hour, both fitted (least squares over a grid of sigma) to
the pooled histogram of engagement offsets from their own mode of users with 10+
engagements (:func:`mode_spread`, :func:`fit_spread`; integer sums, exact in any order).

``send_time_confidence`` = ``n / (n + k)`` x Dirichlet posterior share of the best hour +-1 hour,
in 0..1: high only when the user has evidence *and* it is concentrated.

``next_send_at`` is the first UTC instant strictly after ``as_of`` at which the user's
local clock reads ``best_hour_local``:00 (:func:`engine.tz.next_local_hour`, once per
timezone and hour, never per user).  A local hour skipped by a DST change maps to the
instant after the gap (shift forward); a repeated hour takes its first occurrence.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from engine.jit import njit, pjit

__all__ = ["population_histograms", "population_sums", "population_shares", "best_times",
           "best_times_given", "mode_spread", "fit_spread", "RICH_MIN"]

_CHUNK = 4096  # users per task of the parallel kernels
RICH_MIN = 10.0  # decayed engagements from which a user's own mode informs the spread
#: the local hour a user gets when no event anywhere has a time of day (dates only)
DEFAULT_HOUR = 10


@njit
def _population(hist, user_tz, n_zones):
    out = np.zeros((n_zones, hist.shape[1]))
    for u in range(hist.shape[0]):
        z = user_tz[u]
        for j in range(hist.shape[1]):
            out[z, j] += hist[u, j]
    return out


def population_histograms(hist: np.ndarray, user_tz: np.ndarray, n_zones: int) -> np.ndarray:
    """Sum of user histograms per timezone: [n_zones, bins] float64."""
    return _population(np.ascontiguousarray(hist), np.asarray(user_tz, np.int64), int(n_zones))


#: unit of :func:`population_sums`: 2^-24 weighted engagements
POP_UNIT = 2.0 ** -24


@njit
def _population_fixed(hist, user_tz, n_zones, scale):
    out = np.zeros((n_zones, hist.shape[1]), np.int64)
    for u in range(hist.shape[0]):
        z = user_tz[u]
        for j in range(hist.shape[1]):
            out[z, j] += np.int64(math.floor(np.float64(hist[u, j]) * scale + 0.5))
    return out


def population_sums(hist: np.ndarray, user_tz: np.ndarray, n_zones: int) -> np.ndarray:
    """Per-timezone sums of user histograms in fixed point: [n_zones, bins] int64 in :data:`POP_UNIT`.

    Integer sums do not depend on the order of the users, so partitions summed
    separately and added give exactly the sums of one pass (each user's bin is rounded
    to 2^-24 of an engagement; totals stay exact up to 2^39 engagements per timezone).
    """
    return _population_fixed(np.ascontiguousarray(hist), np.asarray(user_tz, np.int64), int(n_zones), 1.0 / POP_UNIT)


def population_shares(pop: np.ndarray) -> np.ndarray:
    """Per-timezone population histograms [n_zones, bins] -> the prior shares (rows sum to 1)."""
    return _share(np.asarray(pop, np.float64))


def _share(pop: np.ndarray) -> np.ndarray:
    tot = pop.sum(axis=1, keepdims=True)
    uniform = np.full_like(pop, 1.0 / pop.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(tot > 0, pop / np.where(tot > 0, tot, 1.0), uniform)
    # a tz with no evidence borrows the global habit
    glob = pop.sum(axis=0)
    if glob.sum() > 0:
        share[tot[:, 0] <= 0] = glob / glob.sum()
    elif pop.shape[1] == 24:  # no time of day anywhere (date-only events): DEFAULT_HOUR local, not midnight
        share[:, DEFAULT_HOUR] += 1e-9
        share /= share.sum(axis=1, keepdims=True)
    return share


@pjit
def _best(hour_hist, wd_hist, user_tz, pop_h, pop_w, k):
    """Per user: argmax of the posteriors (first maximum wins) and the confidence."""
    n = hour_hist.shape[0]
    best_h = np.empty(n, np.int8)
    best_w = np.empty(n, np.int8)
    conf = np.empty(n, np.float32)
    for c in prange((n + _CHUNK - 1) // _CHUNK):  # chunks of users on every core, one scratch each
        post = np.empty(24)
        for u in range(c * _CHUNK, min(n, (c + 1) * _CHUNK)):
            z = user_tz[u]
            total = 0.0
            evidence = 0.0
            bh = 0
            for h in range(24):
                x = np.float64(hour_hist[u, h])
                evidence += x
                post[h] = x + k * pop_h[z, h]
                total += post[h]
                if post[h] > post[bh]:
                    bh = h
            bw = 0
            best_wv = np.float64(wd_hist[u, 0]) + k * pop_w[z, 0]
            for d in range(1, 7):
                v = np.float64(wd_hist[u, d]) + k * pop_w[z, d]
                if v > best_wv:
                    best_wv = v
                    bw = d
            around = post[bh] + post[(bh + 1) % 24] + post[(bh + 23) % 24]
            best_h[u] = bh
            best_w[u] = bw
            conf[u] = evidence / (evidence + k) * around / total if total > 0 else 0.0
    return best_h, best_w, conf


def best_times(hour_hist: np.ndarray, wd_hist: np.ndarray, user_tz: np.ndarray, n_zones: int,
               prior_weight: float = 4.0) -> dict:
    """Best local hour and weekday per user, with confidence; see module docstring.

    Returns dict with ``best_hour`` (int8), ``best_weekday`` (int8), ``confidence``
    (float32), ``pop_best_hour`` per zone (int8), and the population shares.
    One numba pass over the users (:func:`_best`); no [users, 24] temporaries.
    """
    user_tz = np.asarray(user_tz, np.int64)
    hour_hist = np.ascontiguousarray(hour_hist)
    wd_hist = np.ascontiguousarray(wd_hist)
    pop_h = _share(population_histograms(hour_hist, user_tz, n_zones))
    pop_w = _share(population_histograms(wd_hist, user_tz, n_zones))
    return best_times_given(hour_hist, wd_hist, user_tz, pop_h, pop_w, prior_weight)


def best_times_given(hour_hist: np.ndarray, wd_hist: np.ndarray, user_tz: np.ndarray, pop_h: np.ndarray,
                     pop_w: np.ndarray, prior_weight: float = 4.0, spread: dict | None = None) -> dict:
    """:func:`best_times` with the population shares given ([n_zones, 24] and [n_zones, 7]).

    Used when the population is larger than the users at hand (a partition of the users:
    the shares come from all partitions' histograms, :func:`population_shares`).
    ``spread`` (:func:`fit_spread`) turns on the hierarchical prior over the preferred hour.
    """
    user_tz = np.asarray(user_tz, np.int64)
    pop_h = np.ascontiguousarray(pop_h, np.float64)
    pop_w = np.ascontiguousarray(pop_w, np.float64)
    best_h, best_w, conf = _best(np.ascontiguousarray(hour_hist), np.ascontiguousarray(wd_hist), user_tz,
                                 pop_h, pop_w, float(prior_weight))
    if spread is not None:
        kern, rho = np.asarray(spread["kernel"], np.float64), float(spread["rho"])
        d = (np.arange(24)[:, None] - np.arange(24)[None, :]) % 24  # [h, h*]
        logmix = np.log(rho * kern[d][None, :, :] + (1.0 - rho) * pop_h[:, :, None] + 1e-300)
        _kernel_hours(np.ascontiguousarray(hour_hist), user_tz, logmix, np.log(pop_h + 1e-12), pop_h,
                      float(prior_weight), best_h, conf)
    return {
        "best_hour": best_h,
        "best_weekday": best_w,
        "confidence": conf,
        "pop_best_hour": np.argmax(pop_h, axis=1).astype(np.int8),
        "pop_hour_share": pop_h,
    }


@njit
def _mode_spread(hour_hist, rich, scale):
    out = np.zeros(24, np.int64)
    for u in range(hour_hist.shape[0]):
        total = 0.0
        m = 0
        for h in range(24):
            total += hour_hist[u, h]
            if hour_hist[u, h] > hour_hist[u, m]:
                m = h
        if total < rich:
            continue
        for h in range(24):
            out[(h - m) % 24] += np.int64(math.floor(np.float64(hour_hist[u, h]) * scale + 0.5))
    return out


def mode_spread(hour_hist: np.ndarray) -> np.ndarray:
    """int64[24] in :data:`POP_UNIT`: the engagement weight of users with ``RICH_MIN``+ engagements
    by circular offset (hours, 0..23) from each one's own most engaged hour."""
    return _mode_spread(np.ascontiguousarray(hour_hist), RICH_MIN, 1.0 / POP_UNIT)


def _kernel(sigma: float) -> np.ndarray:
    d = np.arange(24, dtype=np.float64)
    d = np.minimum(d, 24.0 - d)
    k = np.exp(-0.5 * (d / sigma) ** 2)
    return k / k.sum()


def fit_spread(spreads: list) -> dict | None:
    """(rho, sigma, kernel) from summed :func:`mode_spread` s; None without users of 10+ engagements.

    Least squares of ``share(d) = rho K_sigma(d) + (1 - rho) / 24`` over sigma in 0.5..4 hours.
    """
    tot = np.sum([np.asarray(s, np.int64) for s in spreads if s is not None], axis=0) if spreads else None
    if tot is None or np.ndim(tot) == 0 or tot.sum() <= 0:
        return None
    share = tot / tot.sum()
    best = None
    for sigma in np.arange(0.5, 4.01, 0.1):
        k = _kernel(sigma) - 1.0 / 24
        rho = float(np.clip((k * (share - 1.0 / 24)).sum() / (k * k).sum(), 0.0, 1.0))
        sse = float(((share - 1.0 / 24 - rho * k) ** 2).sum())
        if best is None or sse < best[0]:
            best = (sse, rho, float(sigma))
    _, rho, sigma = best
    return {"rho": rho, "sigma": round(sigma, 2), "kernel": _kernel(sigma).tolist()}


@pjit
def _kernel_hours(hour_hist, user_tz, logmix, log_prior, pop_h, k, best_h, conf):
    """In place, users with evidence: best_h = argmax of the hierarchical posterior over the preferred
    hour (``logmix[z, h, h*]`` = log(rho K(h - h*) + (1 - rho) pop_z[h])); conf recomputed around it."""
    n_users = hour_hist.shape[0]
    n_chunks = (n_users + _CHUNK - 1) // _CHUNK
    for c in prange(n_chunks):  # users are independent: chunks of them on every core, one scratch each
        lp = np.empty(24)
        for u in range(c * _CHUNK, min(n_users, (c + 1) * _CHUNK)):
            n = 0.0
            for h in range(24):
                n += hour_hist[u, h]
            if not n > 0.0:
                continue
            z = user_tz[u]
            for hs in range(24):
                lp[hs] = log_prior[z, hs]
            for h in range(24):
                x = np.float64(hour_hist[u, h])
                if x > 0.0:
                    for hs in range(24):
                        lp[hs] += x * logmix[z, h, hs]
            bh = 0
            for hs in range(1, 24):
                if lp[hs] > lp[bh]:
                    bh = hs
            best_h[u] = bh
            around = 0.0
            for d in (23, 0, 1):
                hh = (bh + d) % 24
                around += np.float64(hour_hist[u, hh]) + k * pop_h[z, hh]
            conf[u] = n / (n + k) * around / (n + k)
