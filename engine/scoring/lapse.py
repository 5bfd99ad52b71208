"""Per-user lapse scores from a fitted BG/NBD model: p_alive, expected active days, lapse_risk.

Units are days.  For users with repeat activity (x > 0) these are the BG/NBD closed forms
of :mod:`engine.scoring.bgnbd`: P(alive) (Fader, Hardie & Lee 2008 note), E[X(T, T+30]]
(FHL 2005 eq. 10) and ``lapse_risk`` = P(no activity in (T, T+H] | x, t_x, T)::

    1 - P(alive) + P(alive) * ((alpha+T)/(alpha+T+H))^(r+x)

Users with no repeat activity get the MBG/NBD convention (Batislam, Denizel &
Filiztekin 2007) that the first active day carries a dropout chance too, with ``T0``
the days since their only activity (or since signup, or the model window)::

    p0 = 1 / (1 + a/b ((alpha+T0)/alpha)^r)
    expected = p0 * E[X(30)] of a user first seen T0 days ago (eq. 10 with x = 0)
    lapse_risk = 1 - p0 + p0 * ((alpha+T0)/(alpha+T0+H))^r
"""

from __future__ import annotations

import numpy as np

from engine.scoring.bgnbd import BGNBD

__all__ = ["user_scores"]


def user_scores(params: dict, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, repeat: np.ndarray,
                T0: np.ndarray, horizon_days: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p_alive, expected active days in 30 days, lapse_risk in ``horizon_days``), float64[n] each.

    ``repeat``: users scored by the BG/NBD forms (x > 0 in the model window); the others
    by the one-time-visitor convention with ``T0`` (days).
    """
    model = BGNBD()
    model.params_ = dict(params)
    r, alpha, a, b = (params[k] for k in ("r", "alpha", "a", "b"))
    n = len(x)
    H = float(horizon_days)
    p_alive, exp30, risk = np.empty(n), np.empty(n), np.empty(n)
    rep = np.asarray(repeat, bool)
    p_alive[rep] = model.p_alive(x[rep], t_x[rep], T[rep])
    exp30[rep] = model.expected(30.0, x[rep], t_x[rep], T[rep])
    risk[rep] = model.p_none(H, x[rep], t_x[rep], T[rep])
    zero = ~rep
    T0 = np.asarray(T0, np.float64)[zero]
    p0 = 1.0 / (1.0 + a / b * np.exp(r * np.log1p(T0 / alpha)))
    p_alive[zero] = p0
    exp30[zero] = model.expected(30.0, np.zeros(len(T0)), np.zeros(len(T0)), T0) * p0
    risk[zero] = 1.0 - p0 + p0 * np.exp(-r * np.log1p(H / (alpha + T0)))
    return p_alive, exp30, np.clip(risk, 0.0, 1.0)
