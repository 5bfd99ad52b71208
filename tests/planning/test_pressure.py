"""Contact pressure: the most messages in any rolling window, and what the ledger holds per user."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from engine.planning.pressure import NEVER, max_in_windows
from tests import naive


@given(st.lists(st.tuples(st.lists(st.integers(0, 40), max_size=6), st.integers(0, 40)), min_size=1, max_size=8),
       st.integers(1, 15))
def test_max_in_windows_equals_a_sliding_count(rows, window):
    """Property: the most messages in any window holding t equals a brute-force slide."""
    k = max(len(r) for r, _ in rows)
    times = np.full((len(rows), k), NEVER, np.int64)
    for i, (r, _) in enumerate(rows):
        times[i, :len(r)] = r
    t = np.array([ti for _, ti in rows], np.int64)
    assert max_in_windows(times, t, window).tolist() == naive.max_in_windows(times, t, window).tolist()
