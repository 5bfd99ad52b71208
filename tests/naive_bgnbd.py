"""Slow, obvious BG/NBD references: one user at a time, mpmath at 40 digits.

Each function is the textbook formula of Fader, Hardie & Lee (2005), "Counting Your
Customers the Easy Way", evaluated with arbitrary precision, so no transformation or
scaling trick of :mod:`engine.bgnbd` is shared with these twins.
"""

from __future__ import annotations

import mpmath as mp

DPS = 40


def log_likelihood(x, t_x, T, r, alpha, a, b) -> float:
    """Eq. 6: log L(r, alpha, a, b | x, t_x, T) for one user."""
    with mp.workdps(DPS):
        r, alpha, a, b, t_x, T = (mp.mpf(v) for v in (r, alpha, a, b, t_x, T))
        common = mp.gamma(r + x) * alpha**r / mp.gamma(r)
        term = mp.beta(a, b + x) / mp.beta(a, b) * common / (alpha + T) ** (r + x)
        if x > 0:
            term += mp.beta(a + 1, b + x - 1) / mp.beta(a, b) * common / (alpha + t_x) ** (r + x)
        return float(mp.log(term))


def p_alive(x, t_x, T, r, alpha, a, b) -> float:
    """P(alive | x, t_x, T) = 1 / (1 + [x > 0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))."""
    if x == 0:
        return 1.0
    with mp.workdps(DPS):
        r, alpha, a, b, t_x, T = (mp.mpf(v) for v in (r, alpha, a, b, t_x, T))
        return float(1 / (1 + a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x)))


def expected(t, x, t_x, T, r, alpha, a, b) -> float:
    """Eq. 10: E[X(T, T+t) | x, t_x, T], with mpmath's 2F1 (analytic continuation, 40 digits)."""
    with mp.workdps(DPS):
        t, r, alpha, a, b, t_x, T = (mp.mpf(v) for v in (t, r, alpha, a, b, t_x, T))
        z = t / (alpha + T + t)
        f = mp.hyp2f1(r + x, b + x, a + b + x - 1, z)
        num = (a + b + x - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * f)
        den = 1 + (a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x) if x > 0 else 0)
        return float(num / den)


def expected_unconditional(t, r, alpha, a, b) -> float:
    """Eq. 7: E[X(t)] = (a+b-1)/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b; a+b-1; t/(alpha+t))]."""
    with mp.workdps(DPS):
        t, r, alpha, a, b = (mp.mpf(v) for v in (t, r, alpha, a, b))
        f = mp.hyp2f1(r, b, a + b - 1, t / (alpha + t))
        return float((a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * f))


def compress(x, t_x, T):
    """Unique (x, t_x, T) rows with counts, by a dict: {(x, t_x, T): count}."""
    out: dict = {}
    for key in zip(x, t_x, T):
        out[key] = out.get(key, 0) + 1
    return out


def p_none(t, x, t_x, T, r, alpha, a, b) -> float:
    """P(no transaction in (T, T+t] | x, t_x, T) = (1 - P(alive)) + P(alive) * NBD(0; r+x, alpha+T, t):
    the negative binomial pmf at 0 of the alive user's count, Gamma(r+x+k)/(Gamma(r+x) k!) p^(r+x) (1-p)^k
    with p = (alpha+T)/(alpha+T+t), k = 0, at 40 digits."""
    pa = p_alive(x, t_x, T, r, alpha, a, b)
    with mp.workdps(DPS):
        shape, rate, k = mp.mpf(r) + x, mp.mpf(alpha) + mp.mpf(T), 0
        p = rate / (rate + mp.mpf(t))
        nbd0 = mp.gamma(shape + k) / (mp.gamma(shape) * mp.factorial(k)) * p**shape * (1 - p) ** k
        return float((1 - mp.mpf(pa)) + mp.mpf(pa) * nbd0)


def p_none_by_integration(t, x, t_x, T, r, alpha, a, b) -> float:
    """The same probability as an integral over the rate posterior Gamma(r+x, alpha+T) (slow; shape >= 1):
    (1 - P(alive)) + P(alive) * int_0^inf exp(-lam t) f(lam) dlam."""
    pa = p_alive(x, t_x, T, r, alpha, a, b)
    with mp.workdps(20):
        shape, rate = mp.mpf(r) + x, mp.mpf(alpha) + mp.mpf(T)

        def dens(lam):
            return mp.exp(-lam * (t + rate)) * rate**shape * lam ** (shape - 1) / mp.gamma(shape)

        stay = mp.quad(dens, [0, shape / rate, 4 * shape / rate, mp.inf])
        return float((1 - mp.mpf(pa)) + mp.mpf(pa) * stay)
