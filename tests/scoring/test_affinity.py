"""Category affinity and item popularity from item events: the numba pass against the per-event reference."""

from __future__ import annotations

import types

import numpy as np
import numpy.testing as npt
from hypothesis import given
from hypothesis import strategies as st

from engine.io.readers import NO_ITEM
from engine.io.userindex import UserIndex
from engine.scoring import affinity
from tests import naive
from tests.helpers import catalogue_items
from tests.strategies import AS_OF, catalogues, event_worlds


@given(event_worlds(max_users=5, max_events=80), catalogues(), st.data())
def test_affinity_matches_naive_for_any_split(world, cat, data):
    """Property: affinity, mass, item popularity/recent/prior and consumed sets equal the per-event reference."""
    n_users, uidx, ts, ev, ch, val = world
    n_cat, cats, added, expires, editorial, _, _ = cat
    m = len(cats)
    rows = np.array([data.draw(st.integers(-2, m - 1)) for _ in range(len(uidx))], np.int64)
    items = catalogue_items(n_cat, cats, added, expires, editorial)
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
