"""BG/NBD: published CDNOW estimates, closed forms, the ill-conditioned 2F1 region, units."""

from __future__ import annotations

import numpy as np
import numpy.testing as npt
import pyarrow.csv as pacsv
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.bgnbd import BGNBD, compress
from engine.errors import ModelError
from tests import naive

CDNOW = pacsv.read_csv("tests/data/cdnow_customers_summary.csv")
X, TX, T = (CDNOW[c].to_numpy().astype(float) for c in ("frequency", "recency", "T"))


def test_reproduces_fader_hardie_lee_2005_cdnow_estimates():
    # given the 2357-customer CDNOW summary in weeks / when fitted
    m = BGNBD().fit(X, TX, T)
    p = m.params_
    # then the published estimates come back (FHL 2005, table 1)
    assert round(p["r"], 3) == 0.243
    assert round(p["alpha"], 3) == 4.414
    assert round(p["a"], 3) == 0.793
    assert round(p["b"], 3) == 2.426
    assert round(m.diagnostics_["log_likelihood"], 1) == -9582.4
    assert m.diagnostics_["users"] == 2357 and m.diagnostics_["unique_rows"] < 2357


def test_time_unit_scales_alpha_only():
    """Fitting in days instead of weeks multiplies alpha by 7; r, a, b stay."""
    weeks = BGNBD().fit(X, TX, T).params_
    days = BGNBD().fit(X, TX * 7, T * 7).params_
    assert days["alpha"] == pytest.approx(7 * weeks["alpha"], rel=1e-3)
    for k in ("r", "a", "b"):
        assert days[k] == pytest.approx(weeks[k], rel=1e-3)


def test_weights_equal_repeated_rows():
    m1 = BGNBD().fit(X, TX, T)
    x, tx, tt, w, _ = compress(X, TX, T)
    m2 = BGNBD().fit(x, tx, tt, weights=w)
    for k in m1.params_:
        assert m2.params_[k] == pytest.approx(m1.params_[k], rel=1e-6)


def test_ill_conditioned_expectation_is_finite_and_right():
    # the case from the issue: a published library returns NaN here
    m = BGNBD()
    m.params_ = dict(r=0.11, alpha=2.24, a=0.31, b=0.50)
    got = m.expected(30, np.array([0.0]), np.array([0.0]), np.array([1.0]))
    assert got[0] == pytest.approx(0.5646, abs=1e-4)


def test_closed_forms_on_hand_cases():
    m = BGNBD()
    m.params_ = dict(r=0.243, alpha=4.414, a=0.793, b=2.426)
    # no repeat transaction: alive with certainty under BG/NBD
    assert m.p_alive(np.array([0.0]), np.array([0.0]), np.array([30.0]))[0] == 1.0
    # x=2, t_x=30.43, T=38.86: 1 / (1 + a/(b+1) * ((alpha+T)/(alpha+t_x))^(r+2))
    expect = 1 / (1 + 0.793 / 3.426 * ((4.414 + 38.86) / (4.414 + 30.43)) ** 2.243)
    assert m.p_alive(np.array([2.0]), np.array([30.43]), np.array([38.86]))[0] == pytest.approx(expect, rel=1e-12)


@given(r=st.floats(0.05, 3), alpha=st.floats(0.5, 50), a=st.floats(0.05, 3), b=st.floats(0.3, 10),
       x=st.integers(0, 30), frac=st.floats(0, 1), T=st.floats(1, 400), t=st.floats(1, 60))
def test_kernels_match_the_naive_series(r, alpha, a, b, x, frac, T, t):
    """Property: numba p_alive and expectation equal the plain formulas where the plain series converges."""
    t_x = frac * T if x > 0 else 0.0
    m = BGNBD()
    m.params_ = dict(r=r, alpha=alpha, a=a, b=b)
    if abs(a - 1) < 1e-3:
        return
    got_p = m.p_alive(np.array([float(x)]), np.array([t_x]), np.array([T]))[0]
    assert got_p == pytest.approx(naive.bgnbd_p_alive(x, t_x, T, r, alpha, a, b), rel=1e-9, abs=1e-12)
    got_e = m.expected(t, np.array([float(x)]), np.array([t_x]), np.array([T]))[0]
    want = naive.bgnbd_expected(t, x, t_x, T, r, alpha, a, b)
    assert np.isfinite(got_e)
    if np.isfinite(want) and abs(want) < 1e6:
        assert got_e == pytest.approx(want, rel=1e-6, abs=1e-9)


def test_p_alive_falls_with_time_since_last_activity():
    m = BGNBD().fit(X, TX, T)
    Ts = np.linspace(10, 80, 20)
    p = m.p_alive(np.full(20, 3.0), np.full(20, 10.0), Ts)
    assert np.all(np.diff(p) < 0)


def test_expectation_agrees_with_scipy_hyp2f1_where_well_conditioned():
    from scipy.special import hyp2f1

    m = BGNBD().fit(X, TX, T)
    r, alpha, a, b = (m.params_[k] for k in ("r", "alpha", "a", "b"))
    x, tx, tt, t = 3.0, 20.0, 38.0, 39.0
    z = t / (alpha + tt + t)
    ref = (a + b + x - 1) / (a - 1) * (1 - ((alpha + tt) / (alpha + tt + t)) ** (r + x)
                                       * hyp2f1(r + x, b + x, a + b + x - 1, z)) \
        / (1 + a / (b + x - 1) * ((alpha + tt) / (alpha + tx)) ** (r + x))
    npt.assert_allclose(m.expected(t, np.array([x]), np.array([tx]), np.array([tt])), [ref], rtol=1e-9)


def test_no_repeat_activity_is_a_clear_model_error():
    with pytest.raises(ModelError, match="no user has a repeat active day"):
        BGNBD().fit(np.zeros(100), np.zeros(100), np.full(100, 30.0))


def test_too_few_users_is_a_clear_model_error():
    with pytest.raises(ModelError, match="at least"):
        BGNBD().fit(np.array([1.0]), np.array([1.0]), np.array([2.0]))
