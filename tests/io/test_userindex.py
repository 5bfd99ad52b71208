"""User id -> dense index: the direct table and the hash map agree with a dict, empty and single ids."""

from __future__ import annotations

import numpy as np
import numpy.testing as npt
from hypothesis import given
from hypothesis import strategies as st

from engine.io.readers import UserIndex
from tests import naive


def _ids_strategy():
    return st.one_of(
        st.lists(st.integers(-(2**63), 2**63 - 1), max_size=60),  # sparse: hash map
        st.lists(st.integers(-5, 200), max_size=60),  # dense: direct table
    )


@given(ids=_ids_strategy(), extra=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=20))
def test_user_index_agrees_with_naive(ids, extra):
    """lookup returns the first position of every id and -1 for anything else; repeats marks the later copies."""
    index = UserIndex(np.array(ids, dtype=np.int64))
    queries = np.array(ids + extra + [0, -1, 2**63 - 1, -(2**63)], dtype=np.int64)
    npt.assert_array_equal(index.lookup(queries), naive.user_index_lookup(ids, queries))
    npt.assert_array_equal(index.repeats, naive.repeated_ids(ids))


def test_user_index_empty_and_single():
    empty = UserIndex(np.array([], dtype=np.int64))
    npt.assert_array_equal(empty.lookup(np.array([0, 5])), [-1, -1])
    one = UserIndex(np.array([2**62]))
    assert one.kind == "table"
    npt.assert_array_equal(one.lookup(np.array([2**62, 0, -(2**63)])), [0, -1, -1])
    sparse = UserIndex(np.array([10, 2**40, -(2**50)]))
    assert sparse.kind == "hash"
    npt.assert_array_equal(sparse.lookup(np.array([[2**40], [-(2**50)]])), [[1], [2]])
