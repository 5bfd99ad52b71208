"""Pareto/NBD lapse model (Schmittlein, Morrison & Colombo 1987), beside BG/NBD.

Per user, as for :mod:`engine.scoring.bgnbd`: ``x`` repeat transactions (winback: repeat
active days), ``t_x`` the time of the last, ``T`` the time since the first, one time unit
(winback: days).  Parameters: transaction rate ``lambda ~ Gamma(r, alpha)`` while alive,
lifetime exponential with rate ``mu ~ Gamma(s, beta)``.  Unlike BG/NBD a user can die at any
time, not only right after a transaction, so a one-time buyer (x = 0) has a proper
P(alive) below 1.

The likelihood (Fader, Hardie & Lee 2005, "A note on deriving the Pareto/NBD model and
related expressions", eq. 18) and its fit are in :mod:`engine.scoring.pareto_nbd_fit`:
one integral by Gauss-Legendre quadrature instead of the note's Gauss hypergeometric
functions, with the analytic gradient and Hessian, minimised over log-parameters by the
trust-region Newton method of the BG/NBD fit (:func:`engine.scoring.bgnbd_fit.minimize_box`;
inputs over 20k compressed rows start from a fit on every k-th row, as there);
``alpha`` and ``beta`` are optimised in units of max(T) and ``penalizer`` adds
``penalizer * (r^2 + alpha^2 + s^2 + beta^2)`` in those units to the mean negative
log-likelihood.  No scipy.

With ``u(tau) = (1+tau/alpha)^-(r+x) (1+tau/beta)^-s`` and ``J = int_{t_x}^T u(tau)/(beta+tau) dtau``:

* P(alive | x, t_x, T) = u(T) / (u(T) + s J)  (the note's eq. 36, the share of the "alive at T"
  term of the likelihood);
* given alive at T, lambda ~ Gamma(r+x, a) and mu ~ Gamma(s, b) with a = alpha+T, b = beta+T,
  independently (the note's section 5), and the remaining lifetime is Exp(mu), so no
  transaction in (T, T+H] has probability E[exp(-lambda min(lifetime, H))]::

      P0 = 1 - P(alive) + P(alive) [ (a/(a+H))^(r+x) (b/(b+H))^s
                                     + int_0^H (a/(a+t))^(r+x) s b^s/(b+t)^(s+1) dt ]

  (the same integral as J, by the same quadrature); winback's ``lapse_risk``;
* E[X(T, T+t] | x, t_x, T] = P(alive) (r+x)/a * b/(s-1) [1 - (b/(b+t))^(s-1)]  (the note's eq. 41;
  b log(1+t/b) at s = 1).

Boundaries: where nobody drops out the estimate of the mean lifetime beta/s runs off to
infinity (``no_churn``: P(alive) ~ 1 for everyone), and where everyone transacts at one
rate r and alpha grow together (``shared_rate``); the fit returns the limit model with a
warning, as the BG/NBD fit does.  Log-parameters are kept in [-15, 15].
"""

from __future__ import annotations

import math
import time

import numpy as np

from engine.errors import ModelError
from engine.scoring.bgnbd import FourParameterModel, fit_log_params, is_converged
from engine.scoring.bgnbd_rows import fit_rows, same_length
from engine.scoring.pareto_nbd_fit import NODES, WEIGHTS, Objective, expected_rows as _expected, loglik_rows
from engine.scoring.pareto_nbd_fit import p_alive_rows as _p_alive, p_none_rows as _p_none

__all__ = ["ParetoNBD"]

_NO_CHURN = 1e-3  # expected share of users dying over max(T), s/beta * max(T), below this: no churn
_SHARED_RATE = 100.0  # r above this: rate heterogeneity has collapsed


class ParetoNBD(FourParameterModel):
    """The Pareto/NBD model with ``params_`` = {'r', 'alpha', 's', 'beta'} after :meth:`fit`.

    Same interface as :class:`engine.scoring.bgnbd.BGNBD`: ``fit(frequency, recency, T,
    weights)``, ``p_alive``, ``expected(t, ...)``, ``p_none(t, ...)``, ``log_likelihood``;
    ``diagnostics_`` holds log_likelihood, users, unique_rows, iterations, evaluations,
    converged, seconds, penalizer, boundary and warnings.  ``alpha`` and ``beta`` come out in
    the input's time unit.  Fitting raises :class:`engine.errors.ModelError` only on bad
    input, too few users or no repeat activity at all.
    """

    name = "Pareto/NBD"
    PARAMS = ("r", "alpha", "s", "beta")

    def fit(self, frequency, recency, T, weights=None) -> "ParetoNBD":
        """Maximum-likelihood fit (trust-region Newton on log-parameters, analytic Hessian); returns self."""
        t0 = time.perf_counter()
        if not (self.penalizer >= 0 and math.isfinite(self.penalizer)):
            raise ModelError(f"Pareto/NBD penalizer must be a finite number >= 0, got {self.penalizer}")
        x, t_x, TT, w, n_users, diag = fit_rows("Pareto/NBD", frequency, recency, T, weights, self.min_users)
        scale = max(float(TT.max()), 1e-12)
        unit = np.array([1.0, scale, 1.0, scale])
        obj = Objective(x, t_x, TT, w)
        pen = float(self.penalizer)
        opts = {"max_iter": int(self.max_iter), "ftol": float(self.tol), "gtol": 1e-9}
        starts = [np.log(s0) for s0 in ([0.5, 1.0, 0.5, 1.0], [1.0, 0.3, 1.0, 3.0], [0.2, 0.1, 2.0, 10.0])]
        _, best = fit_log_params(Objective, obj, x, t_x, TT, w, n_users, unit, pen, starts, opts)
        r, alpha, s, beta = (float(v) for v in np.exp(best["x"]) * unit)
        ll = obj((r, alpha, s, beta))[0]
        obj.passes -= 1
        if not math.isfinite(ll):
            raise ModelError(f"Pareto/NBD fit gave a non-finite log-likelihood ({best['message']})", diag)
        converged = is_converged(best)
        boundary, warnings = _boundary(r, alpha, s, beta, scale)
        if not converged:
            warnings.append(f"the Pareto/NBD optimiser stopped before converging ({best['message']}) after "
                            f"{best['nit']} iterations; the estimates are the best point found")
        diag.update(log_likelihood=float(ll), iterations=int(best["nit"]), evaluations=obj.passes,
                    converged=converged, penalizer=pen, boundary=boundary, warnings=warnings,
                    seconds=round(time.perf_counter() - t0, 4))
        self.params_ = {"r": r, "alpha": alpha, "s": s, "beta": beta}
        self.diagnostics_ = diag
        return self

    def log_likelihood(self, x, t_x, T) -> np.ndarray:
        """Per-user log-likelihood (the note's eq. 18), float64[n]; a density in 1/time^x of the input unit."""
        return loglik_rows(*same_length(x, t_x, T), *self._p(), NODES, WEIGHTS)

    def p_alive(self, x, t_x, T) -> np.ndarray:
        """P(alive | x, t_x, T) per user, float64[n] in [0, 1] (below 1 also for x = 0)."""
        return _p_alive(*same_length(x, t_x, T), *self._p(), NODES, WEIGHTS)

    def p_none(self, t: float, x, t_x, T) -> np.ndarray:
        """P(no transaction in (T, T+t] | x, t_x, T) per user (module docstring), float64[n] in [0, 1]."""
        return _p_none(float(t), *same_length(x, t_x, T), *self._p(), NODES, WEIGHTS)

    def expected(self, t: float, x, t_x, T) -> np.ndarray:
        """E[transactions in (T, T+t] | x, t_x, T] per user (module docstring), float64[n]; t in the fit's unit."""
        return _expected(float(t), *same_length(x, t_x, T), *self._p(), NODES, WEIGHTS)


def _boundary(r, alpha, s, beta, scale):
    names, warnings = [], []
    if s / beta * scale < _NO_CHURN:
        names.append("no_churn")
        warnings.append(f"Pareto/NBD: the dropout rate went to zero (s={s:.3g}, beta={beta:.3g}): the data show no "
                        "churn, so p_alive is ~1 for everyone and lapse_risk comes from the activity rate alone")
    if r > _SHARED_RATE:
        names.append("shared_rate")
        warnings.append(f"Pareto/NBD: the rate heterogeneity collapsed (r={r:.3g}): everyone is active at about "
                        f"the same rate, {r / alpha:.4g} per unit of time")
    return names, warnings
