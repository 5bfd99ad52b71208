"""The BG/NBD fit's numerics: the weighted log-likelihood (FHL 2005 eq. 6) with its analytic
gradient and Hessian in one numba pass, and a box-constrained trust-region Newton method
over the four log-parameters.

Per row, with A3 = -(r+x) log(alpha+T), A4 = log(a/(b+x-1)) - (r+x) log(alpha+t_x) (x > 0)
and m = logaddexp(A3, A4), log L = K(x) + m, where K holds the terms of x alone (log-gammas
of r+x, b+x, a+b+x and r log alpha).  With p3 = exp(A3-m), p4 = exp(A4-m)::

    grad m = p3 grad A3 + p4 grad A4
    hess m = p3 hess A3 + p4 hess A4 + p3 p4 (grad A3 - grad A4)(grad A3 - grad A4)^T

The x-only terms need differences of log-gamma, digamma and trigamma at r, b, a+b and the
same plus x.  For whole x (winback's case: distinct values are 0..max x) they come from
the recurrences Gamma(z+1) = z Gamma(z), psi(z+1) = psi(z) + 1/z, psi'(z+1) = psi'(z) - 1/z^2
as running sums, which stay exact where psi(r+x) - psi(r) would cancel (r -> infinity on
the shared-rate boundary); other x use the asymptotic series of :func:`_digamma` and
:func:`_trigamma` after shifting the argument above 12.

:func:`minimize_box` is a trust-region Newton method with the exact Hessian (the
subproblem solved through the 4x4 eigendecomposition, Moré & Sorensen 1983) and a box:
variables at a bound whose gradient points outward are held there (projected Newton,
Bertsekas 1982), so a boundary optimum (no churn, one shared rate) is reached in a few
doubling steps of the radius instead of many quasi-Newton ones.  No BLAS call beyond
numpy's 4x4 ``eigh``.
"""

from __future__ import annotations

import math

import numpy as np

from engine.jit import njit

__all__ = ["Objective", "minimize_box", "distinct"]


def distinct(v):
    """(table, index, whole) with table[index] == v: arange(max+1) for small whole numbers (no sort),
    else np.unique; ``whole`` says the table is arange."""
    if v.shape[0] and v.min() >= 0 and v.max() < 1 << 16 and np.all(v == np.floor(v)):
        return np.arange(int(v.max()) + 1, dtype=np.float64), v.astype(np.int64), True
    u, inv = np.unique(v, return_inverse=True)
    return u, inv.reshape(-1).astype(np.int64), False


class Objective:
    """Weighted BG/NBD log-likelihood of compressed rows, its gradient and Hessian in the natural
    parameters (r, alpha, a, b): ``obj(params) -> (ll, grad[4], hess[4, 4])``.  ``passes`` counts calls."""

    def __init__(self, x, t_x, T, w):
        self.ux, self.ix, self.whole = distinct(x)
        self.uT, self.iT, _ = distinct(T)
        self.ut, self.it, _ = distinct(t_x)
        self.x, self.w = np.ascontiguousarray(x, np.float64), np.ascontiguousarray(w, np.float64)
        self.passes = 0

    def __call__(self, params):
        r, alpha, a, b = (float(v) for v in params)
        self.passes += 1
        return _objective(self.x, self.w, self.ix, self.iT, self.it, self.ux, self.uT, self.ut, self.whole,
                          r, alpha, a, b)


@njit
def _digamma(z):
    """psi(z) for z > 0: recurrence up to z >= 12, then the asymptotic series (|error| < 1e-15)."""
    acc = 0.0
    while z < 12.0:
        acc -= 1.0 / z
        z += 1.0
    z2 = 1.0 / (z * z)
    series = z2 * (1.0 / 12 - z2 * (1.0 / 120 - z2 * (1.0 / 252 - z2 * (1.0 / 240 - z2 * (1.0 / 132)))))
    return acc + math.log(z) - 0.5 / z - series


@njit
def _trigamma(z):
    """psi'(z) for z > 0: recurrence up to z >= 12, then the asymptotic series."""
    acc = 0.0
    while z < 12.0:
        acc += 1.0 / (z * z)
        z += 1.0
    iz = 1.0 / z
    z2 = iz * iz
    series = iz + 0.5 * z2 + iz * z2 * (1.0 / 6 - z2 * (1.0 / 30 - z2 * (1.0 / 42 - z2 * (1.0 / 30 - z2 * 5.0 / 66))))
    return acc + series


@njit
def _x_terms(ux, whole, r, a, b):
    """Per distinct x, the rows of one [7, n_x] array: log-gamma differences K0 (without r log alpha),
    then the digamma differences of the gradient in r, a, b and the trigamma ones of the Hessian
    in r, a, b (module docstring).  One array, not seven: each allocation adds to the kernel's code."""
    n = ux.shape[0]
    out = np.empty((7, n))
    ab = a + b
    if whole:  # ux[k] == k: running sums of the recurrences, no cancellation
        lr = lb = lab = 0.0
        pr = pb = pab = 0.0
        qr = qb = qab = 0.0
        for k in range(n):
            out[0, k] = lr + lb - lab
            out[1, k] = pr
            out[2, k] = -pab
            out[3, k] = pb - pab
            out[4, k] = qr
            out[5, k] = -qab
            out[6, k] = qb - qab
            zr, zb, zab = r + k, b + k, ab + k
            lr += math.log(zr)
            lb += math.log(zb)
            lab += math.log(zab)
            pr += 1.0 / zr
            pb += 1.0 / zb
            pab += 1.0 / zab
            qr -= 1.0 / (zr * zr)
            qb -= 1.0 / (zb * zb)
            qab -= 1.0 / (zab * zab)
        return out
    g_r, g_b, g_ab = math.lgamma(r), math.lgamma(b), math.lgamma(ab)
    p_r, p_b, p_ab = _digamma(r), _digamma(b), _digamma(ab)
    q_r, q_b, q_ab = _trigamma(r), _trigamma(b), _trigamma(ab)
    for k in range(n):
        v = ux[k]
        out[0, k] = (math.lgamma(r + v) - g_r) + (math.lgamma(b + v) - g_b) - (math.lgamma(ab + v) - g_ab)
        out[1, k] = _digamma(r + v) - p_r
        pab = _digamma(ab + v) - p_ab
        out[2, k] = -pab
        out[3, k] = _digamma(b + v) - p_b - pab
        out[4, k] = _trigamma(r + v) - q_r
        qab = _trigamma(ab + v) - q_ab
        out[5, k] = -qab
        out[6, k] = _trigamma(b + v) - q_b - qab
    return out


@njit
def _log_inv(alpha, u):
    """[2, n]: log(alpha + u) and 1 / (alpha + u)."""
    out = np.empty((2, u.shape[0]))
    for k in range(u.shape[0]):
        out[0, k] = math.log(alpha + u[k])
        out[1, k] = 1.0 / (alpha + u[k])
    return out


@njit
def _objective(x, w, ix, iT, it, ux, uT, ut, whole, r, alpha, a, b):
    """sum_i w_i log L_i (eq. 6), its gradient and Hessian in (r, alpha, a, b): one pass over the rows.

    Tables per distinct value: K(x), log(a/(b+x-1)), 1/(b+x-1), log and inverse of alpha+T and
    alpha+t_x.  Row sums: the shares p3, p4 of the two terms, the (r, alpha) parts of the outer
    product p3 p4 d d^T (d = grad A3 - grad A4); the parts in a and b depend on x alone and are
    summed per distinct x.
    """
    xt = _x_terms(ux, whole, r, a, b)
    n_x = ux.shape[0]
    log_alpha = math.log(alpha)
    tx = np.empty((3, n_x))  # K(x), log(a/(b+x-1)), 1/(b+x-1) (0 at x = 0)
    for k in range(n_x):
        tx[0, k] = xt[0, k] + r * log_alpha
        c = max(b + ux[k] - 1.0, 1e-300)
        tx[1, k] = math.log(a) - math.log(c)
        tx[2, k] = 1.0 / c if ux[k] > 0 else 0.0
    tT = _log_inv(alpha, uT)
    tt = _log_inv(alpha, ut)
    ll = 0.0
    wsum = 0.0
    s_lT = 0.0
    s_lt = 0.0
    s_al = 0.0
    h_rr = 0.0
    h_ra = 0.0
    h_aa = 0.0
    px = np.zeros((5, n_x))  # per x: sum w, w p4, q = w p3 p4, q d_r, q d_alpha
    for i in range(x.shape[0]):
        wi = w[i]
        rx = r + x[i]
        k = ix[i]
        lT = tT[0, iT[i]]
        iTv = tT[1, iT[i]]
        a3 = -rx * lT
        px[0, k] += wi
        if x[i] > 0:
            lt = tt[0, it[i]]
            itv = tt[1, it[i]]
            a4 = tx[1, k] - rx * lt
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
            mix = p3 * iTv + p4 * itv
            s_al += wi * rx * mix
            q = wi * p3 * p4
            d_r = lt - lT
            d_al = rx * (itv - iTv)
            h_rr += q * d_r * d_r
            h_ra += q * d_r * d_al - wi * mix
            h_aa += q * d_al * d_al + wi * rx * (p3 * iTv * iTv + p4 * itv * itv)
            px[1, k] += wi * p4
            px[2, k] += q
            px[3, k] += q * d_r
            px[4, k] += q * d_al
        else:
            m = a3
            p3 = 1.0
            s_al += wi * rx * iTv
            h_ra -= wi * iTv
            h_aa += wi * rx * iTv * iTv
        s_lT += wi * p3 * lT
        ll += wi * (tx[0, k] + m)
        wsum += wi
    g = np.zeros(4)
    H = np.zeros((4, 4))
    s_w4 = 0.0
    for k in range(n_x):
        wx, w4x, qx, qrx, qax, bx1 = px[0, k], px[1, k], px[2, k], px[3, k], px[4, k], tx[2, k]
        g[0] += wx * xt[1, k]
        g[2] += wx * xt[2, k]
        g[3] += wx * xt[3, k] - w4x * bx1
        s_w4 += w4x
        H[0, 0] += wx * xt[4, k]
        H[0, 2] -= qrx / a
        H[0, 3] += qrx * bx1
        H[1, 2] -= qax / a
        H[1, 3] += qax * bx1
        H[2, 2] += wx * xt[5, k] + (qx - w4x) / (a * a)
        H[2, 3] += wx * xt[5, k] - qx * bx1 / a
        H[3, 3] += wx * xt[6, k] + (qx + w4x) * bx1 * bx1
    g[0] += wsum * log_alpha - s_lT - s_lt
    g[1] = wsum * r / alpha - s_al
    g[2] += s_w4 / a
    H[0, 0] += h_rr
    H[0, 1] = wsum / alpha + h_ra
    H[1, 1] = -wsum * r / (alpha * alpha) + h_aa
    for j in range(4):
        for k in range(j):
            H[j, k] = H[k, j]
    return ll, g, H


def _subproblem(H, g, delta):
    """argmin g.s + s.H.s/2 subject to |s| <= delta (Moré & Sorensen 1983, through eigh of H);
    returns (s, whether the radius bound is active)."""
    lam, V = np.linalg.eigh(H)
    gt = V.T @ g
    if lam[0] > 0:
        s = -gt / lam
        if math.sqrt(float(s @ s)) <= delta:
            return V @ s, False
    lo = max(0.0, -float(lam[0]))
    gnorm = math.sqrt(float(gt @ gt))
    mu_lo, mu_hi = lo, lo + gnorm / delta + 1e-300
    # the hard case: g has (almost) no weight on the lowest eigenvector
    s = -gt / np.maximum(lam + mu_lo + 1e-12 * (1.0 + abs(mu_lo)), 1e-300)
    if math.sqrt(float(s @ s)) < delta:
        tau = math.sqrt(max(delta * delta - float(s @ s), 0.0))
        s[0] += tau if gt[0] <= 0 else -tau
        return V @ s, True
    for _ in range(100):  # bisection on mu in [lo, lo + |g|/delta], where |s(mu)| falls through delta
        mu = 0.5 * (mu_lo + mu_hi)
        s = -gt / (lam + mu)
        ns = math.sqrt(float(s @ s))
        if abs(ns - delta) <= 1e-6 * delta:
            break
        if ns > delta:
            mu_lo = mu
        else:
            mu_hi = mu
    return V @ s, True


def minimize_box(fun, theta, lo, hi, *, max_iter: int, ftol: float, gtol: float):
    """Minimise ``fun(theta) -> (f, grad, hess)`` over the box [lo, hi] (scalars or one bound per
    variable; lo == hi holds a variable fixed) by trust-region Newton.

    Returns a dict: x, fun, jac (the gradient at x), nit, success (projected gradient below ``gtol``,
    or a full Newton step that changes, or is predicted to change, f by at most ``ftol`` relative),
    message.  A non-finite f is
    treated as a rejected step.
    """
    theta = np.asarray(theta, np.float64)
    lo, hi = np.broadcast_to(lo, theta.shape).astype(np.float64), np.broadcast_to(hi, theta.shape).astype(np.float64)
    theta = np.clip(theta, lo, hi)
    fixed = lo >= hi
    f, g, H = fun(theta)
    if not math.isfinite(f):
        return {"x": theta, "fun": math.inf, "jac": np.zeros_like(theta), "nit": 0, "success": False,
                "message": "non-finite objective at the start"}
    delta = 1.0
    nit = 0
    message = "iteration limit reached"
    success = False
    while True:
        held = fixed | ((theta <= lo) & (g > 0)) | ((theta >= hi) & (g < 0))
        free = ~held
        if float(np.abs(np.where(free, g, 0.0)).max()) <= gtol:
            success, message = True, "projected gradient below tolerance"
            break
        if nit >= max_iter:
            break
        nit += 1
        Hf = H[np.ix_(free, free)]
        while True:
            step = np.zeros_like(theta)
            s, bounded = _subproblem(Hf, g[free], delta)
            step[free] = s
            new = np.clip(theta + step, lo, hi)
            step = new - theta
            pred = -(float(g @ step) + 0.5 * float(step @ H @ step))
            ns = math.sqrt(float(step @ step))
            if not bounded and 0.0 <= pred <= ftol * max(abs(f), 1.0):
                rho = math.nan  # a full Newton step would change f by less than ftol: converged
                break
            if pred <= 0 or ns == 0.0:
                rho = -1.0
                f2 = math.inf
            else:
                f2, g2, H2 = fun(new)
                rho = (f - f2) / pred if math.isfinite(f2) else -1.0
            if rho < 0.25:
                delta = 0.25 * (ns if ns > 0 else delta)
            elif rho > 0.75 and bounded:
                delta = min(2.0 * delta, 4.0 * float((hi - lo).max()))
            if rho > 1e-4:
                break
            if delta < 1e-14:
                break
        if rho != rho:
            success, message = True, "predicted change of the objective below tolerance"
            break
        if rho <= 1e-4:
            message = "no further decrease along the Newton direction"
            success = float(np.abs(np.where(free, g, 0.0)).max()) <= 1e3 * gtol
            break
        change = (f - f2) / max(abs(f), abs(f2), 1.0)
        theta, f, g, H = new, f2, g2, H2
        if change <= ftol and not bounded:
            success, message = True, "relative change of the objective below tolerance"
            break
    return {"x": theta, "fun": f, "jac": g, "nit": nit, "success": success, "message": message}
