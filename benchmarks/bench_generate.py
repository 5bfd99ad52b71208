"""The world generator as a pytest-benchmark suite (timings only; no speed is asserted).

    pytest benchmarks/bench_generate.py -o python_files='bench_*.py' --benchmark-enable

Benchmarks, for ``WINBACK_BENCH_USERS`` users (default 50k, about 3M events):

- ``generate_arrow`` / ``generate_parquet``: :func:`engine.generate.generate` end to
  end, files written (Arrow IPC uncompressed vs Parquet zstd);
- ``one_chunk``: users, activity and campaign history of one 50k-user chunk in memory
  (no IO): the vectorised model alone;
- ``offset_table``: the per-timezone UTC offsets and DST transitions, built once per run.

The 1M-user figure (time and peak RSS) comes from
``/usr/bin/time -v winback generate --users 1000000 -o DIR --no-progress``.
"""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest

from engine.tz import Offsets
from engine.schema import SECONDS_PER_DAY
from engine.tz import parse_as_of

gen = importlib.import_module("engine.synth.generator")  # the module: engine.generate is also the function
N_USERS = int(os.environ.get("WINBACK_BENCH_USERS", "50000"))
AS_OF = parse_as_of(gen.DEFAULT_AS_OF)
ZONES = [z for z, _ in gen.TIMEZONES]


def _offsets(days: int = 365) -> Offsets:
    day0 = (AS_OF - (days + 800) * SECONDS_PER_DAY) // SECONDS_PER_DAY
    return Offsets(ZONES, day0 * SECONDS_PER_DAY, (day0 + days + 810) * SECONDS_PER_DAY)


@pytest.mark.parametrize("fmt", gen.FORMATS)
def test_generate(benchmark, tmp_path, fmt):
    s = benchmark.pedantic(gen.generate, args=(N_USERS,),
                           kwargs={"seed": 7, "out_dir": tmp_path, "format": fmt}, rounds=2, iterations=1)
    benchmark.extra_info["events"] = s["n_events"]
    assert s["n_users"] == N_USERS


def test_one_chunk(benchmark):
    offsets = _offsets()
    ids = np.arange(min(N_USERS, 50_000), dtype=np.int64) * 37 + 1_000_011

    def chunk():
        rng = np.random.default_rng(7)
        u = gen._users_chunk(rng, ids, len(ZONES), AS_OF, 365)
        act = gen._activity(rng, u, AS_OF, 365, offsets)
        return act, gen._history(rng, u, act, AS_OF, 365, offsets)

    act, hist = benchmark.pedantic(chunk, rounds=3, iterations=1)
    benchmark.extra_info["rows"] = len(act["sess"][0]) + len(act["purchase"][0]) + sum(len(h[0]) for h in hist)


def test_offset_table(benchmark):
    off = benchmark.pedantic(_offsets, rounds=3, iterations=1)
    assert len(off.keys) >= len(ZONES)   # one start per zone, then its DST changes
