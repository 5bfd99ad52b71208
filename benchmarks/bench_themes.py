"""The content kernels at CI-friendly sizes: the affinity pass and the theme/picks kernel.

    pytest benchmarks/bench_themes.py -o python_files='bench_*.py' --benchmark-enable

``WINBACK_BENCH_USERS`` (default 100k) users, 10 item events each, 20k items in 12
categories; picks for every user, K = 3.  The side-by-side measure (scoring with and
without items on the same world) is ``benchmarks/compare_items.py``.
"""

from __future__ import annotations

import os
import types

import numpy as np
import pytest

from engine.scoring import affinity
from engine.planning import themes
from engine.io.items import NO_EXPIRY
from engine.io.userindex import UserIndex

N = int(os.environ.get("WINBACK_BENCH_USERS", "100000"))
M, C, AS_OF = 20_000, 12, 1_793_491_200


class _Items(types.SimpleNamespace):
    def __len__(self):
        return len(self.added)


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(0)
    n_cat = rng.integers(1, 3, M)
    ptr = np.zeros(M + 1, np.int64)
    np.cumsum(n_cat, out=ptr[1:])
    cats = rng.integers(0, C, int(ptr[-1])).astype(np.int32)
    for i in range(M):  # distinct and sorted per item
        seg = np.unique(cats[ptr[i]:ptr[i + 1]])
        cats[ptr[i]:ptr[i] + len(seg)] = seg
        cats[ptr[i] + len(seg):ptr[i + 1]] = seg[-1]
    ids = 10**9 + rng.permutation(M).astype(np.int64) * 13
    items = _Items(categories=tuple(f"c{i}" for i in range(C)), cat_ptr=ptr, cat_idx=cats,
                   added=AS_OF - rng.integers(0, 400, M) * 86400, editorial=rng.random(M) < 0.05,
                   expires=np.where(rng.random(M) < 0.1, AS_OF + rng.integers(1, 30, M) * 86400, NO_EXPIRY),
                   index=UserIndex(ids))
    n_ev = 10 * N
    batch = types.SimpleNamespace(uidx=rng.integers(0, N, n_ev), ts=AS_OF - rng.integers(0, 365 * 86400, n_ev),
                                  event=rng.choice(np.array([0, 1, 4], np.int8), n_ev),
                                  item=ids[np.minimum(rng.zipf(1.3, n_ev) - 1, M - 1)])
    return items, batch


def test_affinity_pass(benchmark, world):
    items, batch = world

    def run():
        acc = affinity.ItemAccumulators.zeros(N, M, C)
        affinity.accumulate_items(acc, batch, items, as_of=AS_OF, half_life_days=90.0)
        return affinity.consumed_csr(acc.pairs, N, M)

    benchmark(run)


def test_theme_picks(benchmark, world):
    items, batch = world
    acc = affinity.ItemAccumulators.zeros(N, M, C)
    affinity.accumulate_items(acc, batch, items, as_of=AS_OF, half_life_days=90.0)
    ptr, rows = affinity.consumed_csr(acc.pairs, N, M)
    shares = acc.aff / np.maximum(acc.aff.sum(axis=1, keepdims=True), 1e-9)
    cfg = themes.ContentSettings()
    cat = themes.prepare(items, acc.popularity, acc.recent - acc.prior / 4.0, AS_OF, AS_OF + 10 * 86400, cfg)
    send = np.full(N, AS_OF + 3600)
    benchmark(themes.pick, shares, acc.mass, np.full(N, AS_OF - 30 * 86400), ptr, rows, send, np.ones(N, bool),
              cat, themes.StepContent(k=3), cfg)
