"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

AS_OF = 1_793_491_200  # 2026-11-01T00:00:00Z


@st.composite
def event_worlds(draw, max_users=6, max_events=60):
    """Small random event sets: (n_users, uidx, ts, ev, ch, val) with ts before AS_OF."""
    n_users = draw(st.integers(1, max_users))
    n = draw(st.integers(0, max_events))
    uidx = np.array(draw(st.lists(st.integers(0, n_users - 1), min_size=n, max_size=n)), np.int64)
    # a few distinct instants so ties and same-day events happen
    ts = AS_OF - np.array(draw(st.lists(st.integers(0, 400 * 86400), min_size=n, max_size=n)), np.int64)
    ev = np.array(draw(st.lists(st.integers(0, 7), min_size=n, max_size=n)), np.int8)
    ch = np.array(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)), np.int8)
    ch = np.where(np.isin(ev, [0, 1]), -1, ch).astype(np.int8)
    val = np.array(draw(st.lists(st.one_of(st.floats(0, 500, allow_nan=False), st.just(float("nan"))),
                                 min_size=n, max_size=n)), np.float64)
    return n_users, uidx, ts, ev, ch, val
