"""BG/NBD fit and prediction as a pytest-benchmark suite (timings only; no speed is asserted).

    pytest benchmarks/bench_bgnbd.py -o python_files='bench_*.py' --benchmark-enable

On ``WINBACK_BENCH_USERS`` users (default 100k) drawn from BG/NBD itself in whole days
(see ``compare_bgnbd.synthesize``):

- ``compress``: users -> unique (x, t_x, T) rows with counts;
- ``fit``: :meth:`engine.bgnbd.BGNBD.fit` end to end (checks, compression, trust-region Newton);
- ``p_alive`` and ``expected_30d``: the numba kernels over every user;
- ``expected_near_z1``: eq. 10 where z = t/(alpha+T+t) is close to 1 (alpha and T small),
  the region where the transformed 2F1 series needs the most terms.

For the ratio against lifetimes' BetaGeoFitter, run ``compare_bgnbd.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_bgnbd import TRUTH, synthesize  # noqa: E402

from engine.scoring.bgnbd import BGNBD, compress  # noqa: E402

USERS = int(os.environ.get("WINBACK_BENCH_USERS", "100000"))


@pytest.fixture(scope="module")
def users():
    return synthesize(USERS, **TRUTH, seed=1)


@pytest.fixture(scope="module")
def model(users):
    return BGNBD().fit(*users)


def test_compress(benchmark, users):
    benchmark(compress, *users)


def test_fit(benchmark, users):
    m = benchmark(lambda: BGNBD().fit(*users))
    assert m.diagnostics_["converged"]


def test_p_alive(benchmark, users, model):
    benchmark(model.p_alive, *users)


def test_expected_30d(benchmark, users, model):
    benchmark(model.expected, 30.0, *users)


def test_expected_near_z1(benchmark, users):
    x, t_x, T = (v[:10_000] for v in users)
    m = BGNBD()
    m.params_ = dict(r=0.11, alpha=0.05, a=0.31, b=0.5)
    out = benchmark(m.expected, 30.0, x, t_x * 1e-3, T * 1e-3)
    assert np.all(np.isfinite(out))
