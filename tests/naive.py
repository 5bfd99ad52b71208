"""Slow, obvious reference implementations of every numba kernel, for the tests to compare against."""

from __future__ import annotations

import numpy as np


def user_index_lookup(ids, queries) -> np.ndarray:
    """engine.userindex.UserIndex.lookup: position of the first row holding each id, else -1."""
    first: dict[int, int] = {}
    for i, uid in enumerate(ids):
        first.setdefault(int(uid), i)
    return np.array([first.get(int(q), -1) for q in queries], dtype=np.int64)
