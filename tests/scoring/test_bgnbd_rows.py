"""BG/NBD input rows: checked columns, and the compression to unique (x, t_x, T) rows with counts."""

from __future__ import annotations

import numpy as np
import numpy.testing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import ModelError
from engine.scoring.bgnbd_rows import as_columns, compress, same_length
from engine.scoring.bgnbd_rows import compress_for_fit as _compress_for_fit
from tests import naive_bgnbd as naive


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)), max_size=40),
       st.sampled_from([1.0, 0.5, 2.0**21]))
def test_compress_matches_a_dict_of_counts(rows, unit):
    """Property: compress gives each distinct (x, t_x, T) once, with its count, in sorted order, and an
    exact inverse, on whole numbers (int64 key) and on halves or huge values (lexsort)."""
    x, tx, tt = (np.array([r[i] for r in rows], float) * unit for i in range(3))
    ux, ut, uT, w, inv = compress(x, tx, tt)
    assert dict(zip(zip(ux, ut, uT), w)) == naive.compress(x, tx, tt)
    assert list(zip(ux, ut, uT)) == sorted(naive.compress(x, tx, tt))
    # and the fit's variant (sorted int64 keys, no inverse) gives the same rows and counts
    for got, want in zip(_compress_for_fit(x, tx, tt, None), (ux, ut, uT, w)):
        npt.assert_array_equal(got, want)
    npt.assert_array_equal(ux[inv], x)
    npt.assert_array_equal(ut[inv], tx)
    npt.assert_array_equal(uT[inv], tt)


def test_weights_sum_per_unique_row_and_empty_input_is_empty():
    ux, ut, uT, w, inv = compress(np.array([2.0, 1.0, 2.0]), np.array([3.0, 1.0, 3.0]), np.array([9.0, 5.0, 9.0]),
                                  np.array([0.5, 1.0, 2.0]))
    assert (ux.tolist(), ut.tolist(), uT.tolist(), w.tolist(), inv.tolist()) == (
        [1.0, 2.0], [1.0, 3.0], [5.0, 9.0], [1.0, 2.5], [1, 0, 1])
    assert [len(a) for a in compress(np.array([]), np.array([]), np.array([]))] == [0] * 5


def test_as_columns_names_bad_rows_and_lengths():
    x, tx, tt, w = as_columns([1, 2], [1.0, 2.0], [3.0, 4.0])
    assert w is None and x.dtype == np.float64
    with pytest.raises(ModelError, match=r"1 row\(s\) .*row 1: frequency=2, recency=5, T=4") as err:
        as_columns([1, 2], [1.0, 5.0], [3.0, 4.0])
    assert err.value.diagnostics == {"bad_rows": 1, "users": 2}
    with pytest.raises(ModelError, match=r"frequency, recency, T, weights must have the same length, got \[2, 2, 2, 1\]"):
        as_columns([1, 2], [1.0, 2.0], [3.0, 4.0], weights=[1.0])
    with pytest.raises(ModelError, match=r"1 row\(s\)"):
        as_columns([1], [1.0], [3.0], weights=[-1.0])
    with pytest.raises(ModelError, match=r"one value per user each, got lengths \[2, 1, 2\]"):
        same_length([1, 2], [1], [3, 4])
