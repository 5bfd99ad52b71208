"""Score a partitioned dataset (``winback partition``) partition by partition, on Dask or in-process.

The three phases of :mod:`engine.score` run as:

1. :func:`engine.score.aggregate` once per partition, on the workers; each result stays
   on the worker that computed it (accumulators are O(users of the partition)), and
   only its small :class:`engine.score.PartStats` travel to the client;
2. :func:`engine.score.reduce_stats` on the client: BG/NBD fitted once on the merged
   compressed rows, send-time priors per timezone name, RFM quintile cut points;
3. :func:`engine.score.finalize` once per partition, on the worker holding its
   aggregate, with the population broadcast to every worker; each writes
   ``part=K/part-0.parquet`` into the output directory.

The output is a Parquet dataset ``OUT/part=K/part-0.parquet`` (each file's schema
metadata ``winback.score`` holds the global model and that partition's counts) plus
``OUT/_winback_score.json`` with the totals; readers of Parquet datasets skip files
starting with ``_``.  The directory is swapped in atomically, so on a cluster ``OUT``
must be on storage every worker can write (a shared file system).

Results equal ``score()`` on the unpartitioned files: every per-user column depends
only on the user's own events and on the population statistics, which are the same
multiset of compressed rows, the same histogram sums (up to float summation order,
~1e-16 relative) and exact quintile cut points.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.io.meta import SCORE, with_meta
from engine.io.atomic import atomic_dir
from engine.errors import ConfigError, DependencyError, InputError
from engine.schema import LIFECYCLE
from engine.scoring.pipeline import Partial, PartStats, Population, aggregate, finalize, reduce_stats, settings, summary_of

__all__ = ["is_partitioned", "partitions", "score_partitioned", "dask_client"]

_PART = re.compile(r"^part=(\d+)$")
SUMMARY_FILE = "_winback_score.json"


def is_partitioned(path) -> bool:
    """True when ``path`` is a ``winback partition`` output (``users/part=K`` directories)."""
    users = Path(path) / "users"
    return users.is_dir() and any(_PART.match(p.name) for p in users.iterdir() if p.is_dir())


def partitions(parts_dir) -> list[tuple[int, str, str | None]]:
    """``(K, users_dir, events_dir or None)`` for every ``users/part=K`` of a partition output."""
    parts_dir = Path(parts_dir)
    if not is_partitioned(parts_dir):
        raise InputError(f"{parts_dir}: not a partitioned dataset (no users/part=K directories); "
                         f"create one with: winback partition USERS EVENTS -o {parts_dir} --partitions N")
    out = []
    for p in sorted((parts_dir / "users").iterdir(), key=lambda q: q.name):
        m = _PART.match(p.name)
        if m and p.is_dir():
            ev = parts_dir / "events" / p.name
            out.append((int(m.group(1)), str(p), str(ev) if ev.is_dir() else None))
    return sorted(out)


def _no_events() -> pa.Table:
    return pa.table({"user_id": pa.array([], pa.int64()), "ts": pa.array([], pa.timestamp("us", tz="UTC")),
                     "event": pa.array([], pa.string()), "channel": pa.array([], pa.string()),
                     "value": pa.array([], pa.float64())})


def _aggregate_task(users: str, events: str | None, cfg, on_bad_rows: str, quarantine: str | None,
                    batch_rows: int, items=None) -> Partial:
    return aggregate(users, events if events is not None else _no_events(), cfg, on_bad_rows=on_bad_rows,
                     quarantine=quarantine, batch_rows=batch_rows, items=items)


def _stats_of(part: Partial) -> PartStats:
    return part.stats


def _finalize_task(part: Partial, pop: Population, k: int, out_dir: str) -> dict:
    table = finalize(part, pop)
    meta = summary_of(table)
    meta["partition"] = k
    table = with_meta(table, SCORE, meta, default=float)
    path = Path(out_dir) / f"part={k}"
    path.mkdir(parents=True, exist_ok=True)
    import pyarrow.parquet as pq

    pq.write_table(table, path / "part-0.parquet", compression="zstd")
    return meta


def dask_client(dask: str, n_workers: int, threads_per_worker: int):
    """``(client, cluster)`` for ``--dask``: a LocalCluster of ``n_workers`` processes for
    ``"local"``, else a client of the scheduler at that address (``cluster`` is then None)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise DependencyError("--dask needs Dask and distributed: pip install 'winback[dask]'") from None
    if dask == "local":
        # workers' own logs stay quiet: a failed task re-raises its WinbackError on the client
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
                               host="127.0.0.1", dashboard_address=None, silence_logs=logging.CRITICAL)
        return Client(cluster), cluster
    if not re.match(r"^(tcp|tls|ws|wss|inproc|ucx)://", dask):
        raise ConfigError(f"--dask {dask!r}: give a scheduler address such as tcp://10.0.0.5:8786, or 'local' "
                          "for a cluster on this machine")
    try:
        return Client(dask, timeout="30s"), None
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"--dask {dask}: cannot reach the Dask scheduler ({exc}); check the address and that "
                          "'dask scheduler' is running there") from None


def score_partitioned(parts_dir, *, out_dir, as_of=None, dask: str | None = None, n_workers: int = 2,
                      threads_per_worker: int = 1, on_bad_rows: str = "error", quarantine=None,
                      batch_rows: int = 1 << 20, items=None, **options) -> dict:
    """Score every partition of ``parts_dir`` into the Parquet dataset ``out_dir``; returns the summary.

    ``dask``: None (in this process, one partition after another), ``"local"`` (a
    LocalCluster on 127.0.0.1 with ``n_workers`` processes of ``threads_per_worker``
    threads) or a scheduler address ``"tcp://host:8786"`` (the workers need winback
    installed and ``parts_dir``/``out_dir`` on storage they can read and write).
    The other arguments are those of :func:`engine.scoring.pipeline.score` (``options``: the
    :class:`~engine.scoring.settings.Settings`) (``items``: a catalogue
    path every worker can read; item statistics are summed over partitions before any
    partition is finalized); ``quarantine`` gets one
    ``part=K`` subdirectory per partition.  The summary (also written to
    ``out_dir/_winback_score.json``) holds the totals, the model and the timing.
    """
    t_start = time.perf_counter()
    cfg = settings(as_of=as_of, **options)
    parts = partitions(parts_dir)
    qdirs = {k: (None if quarantine is None else os.path.join(str(quarantine), f"part={k}")) for k, _, _ in parts}
    timing = {}
    with atomic_dir(out_dir) as tmp:
        if dask is None:
            t0 = time.perf_counter()
            partials = {k: _aggregate_task(u, e, cfg, on_bad_rows, qdirs[k], batch_rows, items) for k, u, e in parts}
            timing["aggregate_seconds"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            pop = reduce_stats([partials[k].stats for k, _, _ in parts], cfg)
            timing["reduce_seconds"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            metas = []
            for k, _, _ in parts:
                metas.append(_finalize_task(partials.pop(k), pop, k, str(tmp)))
            timing["finalize_seconds"] = time.perf_counter() - t0
            workers = 0
        else:
            client, cluster = dask_client(dask, n_workers, threads_per_worker)
            try:
                workers = len(client.scheduler_info()["workers"])
                t0 = time.perf_counter()
                futures = [client.submit(_aggregate_task, u, e, cfg, on_bad_rows, qdirs[k], batch_rows, items,
                                         key=f"winback-aggregate-{k}-{t_start}") for k, u, e in parts]
                stats = client.gather([client.submit(_stats_of, f, key=f"winback-stats-{k}-{t_start}")
                                       for f, (k, _, _) in zip(futures, parts)])
                timing["aggregate_seconds"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                pop = reduce_stats(stats, cfg)
                timing["reduce_seconds"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                pop_f = client.scatter(pop, broadcast=True)
                metas = client.gather([client.submit(_finalize_task, f, pop_f, k, str(tmp),
                                                     key=f"winback-finalize-{k}-{t_start}")
                                       for f, (k, _, _) in zip(futures, parts)])
                timing["finalize_seconds"] = time.perf_counter() - t0
                del futures
            finally:
                client.close()
                if cluster is not None:
                    cluster.close()
        summary = _summary(metas, timing, workers, dask)
        summary["seconds"] = round(time.perf_counter() - t_start, 3)
        (tmp / SUMMARY_FILE).write_text(json.dumps(summary, indent=1, default=float), encoding="utf-8")
    summary["path"] = str(out_dir)
    return summary


def _summary(metas: list[dict], timing: dict, workers: int, dask: str | None) -> dict:
    first = metas[0]
    out = {k: first[k] for k in ("as_of", "model", "send_time", "model_window_days", "activity",
                                 "default_timezone", "policy")}
    out.update({k: first[k] for k in ("lapse_horizon_days", "lapse_model", "pareto_nbd", "warnings") if k in first})
    for k in ("users", "events", "users_rejected", "events_rejected"):
        out[k] = int(sum(m[k] for m in metas))
    out["lifecycle"] = {name: int(sum(m["lifecycle"][name] for m in metas)) for name in LIFECYCLE}
    sources: dict[str, int] = {}
    for m in metas:  # engine.tz.infer_timezones and engine.scoring.tzhours, summed over partitions
        for k, v in (m.get("timezone_sources") or {}).items():
            sources[k] = sources.get(k, 0) + int(v)
    out["timezone_sources"] = sources
    addresses: dict[str, dict] = {}
    for m in metas:  # engine.io.addresses, summed over partitions
        for col, a in (m.get("addresses") or {}).items():
            got = addresses.setdefault(col, {"normalised": 0, "not_an_address": 0, "examples": []})
            got["normalised"] += a["normalised"]
            got["not_an_address"] += a["not_an_address"]
            got["examples"] = (got["examples"] + a["examples"])[:3]
    out["addresses"] = addresses
    inference = [m["timezone_inference"] for m in metas if m.get("timezone_inference")]
    if inference:
        out["timezone_inference"] = {**inference[0], "checked": sum(i["checked"] for i in inference),
                                     "inferred": sum(i["inferred"] for i in inference)}
    out["aggregation_seconds"] = round(float(np.sum([m["aggregation_seconds"] for m in metas])), 3)
    out["partitions"] = len(metas)
    out["dask"] = dask or "in-process"
    out["workers"] = workers
    out.update({k: round(v, 3) for k, v in timing.items()})
    return out
