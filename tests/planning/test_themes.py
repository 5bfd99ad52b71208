"""Content: affinity kernel and theme/picks kernel against the slow references in tests/naive.py."""

from __future__ import annotations

import types

import numpy as np
import numpy.testing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.schema import NEVER
from engine.scoring import affinity
from engine.planning import themes
from engine.io.readers import NO_ITEM
from engine.io.items import NO_EXPIRY
from engine.io.userindex import UserIndex
from tests import naive
from tests.strategies import AS_OF, event_worlds

DAY = 86400


@st.composite
def catalogues(draw, max_items=24, max_cat=4):
    """(item_cats, added, expires, editorial, popularity, trend) around AS_OF, with ties."""
    n_cat = draw(st.integers(1, max_cat))
    m = draw(st.integers(0, max_items))
    cats = [sorted(set(draw(st.lists(st.integers(0, n_cat - 1), min_size=1, max_size=2)))) for _ in range(m)]
    added = [AS_OF + draw(st.integers(-200, 10)) * DAY for _ in range(m)]
    expires = [draw(st.one_of(st.just(NO_EXPIRY), st.integers(-30, 40).map(lambda d: AS_OF + d * DAY)))
               for _ in range(m)]
    expires = [max(e, a) for e, a in zip(expires, added)]
    editorial = [draw(st.booleans()) for _ in range(m)]
    popularity = [float(draw(st.integers(0, 5))) for _ in range(m)]
    trend = [float(draw(st.integers(-2, 3))) for _ in range(m)]
    return n_cat, cats, added, expires, editorial, popularity, trend




class _Len(types.SimpleNamespace):
    def __len__(self):
        return len(self.added)


def _items(n_cat, cats, added, expires, editorial):
    ptr = np.zeros(len(cats) + 1, np.int64)
    np.cumsum([len(c) for c in cats], out=ptr[1:])
    flat = np.array([c for cs in cats for c in cs], np.int32)
    return _Len(categories=tuple(f"c{i}" for i in range(n_cat)), cat_ptr=ptr, cat_idx=flat,
                added=np.array(added, np.int64), expires=np.array(expires, np.int64),
                editorial=np.array(editorial, bool))


@given(event_worlds(max_users=5, max_events=80), catalogues(), st.data())
def test_affinity_matches_naive_for_any_split(world, cat, data):
    """Property: affinity, mass, item popularity/recent/prior and consumed sets equal the per-event reference."""
    n_users, uidx, ts, ev, ch, val = world
    n_cat, cats, added, expires, editorial, _, _ = cat
    m = len(cats)
    rows = np.array([data.draw(st.integers(-2, m - 1)) for _ in range(len(uidx))], np.int64)
    items = _items(n_cat, cats, added, expires, editorial)
    # sparse, unordered ids so the hash layout of the index is used; -2 = an id not in the catalogue
    id_of = np.array([10**12 + 7919 * (m - i) for i in range(m)], np.int64)
    items.index = UserIndex(id_of)
    ids = np.where(rows >= 0, id_of[np.maximum(rows, 0)] if m else 0, np.where(rows == -1, NO_ITEM, 5))
    unknown = int(((rows == -2) & (affinity.EVENT_WEIGHT[ev] > 0)).sum())
    rows = np.where(rows == -2, -1, rows)
    acc = affinity.ItemAccumulators.zeros(n_users, m, n_cat)
    cut = data.draw(st.integers(0, len(uidx)))
    for lo, hi in ((0, cut), (cut, len(uidx))):
        b = types.SimpleNamespace(uidx=uidx[lo:hi], ts=ts[lo:hi], event=ev[lo:hi], item=ids[lo:hi])
        affinity.accumulate_items(acc, b, items, as_of=AS_OF, half_life_days=90.0)
    assert acc.unknown_item_events == unknown
    ref = naive.item_affinity(n_users, n_cat, uidx.tolist(), ts.tolist(), ev.tolist(), rows.tolist(), cats, AS_OF,
                              90.0, affinity.EVENT_WEIGHT.tolist())
    aff, mass, pop, recent, prior, consumed = ref
    npt.assert_allclose(acc.aff, np.array(aff, np.float64).reshape(n_users, n_cat), rtol=1e-5, atol=1e-6)
    npt.assert_allclose(acc.mass, mass, rtol=1e-9)
    npt.assert_allclose(acc.popularity, pop, rtol=1e-9)
    npt.assert_array_equal(acc.recent, recent)
    npt.assert_array_equal(acc.prior, prior)
    ptr, got = affinity.consumed_csr(acc.pairs, n_users, m)
    assert [got[ptr[u]:ptr[u + 1]].tolist() for u in range(n_users)] == [sorted(s) for s in consumed]


@settings(max_examples=300)  # many small branches (pins, weights, boundaries): more examples than the default
@given(catalogues(), st.data())
def test_picks_match_naive_and_never_pick_consumed_or_expired(cat, data):
    """Property: theme and items equal the reference; no consumed, expired or repeated item; pins hold."""
    n_cat, cats, added, expires, editorial, popularity, trend = cat
    m = len(cats)
    n = data.draw(st.integers(1, 6))
    grid = st.sampled_from([0.0, 0.0, 0.1, 0.2, 0.5, 1.0])
    shares = np.array([[data.draw(grid) for _ in range(n_cat)] for _ in range(n)], np.float32)
    conf = [data.draw(st.sampled_from([0.0, 0.5, 2.0])) for _ in range(n)]
    last = [data.draw(st.one_of(st.none(), st.integers(-300, 0).map(lambda d: AS_OF + d * DAY))) for _ in range(n)]
    consumed = [set(data.draw(st.lists(st.integers(0, m - 1), max_size=6))) if m else set() for _ in range(n)]
    send_at = [AS_OF + data.draw(st.integers(0, 10)) * DAY + 3600 for _ in range(n)]
    active = [data.draw(st.booleans()) or u == 0 for u in range(n)]
    k = data.draw(st.integers(0, 4))
    weights = [data.draw(st.sampled_from([0.0, 0.5, 1.0, 2.0])) for _ in range(5)]
    pin = data.draw(st.integers(-1, 4)) if data.draw(st.booleans()) else -1
    prev_items = [sorted(set(data.draw(st.lists(st.integers(0, m - 1), max_size=3)))) if m else [] for _ in range(n)]
    prev_th = [set(data.draw(st.lists(st.integers(0, 4), max_size=2))) for _ in range(n)]
    cfg = themes.ContentSettings(new_days=60, leaving_days=14, min_confidence=1.0, broaden_share=0.15,
                                 pool=data.draw(st.integers(1, 6)), repeat_penalty=0.5)
    start, end = AS_OF, AS_OF + 10 * DAY
    items = _items(n_cat, cats, added, expires, editorial)
    pop_a, trend_a = np.array(popularity), np.array(trend)
    catalogue = themes.prepare(items, pop_a, trend_a, start, end, cfg)
    cptr = np.zeros(n + 1, np.int64)
    np.cumsum([len(s) for s in consumed], out=cptr[1:])
    crows = np.array([i for s in consumed for i in sorted(s)], np.int64)
    width = max([len(p) for p in prev_items] + [0])
    prev = np.full((n, width), -1, np.int64)
    for u, p in enumerate(prev_items):
        prev[u, :len(p)] = p
    mask = np.array([sum(1 << t for t in s) for s in prev_th], np.int64)
    draw = [data.draw(st.sampled_from([-1.0, 0.0, 0.3, 0.5, 0.99])) for _ in range(n)]
    la = np.array([NEVER if v is None else v for v in last], np.int64)
    step = themes.StepContent(k=k, weights=tuple(weights), pin=pin)
    got_theme, got_items = themes.pick(shares, np.array(conf), la, cptr, crows, np.array(send_at, np.int64),
                                       np.array(active), catalogue, step, cfg, prev, mask, np.array(draw))
    want_theme, want_items = naive.theme_picks(
        shares.tolist(), conf, last, consumed, send_at, active, cats, added, expires, editorial, popularity, trend,
        start, end, k, weights, pin, [set(p) for p in prev_items], prev_th, cfg.new_days, cfg.leaving_days,
        cfg.min_confidence, cfg.broaden_share, cfg.pool, cfg.repeat_penalty, themes.PRIOR.tolist(), draw)
    assert got_theme.tolist() == want_theme
    for u in range(n):
        row = [i for i in got_items[u].tolist() if i >= 0]
        assert row == want_items[u]
        assert not set(row) & consumed[u]
        assert all(added[i] <= send_at[u] < expires[i] for i in row)
        assert not set(row) & set(prev_items[u])
        if pin >= 0 and active[u] and k:
            assert got_theme[u] == pin
