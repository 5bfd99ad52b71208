"""Timezones from engagement hours: the third step of the one timezone rule.

A user whose timezone is neither given nor found from the phone (``engine.tz.infer_timezones``)
had their engagement counted by hour in the scores' ``default_timezone``.  People are active at
similar *local* hours, so where such a user's hours sit says something about their UTC offset.

The model is the send-time model of :mod:`engine.scoring.sendtime` read the other way round.
With ``pop`` the local-hour profile of every user whose zone is known (given or phone), the
population's spread (``rho``, kernel ``K``: the model :func:`engine.scoring.sendtime.fit_spread`
fits, a share ``rho`` of each user's engagement near their preferred hour and the rest at any
hour) and ``x[h]`` the user's decayed engagement at default-zone hour ``h``, the evidence for a
shift ``s`` (hours from the default zone to the candidate zone) marginalises the user's own
preferred hour ``h*``, with the population's profile as its prior::

    L(s) = sum_{h*} pop[h*] * prod_h (rho K(h + s - h*) + (1 - rho) / 24) ** x[h]

so a user who is always active at one hour counts as one draw of a preferred hour, not as many
independent clues, and engagement away from that hour (uniform in the model, as in the fit)
adds none.  (Taking the background from ``pop`` instead, as the best-hour posterior does, made
every off-peak engagement a clue and the posterior over-confident: on generated worlds users
inferred at 0.8 were within 2 hours 69 % of the time; with the uniform background 0.6 gives 87 %.)  The candidates are the zones of the known users at their offset at
``as_of`` rounded to the hour (a 24-bin histogram cannot tell half hours apart), the prior of a
shift is the share of known users in its zones, and each shift stands for its most common zone.
A user takes that zone (``timezone_source = "hours"``) only with at least ``min_engagements``
engagements and a posterior of at least ``min_posterior``; else they keep the default.  Their
hour histogram is then moved into the new zone so the best hour is learned there; the weekday
histogram is left as counted (the shift moves few events across midnight).

Every partition sees the same profile, spread and candidates (``Population.tz_profile``), so
partitioned scoring infers the same zones as one pass.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from numba import prange

from engine.jit import njit, pjit
from engine.scoring import sendtime
from engine.tz import Offsets

__all__ = ["part_profile", "fit_profile", "posteriors", "candidates", "infer", "SOURCE"]

#: ``timezone_source`` of a zone inferred here
SOURCE = "hours"
_FLOOR = 1e-3  # share of a uniform hour mixed into the profile: no hour is impossible


def part_profile(hour_hist: np.ndarray, source, zones: list[str], user_tz: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """One partition's share of the profile: the fixed-point (:data:`sendtime.POP_UNIT`) sum of
    the local hour histograms of users with a known zone (``source``, the ``timezone_source``
    column, given or phone), and their count per zone.  One pass, no copy of the histograms."""
    known = _is(source, "default", negate=True)
    hours = sendtime.population_sums(hour_hist, np.where(known, 0, 1), 2)[0]
    counts = np.bincount(np.asarray(user_tz)[known], minlength=len(zones))
    return hours, {z: int(c) for z, c in zip(zones, counts) if c}


def _is(column, value: str, negate: bool = False) -> np.ndarray:
    """bool per row: ``column == value`` (or ``!=``), nulls False, without Python strings."""
    eq = pc.fill_null(pc.equal(column, value), False)
    if negate:
        eq = pc.invert(eq)
    return np.asarray(eq.to_numpy(zero_copy_only=False), bool)


def fit_profile(parts: list[tuple[np.ndarray, dict[str, int]] | None]) -> dict | None:
    """Sum the partitions' :func:`part_profile` s: ``{"hours": share[24], "zones": {zone: users}}``,
    or None when no user has a known zone with engagement."""
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    hours = np.sum([p[0] for p in parts], axis=0)
    zones: dict[str, int] = {}
    for _, z in parts:
        for name, c in z.items():
            zones[name] = zones.get(name, 0) + c
    if hours.sum() <= 0 or not zones:
        return None
    return {"hours": (hours / hours.sum()).tolist(), "zones": dict(sorted(zones.items()))}


def candidates(zones: dict[str, int], default_tz: str, as_of: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(shifts, prior, names)``: the distinct hour shifts (0..23) from ``default_tz`` to the known
    zones at ``as_of``, each shift's prior (share of known users) and its most common zone."""
    names = sorted(zones)
    off = Offsets(names + [default_tz], as_of, as_of).at(np.arange(len(names) + 1), np.full(len(names) + 1, as_of))
    shift = np.round((off[:-1] - off[-1]) / 3600.0).astype(np.int64) % 24
    by: dict[int, list] = {}
    for name, s in zip(names, shift):
        by.setdefault(int(s), []).append((zones[name], name))
    keys = sorted(by)
    total = float(sum(zones.values()))
    prior = np.array([sum(c for c, _ in by[s]) / total for s in keys])
    best = [max(by[s], key=lambda cn: (cn[0], [-ord(ch) for ch in cn[1]]))[1] for s in keys]
    return np.array(keys, np.int64), prior, best


def _logmix(spread: dict) -> np.ndarray:
    """[local hour, preferred hour] log(rho K(h - h*) + (1 - rho) / 24)."""
    kern, rho = np.asarray(spread["kernel"], np.float64), float(spread["rho"])
    d = (np.arange(24)[:, None] - np.arange(24)[None, :]) % 24
    return np.log(rho * kern[d] + (1.0 - rho) / 24)


@njit
def _one(hist, u, shifts, log_prior, logmix, log_pop, within, lp, pj, lh, bins):
    """(index of the best shift, its mass within ``within`` hours, unnormalised) for row ``u``."""
    k = shifts.shape[0]
    nb = 0
    for h in range(24):
        if hist[u, h] > 0:
            bins[nb] = h
            nb += 1
    for j in range(k):
        s = shifts[j]
        mx = -np.inf
        for hs in range(24):
            acc = log_pop[hs]
            for b in range(nb):
                h = bins[b]
                acc += np.float64(hist[u, h]) * logmix[(h + s) % 24, hs]
            lh[hs] = acc
            if acc > mx:
                mx = acc
        tot = 0.0
        for hs in range(24):
            tot += math.exp(lh[hs] - mx)
        lp[j] = log_prior[j] + mx + math.log(tot)
    top = lp[0]
    for j in range(1, k):
        if lp[j] > top:
            top = lp[j]
    tot = 0.0
    for j in range(k):
        pj[j] = math.exp(lp[j] - top)
        tot += pj[j]
    # the shift with the most posterior mass within ``within`` hours of it (ties: its own mass)
    bj = 0
    bmass = -1.0
    for j in range(k):
        mass = 0.0
        for jj in range(k):
            d = (shifts[jj] - shifts[j]) % 24
            if d <= within or 24 - d <= within:
                mass += pj[jj]
        if mass > bmass or (mass == bmass and pj[j] > pj[bj]):
            bmass = mass
            bj = j
    return bj, bmass / tot


@pjit
def _posteriors(hist, users, shifts, log_prior, logmix, log_pop, within):
    """:func:`_one` for every row of ``users``, on every core (rows are independent)."""
    m, k = users.shape[0], shifts.shape[0]
    best = np.zeros(m, np.int64)
    post = np.zeros(m, np.float64)
    for i in prange(m):
        lp = np.empty(k)
        pj = np.empty(k)
        lh = np.empty(24)
        bins = np.empty(24, np.int64)
        best[i], post[i] = _one(hist, users[i], shifts, log_prior, logmix, log_pop, within, lp, pj, lh, bins)
    return best, post


@njit
def _posteriors_serial(hist, users, shifts, log_prior, logmix, log_pop, within):
    """:func:`_posteriors` on this thread (the same numbers): for a few users, where starting
    numba's worker threads and loading the parallel kernel cost more than the work."""
    m, k = users.shape[0], shifts.shape[0]
    best = np.zeros(m, np.int64)
    post = np.zeros(m, np.float64)
    lp = np.empty(k)
    pj = np.empty(k)
    lh = np.empty(24)
    bins = np.empty(24, np.int64)
    for i in range(m):
        best[i], post[i] = _one(hist, users[i], shifts, log_prior, logmix, log_pop, within, lp, pj, lh, bins)
    return best, post


#: fewer users to infer than this are done on one thread (:func:`_posteriors_serial`)
SERIAL_BELOW = 4096


def posteriors(hist: np.ndarray, users: np.ndarray, shifts: np.ndarray, prior: np.ndarray, profile: np.ndarray,
               spread: dict, within: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """For each row ``users`` of ``hist`` ([n, 24] decayed engagements by default-zone hour): the
    index of the one of ``shifts`` (hours) with the most posterior mass on the shifts within
    ``within`` hours of it, and that mass (0..1); see the module docstring.  ``prior``
    [len(shifts)] sums to 1, ``profile`` [24] is the local-hour share."""
    profile = np.asarray(profile, np.float64)
    pop = (1 - _FLOOR) * profile + _FLOOR / 24
    with np.errstate(divide="ignore"):
        log_prior = np.log(np.asarray(prior, np.float64))
    users = np.asarray(users, np.int64)
    kernel = _posteriors_serial if len(users) < SERIAL_BELOW else _posteriors
    return kernel(np.ascontiguousarray(hist), users, np.asarray(shifts, np.int64), log_prior, _logmix(spread),
                  np.log(pop), int(within))


def infer(table: pa.Table, hour_hist: np.ndarray, eng_count: np.ndarray, profile: dict | None, spread: dict | None,
          *, default_tz: str, as_of: int, min_engagements: int, min_posterior: float,
          within_hours: int = 2) -> tuple[pa.Table, dict]:
    """``table`` with the zones inferred from hours (``timezone`` and ``timezone_source``), and
    ``hour_hist`` moved in place into each inferred user's zone; returns the table and a summary
    (``checked``: default users with enough engagements, ``inferred``, the thresholds)."""
    info = {"checked": 0, "inferred": 0, "min_engagements": int(min_engagements),
            "min_posterior": float(min_posterior), "within_hours": int(within_hours)}
    if (profile is None or spread is None or min_engagements <= 0
            or "timezone_source" not in table.column_names):
        return table, info
    source = table["timezone_source"]
    if isinstance(source, pa.ChunkedArray):
        source = source.combine_chunks()
    users = np.nonzero(_is(source, "default"))[0]
    users = users[np.asarray(eng_count)[users] >= int(min_engagements)]
    info["checked"] = int(len(users))
    if not len(users):
        return table, info
    shifts, prior, names = candidates(profile["zones"], default_tz, as_of)
    best, post = posteriors(hour_hist, users, shifts, prior, np.asarray(profile["hours"]), spread, within_hours)
    take = post >= min_posterior
    users, best = users[take], best[take]
    info["inferred"] = int(len(users))
    if not len(users):
        return table, info
    s = shifts[best]
    rows = hour_hist[users]
    idx = (np.arange(24)[None, :] - s[:, None]) % 24  # new[h] = old[h - s]
    hour_hist[users] = np.take_along_axis(rows, idx, axis=1)
    pick = np.full(table.num_rows, -1, np.int64)
    pick[users] = best
    found = pa.array(names, pa.string()).take(pa.array(pick, mask=pick < 0))
    zones = pc.coalesce(table["timezone"].cast(pa.string()), found)
    src = pc.if_else(pa.array(pick >= 0), pa.scalar(SOURCE), source.cast(pa.string()))
    i = table.column_names.index("timezone")
    table = table.set_column(i, "timezone", zones)
    j = table.column_names.index("timezone_source")
    return table.set_column(j, "timezone_source", src), info
