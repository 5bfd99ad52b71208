"""IO hot paths: iter_events over a 10M-row events file, and user-id lookup layouts.

As a pytest-benchmark suite::

    pytest benchmarks/bench_io.py -o python_files='bench_*.py' --benchmark-enable

Side by side, printing ratios against baselines measured in the same run::

    python benchmarks/bench_io.py             # 10M events, 1M users, 50M lookups
    python benchmarks/bench_io.py --quick     # 1M events, 100k users, 5M lookups

Baselines: for ``iter_events``, a bare pyarrow scan of the same file that only
touches the columns (the floor any reader pays); for ``UserIndex``, sorted ids +
``np.searchsorted`` (the obvious numpy layout).  ``WINBACK_BENCH_ROWS`` sets the
events file size for the pytest suite.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq

from engine.io.readers import iter_events, load_users
from engine.schema import CHANNELS, EVENTS
from engine.io.userindex import UserIndex

AS_OF = 1_790_000_000


def make_events(path: Path, n_rows: int, n_users: int, *, seed: int = 7, fmt: str = "arrow") -> Path:
    """A realistic events file: dictionary event/channel, timestamp[us, UTC], some values."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, n_users + 1, n_rows).astype(np.int64)
    ts = (AS_OF - rng.integers(0, 365 * 86_400, n_rows)) * 1_000_000
    ev = rng.choice(len(EVENTS), n_rows, p=[0.45, 0.05, 0.2, 0.15, 0.1, 0.02, 0.02, 0.01]).astype(np.int8)
    needs = np.isin(ev, [2, 3, 4, 5, 6, 7])
    ch = np.where(needs, rng.integers(0, len(CHANNELS), n_rows), -1).astype(np.int8)
    value = np.where(ev == 1, rng.gamma(2.0, 20.0, n_rows), np.nan)
    table = pa.table({
        "user_id": ids,
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "event": pa.DictionaryArray.from_arrays(pa.array(ev), pa.array(EVENTS)),
        "channel": pa.DictionaryArray.from_arrays(pa.array(ch, mask=ch < 0), pa.array(CHANNELS)),
        "value": pa.array(value, from_pandas=True),
    })
    if fmt == "parquet":
        pq.write_table(table, path, row_group_size=1 << 20)
    else:
        feather.write_feather(table, path, compression="uncompressed", chunksize=1 << 20)
    return path


def make_users(path: Path, n_users: int, *, seed: int = 7) -> Path:
    """Users with sparse ids, timezones, addresses, consents and signup times."""
    rng = np.random.default_rng(seed)
    zones = np.array(["Europe/Paris", "America/New_York", "Asia/Tokyo", "UTC", "Australia/Sydney"])
    table = pa.table({
        "user_id": rng.permutation(n_users).astype(np.int64) * 7 + 1,
        "timezone": zones[rng.integers(0, len(zones), n_users)],
        "email": pa.array(np.char.add("u", np.arange(n_users).astype(str))),
        "consent_email": rng.random(n_users) < 0.8,
        "signup_at": pa.array((AS_OF - rng.integers(0, 10**8, n_users)) * 1_000_000, pa.timestamp("us", tz="UTC")),
    })
    feather.write_feather(table, path, compression="uncompressed")
    return path


def consume_events(path: Path, index: UserIndex) -> int:
    n = 0
    for batch in iter_events(path, index, as_of=AS_OF):
        n += len(batch)
    return n


def bare_scan(path: Path) -> int:
    """Baseline: memory-map and touch every column of every batch, no checks or conversion."""
    total = 0
    with pa.memory_map(str(path)) as src:
        reader = pa.ipc.open_file(src)
        for i in range(reader.num_record_batches):
            b = reader.get_batch(i)
            total += int(b.column("user_id").to_numpy()[-1] > 0) + b.num_rows
    return total


def searchsorted_lookup(ids: np.ndarray, q: np.ndarray) -> np.ndarray:
    order = np.argsort(ids, kind="stable")
    s = ids[order]
    pos = np.searchsorted(s, q)
    pos[pos == len(s)] = 0
    return np.where(s[pos] == q, order[pos], -1)


# ----------------------------------------------------------------------------- pytest-benchmark
def _rows() -> int:
    return int(os.environ.get("WINBACK_BENCH_ROWS", "10000000"))


try:
    import pytest
except ImportError:  # pragma: no cover - the script mode needs no pytest
    pytest = None

if pytest is not None:

    @pytest.fixture(scope="module")
    def events_file(tmp_path_factory):
        return make_events(tmp_path_factory.mktemp("io") / "events.arrow", _rows(), 1_000_000)

    @pytest.fixture(scope="module")
    def dense_index():
        return UserIndex(np.arange(1, 1_000_001, dtype=np.int64))

    def test_iter_events_arrow(benchmark, events_file, dense_index):
        n = benchmark.pedantic(consume_events, args=(events_file, dense_index), rounds=3, iterations=1,
                               warmup_rounds=1)
        assert n == _rows()

    def test_load_users(benchmark, tmp_path_factory):
        path = make_users(tmp_path_factory.mktemp("users") / "users.arrow", 1_000_000)
        users = benchmark.pedantic(load_users, args=(path,), rounds=3, iterations=1)
        assert len(users) == 1_000_000

    def test_bare_scan_baseline(benchmark, events_file):
        benchmark.pedantic(bare_scan, args=(events_file,), rounds=3, iterations=1)

    @pytest.mark.parametrize("layout", ["hash", "table", "searchsorted"])
    def test_user_lookup(benchmark, layout):
        rng = np.random.default_rng(1)
        if layout == "table":
            ids = rng.permutation(1_000_000).astype(np.int64) + 1
        else:
            ids = rng.choice(1 << 40, 1_000_000, replace=False).astype(np.int64)
        q = ids[rng.integers(0, len(ids), 10_000_000)]
        if layout == "searchsorted":
            benchmark(searchsorted_lookup, ids, q)
        else:
            index = UserIndex(ids)
            assert index.kind == layout
            benchmark(index.lookup, q)


# ----------------------------------------------------------------------------- side by side
def _best(fn, *args, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t)
    return best


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10x smaller sizes")
    args = ap.parse_args(argv)
    scale = 10 if args.quick else 1
    n_rows, n_users, n_q = 10_000_000 // scale, 1_000_000 // scale, 50_000_000 // scale
    rng = np.random.default_rng(1)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        path = make_events(Path(tmp) / "events.arrow", n_rows, n_users)
        ppath = make_events(Path(tmp) / "events.parquet", n_rows, n_users, fmt="parquet")
        index = UserIndex(np.arange(1, n_users + 1, dtype=np.int64))
        consume_events(path, index)  # compile kernels once
        base = _best(bare_scan, path)
        ours = _best(consume_events, path, index)
        pq_ours = _best(consume_events, ppath, index)
        upath = make_users(Path(tmp) / "users.arrow", n_users)
        read = _best(lambda p: pa.ipc.open_file(pa.memory_map(str(p))).read_all().combine_chunks(), upath)
        took = _best(load_users, upath)
        out.append(f"load_users {n_users:,} users: {took:.2f} s; bare read {read:.3f} s")
        out.append(f"iter_events {n_rows:,} rows, Arrow IPC: {ours:.2f} s ({n_rows / ours / 1e6:.1f} M rows/s); "
                   f"bare scan {base:.3f} s; Parquet {pq_ours:.2f} s ({n_rows / pq_ours / 1e6:.1f} M rows/s)")
    for label, ids in (("sparse ids", rng.choice(1 << 40, n_users, replace=False).astype(np.int64)),
                       ("dense ids", rng.permutation(n_users).astype(np.int64) + 1)):
        q = ids[rng.integers(0, n_users, n_q)]
        q[::10] += 7_777_777_777  # 10 % unknown
        t = time.perf_counter()
        index = UserIndex(ids)
        build = time.perf_counter() - t
        index.lookup(q[:10])
        ours = _best(index.lookup, q, repeat=2)
        base = _best(searchsorted_lookup, ids, q, repeat=2)
        out.append(f"UserIndex {label} ({index.kind}) {n_users:,} users / {n_q:,} lookups: build {build:.3f} s, "
                   f"lookup {ours:.2f} s; searchsorted {base:.2f} s; ratio {base / ours:.1f}x")
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
