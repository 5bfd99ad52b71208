"""BG/NBD: published CDNOW estimates, closed forms, the ill-conditioned 2F1 region, units.

References: tests/naive_bgnbd.py (the paper's formulas at 40 digits with mpmath),
scipy.special.hyp2f1, and lifetimes' BetaGeoFitter where it is well conditioned.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.testing as npt
import pyarrow.csv as pacsv
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import boundary_world
from tests.helpers import DATA
from engine.scoring.bgnbd import BGNBD, compress
from engine.errors import ModelError
from tests import naive_bgnbd as naive

CDNOW = pacsv.read_csv(DATA / "cdnow_customers_summary.csv")
X, TX, T = (CDNOW[c].to_numpy().astype(float) for c in ("frequency", "recency", "T"))
CDNOW_PARAMS = dict(r=0.243, alpha=4.414, a=0.793, b=2.426)


def _model(**params) -> BGNBD:
    m = BGNBD()
    m.params_ = dict(params)
    return m


def _one(v) -> np.ndarray:
    return np.array([float(v)])


def _simulate(n, r, alpha, a, b, T_max, seed):
    """Users drawn from BG/NBD itself: lambda ~ Gamma(r, 1/alpha), p ~ Beta(a, b), T ~ U(0.1, 1) T_max."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    TT = rng.uniform(0.1, 1.0, n) * T_max
    n_tx = rng.poisson(lam * TT)
    dropout_after = rng.geometric(p)
    x = np.minimum(n_tx, dropout_after)
    # given n arrivals in (0, T], the x-th arrival time is T * Beta(x, n - x + 1)
    t_x = np.where(x > 0, TT * rng.beta(np.maximum(x, 1), np.maximum(n_tx - x + 1, 1)), 0.0)
    return x.astype(float), t_x, TT


# --- fit -------------------------------------------------------------------------------------

def test_reproduces_fader_hardie_lee_2005_cdnow_estimates():
    # given the 2357-customer CDNOW summary in weeks / when fitted
    m = BGNBD().fit(X, TX, T)
    p = m.params_
    # then the published estimates come back (FHL 2005, section 4)
    assert round(p["r"], 3) == 0.243
    assert round(p["alpha"], 3) == 4.414
    assert round(p["a"], 3) == 0.793
    assert round(p["b"], 3) == 2.426
    d = m.diagnostics_
    assert round(d["log_likelihood"], 1) == -9582.4
    assert d["users"] == 2357 and d["unique_rows"] < 2357 and d["converged"] is True
    assert d["iterations"] > 0 and d["seconds"] >= 0


def test_fitted_log_likelihood_equals_the_sum_of_the_naive_per_user_terms():
    # given the fitted CDNOW model / when summing eq. 6 per user at 40 digits
    m = BGNBD().fit(X, TX, T)
    p = m.params_
    want = sum(naive.log_likelihood(int(x), tx, tt, p["r"], p["alpha"], p["a"], p["b"])
               for x, tx, tt in zip(X[:300], TX[:300], T[:300]))
    # then the per-user log-likelihood agrees, and its weighted sum is the reported one
    assert m.log_likelihood(X[:300], TX[:300], T[:300]).sum() == pytest.approx(want, rel=1e-10)
    assert m.log_likelihood(X, TX, T).sum() == pytest.approx(m.diagnostics_["log_likelihood"], rel=1e-12)


def test_time_unit_scales_alpha_only_and_shifts_the_likelihood_by_the_jacobian():
    """Days instead of weeks: alpha x 7; r, a, b unchanged; ll shifted by -sum(x) log 7."""
    weeks = BGNBD().fit(X, TX, T)
    days = BGNBD().fit(X, TX * 7, T * 7)
    assert days.params_["alpha"] == pytest.approx(7 * weeks.params_["alpha"], rel=1e-4)
    for k in ("r", "a", "b"):
        assert days.params_[k] == pytest.approx(weeks.params_[k], rel=1e-4)
    shift = X.sum() * math.log(7.0)  # each of the x transaction times is a density in 1/time
    assert days.diagnostics_["log_likelihood"] == pytest.approx(weeks.diagnostics_["log_likelihood"] - shift,
                                                                abs=1e-4)


def test_weights_equal_repeated_rows():
    # given the CDNOW rows compressed to unique rows with counts
    m1 = BGNBD().fit(X, TX, T)
    x, tx, tt, w, _ = compress(X, TX, T)
    # when fitted with weights / then the same fit as on every user
    m2 = BGNBD().fit(x, tx, tt, weights=w)
    for k in m1.params_:
        assert m2.params_[k] == pytest.approx(m1.params_[k], rel=1e-6)
    assert m2.diagnostics_["log_likelihood"] == pytest.approx(m1.diagnostics_["log_likelihood"], rel=1e-10)
    assert m2.diagnostics_["users"] == 2357


def test_fit_recovers_the_parameters_users_were_drawn_from():
    # given 20k users simulated from BG/NBD with known parameters (days)
    truth = dict(r=0.6, alpha=20.0, a=0.8, b=3.0)
    x, tx, tt = _simulate(20_000, **truth, T_max=365.0, seed=7)
    # when fitted / then the estimates are close to the truth
    p = BGNBD().fit(x, tx, tt).params_
    assert p["r"] == pytest.approx(truth["r"], rel=0.15)
    assert p["alpha"] == pytest.approx(truth["alpha"], rel=0.25)
    assert p["a"] == pytest.approx(truth["a"], rel=0.35)
    assert p["b"] == pytest.approx(truth["b"], rel=0.5)


def test_no_repeat_activity_is_a_clear_model_error():
    with pytest.raises(ModelError, match="no user has a repeat active day") as err:
        BGNBD().fit(np.zeros(100), np.zeros(100), np.full(100, 30.0))
    assert err.value.diagnostics["users"] == 100


def test_too_few_users_is_a_clear_model_error():
    with pytest.raises(ModelError, match="at least"):
        BGNBD().fit(np.array([1.0]), np.array([1.0]), np.array([2.0]))
    with pytest.raises(ModelError, match="at least"):
        BGNBD().fit(np.empty(0), np.empty(0), np.empty(0))


def test_bad_rows_are_named_in_the_error():
    # given a summary where one user has recency > T and another a NaN
    x, tx, tt = X.copy(), TX.copy(), T.copy()
    tx[5] = tt[5] + 1
    x[9] = np.nan
    # when fitted / then the error counts them and shows the rows
    with pytest.raises(ModelError, match=r"2 row\(s\).*row 5: .*row 9: ") as err:
        BGNBD().fit(x, tx, tt)
    assert err.value.diagnostics["bad_rows"] == 2
    with pytest.raises(ModelError, match="same length"):
        BGNBD().fit(X, TX[:-1], T)


def test_unfitted_model_says_so():
    with pytest.raises(ModelError, match="not fitted"):
        BGNBD().p_alive(_one(1), _one(1), _one(2))


# --- p_alive ---------------------------------------------------------------------------------

def test_closed_forms_on_hand_cases():
    m = _model(**CDNOW_PARAMS)
    # no repeat transaction: alive with certainty under BG/NBD
    assert m.p_alive(_one(0), _one(0), _one(30))[0] == 1.0
    # x=2, t_x=30.43, T=38.86: 1 / (1 + a/(b+1) * ((alpha+T)/(alpha+t_x))^(r+2))
    expect = 1 / (1 + 0.793 / 3.426 * ((4.414 + 38.86) / (4.414 + 30.43)) ** 2.243)
    assert m.p_alive(_one(2), _one(30.43), _one(38.86))[0] == pytest.approx(expect, rel=1e-12)
    # empty input: empty output
    assert m.p_alive(np.empty(0), np.empty(0), np.empty(0)).shape == (0,)
    assert m.expected(30.0, np.empty(0), np.empty(0), np.empty(0)).shape == (0,)


@given(x=st.integers(1, 200), frac=st.floats(0, 1), T1=st.floats(0.1, 500), dT=st.floats(0.01, 500),
       r=st.floats(0.05, 5), alpha=st.floats(0.1, 100), a=st.floats(0.05, 5), b=st.floats(0.05, 20))
def test_p_alive_falls_with_T_at_fixed_history(x, frac, T1, dT, r, alpha, a, b):
    """Property: with x and t_x fixed, a longer silence (larger T) never raises P(alive)."""
    m = _model(r=r, alpha=alpha, a=a, b=b)
    t_x = frac * T1
    p = m.p_alive(np.full(2, float(x)), np.full(2, t_x), np.array([T1, T1 + dT]))
    assert 0.0 <= p[1] <= p[0] <= 1.0


def test_p_alive_falls_with_time_since_last_activity_on_cdnow():
    m = BGNBD().fit(X, TX, T)
    p = m.p_alive(np.full(20, 3.0), np.full(20, 10.0), np.linspace(10, 80, 20))
    assert np.all(np.diff(p) < 0)


# --- conditional expectation and 2F1 ----------------------------------------------------------

def test_ill_conditioned_expectation_is_finite_and_right():
    # the case from the issue: z = 30/33.24, where lifetimes returns NaN
    m = _model(r=0.11, alpha=2.24, a=0.31, b=0.50)
    got = m.expected(30, _one(0), _one(0), _one(1))[0]
    assert got == pytest.approx(0.5646, abs=1e-4)
    assert got == pytest.approx(naive.expected(30, 0, 0, 1, 0.11, 2.24, 0.31, 0.50), rel=1e-12)


GRID = [(r, alpha, a, b, x, T, t)
        for r in (0.11, 2.0) for alpha in (0.01, 2.24, 50.0) for a in (0.31, 0.9, 1.0, 3.0)
        for b in (0.1, 0.5, 20.0) for x in (0, 1, 50, 300) for T in (0.01, 100.0) for t in (30.0, 1000.0)]


def test_expectation_matches_mpmath_on_a_grid_including_the_bad_region():
    """z from 0.2 to 0.99998, x up to 300, a = 1 and a + b + x = 1 (poles of the textbook form)."""
    rows = np.array(GRID)
    r, alpha, a, b, x, TT, t = rows.T
    tx = np.where(x > 0, TT / 2, 0.0)
    for i in range(len(rows)):
        m = _model(r=r[i], alpha=alpha[i], a=a[i], b=b[i])
        got = m.expected(t[i], x[i:i + 1], tx[i:i + 1], TT[i:i + 1])[0]
        assert np.isfinite(got)
        bump = 1e-7 if a[i] == 1.0 or abs(a[i] + b[i] + x[i] - 1) < 1e-12 else 0.0  # mpmath needs off-pole
        want = naive.expected(t[i], int(x[i]), tx[i], TT[i], r[i], alpha[i], a[i] + bump, b[i])
        assert got == pytest.approx(want, rel=max(1e-9, 1e-5 if bump else 0)), GRID[i]


def test_expectation_matches_scipy_hyp2f1_where_it_is_finite():
    from scipy.special import hyp2f1

    # given the CDNOW fit and a spread of histories with z well inside (0, 1)
    m = BGNBD().fit(X, TX, T)
    r, alpha, a, b = (m.params_[k] for k in ("r", "alpha", "a", "b"))
    x = np.array([0.0, 1, 3, 7, 15])
    tx = np.array([0.0, 5, 20, 30, 35])
    tt = np.array([10.0, 20, 38, 39, 39])
    for t in (1.0, 13.0, 39.0, 78.0):
        z = t / (alpha + tt + t)
        ref = (a + b + x - 1) / (a - 1) * (1 - ((alpha + tt) / (alpha + tt + t)) ** (r + x)
                                           * hyp2f1(r + x, b + x, a + b + x - 1, z)) \
            / (1 + np.where(x > 0, a / (b + x - 1) * ((alpha + tt) / (alpha + tx)) ** (r + x), 0.0))
        npt.assert_allclose(m.expected(t, x, tx, tt), ref, rtol=1e-9)


def test_agrees_with_lifetimes_where_it_is_well_conditioned():
    pd = pytest.importorskip("pandas")
    lifetimes = pytest.importorskip("lifetimes")
    # given lifetimes' BetaGeoFitter with the published CDNOW parameters
    ref = lifetimes.BetaGeoFitter()
    ref.params_ = pd.Series(CDNOW_PARAMS)
    m = _model(**CDNOW_PARAMS)
    x, tx, tt = X[:200], TX[:200], T[:200]
    # then p_alive, the conditional and the unconditional expectations agree
    npt.assert_allclose(m.p_alive(x, tx, tt), ref.conditional_probability_alive(x, tx, tt), rtol=1e-10)
    npt.assert_allclose(m.expected(10.0, x, tx, tt),
                        ref.conditional_expected_number_of_purchases_up_to_time(10.0, x, tx, tt), rtol=1e-8)
    for t in (1.0, 10.0, 39.0):
        assert m.expected_unconditional(t) == pytest.approx(
            float(np.asarray(ref.expected_number_of_purchases_up_to_time(t))), rel=1e-9)


@given(r=st.floats(0.05, 5), alpha=st.floats(0.05, 100), a=st.floats(0.05, 5), b=st.floats(0.05, 20),
       x=st.integers(0, 300), frac=st.floats(0, 1), T=st.floats(0.0, 500), t=st.floats(0.5, 1000))
def test_kernels_match_the_mpmath_twins(r, alpha, a, b, x, frac, T, t):
    """Property: numba p_alive and eq. 10 equal the 40-digit textbook formulas, wherever they are defined."""
    if abs(a - 1) < 1e-6 or abs(a + b + x - 1) < 1e-6:
        return  # the textbook form has a removable pole there; the grid test covers those points
    t_x = frac * T if x > 0 else 0.0
    m = _model(r=r, alpha=alpha, a=a, b=b)
    got_p = m.p_alive(_one(x), _one(t_x), _one(T))[0]
    assert got_p == pytest.approx(naive.p_alive(x, t_x, T, r, alpha, a, b), rel=1e-9, abs=1e-300)
    got_e = m.expected(t, _one(x), _one(t_x), _one(T))[0]
    assert np.isfinite(got_e) and got_e >= 0.0
    assert got_e == pytest.approx(naive.expected(t, x, t_x, T, r, alpha, a, b), rel=1e-7, abs=1e-300)


@given(r=st.floats(0.05, 5), alpha=st.floats(0.05, 100), a=st.floats(0.05, 5), b=st.floats(0.05, 20),
       t=st.floats(0.01, 5000))
def test_unconditional_expectation_matches_eq_7(r, alpha, a, b, t):
    """Property: E[X(t)] equals eq. 7 at 40 digits and grows with t."""
    if abs(a - 1) < 1e-6 or abs(a + b - 1) < 1e-6:
        return
    m = _model(r=r, alpha=alpha, a=a, b=b)
    got = m.expected_unconditional(t)
    assert got == pytest.approx(naive.expected_unconditional(t, r, alpha, a, b), rel=1e-7)
    assert m.expected_unconditional(2 * t) >= got > 0.0


def test_predictions_refuse_arrays_of_different_lengths():
    m = _model(**CDNOW_PARAMS)
    with pytest.raises(ModelError, match="one value per user"):
        m.p_alive(X, TX[:-1], T)
    with pytest.raises(ModelError, match="one value per user"):
        m.expected(30.0, X, TX, T[:5])


def test_fit_cost_follows_unique_rows_not_users():
    # given CDNOW repeated ten times (23,570 users, the same distinct rows)
    one = BGNBD().fit(X, TX, T)
    ten = BGNBD().fit(np.tile(X, 10), np.tile(TX, 10), np.tile(T, 10))
    # then the compressed problem is the same size and gives the same estimates
    assert ten.diagnostics_["users"] == 23_570
    assert ten.diagnostics_["unique_rows"] == one.diagnostics_["unique_rows"]
    for k in one.params_:
        assert ten.params_[k] == pytest.approx(one.params_[k], rel=1e-6)
    assert ten.diagnostics_["log_likelihood"] == pytest.approx(10 * one.diagnostics_["log_likelihood"], rel=1e-10)


def test_penalizer_is_lifetimes_penalizer_coef():
    # given CDNOW and lifetimes' BetaGeoFitter(penalizer_coef=0.001) estimates (measured with lifetimes 0.11.3)
    want = dict(r=0.2428, alpha=4.4053, a=0.4984, b=1.3232)
    # when fitted with the same coefficient / then the same estimates, and a lower likelihood than without it
    m = BGNBD(penalizer=0.001).fit(X, TX, T)
    for k, v in want.items():
        assert m.params_[k] == pytest.approx(v, abs=6e-4)
    assert m.diagnostics_["penalizer"] == 0.001
    assert m.diagnostics_["log_likelihood"] < BGNBD().fit(X, TX, T).diagnostics_["log_likelihood"]
    with pytest.raises(ModelError, match="penalizer"):
        BGNBD(penalizer=-1.0).fit(X, TX, T)


def test_penalizer_agrees_with_lifetimes_live():
    pytest.importorskip("pandas")
    lifetimes = pytest.importorskip("lifetimes")
    for coef in (0.001, 0.01):
        ref = lifetimes.BetaGeoFitter(penalizer_coef=coef).fit(X, TX, T)
        m = BGNBD(penalizer=coef).fit(X, TX, T)
        for k in ("r", "alpha", "a", "b"):
            assert m.params_[k] == pytest.approx(float(ref.params_[k]), rel=2e-3)


@pytest.mark.parametrize("kind,names", [("no churn", ["no_churn"]), ("shared rate", ["shared_rate"]),
                                        ("no churn, shared rate", ["no_churn", "shared_rate"])])
def test_boundary_optimum_returns_the_limit_model_with_a_warning(kind, names):
    # given a population whose maximum-likelihood estimate is on the boundary
    x, tx, tt = boundary_world(kind)
    # when fitted / then no refusal: the limit model, named, with a sentence, and finite predictions
    m = BGNBD().fit(x, tx, tt)
    d = m.diagnostics_
    assert d["boundary"] == names and len(d["warnings"]) == len(names) and d["converged"]
    pa, e, none = m.p_alive(x, tx, tt), m.expected(30.0, x, tx, tt), m.p_none(30.0, x, tx, tt)
    assert np.all(np.isfinite(pa)) and np.all(np.isfinite(e)) and np.all((none >= 0) & (none <= 1))
    p = m.params_
    if "no_churn" in names:
        assert pa.min() > 0.999  # nobody is predicted gone
    if "shared_rate" in names:
        assert p["r"] / p["alpha"] == pytest.approx(0.05, rel=0.05)  # the one shared rate, per day
    # and the penalizer turns the same data into an interior optimum
    pen = BGNBD(penalizer=1e-3).fit(x, tx, tt)
    assert np.all(np.isfinite(pen.p_none(30.0, x, tx, tt)))


def test_users_with_one_or_two_active_days_are_a_certain_churn_boundary_with_a_warning():
    # given a one-off shop: every user has one or two active days in a year (so each repeat looks like the last)
    rng = np.random.default_rng(0)
    TT = rng.integers(30, 365, 20_000).astype(float)
    x = rng.integers(0, 2, len(TT)).astype(float)
    tx = np.where(x > 0, np.minimum(rng.integers(1, 200, len(TT)), TT - 1), 0.0)
    # when fitted / then the limit is named, with a sentence saying what to check, and scores stay finite
    m = BGNBD().fit(x, tx, TT)
    d = m.diagnostics_
    assert "certain_churn" in d["boundary"] and any("dropout chance went to one" in w and "winback backtest" in w
                                                     for w in d["warnings"])
    pa = m.p_alive(x, tx, TT)
    assert np.all(np.isfinite(pa)) and np.median(pa[x > 0]) < 0.01
    # and CDNOW, an ordinary population, is on no boundary
    assert BGNBD().fit(X, TX, T).diagnostics_["boundary"] == []


def test_iteration_limit_is_a_warning_not_a_refusal():
    # given an iteration budget far below what CDNOW needs / when fitted / then estimates and a warning
    m = BGNBD(max_iter=2).fit(X, TX, T)
    d = m.diagnostics_
    assert d["converged"] is False and d["iterations"] <= 2 and d["users"] == 2357
    assert any("stopped before converging" in w for w in d["warnings"])
    assert all(np.isfinite(v) for v in m.params_.values())


def test_fit_takes_few_likelihood_evaluations():
    # the optimiser's cost in passes over the rows (not seconds): CDNOW converges in a few dozen
    d = BGNBD().fit(X, TX, T).diagnostics_
    assert d["evaluations"] <= 60 and d["boundary"] == [] and d["warnings"] == []


def test_p_none_hand_cases():
    m = _model(**CDNOW_PARAMS)
    x, tx, tt = np.array([0.0, 2.0, 5.0]), np.array([0.0, 10.0, 30.0]), np.array([20.0, 38.0, 38.0])
    pa = m.p_alive(x, tx, tt)
    # zero horizon: nobody can be active in no time
    npt.assert_allclose(m.p_none(0.0, x, tx, tt), 1.0)
    # the closed form, and it falls with the horizon towards 1 - p_alive
    r, alpha = CDNOW_PARAMS["r"], CDNOW_PARAMS["alpha"]
    want = 1 - pa + pa * ((alpha + tt) / (alpha + tt + 4.0)) ** (r + x)
    npt.assert_allclose(m.p_none(4.0, x, tx, tt), want, rtol=1e-12)
    far = m.p_none(1e30, x, tx, tt)
    assert np.all(m.p_none(4.0, x, tx, tt) > m.p_none(40.0, x, tx, tt)) and np.all(far >= 1 - pa - 1e-12)
    npt.assert_allclose(far, 1 - pa, atol=1e-6)


@given(r=st.floats(0.05, 5), alpha=st.floats(0.05, 100), a=st.floats(0.05, 5), b=st.floats(0.05, 20),
       x=st.integers(0, 300), frac=st.floats(0, 1), T=st.floats(0.0, 500), t=st.floats(0.0, 1000))
def test_p_none_matches_the_integral_twin(r, alpha, a, b, x, frac, T, t):
    """Property: the numba closed form equals the 40-digit integral over the rate posterior."""
    t_x = frac * T if x > 0 else 0.0
    got = _model(r=r, alpha=alpha, a=a, b=b).p_none(t, _one(x), _one(t_x), _one(T))[0]
    assert 0.0 <= got <= 1.0
    assert got == pytest.approx(naive.p_none(t, x, t_x, T, r, alpha, a, b), rel=1e-8, abs=1e-12)


def test_p_none_closed_form_equals_the_integral_over_the_rate_posterior():
    m = _model(**CDNOW_PARAMS)
    for x, tx, tt, t in ((1, 5.0, 20.0, 4.0), (3, 30.0, 38.0, 10.0), (8, 12.0, 38.0, 39.0)):
        got = m.p_none(t, _one(x), _one(tx), _one(tt))[0]
        assert got == pytest.approx(naive.p_none_by_integration(t, x, tx, tt, **CDNOW_PARAMS), rel=1e-9)


def test_warm_start_from_a_sample_gives_the_same_fit(monkeypatch):
    # given CDNOW and a sample size small enough that fit() warm-starts from every k-th row
    import engine.scoring.bgnbd as bgnbd

    cold = BGNBD().fit(X, TX, T)
    monkeypatch.setattr(bgnbd, "_SAMPLE_ROWS", 100)
    # when fitted through the warm start / then the same maximum, in fewer full-data evaluations
    warm = BGNBD().fit(X, TX, T)
    for k in cold.params_:
        assert warm.params_[k] == pytest.approx(cold.params_[k], rel=1e-5)
    assert warm.diagnostics_["log_likelihood"] == pytest.approx(cold.diagnostics_["log_likelihood"], abs=1e-6)
    assert warm.diagnostics_["evaluations"] < cold.diagnostics_["evaluations"]
