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
the number of users, then maximises the weighted eq. 6 over log-parameters with BFGS
and the analytic gradient, evaluated in one numba pass per step.  Inputs with more
than 20k distinct rows are first fitted on every k-th row to warm-start the full fit.
"""

from __future__ import annotations

import math
import time

import numpy as np
from scipy.special import digamma, gammaln

from engine.jit import njit
from engine.errors import ModelError

__all__ = ["BGNBD", "compress"]

_SAMPLE_ROWS = 5_000  # fewest compressed rows in the warm-start fit of large inputs (else 2%)


def _as_columns(frequency, recency, T, weights=None):
    """float64 copies of the inputs, checked: same length, finite, 0 <= recency <= T, frequency >= 0."""
    cols = [np.asarray(v, np.float64).reshape(-1) for v in (frequency, recency, T)]
    if weights is not None:
        cols.append(np.asarray(weights, np.float64).reshape(-1))
    n = cols[0].shape[0]
    if any(c.shape[0] != n for c in cols):
        raise ModelError("BG/NBD inputs frequency, recency, T" + (", weights" if weights is not None else "")
                         + f" must have the same length, got {[c.shape[0] for c in cols]}; pass one value per user")
    x, t_x, TT = cols[:3]
    bad = ~(np.isfinite(x) & np.isfinite(t_x) & np.isfinite(TT)) | (x < 0) | (t_x < 0) | (t_x > TT * (1 + 1e-12))
    if weights is not None:
        bad |= ~np.isfinite(cols[3]) | (cols[3] < 0)
    if bad.any():
        rows = np.flatnonzero(bad)
        examples = "; ".join(f"row {k}: frequency={x[k]:g}, recency={t_x[k]:g}, T={TT[k]:g}" for k in rows[:5])
        raise ModelError(f"BG/NBD inputs have {rows.size} row(s) with a NaN/infinite value, a negative value or "
                         f"recency > T (e.g. {examples}); recency is the time from the first to the last "
                         "activity and T from the first activity to as_of, in the same unit: fix the summary "
                         "or drop those users", {"bad_rows": int(rows.size), "users": int(n)})
    return cols if weights is not None else cols + [None]


def _same_length(x, t_x, T):
    cols = [np.ascontiguousarray(v, np.float64).reshape(-1) for v in (x, t_x, T)]
    if not cols[0].shape[0] == cols[1].shape[0] == cols[2].shape[0]:
        raise ModelError(f"BG/NBD x, t_x and T must have one value per user each, got lengths "
                         f"{[c.shape[0] for c in cols]}")
    return cols


def compress(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray | None = None):
    """Unique (x, t_x, T) rows and their summed weights (1 per user when ``weights`` is None).

    Returns ``(x, t_x, T, w, inverse)`` with float64 arrays of the unique rows in
    lexicographic order and ``inverse`` (int64, one per input row) such that
    ``x_unique[inverse] == x``.  O(n log n): when every value is a whole number below
    2^21 (whole days, winback's case) one argsort of an int64 key, else a 3-column lexsort;
    then one numba pass over the sorted order (:func:`_runs`).
    """
    x, t_x, T = (np.ascontiguousarray(v, np.float64).reshape(-1) for v in (x, t_x, T))
    n = x.shape[0]
    if n == 0:
        e = np.empty(0)
        return e, e.copy(), e.copy(), e.copy(), np.empty(0, np.int64)
    ok, key = _whole_key(x, t_x, T)
    order = np.argsort(key) if ok else np.lexsort((T, t_x, x))
    wts = np.ones(1) if weights is None else np.ascontiguousarray(weights, np.float64).reshape(-1)
    return _runs(order, x, t_x, T, wts, weights is not None)


@njit
def _whole_key(x, t_x, T):
    """(True, x << 42 | t_x << 21 | T) when all values are whole numbers in [0, 2^21), else (False, junk)."""
    n = x.shape[0]
    key = np.empty(n, np.int64)
    lim = float(1 << 21)
    for i in range(n):
        a, b, c = x[i], t_x[i], T[i]
        if not (0.0 <= a < lim and 0.0 <= b < lim and 0.0 <= c < lim) \
                or a != math.floor(a) or b != math.floor(b) or c != math.floor(c):
            return False, key
        key[i] = (np.int64(a) << 42) | (np.int64(b) << 21) | np.int64(c)
    return True, key


def _compress_for_fit(x, t_x, T, weights):
    """compress() without the inverse index: for whole days and no weights, sort the int64 keys
    themselves (no argsort, no gathers) and decode the unique rows from them."""
    if weights is None and x.shape[0] > 0:
        ok, key = _whole_key(x, t_x, T)
        if ok:
            key.sort()
            return _key_runs(key)
    return compress(x, t_x, T, weights)[:4]


@njit
def _key_runs(ks):
    """Unique sorted int64 keys -> decoded (x, t_x, T) float64 rows and their counts."""
    n = ks.shape[0]
    ux = np.empty(n)
    ut = np.empty(n)
    uT = np.empty(n)
    w = np.zeros(n)
    mask = (np.int64(1) << 21) - 1
    g = -1
    prev = np.int64(-1)
    for k in range(n):
        v = ks[k]
        if v != prev:
            g += 1
            ux[g] = float(v >> 42)
            ut[g] = float((v >> 21) & mask)
            uT[g] = float(v & mask)
            prev = v
        w[g] += 1.0
    m = g + 1
    return ux[:m].copy(), ut[:m].copy(), uT[:m].copy(), w[:m].copy()


@njit
def _runs(order, x, t_x, T, wts, has_w):
    """Walk rows in sorted ``order``: unique (x, t_x, T), summed weights, inverse index."""
    n = order.shape[0]
    ux = np.empty(n)
    ut = np.empty(n)
    uT = np.empty(n)
    w = np.zeros(n)
    inverse = np.empty(n, np.int64)
    g = -1
    for k in range(n):
        i = order[k]
        if g < 0 or x[i] != ux[g] or t_x[i] != ut[g] or T[i] != uT[g]:
            g += 1
            ux[g] = x[i]
            ut[g] = t_x[i]
            uT[g] = T[i]
        w[g] += wts[i] if has_w else 1.0
        inverse[i] = g
    m = g + 1
    return ux[:m].copy(), ut[:m].copy(), uT[:m].copy(), w[:m].copy(), inverse


def _loglik_rows(params, x, t_x, T):
    r, alpha, a, b = params
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x), -np.inf)
    return a1 + a2 + np.logaddexp(a3, a4)


class _Objective:
    """Weighted BG/NBD log-likelihood (FHL 2005 eq. 6) and its analytic gradient.

    Terms that depend on x alone (log-gammas, digammas) are evaluated once per distinct
    x with scipy; one numba pass over the compressed rows (:func:`_loglik_pass`) does the
    rest.  No BLAS call is made: on a busy machine OpenBLAS's worker threads turn a
    dot product over 10^4 rows into tens of milliseconds.
    """

    def __init__(self, x, t_x, T, w):
        self.ux, self.ix = _distinct(x)
        self.uT, self.iT = _distinct(T)
        self.ut, self.it = _distinct(t_x)
        self.x, self.w = x, w
        self.wsum = float(w.sum())

    def __call__(self, params):
        r, alpha, a, b = (float(v) for v in params)
        ux = self.ux
        kx = (gammaln(r + ux) - gammaln(r) + r * np.log(alpha)
              + gammaln(a + b) + gammaln(b + ux) - gammaln(b) - gammaln(a + b + ux))
        lx = np.log(a) - np.log(np.maximum(b + ux - 1.0, 1e-300))
        ll, s_lT, s_lt, s_alpha, wx, w4x = _loglik_pass(
            self.x, self.w, self.ix, self.iT, self.it, kx, lx,
            np.log(alpha + self.uT), 1.0 / (alpha + self.uT), np.log(alpha + self.ut), 1.0 / (alpha + self.ut), r)
        bx1 = np.where(ux > 0, 1.0 / np.maximum(b + ux - 1.0, 1e-300), 0.0)
        d_r = float(np.sum(wx * (digamma(r + ux) - digamma(r)))) + self.wsum * np.log(alpha) - s_lT - s_lt
        d_alpha = self.wsum * r / alpha - s_alpha
        d_a = float(np.sum(wx * (digamma(a + b) - digamma(a + b + ux)))) + float(w4x.sum()) / a
        d_b = (float(np.sum(wx * (digamma(a + b) + digamma(b + ux) - digamma(b) - digamma(a + b + ux))))
               - float(np.sum(w4x * bx1)))
        return ll, np.array([d_r, d_alpha, d_a, d_b])


def _distinct(v):
    """(table, index) with table[index] == v: arange(max+1) for small whole numbers (no sort), else np.unique."""
    if v.shape[0] and v.min() >= 0 and v.max() < 1 << 16 and np.all(v == np.floor(v)):
        return np.arange(int(v.max()) + 1, dtype=np.float64), v.astype(np.int64)
    u, inv = np.unique(v, return_inverse=True)
    return u, inv.reshape(-1).astype(np.int64)


@njit
def _loglik_pass(x, w, ix, iT, it, kx, lx, lT_tab, iT_tab, lt_tab, it_tab, r):
    """One pass over compressed rows: sum_i w_i log L_i (eq. 6) and the sums its gradient needs.

    Per distinct value tables (built once per evaluation): kx = x-only log terms,
    lx = log(a/(b+x-1)), log and inverse of (alpha+T) and (alpha+t_x).  With
    A3 = -(r+x) log(alpha+T), A4 = lx - (r+x) log(alpha+t_x) (x > 0) and
    m = logaddexp(A3, A4), log L = kx + m; p3 = exp(A3-m), p4 = exp(A4-m) are the shares
    of the two terms.  Returns (ll, sum w p3 log(alpha+T), sum w p4 log(alpha+t_x),
    sum w (r+x) (p3/(alpha+T) + p4/(alpha+t_x)), per-x sum w, per-x sum w p4).
    """
    ll = 0.0
    s_lT = 0.0
    s_lt = 0.0
    s_alpha = 0.0
    n_x = kx.shape[0]
    wx = np.zeros(n_x)
    w4x = np.zeros(n_x)
    for i in range(x.shape[0]):
        wi = w[i]
        rx = r + x[i]
        k = ix[i]
        lT = lT_tab[iT[i]]
        a3 = -rx * lT
        wx[k] += wi
        if x[i] > 0:
            lt = lt_tab[it[i]]
            a4 = lx[k] - rx * lt
            if a3 > a4:
                e = math.exp(a4 - a3)
                m = a3 + math.log1p(e)
                p3 = 1.0 / (1.0 + e)
                p4 = e * p3
            else:
                e = math.exp(a3 - a4)
                m = a4 + math.log1p(e)
                p4 = 1.0 / (1.0 + e)
                p3 = e * p4
            s_lt += wi * p4 * lt
            s_alpha += wi * rx * (p3 * iT_tab[iT[i]] + p4 * it_tab[it[i]])
            w4x[k] += wi * p4
        else:
            m = a3
            p3 = 1.0
            s_alpha += wi * rx * iT_tab[iT[i]]
        s_lT += wi * p3 * lT
        ll += wi * (kx[k] + m)
    return ll, s_lT, s_lt, s_alpha, wx, w4x


class BGNBD:
    """The BG/NBD model with sklearn-style ``params_`` after :meth:`fit`.

    >>> m = BGNBD().fit(frequency, recency, T)          # days
    >>> m.params_                                        # {'r':..., 'alpha':..., 'a':..., 'b':...}
    >>> m.p_alive(frequency, recency, T)
    >>> m.expected(30.0, frequency, recency, T)          # active days expected in the next 30 days

    ``frequency`` (x) is the number of repeat transactions, ``recency`` (t_x) the time from
    the first to the last one and ``T`` the time from the first one to the end of
    observation, all in one unit (days in winback); ``alpha`` comes out in that unit.
    ``max_iter`` bounds the BFGS steps, ``tol`` is the relative change of the mean
    log-likelihood at which it stops, ``min_users`` the fewest users it will fit.
    ``diagnostics_`` holds log_likelihood (at the estimates, in the input unit), users,
    unique_rows, iterations, converged and seconds.  Fitting raises
    :class:`engine.errors.ModelError` (with ``.diagnostics``) on bad or degenerate input
    or when the optimiser does not converge.
    """

    def __init__(self, max_iter: int = 500, tol: float = 1e-10, min_users: int = 20):
        self.max_iter = max_iter
        self.tol = tol
        self.min_users = min_users
        self.params_: dict[str, float] | None = None
        self.diagnostics_: dict = {}

    def __repr__(self) -> str:
        p = self.params_
        if p is None:
            return "BGNBD(unfitted)"
        return "BGNBD(" + ", ".join(f"{k}={v:.4g}" for k, v in p.items()) + ")"

    def fit(self, frequency, recency, T, weights=None) -> "BGNBD":
        """Maximum-likelihood fit (BFGS on log-parameters, analytic gradient); returns self."""
        t0 = time.perf_counter()
        x, t_x, TT, weights = _as_columns(frequency, recency, T, weights)
        x, t_x, TT, w = _compress_for_fit(x, t_x, TT, weights)
        keep = w > 0
        x, t_x, TT, w = x[keep], t_x[keep], TT[keep], w[keep]
        n_users = float(w.sum())
        diag = {"users": int(round(n_users)), "unique_rows": int(len(x))}
        if n_users < self.min_users:
            raise ModelError(f"BG/NBD needs at least {self.min_users} users with activity to fit, got {int(n_users)}; "
                             "score more users or a longer history", diag)
        if not np.any(x > 0):
            raise ModelError("BG/NBD cannot be fitted: no user has a repeat active day; "
                             "check --activity and that events cover more than one day", diag)
        if np.all(TT <= 0):
            raise ModelError("BG/NBD cannot be fitted: every user has T = 0 (no time observed since the "
                             "first activity); score with an as_of after the events", diag)
        # the optimiser sees alpha in units of the mean T (well-conditioned starts in any unit)
        scale = max(float(np.average(TT, weights=w)), 1e-9)
        unit = np.array([1.0, scale, 1.0, 1.0])

        def negated(objective, n):
            def nll(theta):
                p = np.exp(theta) * unit
                ll, g = objective(p)
                return -ll / n, -(g * p) / n
            return nll

        obj = _Objective(x, t_x, TT, w)
        nll = negated(obj, n_users)

        starts = [[math.log(v) for v in s0] for s0 in ([0.5, 1.0, 0.5, 1.0], [1.0, 0.5, 1.0, 3.0], [0.2, 0.2, 0.8, 2.5])]
        H0 = None
        sample = max(_SAMPLE_ROWS, len(x) // 50)
        if len(x) > 4 * sample:
            # warm start: fit every k-th compressed row (with its weight) first; the full fit then
            # needs 3-4 BFGS steps instead of ~18 from the generic start
            k = len(x) // sample
            nll_sub = negated(_Objective(x[::k], t_x[::k], TT[::k], w[::k]), float(w[::k].sum()))
            warm = _minimize_bfgs(nll_sub, starts[0], self.max_iter, self.tol)
            if warm["success"]:
                starts.insert(0, warm["x"])
                H0 = warm["H"]
        best = None
        # one start usually suffices; the others guard against a poor local optimum
        for i, start in enumerate(starts):
            res = _minimize_bfgs(nll, start, self.max_iter, self.tol, H=H0 if i == 0 else None)
            if best is None or res["fun"] < best["fun"]:
                best = res
            if best["success"] and all(abs(v) < 11.5 for v in best["x"]):
                break
        r, alpha, a, b = (math.exp(v) * u for v, u in zip(best["x"], unit))
        ll = obj((r, alpha, a, b))[0]
        diag.update(log_likelihood=ll, iterations=int(best["nit"]), converged=bool(best["success"]),
                    seconds=round(time.perf_counter() - t0, 4))
        if not np.isfinite(ll) or not best["success"]:
            raise ModelError(f"BG/NBD fit did not converge ({best['message']}) after {best['nit']} iterations "
                             f"(max_iter={self.max_iter}); diagnostics: {diag}. Try a larger max_iter, or "
                             "check that the activity summary is in one time unit", diag)
        self.params_ = {"r": float(r), "alpha": float(alpha), "a": float(a), "b": float(b)}
        self.diagnostics_ = diag
        return self

    def _p(self):
        if self.params_ is None:
            raise ModelError("the BG/NBD model is not fitted yet; call fit() first")
        p = self.params_
        return p["r"], p["alpha"], p["a"], p["b"]

    def log_likelihood(self, x, t_x, T) -> np.ndarray:
        """Per-user log-likelihood (eq. 6), float64[n]; a density in 1/time^x of the input unit."""
        return _loglik_rows(self._p(), *_same_length(x, t_x, T))

    def p_alive(self, x, t_x, T) -> np.ndarray:
        """P(alive | x, t_x, T) for every user, float64[n] in [0, 1]; 1 exactly when x = 0."""
        r, alpha, a, b = self._p()
        return _p_alive(*_same_length(x, t_x, T), r, alpha, a, b)

    def expected(self, t: float, x, t_x, T) -> np.ndarray:
        """E[transactions in (T, T+t] | x, t_x, T] for every user (eq. 10), float64[n]; t in the fit's unit."""
        r, alpha, a, b = self._p()
        return _expected(float(t), *_same_length(x, t_x, T), r, alpha, a, b)

    def expected_unconditional(self, t: float) -> float:
        """E[X(t)] for a new user over a period of length t (eq. 7)."""
        r, alpha, a, b = self._p()
        return float(_cond_numerator(float(t), 0.0, 0.0, r, alpha, a, b))


def _minimize_bfgs(fun, theta, max_iter, tol, lo=-12.0, hi=8.0, H=None):
    """Minimise ``fun(theta) -> (f, grad)`` over a box by BFGS with a backtracking line search.

    Pure Python on 4-vectors: scipy's L-BFGS-B calls BLAS, and on a machine shared with
    other jobs OpenBLAS's spinning threads made each of its steps cost milliseconds.
    Stops when the largest projected gradient component is below ``1e-9`` or the
    objective changes by less than ``tol`` (relative) with the gradient below ``1e-7``.
    ``H`` is a starting inverse-Hessian (e.g. from a fit on a sample).
    Returns dict(x, fun, jac, nit, success, message, H).
    """
    n = len(theta)
    theta = [min(max(v, lo), hi) for v in theta]
    f, g = fun(np.array(theta))
    g = [float(v) for v in g]
    first = H is None
    H = [[float(i == j) for j in range(n)] for i in range(n)] if H is None else [list(row) for row in H]

    def proj_norm(th, gr):
        return max((0.0 if (th[k] <= lo and gr[k] > 0) or (th[k] >= hi and gr[k] < 0) else abs(gr[k]))
                   for k in range(n))

    for it in range(1, max_iter + 1):
        if not (math.isfinite(f) and all(math.isfinite(v) for v in g)):
            return dict(x=theta, fun=f, jac=g, nit=it, success=False, message="non-finite objective", H=H)
        if proj_norm(theta, g) < 1e-9:
            return dict(x=theta, fun=f, jac=g, nit=it - 1, success=True, message="gradient below 1e-9", H=H)
        d = [-sum(H[i][j] * g[j] for j in range(n)) for i in range(n)]
        slope = sum(d[k] * g[k] for k in range(n))
        if slope >= 0:  # not a descent direction: restart from steepest descent
            H = [[float(i == j) for j in range(n)] for i in range(n)]
            d = [-v for v in g]
            slope = -sum(v * v for v in g)
        big = max(abs(v) for v in d)
        step = min(1.0, 2.0 / big) if big > 0 else 1.0  # at most a factor e^2 per parameter per step
        for _ in range(60):
            cand = [min(max(theta[k] + step * d[k], lo), hi) for k in range(n)]
            fc, gc = fun(np.array(cand))
            if math.isfinite(fc) and fc <= f + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            return dict(x=theta, fun=f, jac=g, nit=it, success=proj_norm(theta, g) < 1e-5,
                        message="line search found no decrease", H=H)
        gc = [float(v) for v in gc]
        sv = [cand[k] - theta[k] for k in range(n)]
        yv = [gc[k] - g[k] for k in range(n)]
        sy = sum(sv[k] * yv[k] for k in range(n))
        df = f - fc
        theta, f, g = cand, fc, gc
        if sy > 1e-16:
            if first:
                yy = sum(v * v for v in yv)
                H = [[(sy / yy) * float(i == j) for j in range(n)] for i in range(n)]
                first = False
            rho = 1.0 / sy
            Hy = [sum(H[i][j] * yv[j] for j in range(n)) for i in range(n)]
            yHy = sum(yv[i] * Hy[i] for i in range(n))
            H = [[H[i][j] - rho * (Hy[i] * sv[j] + sv[i] * Hy[j]) + (rho * rho * yHy + rho) * sv[i] * sv[j]
                  for j in range(n)] for i in range(n)]
        if df <= tol * max(1.0, abs(f)) and proj_norm(theta, g) < 1e-7:
            return dict(x=theta, fun=f, jac=g, nit=it, success=True, message="objective change below tol", H=H)
    return dict(x=theta, fun=f, jac=g, nit=max_iter, success=proj_norm(theta, g) < 1e-5,
                message=f"max_iter={max_iter} reached", H=H)


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
