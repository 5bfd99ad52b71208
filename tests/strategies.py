"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from engine.io.items import NO_EXPIRY

AS_OF = 1_793_491_200  # 2026-11-01T00:00:00Z


@st.composite
def event_worlds(draw, max_users=6, max_events=60):
    """Small random event sets: (n_users, uidx, ts, ev, ch, val) with ts before AS_OF."""
    n_users = draw(st.integers(1, max_users))
    n = draw(st.integers(0, max_events))
    uidx = np.array(draw(st.lists(st.integers(0, n_users - 1), min_size=n, max_size=n)), np.int64)
    # a few distinct instants so ties and same-day events happen
    # ... and some at midnight UTC exactly (a date-only export: weekday, no hour)
    midnight = st.integers(1, 400).map(lambda d: AS_OF % 86400 + d * 86400)
    ts = AS_OF - np.array(draw(st.lists(st.one_of(st.integers(0, 400 * 86400), midnight), min_size=n, max_size=n)),
                          np.int64)
    ev = np.array(draw(st.lists(st.integers(0, 7), min_size=n, max_size=n)), np.int8)
    ch = np.array(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)), np.int8)
    ch = np.where(np.isin(ev, [0, 1]), -1, ch).astype(np.int8)
    val = np.array(draw(st.lists(st.one_of(st.floats(0, 500, allow_nan=False), st.just(float("nan"))),
                                 min_size=n, max_size=n)), np.float64)
    return n_users, uidx, ts, ev, ch, val


#: short UTF-8 texts (no surrogates): template values and names
utf8_names = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
#: literal template text that holds no ``{{ }}`` markup
template_literals = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=10).filter(
    lambda s: "{{" not in s and "}}" not in s and not s.endswith("{") and not s.startswith("}"))
#: (successes, trials) with 0 <= successes <= trials, trials in 1..5000
successes_of_trials = st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))


def boundary_world(kind, n=5000, seed=3):
    """Whole-day summaries from a population with no churn and/or one shared rate (0.05 per day)."""
    rng = np.random.default_rng(seed)
    TT = rng.integers(7, 731, n).astype(float)
    lam = np.full(n, 0.05) if "rate" in kind else rng.gamma(0.5, 0.1, n)
    n_tx = rng.poisson(lam * TT)
    x = n_tx if "churn" in kind else np.minimum(n_tx, rng.geometric(rng.beta(0.7, 2.5, n)))
    tx = np.where(x > 0, TT * rng.beta(np.maximum(x, 1), np.maximum(n_tx - x + 1, 1)), 0.0)
    tx = np.minimum(np.ceil(tx), TT)
    return np.minimum(x, tx).astype(float), tx, TT


#: campaign policies for the planner's property tests
policies = st.fixed_dictionaries({
    "max_messages": st.integers(1, 3),
    "window_days": st.sampled_from([7, 30]),
    "min_gap_hours": st.sampled_from([0, 8, 16, 30]),
    "quiet_hours": st.sampled_from([["21:00", "08:00"], ["12:00", "14:00"], []]),
    "channel_caps": st.sampled_from([{}, {"sms": 1}, {"email": 1, "push": 1}]),
    "capacity_per_hour": st.sampled_from([{}, {"email": 3, "push": 2, "sms": 1}, {"email": 1}]),
})


@st.composite
def catalogues(draw, max_items=24, max_cat=4):
    """(item_cats, added, expires, editorial, popularity, trend) around AS_OF, with ties."""
    n_cat = draw(st.integers(1, max_cat))
    m = draw(st.integers(0, max_items))
    cats = [sorted(set(draw(st.lists(st.integers(0, n_cat - 1), min_size=1, max_size=2)))) for _ in range(m)]
    added = [AS_OF + draw(st.integers(-200, 10)) * 86400 for _ in range(m)]
    expires = [draw(st.one_of(st.just(NO_EXPIRY), st.integers(-30, 40).map(lambda d: AS_OF + d * 86400)))
               for _ in range(m)]
    expires = [max(e, a) for e, a in zip(expires, added)]
    editorial = [draw(st.booleans()) for _ in range(m)]
    popularity = [float(draw(st.integers(0, 5))) for _ in range(m)]
    trend = [float(draw(st.integers(-2, 3))) for _ in range(m)]
    return n_cat, cats, added, expires, editorial, popularity, trend


@st.composite
def day_bitsets(draw, max_users=8, max_words=3):
    """Active-day bitsets ([n, W] uint64) with a cut ``end`` and a ``horizon`` in bits."""
    n = draw(st.integers(1, max_users))
    w = draw(st.integers(1, max_words))
    words = draw(st.lists(st.one_of(st.just(0), st.integers(0, 2 ** 64 - 1), st.sampled_from([1, 2 ** 63])),
                          min_size=n * w, max_size=n * w))
    bits = np.array(words, np.uint64).reshape(n, w)
    end = draw(st.integers(0, w * 64))
    horizon = draw(st.integers(0, w * 64))
    return bits, end, horizon


@st.composite
def logistic_rows(draw, max_rows=30, max_cols=5):
    """(Z [n, k] float64, w >= 0 [n], t in {0, 1} [n], beta [k]) for the logistic Newton terms."""
    n = draw(st.integers(0, max_rows))
    k = draw(st.integers(1, max_cols))
    val = st.floats(-4, 4, allow_nan=False, allow_infinity=False)
    Z = np.array(draw(st.lists(val, min_size=n * k, max_size=n * k)), np.float64).reshape(n, k)
    w = np.array(draw(st.lists(st.one_of(st.just(0.0), st.floats(0, 50)), min_size=n, max_size=n)), np.float64)
    t = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), np.float64)
    beta = np.array(draw(st.lists(val, min_size=k, max_size=k)), np.float64)
    return Z, w, t, beta
