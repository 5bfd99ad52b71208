"""The learned lapse model: its bitset kernel, the logistic fit, the time-split choice, the pipeline."""

from __future__ import annotations

import numpy as np
import numpy.testing as npt
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import ConfigError
from engine.scoring import lapse_learned
from engine.scoring.backtest import auc
from engine.scoring.pipeline import score, summary_of
from engine.tz import parse_as_of
from tests import cdnow, naive
from tests.strategies import day_bitsets, logistic_rows

DAY = 86_400


@given(day_bitsets())
def test_cut_summary_matches_naive(case):
    """Property: counts, first/last index before the cut and activity after it equal the bit-by-bit loop."""
    bits, end, horizon = case
    got = lapse_learned.cut_summary(bits, np.int64(end), np.int64(horizon))
    for a, b in zip(got, naive.cut_summary(bits, end, horizon)):
        npt.assert_array_equal(a, b)


@given(st.lists(st.tuples(st.integers(0, (1 << 62) - 1), st.booleans()), max_size=60),
       st.integers(1, 6))
def test_unique_rows_match_the_dict_count(rows, spread):
    """Property: the sort-and-walk of one user per row (class_runs) equals counting by key, and the
    np.unique path of summed counts gives the same arrays."""
    keys = np.array([k // spread for k, _ in rows], np.int64)  # // spread: repeated keys too
    lapsed = np.array([lap for _, lap in rows], bool)
    got = lapse_learned._unique_rows(keys, lapsed)
    want = naive.class_runs(keys, lapsed)
    for a, b in zip(got, want):
        npt.assert_array_equal(a, b)
    summed = lapse_learned._unique_rows(keys, None, lapsed.astype(float), (~lapsed).astype(float))
    for a, b in zip(summed, want):
        npt.assert_array_equal(a, b)


def test_cut_summary_fixed_cases():
    # given no users, an empty user and one active on bit 0, 63, 64 and 130
    assert [len(a) for a in lapse_learned.cut_summary(np.zeros((0, 2), np.uint64), np.int64(5), np.int64(3))] \
        == [0, 0, 0, 0]
    bits = np.zeros((2, 3), np.uint64)
    bits[1, 0] = np.uint64(1) | (np.uint64(1) << np.uint64(63))
    bits[1, 1] = np.uint64(1)
    bits[1, 2] = np.uint64(1) << np.uint64(2)
    count, first, last, later = lapse_learned.cut_summary(bits, np.int64(65), np.int64(66))
    assert count.tolist() == [0, 3] and first.tolist() == [-1, 0] and last.tolist() == [-1, 64]
    assert later.tolist() == [False, True]
    assert not lapse_learned.cut_summary(bits, np.int64(65), np.int64(65))[3][1]


@given(logistic_rows())
def test_newton_terms_match_naive(case):
    """Property: the one-pass gradient and Hessian equal the matrix formulas (Hessian symmetric)."""
    Z, w, t, beta = case
    g, h = lapse_learned.newton_terms(Z, w, t, beta)
    ng, nh = naive.logistic_newton_terms(Z, w, t, beta)
    npt.assert_allclose(g, ng, rtol=1e-9, atol=1e-9)
    npt.assert_allclose(h, nh, rtol=1e-9, atol=1e-9)
    npt.assert_array_equal(h, h.T)


def test_newton_terms_fixed_cases():
    # no rows: zero terms; one row at beta = 0: p = 1/2
    g, h = lapse_learned.newton_terms(np.zeros((0, 3)), np.zeros(0), np.zeros(0), np.zeros(3))
    assert g.tolist() == [0.0] * 3 and h.tolist() == [[0.0] * 3] * 3
    g, h = lapse_learned.newton_terms(np.array([[1.0, 2.0]]), np.array([4.0]), np.array([1.0]), np.zeros(2))
    assert g.tolist() == [-2.0, -4.0] and h.tolist() == [[1.0, 2.0], [2.0, 4.0]]


def test_logistic_fit_recovers_known_coefficients():
    # given labels drawn from a known logistic model of two features
    rng = np.random.default_rng(4)
    X = rng.normal(size=(20_000, 2)) * [2.0, 0.5] + [1.0, -3.0]
    p = 1 / (1 + np.exp(-(0.3 + 1.5 * X[:, 0] - 2.0 * X[:, 1])))
    y = rng.random(len(p)) < p
    # when fitted (no ridge)
    m = lapse_learned.fit_logistic(X, y, ridge=0.0)
    coef = np.asarray(m["coef"][1:]) / np.asarray(m["scale"])
    intercept = m["coef"][0] - float(coef @ np.asarray(m["mean"]))
    # then it is scipy's maximum-likelihood solution, and near the truth
    from scipy.optimize import minimize
    from scipy.special import expit

    Z = np.column_stack([np.ones(len(X)), X])

    def nll(b):
        z = Z @ b
        return float(np.sum(np.logaddexp(0, z) - y * z)), Z.T @ (expit(z) - y)

    ref = minimize(nll, np.zeros(3), jac=True, method="BFGS", options={"gtol": 1e-8}).x
    npt.assert_allclose([intercept, *coef], ref, atol=1e-4)
    npt.assert_allclose(coef, [1.5, -2.0], atol=0.25)
    pred = lapse_learned.predict_logistic(m, X)
    assert np.all((pred > 0) & (pred < 1)) and abs(pred.mean() - y.mean()) < 1e-6


def test_a_fitted_model_does_not_extrapolate_past_its_training_range():
    # given a model fitted on features in [0, 1] where risk rises steeply with the first
    rng = np.random.default_rng(5)
    X = rng.random((5_000, 2))
    y = rng.random(len(X)) < 1 / (1 + np.exp(-(8 * X[:, 0] - 4)))
    m = lapse_learned.fit_logistic(X, y)
    assert m["low"] == pytest.approx(X.min(axis=0).tolist()) and m["high"] == pytest.approx(X.max(axis=0).tolist())
    # when applied to users far outside that range (a user 100x more active than any seen)
    far = np.array([[100.0, 0.5], [-100.0, 0.5]])
    edge = np.array([[X[:, 0].max(), 0.5], [X[:, 0].min(), 0.5]])
    # then they get the prediction at the edge of what was seen, not 1.0 or 0.0
    npt.assert_allclose(lapse_learned.predict_logistic(m, far), lapse_learned.predict_logistic(m, edge))
    # and a model saved before the range was kept applies unclipped, as it did
    old = {k: m[k] for k in ("mean", "scale", "coef")}
    assert lapse_learned.predict_logistic(old, far)[0] > lapse_learned.predict_logistic(m, far)[0]


@pytest.mark.parametrize("used, aucs, expect", [
    ("closed_form", {"auc_closed_form": 0.51, "auc_recency": 0.50}, "no better than chance"),
    ("learned", {"auc_closed_form": 0.80, "auc_learned": 0.45, "auc_recency": 0.6}, "no better than chance"),
    ("closed_form", {"auc_closed_form": 0.70, "auc_recency": 0.75}, "worse than days since the last activity"),
    ("pareto", {"auc_closed_form": 0.70, "auc_pareto": 0.80, "auc_recency": 0.75}, None),
    ("closed_form", {"auc_closed_form": 0.75, "auc_recency": 0.7505}, None)])
def test_a_weak_check_is_a_warning(used, aucs, expect):
    # given a check whose chosen model ranks at chance, or under recency alone, or fine
    got = lapse_learned._weak_check({"used": used, "validation": {"checked_cut_days_before": 30, **aucs}})
    # then the warning says which, and says what to do
    if expect is None:
        assert got is None
    else:
        assert expect in got and "winback backtest" in got


def test_weighted_auc_is_the_auc_of_the_expanded_users():
    # given rows of (score, positives, negatives) with tied scores
    rng = np.random.default_rng(2)
    sc = rng.integers(0, 6, 40).astype(float)
    pos, neg = rng.integers(0, 4, 40), rng.integers(0, 4, 40)
    users = np.repeat(sc, pos + neg)
    label = np.concatenate([np.r_[np.ones(p, bool), np.zeros(q, bool)] for p, q in zip(pos, neg)])
    # then it equals the Mann-Whitney AUC over one row per user
    assert lapse_learned.weighted_auc(sc, pos.astype(float), neg.astype(float)) == pytest.approx(auc(users, label))


@given(day_bitsets(max_users=12, max_words=2), st.sampled_from([10, 64]))
def test_partition_stats_merge_to_the_whole(case, horizon):
    """Property: the training rows of any split of the users merge to the rows of all of them
    (the horizon's cuts, and at 64 days also the 32-day rung's)."""
    bits, end, _ = case
    as_of, day0 = 128 * DAY, 0

    def stats(b):
        return lapse_learned.part_stats(b, as_of=as_of, day0=day0, window_days=128, horizon_days=horizon, mode="auto")

    whole = stats(bits)
    assert list(whole["rungs"]) == ([32] if horizon == 64 else [])
    k = len(bits) // 2
    merged = lapse_learned.merge_stats([stats(bits[:k]), stats(bits[k:])])
    # one partition alone is passed through; with an empty one beside it, merged the long way
    alone = lapse_learned.merge_stats([whole])
    beside_empty = lapse_learned.merge_stats([whole, stats(bits[:0])])
    for m in (merged, alone, beside_empty):
        for got, want in [(m["cuts"], whole["cuts"])] + [(m["rungs"][h], whole["rungs"][h]) for h in whole["rungs"]]:
            assert got.keys() == want.keys()
            for back in want:
                for a, b in zip(got[back], want[back]):
                    npt.assert_array_equal(a, b)
                    assert a.dtype == b.dtype


def _cdnow(H, **options):
    as_of = parse_as_of(cdnow.AS_OF)
    users, events = cdnow.tables(before=as_of)
    s = score(users, events, as_of=cdnow.AS_OF, activity="purchase", horizon_days=H, **options)
    ids, ts, _ = cdnow.purchases()
    gone = ~np.isin(s["user_id"].to_numpy(), ids[(ts >= as_of) & (ts < as_of + H * DAY)])
    return s, gone


@pytest.mark.parametrize("mode", ["auto", "auto_pareto"])
def test_cdnow_sample_records_the_check_and_the_choice(mode):
    # given the CDNOW sample scored as of 1997-10-01 with a 30-day horizon (auto: BG/NBD against the
    # learned model; auto_pareto: Pareto/NBD checked too)
    s, gone = _cdnow(30, lapse_model=mode)
    lm = summary_of(s)["lapse_model"]
    # then the check on the history before as_of ran and decided by its AUCs alone
    v = lm["validation"]
    assert v["checked_cut_days_before"] == 30 and v["trained_cut_days_before"] == 60
    # (first BG/NBD or Pareto/NBD by their AUCs at the cut, then the learned model against that one)
    assert (v["auc_pareto"] is None) == (mode == "auto")
    closed = "pareto" if mode == "auto_pareto" and v["auc_pareto"] > v["auc_closed_form"] + lapse_learned.PARETO_MARGIN \
        else "closed_form"
    best = v["auc_pareto"] if closed == "pareto" else v["auc_closed_form"]
    assert lm["used"] == ("learned" if v["auc_learned"] > best + lapse_learned.LEARNED_MARGIN else closed)
    # and the baseline is recorded beside it: CDNOW's lapse_risk ranks above recency, so no warning
    assert 0.5 < v["auc_recency"] < 1 and "warning" not in lm
    risk = s["lapse_risk"].to_numpy()
    assert np.all((risk >= 0) & (risk <= 1)) and np.all(np.isfinite(risk))
    # and whichever was used ranks who did not come back well
    assert auc(risk, gone) > 0.75


def test_learned_model_when_asked_is_trained_before_as_of_only():
    # given the CDNOW sample, the learned model forced, and the same history with every later event added
    s, gone = _cdnow(30, lapse_model="learned")
    lm = summary_of(s)["lapse_model"]
    assert lm["used"] == "learned" and "validation" not in lm
    assert lm["model"]["trained_cut_days_before"] == 30 and lm["model"]["lapsed"] > lm["model"]["came_back"] > 30
    closed, _ = _cdnow(30, lapse_model="closed_form")
    assert summary_of(closed)["lapse_model"]["used"] == "closed_form"
    # then it ranks at least about as well as the closed form on the 30 days after as_of
    assert auc(s["lapse_risk"].to_numpy(), gone) > auc(closed["lapse_risk"].to_numpy(), gone) - 0.01
    # and p_alive and the expected days do not change with the lapse model
    npt.assert_array_equal(s["p_alive"].to_numpy(), closed["p_alive"].to_numpy())


def test_a_horizon_longer_than_the_history_is_trained_on_a_shorter_rung():
    # given the CDNOW sample at 39 weeks: as_of minus 39 weeks is before anyone's first purchase
    s, gone = _cdnow(273)
    lm = summary_of(s)["lapse_model"]
    # then the split runs at the longest rung (273 // 4 = 68 days) whose check cut holds most customers,
    # the learned model is used only because it won that check, and the reason says all of it
    assert lm["surrogate_horizon_days"] == 68 and lm["model"]["horizon_days"] == 68
    v = lm["validation"]
    assert v["checked_cut_days_before"] == 68 and v["trained_cut_days_before"] == 136
    assert lm["used"] == "learned" and v["auc_learned"] > v["auc_closed_form"]
    assert "no time split at 273 days" in lm["reason"] and "trained at 68 days" in lm["reason"]
    # and it ranks who did not buy in the 39 weeks better than the closed form and recency alone
    closed, _ = _cdnow(273, lapse_model="closed_form")
    seen = s["last_active_at"].is_valid().to_numpy(zero_copy_only=False)
    risk = s["lapse_risk"].to_numpy()
    assert np.all(np.isfinite(risk)) and np.all((risk >= 0) & (risk <= 1))
    assert auc(risk[seen], gone[seen]) > auc(closed["lapse_risk"].to_numpy()[seen], gone[seen]) + 0.01
    assert auc(risk[seen], gone[seen]) > auc(s["days_inactive"].to_numpy()[seen], gone[seen]) + 0.005


def test_a_learned_model_asked_for_is_trained_on_the_longest_rung_with_a_training_cut():
    # given the CDNOW sample at 39 weeks with the learned model asked for (no check is run)
    s, gone = _cdnow(273, lapse_model="learned")
    lm = summary_of(s)["lapse_model"]
    # then it is trained at 136 days (273 // 2: its cut has customers; the check cut it would need does not matter)
    assert lm["used"] == "learned" and lm["surrogate_horizon_days"] == 136 and lm["model"]["horizon_days"] == 136
    assert lm["model"]["trained_cut_days_before"] == 136
    assert "no time split at 273 days" in lm["reason"] and "trained at 136 days" in lm["reason"]
    risk = s["lapse_risk"].to_numpy()
    assert np.all(np.isfinite(risk)) and np.all((risk >= 0) & (risk <= 1))
    # and it ranks who did not buy in the 39 weeks better than the closed form at that horizon
    closed, _ = _cdnow(273, lapse_model="closed_form")
    seen = s["last_active_at"].is_valid().to_numpy(zero_copy_only=False)
    assert auc(risk[seen], gone[seen]) > auc(closed["lapse_risk"].to_numpy()[seen], gone[seen])


def test_no_rung_serves_keeps_the_closed_form():
    # given the CDNOW sample scored as of 1997-02-15 at 39 weeks: every rung's check cut is before most
    # customers' first purchase (they first bought in January to March)
    as_of = parse_as_of("1997-02-15")
    users, events = cdnow.tables(before=as_of)
    s = score(users, events, as_of="1997-02-15", activity="purchase", horizon_days=273)
    lm = summary_of(s)["lapse_model"]
    # then the closed form scores, with the horizon's own reason
    assert lm["used"] == "closed_form" and "surrogate_horizon_days" not in lm
    assert np.all(np.isfinite(s["lapse_risk"].to_numpy()))


def test_too_few_users_in_a_class_keeps_the_closed_form():
    # given 200 users who are all active every few days up to as_of (everyone comes back)
    as_of = parse_as_of("2026-11-01")
    uid = np.repeat(np.arange(200), 60)
    ts = as_of - (np.tile(np.arange(60), 200) * 3 + 1) * DAY
    users = pa.table({"user_id": np.arange(200), "timezone": pa.array(["UTC"] * 200)})
    events = pa.table({"user_id": uid, "ts": pa.array(ts, pa.timestamp("s", tz="UTC")),
                       "event": pa.array(["session"] * len(uid))})
    s = score(users, events, as_of="2026-11-01", penalizer=0.01)
    lm = summary_of(s)["lapse_model"]
    assert lm["used"] == "closed_form" and "at least 30 of each" in lm["reason"]


def test_lapse_model_option_is_checked():
    users, events = cdnow.tables(before=parse_as_of(cdnow.AS_OF))
    with pytest.raises(ConfigError, match="--lapse-model"):
        score(users, events, as_of=cdnow.AS_OF, lapse_model="gbm")


@pytest.mark.parametrize("horizon", [0, -5, 3651])
def test_a_horizon_out_of_range_says_the_range_it_takes(horizon):
    users, events = cdnow.tables(before=parse_as_of(cdnow.AS_OF))
    with pytest.raises(ConfigError, match="more than 0 and at most 3650 days"):
        score(users, events, as_of=cdnow.AS_OF, horizon_days=horizon)
