"""Scoring hot paths as a pytest-benchmark suite (timings only; no speed is asserted).

    pytest benchmarks/bench_score.py -o python_files='bench_*.py' --benchmark-enable

Benchmarks, on one generated world of ``WINBACK_BENCH_USERS`` users (default 100k,
about 6M events):

- ``fused_pass``: the numba kernel alone over the events already decoded to
  :class:`engine.io.EventBatch` es (no IO): the cost of the accumulators;
- ``aggregation``: ``load_users`` + ``iter_events`` + the kernel, what ``winback score``
  reports as its aggregation time;
- ``score``: ``engine.score.score`` end to end (aggregation, BG/NBD fit, send time,
  fatigue and labels);
- ``best_times`` and ``next_local_hour``: send-time smoothing and the DST-exact
  per-zone table.

For side-by-side ratios against polars and duckdb, see ``compare_score.py``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from engine.scoring import kernels
from engine.scoring import sendtime
from engine.tz import next_local_hour, offset_table
from engine.synth.generator import generate
from engine.io.readers import iter_events, load_users
from engine.schema import DEFAULT_ACTIVITY, EVENT_CODE, EVENTS
from engine.scoring.pipeline import score

AS_OF = "2026-11-01T00:00:00Z"
AS_OF_S = 1_793_491_200
IS_ACT = np.zeros(len(EVENTS) + 1, np.bool_)
for _name in DEFAULT_ACTIVITY:
    IS_ACT[EVENT_CODE[_name]] = True


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("score-world")
    generate(int(os.environ.get("WINBACK_BENCH_USERS", "100000")), seed=7, out_dir=d, as_of=AS_OF)
    return d


@pytest.fixture(scope="module")
def prepared(world):
    users = load_users(world / "users.arrow")
    tz = users.table["timezone"].fill_null("UTC").combine_chunks().dictionary_encode()
    zones = tz.dictionary.to_pylist()
    user_tz = tz.indices.to_numpy(zero_copy_only=False).astype(np.int32)
    off, t0 = offset_table(zones, AS_OF_S - 730 * 86400, AS_OF_S)
    batches = list(iter_events(world / "events.arrow", users, as_of=AS_OF_S))
    return users, zones, user_tz, off, t0, batches


def _fold(users, user_tz, off, t0, batches):
    acc = kernels.Accumulators.zeros(len(users.table), 731)
    day0 = AS_OF_S // 86400 - acc.day_bits.shape[1] * 64 + 1
    for b in batches:
        kernels.accumulate(acc, b, user_tz=user_tz, off_table=off, off_t0=t0, as_of=AS_OF_S,
                           is_activity=IS_ACT, day0=day0, window_days=730, half_life_days=60.0)
    return acc


def test_fused_pass(benchmark, prepared):
    users, _, user_tz, off, t0, batches = prepared
    acc = benchmark.pedantic(_fold, args=(users, user_tz, off, t0, batches), rounds=3, iterations=1,
                             warmup_rounds=1)
    assert kernels.frequency_from_bits(acc.day_bits).sum() > 0


def test_aggregation(benchmark, world, prepared):
    _, _, user_tz, off, t0, _ = prepared

    def run():
        users = load_users(world / "users.arrow")
        return _fold(users, user_tz, off, t0, iter_events(world / "events.arrow", users, as_of=AS_OF_S))

    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)


def test_score(benchmark, world):
    out = benchmark.pedantic(score, args=(world / "users.arrow", world / "events.arrow"),
                             kwargs={"as_of": AS_OF}, rounds=2, iterations=1, warmup_rounds=1)
    assert out.num_rows > 0


def test_best_times(benchmark, prepared):
    users, zones, user_tz, off, t0, batches = prepared
    acc = _fold(users, user_tz, off, t0, batches)
    benchmark(sendtime.best_times, acc.hour_hist, acc.wd_hist, user_tz, len(zones))


def test_next_local_hour(benchmark, prepared):
    zones = prepared[1]
    benchmark(next_local_hour, zones, AS_OF_S)
