"""Per-user lapse scores from a fitted BG/NBD or Pareto/NBD model: p_alive, expected active days, lapse_risk.

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

Under Pareto/NBD (:mod:`engine.scoring.pareto_nbd`, :func:`pareto_scores`) a user can die
at any time, so a one-time visitor needs no convention: users with no repeat activity
are the model's x = 0, t_x = 0, T = T0 case.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from engine.jit import pjit
from engine.scoring.bgnbd import _cond_numerator, _p_alive_one

__all__ = ["user_scores", "lapse_risk", "pareto_scores", "scores_for"]


def user_scores(params: dict, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, repeat: np.ndarray,
                T0: np.ndarray, horizon_days: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p_alive, expected active days in 30 days, lapse_risk in ``horizon_days``), float64[n] each.

    ``repeat``: users scored by the BG/NBD forms (x > 0 in the model window); the others
    by the one-time-visitor convention with ``T0`` (days).
    """
    return _user_scores(params, x, t_x, T, repeat, T0, horizon_days, True)


def lapse_risk(params: dict, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, repeat: np.ndarray,
               T0: np.ndarray, horizon_days: float) -> np.ndarray:
    """``lapse_risk`` alone, float64[n]: the same numbers as the third of :func:`user_scores`
    without E[X] beside them (the learned model's cuts need only this)."""
    return _user_scores(params, x, t_x, T, repeat, T0, horizon_days, False)[2]


def _user_scores(params, x, t_x, T, repeat, T0, horizon_days, with_expected):
    r, alpha, a, b = (float(params[k]) for k in ("r", "alpha", "a", "b"))
    n = len(x)
    H = float(horizon_days)
    p_alive, exp30, risk = np.empty(n), np.empty(n), np.empty(n)
    rep = np.asarray(repeat, bool)
    cols = [np.ascontiguousarray(np.asarray(v, np.float64)[rep]) for v in (x, t_x, T)]
    p_alive[rep], exp30[rep], risk[rep] = _forms(30.0, H, *cols, r, alpha, a, b, with_expected)
    zero = ~rep
    T0 = np.ascontiguousarray(np.asarray(T0, np.float64)[zero])
    p0 = 1.0 / (1.0 + a / b * np.exp(r * np.log1p(T0 / alpha)))
    p_alive[zero] = p0
    if with_expected:
        none = np.zeros(len(T0))
        exp30[zero] = _forms(30.0, 0.0, none, none, T0, r, alpha, a, b, True)[1] * p0
    risk[zero] = 1.0 - p0 + p0 * np.exp(-r * np.log1p(H / (alpha + T0)))
    return p_alive, exp30, np.clip(risk, 0.0, 1.0)


@pjit
def _forms(t, H, x, t_x, T, r, alpha, a, b, with_expected):
    """Per user P(alive), E[X(T, T+t]] (0 unless ``with_expected``) and P(none in (T, T+H]) in one
    pass: the numbers of :class:`engine.scoring.bgnbd.BGNBD`'s ``p_alive``, ``expected`` and
    ``p_none`` (the same scalar formulas), P(alive) computed once per user instead of three times."""
    n = x.shape[0]
    pa_out = np.empty(n)
    ex_out = np.zeros(n)
    none_out = np.empty(n)
    for i in prange(n):  # users are independent: the same numbers on any number of threads
        pa = _p_alive_one(x[i], t_x[i], T[i], r, alpha, a, b)
        pa_out[i] = pa
        if with_expected:
            ex_out[i] = _cond_numerator(t, x[i], T[i], r, alpha, a, b) * pa
        stay = math.exp(-(r + x[i]) * math.log1p(H / (alpha + T[i]))) if H > 0.0 else 1.0
        none_out[i] = (1.0 - pa) + pa * stay
    return pa_out, ex_out, none_out


def pareto_scores(params: dict, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, repeat: np.ndarray,
                  T0: np.ndarray, horizon_days: float, risk_only: bool = False):
    """:func:`user_scores` under a fitted Pareto/NBD (``params``: r, alpha, s, beta in days).

    ``repeat`` users by their (x, t_x, T); the others as (0, 0, T0).  ``risk_only``: p_alive and the
    expectation are None (a check that ranks by lapse_risk alone).
    """
    from engine.scoring.pareto_nbd import ParetoNBD  # only when Pareto/NBD scores (start-up)

    model = ParetoNBD()
    model.params_ = {k: float(params[k]) for k in ("r", "alpha", "s", "beta")}
    rep = np.asarray(repeat, bool)
    zero = np.zeros(len(x))
    xs = np.where(rep, x, zero)
    ts = np.where(rep, t_x, zero)
    Ts = np.where(rep, T, np.asarray(T0, np.float64))
    risk = np.clip(model.p_none(float(horizon_days), xs, ts, Ts), 0.0, 1.0)
    if risk_only:
        return None, None, risk
    return model.p_alive(xs, ts, Ts), model.expected(30.0, xs, ts, Ts), risk


def scores_for(model: dict, *args) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`user_scores` or :func:`pareto_scores` by ``model["name"]`` ("BG/NBD", "Pareto/NBD")."""
    return (pareto_scores if model.get("name") == "Pareto/NBD" else user_scores)(model, *args)
