"""Pareto/NBD: published CDNOW estimates and lifetimes' fit, the quadrature against the note's
hypergeometric form, P(alive) / P(no activity) / E[X] against their twins and a simulation,
the analytic derivatives, and boundary populations.

References: tests/naive.py (Fader & Hardie's 2005 note, eq. 18-20 and 36, with mpmath's 2F1;
the horizon probability by mpmath.quad), lifetimes' ParetoNBDFitter.
"""

from __future__ import annotations

import numpy as np
import pyarrow.csv as pacsv
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ModelError
from engine.scoring.pareto_nbd import ParetoNBD
from engine.scoring.pareto_nbd_fit import NODES, WEIGHTS, Objective, integral
from tests import naive
from tests.helpers import DATA
from tests.strategies import boundary_world

CDNOW = pacsv.read_csv(DATA / "cdnow_customers_summary.csv")
X, TX, T = (CDNOW[c].to_numpy().astype(float) for c in ("frequency", "recency", "T"))
#: Fader, Hardie & Lee (2005), "Counting your customers the easy way", table 1 (Pareto/NBD on CDNOW, weeks)
PUBLISHED = dict(r=0.55, alpha=10.58, s=0.61, beta=11.67)


def _model(**params) -> ParetoNBD:
    m = ParetoNBD()
    m.params_ = dict(params)
    return m


def _one(v) -> np.ndarray:
    return np.array([float(v)])


def _simulate(n, r, alpha, s, beta, T_max, H, seed):
    """Users drawn from Pareto/NBD itself, observed on (0, T] and on (T, T+H]:
    (x, t_x, T, alive at T, any transaction in (T, T+H])."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1.0 / alpha, n)
    mu = rng.gamma(s, 1.0 / beta, n)
    life = rng.exponential(1.0 / mu)
    TT = rng.uniform(0.2, 1.0, n) * T_max
    end = np.minimum(life, TT)
    x = rng.poisson(lam * end)
    # the last of x uniform arrivals on (0, end]
    t_x = np.where(x > 0, end * rng.beta(np.maximum(x, 1), 1.0), 0.0)
    later = rng.poisson(lam * np.clip(np.minimum(life, TT + H) - TT, 0.0, None)) > 0
    return x.astype(float), t_x, TT, life > TT, later


# --- fit -------------------------------------------------------------------------------------

def test_reproduces_the_published_cdnow_estimates():
    # given the 2357-customer CDNOW summary in weeks / when fitted
    m = ParetoNBD().fit(X, TX, T)
    # then FHL 2005's Pareto/NBD estimates and log-likelihood come back
    for k, v in PUBLISHED.items():
        assert round(m.params_[k], 2) == v, k
    d = m.diagnostics_
    assert round(d["log_likelihood"], 1) == -9595.0
    assert d["converged"] and d["boundary"] == [] and d["warnings"] == [] and d["evaluations"] <= 40


def test_agrees_with_lifetimes_pareto_nbd_fitter():
    lifetimes = pytest.importorskip("lifetimes")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lifetimes.ParetoNBDFitter().fit(X, TX, T)
    m = ParetoNBD().fit(X, TX, T)
    # lifetimes' Nelder-Mead stops at tol 1e-4: the parameters agree to about 1e-4, its likelihood exactly
    for k in ("r", "alpha", "s", "beta"):
        assert m.params_[k] == pytest.approx(float(ref.params_[k]), rel=1e-3), k
    p = [m.params_[k] for k in ("r", "alpha", "s", "beta")]
    want = ref._conditional_log_likelihood(p, X.astype(int), TX, T)
    np.testing.assert_allclose(m.log_likelihood(X, TX, T), want, rtol=1e-11)
    # and so do P(alive) and E[X(t)] at lifetimes' parameters
    lm = _model(**{k: float(v) for k, v in ref.params_.items()})
    np.testing.assert_allclose(lm.p_alive(X, TX, T), ref.conditional_probability_alive(X, TX, T), rtol=1e-7)
    np.testing.assert_allclose(lm.expected(10.0, X, TX, T),
                               ref.conditional_expected_number_of_purchases_up_to_time(10.0, X, TX, T), rtol=1e-7)


def test_time_unit_scales_alpha_and_beta_only():
    weeks = ParetoNBD().fit(X, TX, T).params_
    days = ParetoNBD().fit(X, TX * 7, T * 7).params_
    assert days["r"] == pytest.approx(weeks["r"], rel=1e-5) and days["s"] == pytest.approx(weeks["s"], rel=1e-5)
    assert days["alpha"] == pytest.approx(7 * weeks["alpha"], rel=1e-5)
    assert days["beta"] == pytest.approx(7 * weeks["beta"], rel=1e-5)


def test_weights_equal_repeated_rows():
    k = 300
    w = np.arange(1, k + 1) % 4 + 1.0
    a = ParetoNBD().fit(X[:k], TX[:k], T[:k], weights=w).params_
    b = ParetoNBD().fit(np.repeat(X[:k], w.astype(int)), np.repeat(TX[:k], w.astype(int)),
                        np.repeat(T[:k], w.astype(int))).params_
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-6)


def test_fit_recovers_the_parameters_users_were_drawn_from():
    true = dict(r=0.8, alpha=20.0, s=0.7, beta=60.0)
    x, t_x, TT, _, _ = _simulate(60_000, *true.values(), T_max=400.0, H=30.0, seed=4)
    got = ParetoNBD().fit(x, t_x, TT).params_
    for k, v in true.items():
        assert got[k] == pytest.approx(v, rel=0.15), k


def test_no_repeat_activity_and_too_few_users_are_clear_model_errors():
    with pytest.raises(ModelError, match="no user has a repeat"):
        ParetoNBD().fit(np.zeros(50), np.zeros(50), np.full(50, 10.0))
    with pytest.raises(ModelError, match="at least 20 users"):
        ParetoNBD().fit(X[:5], TX[:5], T[:5])
    with pytest.raises(ModelError, match="not fitted"):
        ParetoNBD().p_alive(X, TX, T)


@pytest.mark.parametrize("kind,names", [("no churn", ["no_churn"]), ("shared rate", ["shared_rate"]),
                                        ("no churn, shared rate", ["no_churn", "shared_rate"])])
def test_boundary_optimum_returns_the_limit_model_with_a_warning(kind, names):
    # given a population whose maximum-likelihood estimate is on the boundary
    x, tx, tt = boundary_world(kind)
    # when fitted / then no refusal: the limit model, named, with a sentence, and finite predictions
    m = ParetoNBD().fit(x, tx, tt)
    d = m.diagnostics_
    assert set(names) <= set(d["boundary"]) and d["warnings"]
    pa, e, none = m.p_alive(x, tx, tt), m.expected(30.0, x, tx, tt), m.p_none(30.0, x, tx, tt)
    assert np.all(np.isfinite(pa)) and np.all(np.isfinite(e)) and np.all((none >= 0) & (none <= 1))
    if "no_churn" in names:
        assert pa.min() > 0.99
    if "shared_rate" in names:
        # (the world drops users out BG/NBD-style, after transactions: the rate absorbs a little of that)
        assert m.params_["r"] / m.params_["alpha"] == pytest.approx(0.05, rel=0.1)


# --- the quadrature and its derivatives --------------------------------------------------------

@settings(max_examples=40)
@given(r=st.floats(0.02, 20), alpha=st.floats(0.01, 1e4), s=st.floats(0.02, 20), beta=st.floats(0.01, 1e4),
       x=st.integers(0, 400), frac=st.floats(0, 1), T=st.floats(0.0, 2000))
def test_log_likelihood_matches_the_notes_hypergeometric_form(r, alpha, s, beta, x, frac, T):
    """Property: the quadrature's log L equals the note's eq. 18-20 (mpmath 2F1) to 1e-10 relative."""
    t_x = frac * T if x > 0 else 0.0
    got = _model(r=r, alpha=alpha, s=s, beta=beta).log_likelihood(_one(x), _one(t_x), _one(T))[0]
    want = naive.pareto_nbd_loglik(x, t_x, T, r, alpha, s, beta)
    assert got == pytest.approx(want, rel=1e-10, abs=1e-9)


@settings(max_examples=40)
@given(r=st.floats(0.02, 20), alpha=st.floats(0.01, 1e4), s=st.floats(0.02, 20), beta=st.floats(0.01, 1e4),
       x=st.integers(0, 400), frac=st.floats(0, 1), T=st.floats(0.0, 2000), H=st.floats(0.5, 1000))
def test_p_alive_p_none_and_expected_match_the_twins(r, alpha, s, beta, x, frac, T, H):
    """Property: P(alive), P(no activity in H) and E[X(H)] equal the mpmath twins."""
    t_x = frac * T if x > 0 else 0.0
    m = _model(r=r, alpha=alpha, s=s, beta=beta)
    args = (_one(x), _one(t_x), _one(T))
    assert m.p_alive(*args)[0] == pytest.approx(naive.pareto_nbd_p_alive(x, t_x, T, r, alpha, s, beta),
                                                rel=1e-9, abs=1e-12)
    assert m.p_none(H, *args)[0] == pytest.approx(naive.pareto_nbd_p_none(H, x, t_x, T, r, alpha, s, beta),
                                                  rel=1e-9, abs=1e-12)
    assert m.expected(H, *args)[0] == pytest.approx(naive.pareto_nbd_expected(H, x, t_x, T, r, alpha, s, beta),
                                                    rel=1e-7, abs=1e-12)


def test_integral_is_exact_where_it_has_a_closed_form():
    # with alpha = beta the integrand is (1+tau/b)^-(p+s) / (b+tau): int = b^... [1 - (1+h/b)^-(p+s)] / (p+s)
    for p, s, b, h in [(0.5, 0.6, 10.0, 30.0), (300.0, 2.0, 5.0, 400.0), (1e-3, 1e-3, 1e3, 1.0)]:
        want = -np.expm1(-(p + s) * np.log1p(h / b)) / (p + s)
        assert integral(p, s, b, b, 0.0, h, 0.0, NODES, WEIGHTS) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("params", [(0.55, 10.6, 0.61, 11.7), (3.0, 200.0, 0.2, 5.0), (0.1, 1.0, 4.0, 900.0)])
def test_gradient_and_hessian_are_the_derivatives_of_the_likelihood(params):
    # given CDNOW rows / when differentiating numerically (central differences in each parameter)
    k = 400
    obj = Objective(X[:k], TX[:k], T[:k], np.ones(k))
    p = np.array(params)
    ll, g, H = obj(p)
    for j in range(4):
        h = 1e-5 * p[j]
        up, down = p.copy(), p.copy()
        up[j] += h
        down[j] -= h
        (lu, gu, _), (ld, gd, _) = obj(up), obj(down)
        assert g[j] == pytest.approx((lu - ld) / (2 * h), rel=1e-5, abs=1e-6)
        np.testing.assert_allclose(H[:, j], (gu - gd) / (2 * h), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(H, H.T)


# --- P(alive) and P(no activity) against a simulation ------------------------------------------

def test_p_alive_and_p_none_are_calibrated_on_simulated_users():
    # given users drawn from Pareto/NBD with known parameters, observed to T and then for H more days
    true = dict(r=0.6, alpha=15.0, s=0.8, beta=80.0)
    H = 30.0
    x, t_x, TT, alive, later = _simulate(200_000, *true.values(), T_max=365.0, H=H, seed=11)
    m = _model(**true)
    pa, none = m.p_alive(x, t_x, TT), m.p_none(H, x, t_x, TT)
    # then overall and within groups by x the predicted shares match the simulated ones (4 standard errors)
    for grp in (np.ones(len(x), bool), x == 0, (x >= 1) & (x <= 3), x >= 4):
        n = grp.sum()
        for pred, real in ((pa[grp], alive[grp]), (none[grp], ~later[grp])):
            se = np.sqrt(np.mean(pred * (1 - pred)) / n)
            assert abs(pred.mean() - real.mean()) < 4 * se + 1e-4, (n, pred.mean(), real.mean())
    # and the ranking is informative
    assert np.corrcoef(none, ~later)[0, 1] > 0.3


def test_p_none_falls_with_the_horizon_and_is_one_for_a_zero_horizon():
    m = _model(**PUBLISHED)
    short, long_ = m.p_none(4.0, X, TX, T), m.p_none(39.0, X, TX, T)
    assert np.all(long_ <= short + 1e-12) and np.all((long_ >= 0) & (short <= 1))
    np.testing.assert_array_equal(m.p_none(0.0, X, TX, T), 1.0)


def test_warm_start_from_a_sample_gives_the_same_fit(monkeypatch):
    # given CDNOW's 1016 compressed rows and a sample size that makes them "large" (over 4 x 100 rows)
    from engine.scoring import bgnbd  # the warm start both fits share (bgnbd.fit_log_params)

    cold = ParetoNBD().fit(X, TX, T)
    monkeypatch.setattr(bgnbd, "_SAMPLE_ROWS", 100)
    warm = ParetoNBD().fit(X, TX, T)
    # then the same maximum, reached from the sample's estimates
    for k in cold.params_:
        assert warm.params_[k] == pytest.approx(cold.params_[k], rel=1e-5)  # (a flat maximum: ftol 1e-13)
    assert warm.diagnostics_["log_likelihood"] == pytest.approx(cold.diagnostics_["log_likelihood"], rel=1e-12)
    assert warm.diagnostics_["evaluations"] <= cold.diagnostics_["evaluations"]
