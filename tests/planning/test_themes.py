"""Content: the theme/picks kernel against the slow reference in tests/naive.py (the affinity kernel:
tests/scoring/test_affinity.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.schema import NEVER
from engine.planning import themes
from tests import naive
from tests.helpers import catalogue_items
from tests.strategies import AS_OF, catalogues

DAY = 86400


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
    items = catalogue_items(n_cat, cats, added, expires, editorial)
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
