"""BG/NBD lapse model (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way").

Per user the data are ``x`` repeat transactions (here: repeat active days), ``t_x`` the
time of the last one and ``T`` the time since the first, in any one time unit (winback
uses days).  Parameters: transaction rate ``lambda ~ Gamma(r, alpha)``, dropout chance
after each transaction ``p ~ Beta(a, b)``.

Likelihood of one user (FHL 2005, eq. 6), in log space::

    L = B(a, b+x)/B(a, b) * Gamma(r+x) alpha^r / Gamma(r) / (alpha+T)^(r+x)
      + [x > 0] B(a+1, b+x-1)/B(a, b) * Gamma(r+x) alpha^r / Gamma(r) / (alpha+t_x)^(r+x)

P(alive | x, t_x, T) (Fader, Hardie & Lee 2008, "Computing P(alive) using the BG/NBD model")::

    1 / (1 + [x > 0] a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x))

Conditional expectation of transactions in (T, T+t] (FHL 2005, eq. 10)::

    (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))]
      / (1 + [x > 0] a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x))

Eq. 7 (unconditional E[X(t)] of a new user) is the same expression with x = 0, T = 0.

The textbook form of eq. 10 fails in floating point where z = t/(alpha+T+t) is near 1
or x is large (the Gauss series' terms peak near n ~ x z/(1-z) and the bracket cancels;
lifetimes returns NaN for r=0.11, alpha=2.24, a=0.31, b=0.50, x=0, T=1, t=30).  The
kernel :func:`_cond_numerator` never sums that series: it sums the Pfaff-transformed
series for z <= 0.4 and the Euler-transformed one (2F1(A,B;C;z) = (1-z)^(C-A-B)
2F1(C-A,C-B;C;z), Abramowitz & Stegun 15.3.3) above, both with the factor
(a+b+x-1)/(a-1) folded into the terms so a = 1 and a+b+x = 1 are not poles; the case
above gives 0.5646, and tests check it against mpmath at 40 digits up to z = 0.99998,
x = 300.

The fit compresses users to unique (x, t_x, T) rows with integer weights (one int64
sort key for whole days), so its cost depends on the number of distinct rows, not on
the number of users, then minimises the weighted mean negative eq. 6 over
log-parameters by a box-constrained trust-region Newton method with the analytic
Hessian (:mod:`engine.scoring.bgnbd_fit`: one numba pass per evaluation gives the
likelihood, gradient and Hessian; 3-8 passes on ordinary data, 10-50 on a boundary;
inputs over 20k rows start from a fit on every k-th row, which leaves the full data
3-4 passes; no scipy).  ``alpha`` is
optimised in units of max(T) and ``penalizer`` adds ``penalizer * (r^2 + alpha^2 +
a^2 + b^2)`` in those units, the L2 term of lifetimes' ``BetaGeoFitter(penalizer_coef)``,
so the same coefficient gives the same estimates.

Where the maximum-likelihood estimate sits on the boundary of the parameter space the
fit does not refuse: it returns the limit model and says so in
``diagnostics_["warnings"]`` (and ``boundary``).  "No churn" (nobody drops out) drives
the mean dropout chance a/(a+b) to 0: P(alive) is ~1 for everyone.  "Certain churn"
(users with one or two active days: each repeat looks like the last) drives it to 1:
P(alive) is ~0 for every repeat user.  "Shared rate"
(everyone is active at about the same rate) drives r and alpha to infinity with
r/alpha fixed: the gamma mixture collapses to one Poisson rate.  Log-parameters are
kept in [-15, 15] (r up to 3e6), where every closed form below is still finite.

P(no transaction in (T, T+t] | x, t_x, T), winback's ``lapse_risk`` for a horizon t:
a user who is dead stays at zero; one who is alive has lambda ~ Gamma(r+x, alpha+T)
given the history (FHL 2005, eq. A.3's posterior), dies only right after a
transaction, so makes none in (T, T+t] with probability E[exp(-lambda t)]::

    1 - P(alive) + P(alive) * ((alpha+T)/(alpha+T+t))^(r+x)

(the x-user case of FHL 2005 eq. 8 with P(X(t) = 0) of the NBD conditioned on the history).
"""

from __future__ import annotations

import math
import time

import numpy as np
from engine.errors import ModelError
from engine.jit import njit
from engine.scoring.bgnbd_fit import Objective, minimize_box
from engine.scoring.bgnbd_rows import compress
from engine.scoring.bgnbd_rows import same_length as _same_length
from engine.scoring.bgnbd_rows import fit_rows

__all__ = ["BGNBD", "compress"]

_LOG_BOUND = 15.0  # |log-parameter| box of the optimiser
_SAMPLE_ROWS = 5_000  # compressed rows of the warm-start fit of large inputs
_NO_CHURN = 1e-4  # a/(a+b) below this: dropout has gone to zero
_SHARED_RATE = 100.0  # r above this: rate heterogeneity has collapsed (rate CV 1/sqrt(r) < 10 %)


@njit
def _loglik_users(x, t_x, T, r, alpha, a, b):
    """Per-user eq. 6 in log space; float64[n]."""
    out = np.empty(x.shape[0])
    base = -math.lgamma(r) + r * math.log(alpha) + math.lgamma(a + b) - math.lgamma(b)
    for i in range(x.shape[0]):
        xi = x[i]
        k = base + math.lgamma(r + xi) + math.lgamma(b + xi) - math.lgamma(a + b + xi)
        a3 = -(r + xi) * math.log(alpha + T[i])
        if xi > 0:
            a4 = math.log(a) - math.log(max(b + xi - 1.0, 1e-300)) - (r + xi) * math.log(alpha + t_x[i])
            m = max(a3, a4)
            out[i] = k + m + math.log1p(math.exp(min(a3, a4) - m))
        else:
            out[i] = k + a3
    return out


class FourParameterModel:
    """What BG/NBD and Pareto/NBD share: the fit options, ``params_`` / ``diagnostics_``, the
    repr and the fitted parameters in order (``PARAMS``) for the kernels."""

    name = ""
    PARAMS: tuple[str, str, str, str] = ("", "", "", "")

    def __init__(self, max_iter: int = 1000, tol: float = 1e-13, min_users: int = 20, penalizer: float = 0.0):
        self.max_iter = max_iter
        self.tol = tol
        self.min_users = min_users
        self.penalizer = penalizer
        self.params_: dict[str, float] | None = None
        self.diagnostics_: dict = {}

    def __repr__(self) -> str:
        if self.params_ is None:
            return f"{type(self).__name__}(unfitted)"
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items()) + ")"

    def _p(self):
        if self.params_ is None:
            raise ModelError(f"the {self.name} model is not fitted yet; call fit() first")
        return tuple(self.params_[k] for k in self.PARAMS)


class BGNBD(FourParameterModel):
    """The BG/NBD model with sklearn-style ``params_`` after :meth:`fit`.

    >>> m = BGNBD().fit(frequency, recency, T)          # days; m.params_ = {'r':..., 'alpha':..., 'a':..., 'b':...}
    >>> m.p_alive(frequency, recency, T)
    >>> m.expected(30.0, frequency, recency, T)          # active days expected in the next 30 days
    >>> m.p_none(30.0, frequency, recency, T)            # P(no activity in the next 30 days)

    ``frequency`` (x) is the number of repeat transactions, ``recency`` (t_x) the time from
    the first to the last one and ``T`` the time from the first one to the end of
    observation, all in one unit (days in winback); ``alpha`` comes out in that unit.
    ``penalizer`` is lifetimes' L2 coefficient (see the module docstring; 0 = plain
    maximum likelihood), ``max_iter`` bounds the optimiser's iterations, ``tol`` its
    relative change of the objective, ``min_users`` the fewest users it will fit.
    ``diagnostics_`` holds log_likelihood (at the estimates, in the input unit, without
    the penalty), users, unique_rows, iterations, evaluations, converged, seconds,
    penalizer, boundary (a list: "no_churn", "certain_churn", "shared_rate") and warnings (sentences).
    Fitting raises :class:`engine.errors.ModelError` (with ``.diagnostics``) only on
    bad input, too few users or no repeat activity at all; a boundary optimum or an
    iteration limit is a warning, never a refusal.
    """

    name = "BG/NBD"
    PARAMS = ("r", "alpha", "a", "b")

    def fit(self, frequency, recency, T, weights=None) -> "BGNBD":
        """Maximum-likelihood fit (trust-region Newton on log-parameters, analytic Hessian); returns self."""
        t0 = time.perf_counter()
        if not (self.penalizer >= 0 and math.isfinite(self.penalizer)):
            raise ModelError(f"BG/NBD penalizer must be a finite number >= 0, got {self.penalizer}; "
                             "use 0 (plain maximum likelihood) or a small value such as 0.001")
        x, t_x, TT, w, n_users, diag = fit_rows("BG/NBD", frequency, recency, T, weights, self.min_users)
        # alpha in units of max(T), as lifetimes rescales (max T = 1): well-conditioned starts in any unit,
        # and the same penalty term as BetaGeoFitter(penalizer_coef)
        scale = max(float(TT.max()), 1e-12)
        unit = np.array([1.0, scale, 1.0, 1.0])
        obj = Objective(x, t_x, TT, w)
        pen = float(self.penalizer)
        opts = {"max_iter": int(self.max_iter), "ftol": float(self.tol), "gtol": 1e-9}
        starts = [np.log(s0) for s0 in ([0.5, 1.0, 0.5, 1.0], [1.0, 0.5, 1.0, 3.0], [0.2, 0.2, 0.8, 2.5])]
        nll, best = fit_log_params(Objective, obj, x, t_x, TT, w, n_users, unit, pen, starts, opts)
        if best["x"][2] <= -_LOG_BOUND + 1e-6 and pen == 0.0:
            best = _prefer_no_churn(nll, best, n_users, opts)
        r, alpha, a, b = (float(v) for v in np.exp(best["x"]) * unit)
        ll = obj((r, alpha, a, b))[0]
        obj.passes -= 1
        if not np.isfinite(ll):
            raise ModelError(f"BG/NBD fit gave a non-finite log-likelihood ({best['message']}); diagnostics: {diag}. "
                             "Check that the activity summary is in one time unit", diag)
        converged = is_converged(best)
        boundary, warnings = _boundary(r, alpha, a, b)
        if not converged:
            warnings.append(f"the BG/NBD optimiser stopped before converging ({best['message']}) after "
                            f"{best['nit']} iterations; the estimates are the best point found")
        diag.update(log_likelihood=float(ll), iterations=int(best["nit"]), evaluations=obj.passes,
                    converged=converged, penalizer=pen, boundary=boundary, warnings=warnings,
                    seconds=round(time.perf_counter() - t0, 4))
        self.params_ = {"r": r, "alpha": alpha, "a": a, "b": b}
        self.diagnostics_ = diag
        return self

    def log_likelihood(self, x, t_x, T) -> np.ndarray:
        """Per-user log-likelihood (eq. 6), float64[n]; a density in 1/time^x of the input unit."""
        return _loglik_users(*_same_length(x, t_x, T), *self._p())

    def p_alive(self, x, t_x, T) -> np.ndarray:
        """P(alive | x, t_x, T) for every user, float64[n] in [0, 1]; 1 exactly when x = 0."""
        r, alpha, a, b = self._p()
        return _p_alive(*_same_length(x, t_x, T), r, alpha, a, b)

    def expected(self, t: float, x, t_x, T) -> np.ndarray:
        """E[transactions in (T, T+t] | x, t_x, T] for every user (eq. 10), float64[n]; t in the fit's unit."""
        r, alpha, a, b = self._p()
        return _expected(float(t), *_same_length(x, t_x, T), r, alpha, a, b)

    def p_none(self, t: float, x, t_x, T) -> np.ndarray:
        """P(no transaction in (T, T+t] | x, t_x, T) per user (module docstring), float64[n] in [0, 1].

        ``t`` in the fit's unit.  1 - p_none is the chance of coming back within t.
        """
        r, alpha, a, b = self._p()
        return _p_none(float(t), *_same_length(x, t_x, T), r, alpha, a, b)

    def expected_unconditional(self, t: float) -> float:
        """E[X(t)] for a new user over a period of length t (eq. 7)."""
        r, alpha, a, b = self._p()
        return float(_cond_numerator(float(t), 0.0, 0.0, r, alpha, a, b))


def fit_log_params(objective, obj, x, t_x, TT, w, n_users, unit, pen, starts, opts):
    """(the objective on every row, the best :func:`minimize_box` result) of a four-parameter fit
    on log-parameters in the box +-15, shared by BG/NBD and Pareto/NBD.

    Large inputs (over 4 x 5,000 compressed rows) first fit every k-th row with its weight, so
    the full data needs only the last few Newton steps; that start comes first, the generic
    ``starts`` stay as fallbacks, and the first start that converges to a finite value ends
    the search.  ``objective`` builds an objective from rows (``obj`` is the one on every row)."""
    starts = list(starts)
    if len(x) > 4 * _SAMPLE_ROWS:
        k = len(x) // _SAMPLE_ROWS
        sub = objective(x[::k], t_x[::k], TT[::k], w[::k])
        warm = minimize_box(_nll(sub, float(w[::k].sum()), unit, pen), starts[0], -_LOG_BOUND, _LOG_BOUND, **opts)
        if warm["success"]:
            starts.insert(0, warm["x"])
    nll = _nll(obj, n_users, unit, pen)
    best = None
    for start in starts:
        res = minimize_box(nll, start, -_LOG_BOUND, _LOG_BOUND, **opts)
        if best is None or res["fun"] < best["fun"]:
            best = res
        if res["success"] and res["fun"] < math.inf:
            break
    return nll, best


def is_converged(best) -> bool:
    """Converged: the optimiser said so, or the gradient projected on the box is below 1e-6."""
    th, jac = best["x"], best["jac"]
    proj = np.where(((th <= -_LOG_BOUND) & (jac > 0)) | ((th >= _LOG_BOUND) & (jac < 0)), 0.0, np.abs(jac))
    return bool(best["success"]) or float(proj.max()) < 1e-6


def _nll(obj, n_users, unit, pen):
    """theta (log-parameters, alpha in ``unit``) -> (mean negative log-likelihood + L2 penalty, gradient,
    Hessian); (inf, 0, 0) where the likelihood is not finite."""

    def f(theta):
        p = np.exp(theta)
        nat = p * unit
        ll, g, H = obj(nat)
        val = -ll / n_users + pen * float(p @ p)
        gn = g * nat
        grad = -gn / n_users + 2.0 * pen * p * p
        hess = -(H * np.outer(nat, nat) + np.diag(gn)) / n_users + np.diag(4.0 * pen * p * p)
        if not math.isfinite(val) or not (np.all(np.isfinite(grad)) and np.all(np.isfinite(hess))):
            return math.inf, np.zeros(4), np.zeros((4, 4))
        return val, grad, hess

    return f


def _prefer_no_churn(nll, best, n_users, opts):
    """The no-churn limit (a -> 0, b -> infinity) instead of the a, b -> 0 corner when the data cannot
    tell them apart (likelihood ratio below the 5 % point of chi-squared(1), 3.84).

    With a on its lower bound the likelihood has two flat ridges: a/(a+b) -> 0 (nobody drops out)
    and a, b -> 0 with a/b fixed (a few users drop out at their first repeat day, the others never);
    an optimiser may end on either.  The first is the documented limit model, so it is kept unless
    the second is significantly better.
    """
    lo = np.array([-_LOG_BOUND, -_LOG_BOUND, -_LOG_BOUND, _LOG_BOUND])
    hi = np.array([_LOG_BOUND, _LOG_BOUND, -_LOG_BOUND, _LOG_BOUND])
    start = np.array([best["x"][0], best["x"][1], -_LOG_BOUND, _LOG_BOUND])
    limit = minimize_box(nll, start, lo, hi, **opts)
    if limit["success"] and 2.0 * n_users * (limit["fun"] - best["fun"]) < 3.84:
        limit["nit"] += best["nit"]
        return limit
    return best


def _boundary(r, alpha, a, b):
    """(boundary names, warning sentences) for estimates on the edge of the parameter space."""
    names, warnings = [], []
    if a / (a + b) < _NO_CHURN:
        names.append("no_churn")
        warnings.append(f"BG/NBD: the dropout chance went to zero (a={a:.3g}, b={b:.3g}): the data show no churn, "
                        "so p_alive is ~1 for everyone and lapse_risk comes from the activity rate alone")
    if b / (a + b) < _NO_CHURN:
        names.append("certain_churn")
        warnings.append(f"BG/NBD: the dropout chance went to one (a={a:.3g}, b={b:.3g}): the data look as if every "
                        "user drops out at their next active day (typical when most users have one or two), so "
                        "p_alive is ~0 for every repeat user and lapse_risk barely ranks them; compare it with "
                        "days_inactive in 'winback backtest' before targeting by it")
    if r > _SHARED_RATE:
        names.append("shared_rate")
        warnings.append(f"BG/NBD: the rate heterogeneity collapsed (r={r:.3g}): everyone is active at about the "
                        f"same rate, {r / alpha:.4g} per unit of time, so users differ by recency and dropout only")
    return names, warnings


@njit
def _cond_numerator(t, x, T, r, alpha, a, b):
    """(a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)].

    The numerator of FHL 2005 eq. 10 (with x = 0, T = 0 it is eq. 7), for a window of
    length ``t`` after ``T`` (same time unit as ``alpha``), z = t / (alpha + T + t).
    Write A = r+x, B = b+x, C = a+b+x-1, d = a-1, L = log(1-z).  The plain Gauss series
    is never summed (its terms peak near n ~ x z/(1-z) and the bracket cancels); instead

    * z <= 0.4, Pfaff: (1-z)^A 2F1(A,B;C;z) = 2F1(A, C-B; C; w), w = z/(z-1) in [-2/3, 0],
      so the numerator is the alternating series -sum_n (A)_n (a)_(n-1) / ((C+1)_(n-1) n!) w^n;
    * z > 0.4, Euler: (1-z)^A 2F1(A,B;C;z) = (1-z)^d 2F1(C-A, d; C; z), so the numerator is
      C (1 - (1-z)^d)/d - (1-z)^d sum_n (C-A)_n (a)_(n-1) / ((C+1)_(n-1) n!) z^n, whose terms
      shrink from the first (C + n grows with x) and whose bracket does not cancel.

    C / (C)_n = 1 / (C+1)_(n-1) removes the pole at C = 0 and (1-(1-z)^d)/d -> -L removes
    the one at a = 1, so every parameter point with r, alpha, a, b > 0 is finite.
    """
    z = t / (alpha + T + t)
    if z <= 0.0:
        return 0.0
    A = r + x
    C = a + b + x - 1.0
    if z <= 0.4:
        w = z / (z - 1.0)
        term = -A * w
        total = term
        n = 1
        while n < 100_000:
            term *= (A + n) * (a + n - 1.0) / ((C + n) * (n + 1.0)) * w
            total += term
            n += 1
            if abs(term) <= 1e-17 * abs(total) and abs((A + n) * (a + n - 1.0) * w) < (C + n) * (n + 1.0):
                break
        return total
    d = a - 1.0
    L = math.log1p(-z)
    dL = d * L
    head = -L * (1.0 + 0.5 * dL) if abs(dL) < 1e-8 else -math.expm1(dL) / d
    cma = C - A
    term = cma * z
    total = term
    n = 1
    while n < 20_000_000 and term != 0.0:
        term *= (cma + n) * (a + n - 1.0) / ((C + n) * (n + 1.0)) * z
        total += term
        n += 1
        # stop once terms are negligible and no longer growing
        if abs(term) <= 1e-17 * abs(total) and abs((cma + n) * (a + n - 1.0)) * z < (C + n) * (n + 1.0):
            break
    return C * head - math.exp(dL) * total


@njit
def _log_odds_dead(x, t_x, T, r, alpha, a, b):
    """log[(1 - P(alive)) / P(alive)] = log(a/(b+x-1)) + (r+x) log((alpha+T)/(alpha+t_x)), x > 0."""
    return math.log(a) - math.log(b + x - 1.0) + (r + x) * (math.log(alpha + T) - math.log(alpha + t_x))


@njit
def _p_alive_one(x, t_x, T, r, alpha, a, b):
    if x <= 0.0:
        return 1.0
    lr = _log_odds_dead(x, t_x, T, r, alpha, a, b)
    if lr > 0.0:
        e = math.exp(-lr)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(lr))


@njit
def _p_alive(x, t_x, T, r, alpha, a, b):
    """P(alive | x, t_x, T) per user (Fader, Hardie & Lee 2008 note); float64[n]."""
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = _p_alive_one(x[i], t_x[i], T[i], r, alpha, a, b)
    return out


@njit
def _expected(t, x, t_x, T, r, alpha, a, b):
    """E[X(T, T+t] | x, t_x, T] per user (FHL 2005 eq. 10) = numerator * P(alive); float64[n]."""
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = _cond_numerator(t, x[i], T[i], r, alpha, a, b) * _p_alive_one(x[i], t_x[i], T[i], r, alpha, a, b)
    return out


@njit
def _p_none(t, x, t_x, T, r, alpha, a, b):
    """1 - P(alive) + P(alive) ((alpha+T)/(alpha+T+t))^(r+x) per user; float64[n]."""
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        pa = _p_alive_one(x[i], t_x[i], T[i], r, alpha, a, b)
        stay = math.exp(-(r + x[i]) * math.log1p(t / (alpha + T[i]))) if t > 0.0 else 1.0
        out[i] = (1.0 - pa) + pa * stay
    return out
