"""Fatigue budget and the labels a marketer reads: lifecycle, contact rating, RFM.

All inputs are per-user numpy arrays; all outputs are per-user numpy arrays.

fatigue_budget
    ``max(0, cap - sends_in_window)``, then shrunk: minus 1 when the user left the
    last 3 or more messages on every reachable channel unanswered, capped at 1 when
    8 or more went unanswered, and 0 for anyone who ever complained.  Default cap:
    3 messages per 7 days across all channels (users say they want at most about
    three a week).
lifecycle (days since the last activity, ``days_inactive``)
    ``active`` <= 14 < ``at_risk`` <= 30 < ``lapsing`` <= 90 < ``lapsed`` <= 180 <
    ``dormant`` (also users with no activity at all).  A user inside 14 days whose
    BG/NBD ``p_alive`` fell under 0.5 is ``at_risk`` already.
contact_rating (1-5 stars, as Mailchimp shows engagement)
    score = (opens + 2 clicks) / sends over 90 days on all channels; 5 >= 0.5,
    4 >= 0.25, 3 >= 0.1 or no sends in 90 days (unknown = average), 2 > 0, 1 for
    no engagement at all after 3 or more sends.
rfm_r, rfm_f, rfm_m
    quintiles 1-5 (5 best) by rank: recency (fewer days inactive is better),
    frequency (repeat active days), monetary (mean purchase value; none = 1).
"""

from __future__ import annotations

import numpy as np

from engine.schema import LIFECYCLE

__all__ = ["fatigue_budget", "lifecycle", "lifecycle_names", "contact_rating", "quintiles", "quintile_cuts",
           "quintile_of"]


def fatigue_budget(sends_window: np.ndarray, streaks: np.ndarray, reachable: np.ndarray,
                   complained: np.ndarray, cap: int = 3) -> np.ndarray:
    """Messages the user may still get in the policy window (int16, 0..cap); see module docstring.

    ``streaks`` and ``reachable`` are [users, channels]; a channel that is not reachable
    does not count towards "every channel unanswered".
    """
    budget = np.maximum(0, cap - np.asarray(sends_window, np.int64))
    big = np.where(reachable, streaks, 10**6)
    min_streak = big.min(axis=1)
    any_reach = reachable.any(axis=1)
    min_streak = np.where(any_reach, min_streak, 0)
    budget = np.where(min_streak >= 3, budget - 1, budget)
    budget = np.where(min_streak >= 8, np.minimum(budget, 1), budget)
    budget = np.where(complained, 0, budget)
    return np.maximum(budget, 0).astype(np.int16)


def lifecycle(days_inactive: np.ndarray, p_alive: np.ndarray) -> np.ndarray:
    """Lifecycle stage index into :data:`engine.schema.LIFECYCLE` (int8); NaN days = dormant."""
    d = np.asarray(days_inactive, np.float64)
    stage = np.select([d <= 14, d <= 30, d <= 90, d <= 180], [0, 1, 2, 3], default=4)
    stage = np.where(np.isnan(d), 4, stage)
    stage = np.where((stage == 0) & (np.asarray(p_alive) < 0.5), 1, stage)
    return stage.astype(np.int8)


def lifecycle_names(stage: np.ndarray) -> np.ndarray:
    """Stage indexes from :func:`lifecycle` as names (object array)."""
    return np.array(LIFECYCLE, dtype=object)[stage]


def contact_rating(sends: np.ndarray, opens: np.ndarray, clicks: np.ndarray) -> np.ndarray:
    """1-5 engagement stars from 90-day totals across channels (int8)."""
    sends = np.asarray(sends, np.float64)
    eng = np.asarray(opens, np.float64) + 2.0 * np.asarray(clicks, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(sends > 0, eng / np.maximum(sends, 1), np.nan)
    stars = np.select(
        [np.isnan(rate), rate >= 0.5, rate >= 0.25, rate >= 0.1, rate > 0, sends >= 3],
        [3, 5, 4, 3, 2, 1], default=2)
    return stars.astype(np.int8)


def quintiles(values: np.ndarray, higher_is_better: bool = True, missing: np.ndarray | None = None) -> np.ndarray:
    """Rank-based quintile 1-5 (5 best); ties share the quintile of their first rank; missing -> 1."""
    v = np.asarray(values, np.float64)
    miss = np.isnan(v) if missing is None else (missing | np.isnan(v))
    out = np.ones(len(v), np.int8)
    ok = ~miss
    if ok.sum() == 0:
        return out
    key = v[ok] if higher_is_better else -v[ok]
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    first = np.searchsorted(sorted_key, key, side="left")
    out[ok] = (1 + (first * 5) // ok.sum()).astype(np.int8)
    return out


def quintile_cuts(values: np.ndarray, counts: np.ndarray) -> np.ndarray | None:
    """The 4 key values a user's key must exceed to reach quintiles 2..5.

    :func:`quintiles` gives ``1 + floor(5 c / N)`` with ``c`` the number of
    keys strictly below the user's; that is >= j + 1 exactly when ``c >= ceil(j N / 5)``,
    i.e. when the key exceeds the ``ceil(j N / 5)``-th smallest key.
    """
    if values.size == 0:
        return None
    u, inv = np.unique(values, return_inverse=True)
    c = np.zeros(u.size, np.int64)
    np.add.at(c, inv.reshape(-1), counts)
    cum = np.cumsum(c)
    n = int(cum[-1])
    ranks = [(j * n + 4) // 5 for j in range(1, 5)]
    return u[np.searchsorted(cum, ranks, side="left")]


def quintile_of(key: np.ndarray, cuts: np.ndarray | None) -> np.ndarray:
    """Quintile 1-5 of each key against :func:`quintile_cuts`' cut points (NaN or no cuts -> 1), int8."""
    out = np.ones(len(key), np.int8)
    ok = ~np.isnan(key)
    if cuts is not None and ok.any():
        out[ok] = 1 + (key[ok][:, None] > cuts[None, :]).sum(axis=1)
    return out
