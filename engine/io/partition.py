"""Split users and events into Parquet datasets partitioned by a stable hash of user id.

Every event lands in the same partition as its user, so each partition can be scored
on its own (on a Dask worker, say) and the partitions' results concatenate to the
single-machine result.  The partition of a user is

    part = splitmix64(uint64(user_id)) mod N

(Steele, Lea & Flood 2014, the SplitMix64 finaliser), stable across machines, runs
and Python versions.  Writing streams record batches: memory stays bounded by the
batch size, not the events table.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from engine.io.atomic import atomic_dir
from engine.errors import InputError
from engine.progress import bar

__all__ = ["splitmix64", "partition_of", "partition"]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser over a uint64 array (vectorised, wraps modulo 2**64)."""
    z = np.asarray(x).astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z += _GOLDEN
        z ^= z >> np.uint64(30)
        z *= _M1
        z ^= z >> np.uint64(27)
        z *= _M2
        z ^= z >> np.uint64(31)
    return z


#: most partitions one ``partition`` writes (each is a directory per table)
MAX_PARTITIONS = 10_000


def partition_of(user_ids: np.ndarray, n_partitions: int) -> np.ndarray:
    """Partition number (int32, 0..n-1) of each user id."""
    if n_partitions < 1:
        raise InputError(f"--partitions must be at least 1, got {n_partitions}")
    return (splitmix64(np.asarray(user_ids, dtype=np.int64).view(np.uint64)) % np.uint64(n_partitions)).astype(np.int32)


def _open(source: str | os.PathLike) -> ds.Dataset:
    path = Path(source)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory; pass the users or events file or directory")
    suffixes = {p.suffix.lower() for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file()}
    if suffixes & {".parquet", ".pq"}:
        fmt = "parquet"
    elif suffixes & {".csv"}:
        fmt = "csv"
    else:
        fmt = "ipc"
    return ds.dataset(str(path), format=fmt)


def _write(source: str | os.PathLike, out: Path, n: int, name: str, progress: bool) -> int:
    dataset = _open(source)
    from engine.io.source import contract_renames

    names = dataset.schema.names  # 'USER_ID' or 'User ID' is user_id, as score reads it (engine.io.source)
    key = "user_id" if "user_id" in names else next(iter(contract_renames(names, ("user_id",))), None)
    if key is None:
        raise InputError(
            f"{source}: column 'user_id' is missing (found: {', '.join(dataset.schema.names)}); "
            "both users and events need a user_id column"
        )
    schema = dataset.schema.append(pa.field("part", pa.int32()))
    rows = 0
    pbar = bar(progress, desc=f"partition {name}", unit="rows")

    def batches():
        nonlocal rows
        for batch in dataset.to_batches():
            ids = batch.column(key)
            if ids.null_count:
                raise InputError(
                    f"{source}: column 'user_id' has {ids.null_count} null rows in one batch; "
                    "run 'winback validate' to see them, fix the file, then partition"
                )
            uid = ids.cast(pa.int64()).to_numpy()
            part = pa.array(partition_of(uid, n), type=pa.int32())
            rows += batch.num_rows
            pbar.update(batch.num_rows)
            yield pa.RecordBatch.from_arrays([*batch.columns, part], schema=schema)

    ds.write_dataset(
        batches(),
        str(out / name),
        schema=schema,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([("part", pa.int32())]), flavor="hive"),
        existing_data_behavior="overwrite_or_ignore",
        max_partitions=max(1024, n),
        basename_template="part-{i}.parquet",
        # keep each user's events in file order: float32 histogram sums then match the
        # single-machine run bit for bit
        preserve_order=True,
    )
    pbar.close()
    return rows


def partition(users, events, out_dir, *, partitions: int = 8, progress: bool = False) -> dict:
    """Write ``out_dir/users/part=K/`` and ``out_dir/events/part=K/`` Parquet datasets.

    Returns a summary dict (rows per table, partitions).  The directory is swapped in
    atomically: a failed run leaves no partial dataset.
    """
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise InputError(f"--partitions must be 1 to {MAX_PARTITIONS:,} (two directories each; e.g. 16, or "
                         f"one or a few per Dask worker), got {partitions:,}")
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        n_users = _write(users, tmp, partitions, "users", progress)
        n_events = _write(events, tmp, partitions, "events", progress)
    return {"users": n_users, "events": n_events, "partitions": partitions, "path": str(out_dir)}
