"""The BG/NBD fit's numerics: the one-pass likelihood, gradient and Hessian against the 40-digit
per-user twin and central differences, the special functions against mpmath, and the box
trust-region Newton method on problems with known minima."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.scoring.bgnbd_fit import Objective, _digamma, _objective, _trigamma, minimize_box
from tests import naive_bgnbd as naive


def _rows(seed, n=40, whole=True):
    rng = np.random.default_rng(seed)
    T = rng.integers(1, 400, n).astype(float)
    x = rng.integers(0, 30, n).astype(float)
    t_x = np.where(x > 0, np.floor(rng.uniform(0, 1, n) * T), 0.0)
    if not whole:
        x = x + np.where(x > 0, 0.25, 0.0)
    return x, t_x, T, rng.integers(1, 5, n).astype(float)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), r=st.floats(0.05, 5), alpha=st.floats(0.5, 200), a=st.floats(0.05, 5),
       b=st.floats(0.2, 20))
def test_loglik_is_the_weighted_sum_of_the_naive_per_user_terms(seed, r, alpha, a, b):
    """Property: the pass's log-likelihood equals sum_i w_i log L_i at 40 digits."""
    x, t_x, T, w = _rows(seed, n=12)
    ll = Objective(x, t_x, T, w)((r, alpha, a, b))[0]
    want = sum(wi * naive.log_likelihood(int(xi), ti, Ti, r, alpha, a, b) for xi, ti, Ti, wi in zip(x, t_x, T, w))
    assert ll == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("whole", [True, False])
@pytest.mark.parametrize("params", [(0.3, 4.0, 0.7, 2.1), (2.0, 30.0, 1.5, 9.0), (0.05, 1.0, 0.1, 0.6)])
def test_gradient_and_hessian_are_the_derivatives_of_the_likelihood(whole, params):
    # given rows (whole or fractional x) / when differentiating numerically around a point
    obj = Objective(*_rows(3, whole=whole))
    p = np.array(params)
    ll, g, H = obj(p)
    gn, Hn = np.zeros(4), np.zeros((4, 4))
    for j in range(4):
        d = np.zeros(4)
        d[j] = 1e-6 * p[j]
        (lp, gp, _), (lm, gm, _) = obj(p + d), obj(p - d)
        gn[j] = (lp - lm) / (2 * d[j])
        Hn[:, j] = (gp - gm) / (2 * d[j])
    # then the analytic gradient and Hessian agree, and the Hessian is symmetric
    np.testing.assert_allclose(g, gn, rtol=1e-5, atol=1e-6 * np.abs(gn).max())
    np.testing.assert_allclose(H, Hn, rtol=1e-5, atol=1e-6 * np.abs(Hn).max())
    np.testing.assert_array_equal(H, H.T)


def test_whole_number_recurrences_equal_the_special_functions():
    # given whole x, through the running sums and through lgamma/digamma/trigamma differences
    obj = Objective(*_rows(5))
    assert obj.whole
    for params in ((0.3, 4.0, 0.7, 2.1), (3e5, 6e6, 1e-3, 40.0)):
        fast = obj(params)
        slow = _objective(obj.x, obj.w, obj.ix, obj.iT, obj.it, obj.ux, obj.uT, obj.ut, False, *params)
        # then the same values (the recurrences are the exact ones where differences cancel)
        assert fast[0] == pytest.approx(slow[0], rel=1e-11)
        np.testing.assert_allclose(fast[1], slow[1], rtol=1e-6, atol=1e-9 * np.abs(fast[1]).max())


@pytest.mark.parametrize("z", [1e-6, 0.01, 0.5, 1.0, 2.5, 11.9, 12.0, 37.0, 1e4, 3e6])
def test_digamma_and_trigamma_match_mpmath(z):
    with mp.workdps(30):
        assert _digamma(z) == pytest.approx(float(mp.digamma(z)), rel=1e-14, abs=1e-14)
        assert _trigamma(z) == pytest.approx(float(mp.psi(1, z)), rel=1e-14)


def _quadratic(center, scale):
    def f(theta):
        d = theta - center
        return float(np.sum(scale * d * d)), 2 * scale * d, np.diag(2 * scale)
    return f


def test_minimize_box_finds_an_interior_minimum_in_one_newton_step():
    res = minimize_box(_quadratic(np.array([0.5, -1.0]), np.array([1.0, 100.0])), np.zeros(2), -15, 15,
                       max_iter=50, ftol=1e-13, gtol=1e-9)
    assert res["success"] and res["nit"] <= 3
    np.testing.assert_allclose(res["x"], [0.5, -1.0], atol=1e-9)


def test_minimize_box_holds_a_variable_at_its_bound():
    # given a minimum outside the box in one coordinate / then that coordinate stops at the bound
    res = minimize_box(_quadratic(np.array([40.0, 2.0]), np.array([1.0, 1.0])), np.zeros(2), -15, 15,
                       max_iter=50, ftol=1e-13, gtol=1e-9)
    assert res["success"]
    np.testing.assert_allclose(res["x"], [15.0, 2.0], atol=1e-9)


def test_minimize_box_handles_a_non_convex_valley():
    def rosenbrock(t):
        x, y = t
        f = (1 - x) ** 2 + 100 * (y - x * x) ** 2
        g = np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])
        H = np.array([[2 - 400 * (y - 3 * x * x), -400 * x], [-400 * x, 200.0]])
        return f, g, H

    res = minimize_box(rosenbrock, np.array([-1.2, 1.0]), -15, 15, max_iter=200, ftol=1e-15, gtol=1e-10)
    assert res["success"]
    np.testing.assert_allclose(res["x"], [1.0, 1.0], atol=1e-6)


def test_minimize_box_stops_at_the_iteration_limit_and_on_a_non_finite_start():
    res = minimize_box(_quadratic(np.array([10.0]), np.array([1.0])), np.array([0.0]), -15, 15,
                       max_iter=1, ftol=1e-13, gtol=1e-12)
    assert res["nit"] == 1 and not res["success"] and "limit" in res["message"]
    bad = minimize_box(lambda t: (math.inf, np.zeros(1), np.zeros((1, 1))), np.array([0.0]), -15, 15,
                       max_iter=5, ftol=1e-13, gtol=1e-9)
    assert not bad["success"] and bad["fun"] == math.inf
