"""The learned fatigue budget: weekly counts equal their per-event twin; the estimator recovers a known
decay; the budget equals its per-user twin; planning recomputes it for the campaign's policy."""

from __future__ import annotations

import types

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.schema import COMPLAINT, OPEN, SEND, SESSION, UNSUBSCRIBE
from engine.scoring import fatigue_model as fm
from tests import naive

AS_OF = 1_790_000_000
WEEK = 7 * 86_400


@given(st.lists(st.tuples(st.integers(0, 4), st.integers(-WEEK, 30 * WEEK),
                          st.sampled_from([SEND, OPEN, UNSUBSCRIBE, COMPLAINT, SESSION])), max_size=300),
       st.integers(1, 3))
def test_weekly_counts_match_the_naive_twin_in_any_batch_split(rows, n_batches):
    """Property: the numba pass equals the per-event twin, however the events are cut into batches."""
    uidx = np.array([r[0] for r in rows], np.int64)
    ts = AS_OF - np.array([r[1] for r in rows], np.int64)
    ev = np.array([r[2] for r in rows], np.int8)
    acc = fm.FatigueAccumulators.zeros(5)
    for part in np.array_split(np.arange(len(rows)), n_batches):
        fm.accumulate(acc, types.SimpleNamespace(uidx=uidx[part], ts=ts[part], event=ev[part]), AS_OF)
    sends, opens, stop = naive.fatigue_weeks(5, uidx, ts, ev, AS_OF)
    np.testing.assert_array_equal(acc.sends, np.array(sends))
    np.testing.assert_array_equal(acc.opens, np.array(opens))
    np.testing.assert_array_equal(acc.stop_week, np.array(stop))


@given(st.lists(st.tuples(st.integers(0, 9), st.integers(-WEEK, 30 * WEEK),
                          st.sampled_from([SEND, OPEN, UNSUBSCRIBE, COMPLAINT, SESSION])), max_size=300),
       st.lists(st.integers(1, 9), max_size=6))
def test_runs_added_on_every_core_match_the_naive_twin(rows, cut_users):
    """Property: events grouped by user and cut into runs that share no user (the Folder's chunks),
    added in parallel (``bounds``), give the per-event twin's counts and stop weeks."""
    rows = sorted(rows, key=lambda r: r[0])  # stable: each user's events keep their order
    uidx = np.array([r[0] for r in rows], np.int64)
    ts = AS_OF - np.array([r[1] for r in rows], np.int64)
    ev = np.array([r[2] for r in rows], np.int8)
    bounds = np.unique(np.concatenate(([0], np.searchsorted(uidx, cut_users), [len(uidx)]))).astype(np.int64)
    acc = fm.FatigueAccumulators.zeros(10)
    fm.accumulate_arrays(acc, uidx, ts, ev, AS_OF, bounds)
    sends, opens, stop = naive.fatigue_weeks(10, uidx, ts, ev, AS_OF)
    np.testing.assert_array_equal(acc.sends, np.array(sends))
    np.testing.assert_array_equal(acc.opens, np.array(opens))
    np.testing.assert_array_equal(acc.stop_week, np.array(stop))


@given(st.lists(st.lists(st.integers(0, 255), min_size=4, max_size=4), max_size=30), st.integers(1, 70))
def test_pair_counts_match_the_naive_twin(rows, P):
    """Property: the (s_w, s_(w+1)) histogram equals the week-by-week loop, clipping included."""
    sends = np.array(rows, np.uint8).reshape(-1, 4)
    np.testing.assert_array_equal(fm.pair_counts(sends, np.int64(P)), naive.fatigue_pairs(sends, P))


def test_counts_saturate_at_255():
    acc = fm.FatigueAccumulators.zeros(1)
    n = 300
    batch = types.SimpleNamespace(uidx=np.zeros(n, np.int64), ts=np.full(n, AS_OF - 10, np.int64),
                                  event=np.full(n, SEND, np.int8))
    fm.accumulate(acc, batch, AS_OF)
    assert acc.sends[0, 0] == 255


def _population(beta, n=20_000, seed=1, spread=0.0):
    """Weekly sends ~ Poisson(1.5) and opens ~ Binomial(s, q_u exp(-beta_u L)) with q_u ~ Gamma(2, 0.05)."""
    rng = np.random.default_rng(seed)
    sends = np.minimum(rng.poisson(1.5, (n, fm.WEEKS)), 255).astype(np.uint8)
    L = fm.weekly_load(sends)
    q = rng.gamma(2.0, 0.05, n)[:, None]
    b = beta + spread * rng.standard_normal(n)
    opens = rng.binomial(sends, np.clip(q * np.exp(-b[:, None] * L), 0.0, 1.0)).astype(np.uint8)
    return fm.FatigueAccumulators(sends, opens, np.full(n, -1, np.int8)), b


@pytest.mark.parametrize("beta", [0.0, 0.2, 0.5])
def test_population_decay_is_recovered(beta):
    acc, _ = _population(beta)
    m = fm.fit(acc)
    assert m.beta == pytest.approx(beta, abs=0.03)


def _drifting(beta, drift, n=20_000, seed=2):
    """As :func:`_population` (beta the same for all), the response level times exp(drift * t) at
    t = -w weeks from as_of (drift < 0: the population answers less as weeks go by), and fewer
    messages in the recent weeks, so that the load and the weeks go together as they do in a list
    that is being wound down."""
    rng = np.random.default_rng(seed)
    lam = 1.0 + 0.04 * np.arange(fm.WEEKS)  # more messages long ago
    sends = np.minimum(rng.poisson(lam, (n, fm.WEEKS)), 255).astype(np.uint8)
    L = fm.weekly_load(sends)
    q = rng.gamma(2.0, 0.05, n)[:, None] * np.exp(-drift * np.arange(fm.WEEKS))[None, :]
    opens = rng.binomial(sends, np.clip(q * np.exp(-beta * L), 0.0, 1.0)).astype(np.uint8)
    return fm.FatigueAccumulators(sends, opens, np.full(n, -1, np.int8))


@pytest.mark.parametrize("drift", [-0.02, 0.0, 0.015])
def test_a_drifting_response_is_recovered_and_the_latest_level_predicted(drift):
    """Given a response level that changes by ``drift`` per week, the fit recovers both the drift and
    the decay with load, and the level it reports is the one at as_of: week 0's opens are
    predicted from weeks 1-25 alone within a few percent (a level averaged over the 26 weeks, as
    before the drift was fitted, was 33 % over at drift -0.02)."""
    acc = _drifting(0.3, drift)
    m = fm.fit(acc)
    assert m.drift == pytest.approx(drift, abs=0.004)
    assert m.beta == pytest.approx(0.3, abs=0.04)
    # the mergeable statistics agree with the whole
    halves = [fm.part_stats(fm.FatigueAccumulators(acc.sends[s], acc.opens[s], acc.stop_week[s]))
              for s in (slice(0, 9000), slice(9000, None))]
    pop = fm.fit_stats(halves)
    assert pop["drift_per_week"] == pytest.approx(m.drift, abs=1e-9)
    assert pop["response"] == pytest.approx(m.q, rel=1e-9)
    # week 0 held out: fitted on weeks 1-25 (shifted to start at 0), predicted one week on
    past = fm.FatigueAccumulators(np.ascontiguousarray(np.c_[acc.sends[:, 1:], np.zeros((len(acc.sends), 1), np.uint8)]),
                                  np.ascontiguousarray(np.c_[acc.opens[:, 1:], np.zeros((len(acc.opens), 1), np.uint8)]),
                                  acc.stop_week)
    mp = fm.fit(past)
    s0 = acc.sends[:, 0].astype(np.float64)
    load0 = 0.5 * np.maximum(s0 - 1.0, 0.0) + 0.5 * acc.sends[:, 1]
    pred = (mp.q_u * np.exp(mp.drift) * s0 * np.exp(-mp.beta_u * load0)).sum()
    assert pred == pytest.approx(float(np.minimum(acc.opens[:, 0], acc.sends[:, 0]).sum()), rel=0.05)


def test_per_user_estimates_rank_like_the_truth_and_shrink():
    # given users whose true decay varies (sd 0.3 around 0.3)
    acc, truth = _population(0.3, spread=0.3, seed=4)
    m = fm.fit(acc)
    from scipy.stats import spearmanr

    # then the estimates rank like the truth, and are pulled towards the population value
    assert spearmanr(m.beta_u, truth).correlation > 0.2  # measured 0.30
    assert np.std(m.beta_u) < np.std(truth)
    assert m.sigma == pytest.approx(0.3, rel=0.35)
    # and the mergeable statistics give the same population fit as the whole
    halves = [fm.part_stats(fm.FatigueAccumulators(acc.sends[s], acc.opens[s], acc.stop_week[s]))
              for s in (slice(0, 7000), slice(7000, None))]
    pop = fm.fit_stats(halves)
    assert pop["beta"] == pytest.approx(m.beta, abs=1e-9) and pop["sigma"] == pytest.approx(m.sigma, rel=1e-9)
    assert pop["drift_per_week"] == pytest.approx(m.drift, abs=1e-12) and abs(m.drift) < 0.01  # none in this world
    beta_u, q_u = fm.user_params(acc, pop)
    np.testing.assert_allclose(beta_u, m.beta_u, rtol=1e-9)
    assert np.all(q_u > 0)
    # the sums over the users who answered alone are the sums over everyone
    S, I, _, O = fm.user_sums(acc.sends, acc.opens, pop["beta"], pop["drift_per_week"])[:4]
    whole = pop["beta"] + S / (I + 1.0 / pop["sigma"] ** 2)
    q_whole = (O + pop["response"] * fm.PRIOR_MESSAGES) / (
        fm.user_sums(acc.sends, acc.opens, whole, pop["drift_per_week"])[2] + fm.PRIOR_MESSAGES)
    assert np.array_equal(beta_u, whole) and np.array_equal(q_u, q_whole)


@given(st.lists(st.tuples(st.floats(-0.5, 2.0), st.floats(0.0, 0.5), st.integers(0, 6), st.booleans()),
                min_size=1, max_size=30),
       st.one_of(st.integers(1, 5), st.integers(120, 1000)), st.sampled_from([7, 30]), st.floats(0.0, 0.05))
def test_budget_matches_the_per_user_twin(rows, cap, window, u0):
    # (caps above 127 too: the budget once came back as int8 and wrapped to negative numbers)
    b, q, n, c = (np.array([r[i] for r in rows]) for i in range(4))
    got = fm.budget(b, q, n, c, cap=cap, window_days=window, u0=u0)
    want = naive.fatigue_budget_learned(b, q, n, c, cap, window, u0, fm.VALUE_DAYS, fm.UNSUBSCRIBE_COST)
    assert got.tolist() == want
    assert np.all((got >= 0) & (got <= cap))
    u0 = 0.0  # and with no unsubscribe risk the whole room is left: cap - n, above 127 as well
    assert fm.budget(b, q, n, c, cap=cap, window_days=window, u0=u0).tolist() == \
        naive.fatigue_budget_learned(b, q, n, c, cap, window, u0, fm.VALUE_DAYS, fm.UNSUBSCRIBE_COST)


@given(st.lists(st.tuples(st.floats(-0.5, 2.0), st.floats(0.0, 0.5), st.integers(0, 6)), min_size=1, max_size=30),
       st.integers(1, 60), st.integers(1, 60), st.sampled_from([7, 30]), st.floats(0.0, 0.05))
def test_a_higher_cap_never_lowers_a_budget(rows, cap_a, cap_b, window, u0):
    # given the same users under two caps (a marketer raising 3 to 50 once got 0 messages for everyone)
    b, q, n = (np.array([r[i] for r in rows]) for i in range(3))
    low, high = sorted((cap_a, cap_b))
    c = np.zeros(len(rows), bool)
    got_low = fm.budget(b, q, n, c, cap=low, window_days=window, u0=u0)
    got_high = fm.budget(b, q, n, c, cap=high, window_days=window, u0=u0)
    # then the higher cap gives each user at least as many, and the lower cap is just a tighter bound
    assert np.all(got_high >= got_low)
    assert np.array_equal(got_low, np.minimum(got_high, np.maximum(low - n, 0)))


def test_budget_hand_cases():
    # no unsubscribe risk: the cap minus what was sent; a complaint: 0
    assert fm.budget(np.array([0.2, 0.2]), np.array([0.1, 0.1]), np.array([0, 2]), np.array([False, True]),
                     cap=3, window_days=7, u0=0.0).tolist() == [3, 0]
    # a user who never answers gets nothing once unsubscribes cost something; a keen one gets more
    got = fm.budget(np.array([0.1, 0.1]), np.array([0.001, 0.3]), np.zeros(2), np.zeros(2, bool),
                    cap=5, window_days=7, u0=0.002)
    assert got[0] == 0 and got[1] >= 2


def test_campaign_budget_recomputes_for_the_campaign_cap():
    meta = {b"winback.score": b'{"fatigue": {"model": "learned", "unsubscribe_per_message": 0.0, '
                              b'"value_days": 90, "unsubscribe_cost": 10}}'}
    scores = pa.table({"fatigue_sensitivity": [0.1, 0.1, 0.1], "fatigue_response": [0.1, 0.1, 0.1],
                       "sends_7d": [0, 1, 0], "sends_30d": [0, 4, 0], "fatigue_budget": [3, 2, 0]}
                      ).replace_schema_metadata(meta)
    # a campaign allowing 5 per week gets 5 (not the score-time cap 3); the user held at 0 stays at 0
    assert fm.campaign_budget(scores, 5, 7, scores["fatigue_budget"].to_numpy()).tolist() == [5, 4, 0]
    assert fm.campaign_budget(scores, 6, 30, scores["fatigue_budget"].to_numpy()).tolist() == [6, 2, 0]
    # scores made with the rule keep their column
    rule = scores.replace_schema_metadata({b"winback.score": b'{"fatigue": {"model": "rule"}}'})
    assert fm.campaign_budget(rule, 5, 7, rule["fatigue_budget"].to_numpy()).tolist() == [3, 2, 0]


@given(st.lists(st.tuples(st.lists(st.integers(0, 6), min_size=fm.WEEKS, max_size=fm.WEEKS),
                          st.lists(st.integers(0, 4), min_size=fm.WEEKS, max_size=fm.WEEKS),
                          st.floats(-1.0, 2.0)), min_size=1, max_size=8),
       st.floats(-0.5, 0.5))
def test_user_sums_match_the_naive_twin(rows, drift):
    """Property: the one-pass kernel equals the definitions per user (scores, information, E, O)."""
    sends = np.array([r[0] for r in rows], np.uint8)
    opens = np.array([r[1] for r in rows], np.uint8)
    beta = np.array([r[2] for r in rows])
    got = fm.user_sums(sends, opens, beta, drift).T
    want = np.array(naive.fatigue_user_sums(sends, opens, beta, drift))
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-8)
    # the kernel on every core gives the very same numbers as on one thread
    par = fm._user_sums_parallel(sends, opens, beta, np.float64(drift))
    assert np.array_equal(par, fm._user_sums(sends, opens, beta, np.float64(drift)))


def test_user_sums_on_every_core_equal_one_thread_at_scale():
    """Above fm.SERIAL_BELOW users the parallel kernel runs; bit-identical to the serial one."""
    rng = np.random.default_rng(5)
    n = fm.SERIAL_BELOW + 1000
    sends = rng.poisson(1.5, (n, fm.WEEKS)).astype(np.uint8)
    opens = np.minimum(rng.poisson(0.3, (n, fm.WEEKS)), sends).astype(np.uint8)
    beta = rng.uniform(-0.5, 1.5, n)
    par = fm.user_sums(sends, opens, beta, -0.02)
    one = fm._user_sums(sends, opens, beta, np.float64(-0.02))
    assert np.array_equal(par, one)


def test_a_history_without_campaigns_falls_back_to_the_rule_not_to_zero(tmp_path):
    """Events with activity but no message ever sent or opened (a shop that hands over sessions and
    purchases only): the learned budget has no response to learn from; it must not hold every user
    at 0 messages. The rule applies, the metadata says so, and a warning is printed. The users
    file has only user_id and email: no timezone, no phone column."""
    import pyarrow.feather as feather

    from engine.scoring.pipeline import score, summary_of

    rng = np.random.default_rng(3)
    n = 200
    users = pa.table({"user_id": np.arange(1, n + 1), "email": [f"u{i}@example.com" for i in range(n)],
                      "consent_email": np.ones(n, bool)})
    uid = rng.integers(1, n + 1, 4000)
    ts = AS_OF - rng.integers(86_400, 300 * 86_400, 4000)
    events = pa.table({"user_id": uid, "ts": pa.array(ts * 1_000_000, pa.timestamp("us", "UTC")),
                       "event": pa.array(["session"] * 4000)})
    feather.write_feather(users, tmp_path / "users.arrow")
    feather.write_feather(events, tmp_path / "events.arrow")
    out = score(str(tmp_path / "users.arrow"), str(tmp_path / "events.arrow"), as_of=AS_OF)
    meta = summary_of(out)
    assert meta["fatigue"]["model"] == "rule"
    assert any("fatigue_budget follows the fixed rule" in w for w in meta["warnings"])
    budget = out["fatigue_budget"].to_numpy()
    assert (budget == 3).all()  # nobody was messaged: the whole cap is left
    assert out["timezone_source"].to_pylist() == ["default"] * n


def test_effective_keeps_learned_when_enough_users_answered():
    assert fm.effective("learned", {"users_with_opens": fm.MIN_USERS_WITH_OPENS}) == ("learned", None)
    assert fm.effective("rule", {"users_with_opens": 0}) == ("rule", None)
    used, warning = fm.effective("learned", {"users_with_opens": 3, "messages": 10})
    assert used == "rule" and "only 3 users" in warning


@given(st.lists(st.tuples(st.lists(st.integers(0, 3), min_size=fm.WEEKS, max_size=fm.WEEKS),
                          st.lists(st.integers(0, 3), min_size=fm.WEEKS, max_size=fm.WEEKS)), min_size=0, max_size=12))
def test_the_population_fit_stays_finite_and_in_bounds_on_any_history(rows):
    """Property: however few or collinear the weeks (one message a week, sends only in one week, no
    opens at all), beta and the drift are finite and inside their bounds, and every q_u is finite."""
    sends = np.array([r[0] for r in rows], np.uint8).reshape(-1, fm.WEEKS)
    opens = np.array([r[1] for r in rows], np.uint8).reshape(-1, fm.WEEKS)
    m = fm.fit(fm.FatigueAccumulators(sends, opens, np.full(len(rows), -1, np.int8)))
    assert fm.BETA_RANGE[0] <= m.beta <= fm.BETA_RANGE[1] and fm.DRIFT_RANGE[0] <= m.drift <= fm.DRIFT_RANGE[1]
    assert np.all(np.isfinite(m.beta_u)) and np.all(np.isfinite(m.q_u))
