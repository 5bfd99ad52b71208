"""lapse_risk with a horizon through the score pipeline: CDNOW (real customers) and boundary populations."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest
from hypothesis import given, strategies as st

from engine.cli import main
from engine.scoring.backtest import auc
from engine.scoring.pipeline import score, summary_of
from engine.tz import parse_as_of
from tests.strategies import boundary_world
from tests import cdnow

DAY = 86_400


@pytest.fixture(scope="module")
def cdnow_scores():
    as_of = parse_as_of(cdnow.AS_OF)
    users, events = cdnow.tables(before=as_of)
    ids, ts, _ = cdnow.purchases()
    out = {H: score(users, events, as_of=cdnow.AS_OF, activity="purchase", horizon_days=H) for H in (30, 273)}
    back = {H: np.isin(out[H]["user_id"].to_numpy(), ids[(ts >= as_of) & (ts < as_of + H * DAY)]) for H in out}
    return out, back


def test_cdnow_lapse_risk_ranks_better_than_one_minus_p_alive_and_recency(cdnow_scores):
    # given the CDNOW sample scored as of 1997-10-01 on purchases
    out, back = cdnow_scores
    s, gone = out[30], ~back[30]
    # then lapse_risk (no purchase in 30 days) ranks who does not come back far better than 1 - p_alive
    # did, and at least as well as recency alone (measured: 0.789 vs 0.605 and 0.775)
    a = auc(s["lapse_risk"].to_numpy(), gone)
    assert a > auc(1 - s["p_alive"].to_numpy(), gone) + 0.1
    assert a > auc(s["days_inactive"].to_numpy(), gone) and a > 0.76
    # and the fit reproduces the summary-level CDNOW estimates in days (FHL 2005 in weeks, alpha x 7)
    m = summary_of(s)["model"]
    assert m["warnings"] == [] and m["r"] == pytest.approx(0.243, abs=0.03)
    assert summary_of(s)["lapse_horizon_days"] == 30.0


def test_longer_horizon_means_lower_risk_for_everyone(cdnow_scores):
    # (a property of the closed form: a learned model is fitted per horizon and need not keep it per user)
    out, _ = cdnow_scores
    users, events = cdnow.tables(before=parse_as_of(cdnow.AS_OF))
    short, long_ = (score(users, events, as_of=cdnow.AS_OF, activity="purchase", horizon_days=H,
                          lapse_model="closed_form")["lapse_risk"].to_numpy() for H in (30, 273))
    assert np.all(long_ <= short + 1e-12) and np.all((long_ >= 0) & (short <= 1))
    # and p_alive does not depend on the horizon
    np.testing.assert_array_equal(out[30]["p_alive"].to_numpy(), out[273]["p_alive"].to_numpy())


def _boundary_files(tmp_path, kind, n=2000, seed=5):
    """users/events whose BG/NBD summary has no churn and/or one shared rate (0.05 per day), whole days:
    the first active day T days before as_of, the last t_x days after it, x - 1 distinct days between."""

    x, tx, tt = boundary_world(kind, n=n, seed=seed)
    # every activity inside the 730-day model window (the first one is up to T + 1 days back)
    tt = np.minimum(tt, 729.0)
    tx = np.minimum(tx, tt)
    x = np.minimum(x, tx)
    as_of = parse_as_of("2026-11-01")
    rng = np.random.default_rng(seed)
    uid, day = [], []
    for u in range(n):
        k = int(x[u])
        mid = rng.choice(np.arange(1, int(tx[u])), size=k - 1, replace=False) if k > 1 else np.empty(0, int)
        after = np.concatenate([[0], mid, [tx[u]] if k > 0 else []]).astype(int)
        uid.append(np.full(len(after), u))
        day.append(int(tt[u]) + 1 - after)  # days before as_of (the last one at least 1)
    uid, day = np.concatenate(uid), np.concatenate(day)
    ts = as_of - day * DAY + 3600 * rng.integers(0, 23, len(day))
    feather.write_feather(pa.table({"user_id": np.arange(n), "timezone": pa.array(["Europe/Paris"] * n)}),
                          tmp_path / "users.arrow")
    feather.write_feather(pa.table({"user_id": uid, "ts": pa.array(ts, pa.timestamp("s", tz="UTC")),
                                    "event": pa.array(["session"] * len(uid))}), tmp_path / "events.arrow")
    return tmp_path / "users.arrow", tmp_path / "events.arrow"


@pytest.mark.parametrize("kind,word", [("no churn", "no churn"), ("shared rate", "same rate"),
                                       ("no churn, shared rate", "no churn")])
def test_boundary_populations_score_everyone_and_warn(tmp_path, capsys, kind, word):
    # given a population whose BG/NBD maximum-likelihood estimate is on the boundary
    users, events = _boundary_files(tmp_path, kind)
    out = tmp_path / "scores.arrow"
    # when scored from the command line / then exit 0, a warning on stdout and in the metadata
    assert main(["score", str(users), str(events), "--as-of", "2026-11-01", "-o", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "warning: BG/NBD" in printed and word in printed
    s = feather.read_table(out)
    meta = summary_of(s)
    assert meta["warnings"] and meta["model"]["boundary"]
    # and every user has finite scores
    for col in ("p_alive", "lapse_risk", "expected_active_days_30d"):
        v = s[col].to_numpy()
        assert np.all(np.isfinite(v)) and len(v) == 2000, col
    assert np.all((s["lapse_risk"].to_numpy() >= 0) & (s["lapse_risk"].to_numpy() <= 1))
    if "no churn" in kind:
        rep = s["frequency"].to_numpy() > 0
        assert s["p_alive"].to_numpy()[rep].min() > 0.99


def test_horizon_and_penalizer_are_checked(tmp_path, capsys):
    users, events = _boundary_files(tmp_path, "no churn", n=200)
    args = ["score", str(users), str(events), "--as-of", "2026-11-01", "-o", str(tmp_path / "s.arrow"),
            "--no-progress"]
    assert main([*args, "--horizon", "0"]) == 2
    assert "--horizon" in capsys.readouterr().err
    assert main([*args, "--penalizer", "-1"]) == 2
    assert "--penalizer" in capsys.readouterr().err
    assert not (tmp_path / "s.arrow").exists()


@given(st.lists(st.tuples(st.integers(0, 40), st.floats(0, 400), st.floats(0, 800), st.floats(0, 900)),
                min_size=1, max_size=40),
       st.sampled_from([7.0, 30.0, 90.5]))
def test_lapse_risk_alone_is_the_third_user_score(rows, horizon):
    """Given users with and without repeat activity, lapse_risk alone equals (bit for bit) the
    lapse_risk that user_scores computes beside p_alive and the expected days."""
    from engine.scoring import lapse

    x = np.array([r[0] for r in rows], np.float64)
    t_x = np.array([min(r[1], r[2]) for r in rows]) * (x > 0)
    T = np.maximum(np.array([r[2] for r in rows]), t_x)
    T0 = np.array([r[3] for r in rows])
    params = {"r": 0.48, "alpha": 4.4, "a": 0.93, "b": 9.7}
    want = lapse.user_scores(params, x, t_x, T, x > 0, T0, horizon)[2]
    got = lapse.lapse_risk(params, x, t_x, T, x > 0, T0, horizon)
    assert np.array_equal(got, want)


@given(st.lists(st.tuples(st.integers(1, 60), st.floats(0, 1), st.floats(0.5, 700)), min_size=1, max_size=8),
       st.sampled_from([(0.48, 4.4, 0.93, 9.7), (2.5, 40.0, 1.6, 3.0)]), st.sampled_from([0.0, 30.0, 91.5]))
def test_forms_match_the_textbook_formulas(rows, params, horizon):
    """Property: the one-pass P(alive), E[X(30 days)] and P(none in H days) equal the 40-digit
    formulas (tests/naive_bgnbd.py) to 1e-9, and bit for bit the model's three separate kernels."""
    from engine.scoring import lapse
    from engine.scoring.bgnbd import BGNBD
    from tests import naive

    x = np.array([float(r[0]) for r in rows])
    T = np.array([r[2] for r in rows])
    t_x = np.array([r[1] for r in rows]) * T
    r, alpha, a, b = params
    got = lapse._forms(30.0, horizon, x, t_x, T, r, alpha, a, b, True)
    for g, w in zip(got, naive.lapse_forms(30.0, horizon, x, t_x, T, r, alpha, a, b)):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)
    m = BGNBD()
    m.params_ = {"r": r, "alpha": alpha, "a": a, "b": b}
    for g, w in zip(got, (m.p_alive(x, t_x, T), m.expected(30.0, x, t_x, T), m.p_none(horizon, x, t_x, T))):
        assert np.array_equal(g, w)
    assert not lapse._forms(30.0, horizon, x, t_x, T, r, alpha, a, b, False)[1].any()  # E[X] skipped
