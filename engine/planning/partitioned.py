"""Planning a partitioned scores dataset, in this process or on Dask (``winback plan --dask``).

``winback score parts/ -o scores/`` writes ``scores/part=K/part-0.parquet``; this plans
each partition where it lies and writes ``plan/part=K/part-0.parquet`` with the same
rows :func:`engine.plan.plan` gives for all users at once:

1. **prelude** (per partition, read once into its planning state, gathered): timezone
   names, audience and reach counts, buyers' values.  The driver checks the broadcast guard on the totals and takes the
   median value for users who never bought.
2. **steps**, in order: every partition computes its candidates (per user: channel,
   time, caps, fatigue); the driver levels hourly capacity over all partitions at once
   (only the capacity-limited messages travel: 6 numbers each); every partition applies
   the new times.  Holdout and variants are per-user hashes, so they need nothing.
3. **write**: per partition, its rows (the scores are read again: between steps the
   state keeps per-user arrays only, ~250 bytes a user), with the campaign's metadata;
   the whole plan's summary and sunset rule go to ``_winback_plan.json`` beside them,
   which :func:`engine.io.plans.read_plan` merges into the metadata.

Per-partition state stays on the workers between steps (a chain of futures), so the
driver holds only the candidates of one step.
"""

from __future__ import annotations

import json
import operator
import time
from pathlib import Path

import pyarrow.parquet as pq

from engine.io.meta import PLAN, SCORE, read_meta, with_meta
from engine.planning import steps as ps
from engine.io.atomic import atomic_dir
from engine.planning.campaign import Campaign, load_campaign
from engine.errors import ConfigError, InputError
from engine.planning.guard import checked_scores, guard_counts
from engine.schema import PLAN_SUMMARY_FILE

__all__ = ["plan_partitioned", "scores_partitions", "is_partitioned_scores", "SUMMARY_FILE"]

SUMMARY_FILE = PLAN_SUMMARY_FILE


def is_partitioned_scores(path) -> bool:
    """True for a directory of ``part=K`` subdirectories (the output of ``winback score parts/``)."""
    try:
        scores_partitions(path)
    except InputError:
        return False
    return True


def scores_partitions(scores_dir) -> list[tuple[int, str]]:
    """``(K, path)`` of every ``part=K`` directory of a partitioned scores dataset."""
    import re

    d = Path(scores_dir)
    parts = []
    if d.is_dir():
        for p in d.iterdir():
            m = re.fullmatch(r"part=(\d+)", p.name)
            if m and p.is_dir():
                parts.append((int(m.group(1)), str(p)))
    if not parts:
        raise InputError(f"{scores_dir}: not a partitioned scores dataset (no part=K directories); score a "
                         "'winback partition' output with 'winback score parts/ -o scores/' first")
    return sorted(parts)


def _read(path: str):
    from engine.io.readers import read_table

    t = checked_scores(read_table(path, "scores"), f"scores {path}")
    return t


def _init_task(path, cmp, start, suppressions, ledger, items):
    # the state keeps per-user arrays only; the scores are read again to write the rows
    return ps.PartitionPlan(_read(path), cmp, start, suppressions=suppressions, ledger=ledger,
                            items=items).drop_scores()


def _prelude_task(state: ps.PartitionPlan) -> dict:
    return state.prelude()


def _settle_task(state: ps.PartitionPlan, zones: list[str], fill: float) -> ps.PartitionPlan:
    return state.settle(zones, fill)


def _candidates_task(state: ps.PartitionPlan, k: int):
    return state, state.candidates(k)


def _apply_task(state: ps.PartitionPlan, k: int, leveled: dict):
    state.apply(k, leveled)
    return state


def _finish_task(state: ps.PartitionPlan, path: str, k: int, out_dir: str, base_meta: dict) -> dict:
    """Write the partition's rows (with the campaign's metadata) and return what the whole
    plan's summary needs; the table is never sent back."""
    from engine.planning.planner import plan_summary, timezone_counts

    scores = _read(path)
    table = state.table_out(scores)
    table = with_meta(table, PLAN, base_meta, keep=False)
    part = Path(out_dir) / f"part={k}"
    part.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, part / "part-0.parquet", compression="zstd")
    candidates, last_sent = state.sunset_counts()
    summary = plan_summary(table)
    summary["timezones"] = timezone_counts(scores, state.cmp)
    return {"summary": summary, "candidates": candidates, "last_sent": last_sent}


def merge_summaries(parts: list[dict]) -> dict:
    """The :func:`engine.plan.plan_summary` of the whole plan from those of its partitions."""
    out = {"rows": 0, "planned": 0, "by_theme": {}, "by_step_channel": {}, "by_reason": {}, "by_utc_hour": [0] * 24,
           "timezones": {}}
    for s in parts:
        out["rows"] += s["rows"]
        out["planned"] += s["planned"]
        for key in ("by_theme", "by_step_channel", "by_reason", "timezones"):
            for name, v in s.get(key, {}).items():
                out[key][name] = out[key].get(name, 0) + v
        out["by_utc_hour"] = [a + b for a, b in zip(out["by_utc_hour"], s["by_utc_hour"])]
    out["by_theme"] = dict(sorted(out["by_theme"].items()))
    return out


class _Local:
    """The same calls as a Dask client, run in this process (``dask=None``)."""

    def submit(self, fn, *args, **_):
        return _Done(fn(*(a.value if isinstance(a, _Done) else a for a in args)))

    def gather(self, futures):
        return [f.value for f in futures]


class _Done:
    def __init__(self, value):
        self.value = value


def plan_partitioned(scores_dir, campaign, *, out_dir, as_of=None, dask: str | None = None, n_workers: int = 2,
                     suppressions=None, ledger=None, items=None, progress: bool = False) -> dict:
    """Plan every partition of ``scores_dir`` into the Parquet dataset ``out_dir``; returns the summary.

    ``dask``: None (in this process), ``"local"`` (a LocalCluster of ``n_workers``
    processes on 127.0.0.1) or a scheduler address; the other arguments are those of
    :func:`engine.plan.plan` (``ledger``, ``items``: paths every worker can read);
    ``progress``: a bar on stderr over partitions x (prelude, steps, write).
    """
    t_start = time.perf_counter()
    cmp = campaign if isinstance(campaign, Campaign) else load_campaign(campaign)
    coded = [o.name for o in cmp.offers if o.codes is not None]
    if coded:  # each partition would hand out the file's codes from the start
        raise ConfigError(f"{cmp.source}: offers with unique codes ({', '.join(coded)}) need one-table planning; "
                          "plan the merged scores file, or drop codes from the partitioned run")
    parts = scores_partitions(scores_dir)
    first = pq.read_schema(next(Path(parts[0][1]).rglob("*.parquet")))
    score_meta = read_meta(first, SCORE)
    from engine.planning.planner import campaign_start

    start, stale = campaign_start(as_of, cmp, score_meta)
    cluster = None
    if dask is None:
        client, workers = _Local(), 0
    else:
        from engine.scoring.distributed import dask_client

        client, cluster = dask_client(dask, n_workers, 1)
        workers = len(client.scheduler_info()["workers"])
    timing = {}
    from engine.progress import bar

    pbar = bar(progress, total=len(parts) * (len(cmp.steps) + 2), desc="plan", unit="part-steps")
    try:
        t0 = time.perf_counter()
        states = [client.submit(_init_task, path, cmp, start, suppressions, ledger, items, pure=False)
                  for _, path in parts]
        pres = client.gather([client.submit(_prelude_task, st, pure=False) for st in states])
        zones = sorted({z for p in pres for z in p["zones"]})
        broadcast = guard_counts(cmp, sum(p["audience_reachable"] for p in pres), sum(p["reachable"] for p in pres),
                                 ledger, start)
        fill = ps.value_fill(pres)
        del pres
        states = [client.submit(_settle_task, st, zones, fill, pure=False) for st in states]
        pbar.update(len(parts))
        leveller = ps.Leveller(cmp, start, zones)
        timing["prelude_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for k in range(len(cmp.steps)):
            both = [client.submit(_candidates_task, s, k, pure=False) for s in states]
            cands = client.gather([client.submit(operator.getitem, b, 1, pure=False) for b in both])
            leveled = leveller.level(cands)
            states = [client.submit(_apply_task, client.submit(operator.getitem, b, 0, pure=False), k, lv,
                                    pure=False) for b, lv in zip(both, leveled)]
            del both, cands
            pbar.update(len(parts))
        timing["steps_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        from engine.planning.planner import plan_meta_of, sunset_meta

        base = plan_meta_of(cmp, start, broadcast, 0.0, ledger)
        base["partitions"] = len(parts)
        with atomic_dir(out_dir) as tmp:
            infos = client.gather([client.submit(_finish_task, st, path, k, str(tmp), base, pure=False)
                                   for st, (k, path) in zip(states, parts)])
            pbar.update(len(parts))
            meta = dict(base, seconds=round(time.perf_counter() - t_start, 3))
            meta["summary"] = merge_summaries([i["summary"] for i in infos])
            if stale:
                meta["summary"]["warnings"] = [stale]
            last = [i["last_sent"] for i in infos if i["last_sent"] is not None]
            meta["sunset"] = sunset_meta(cmp, sum(i["candidates"] for i in infos), max(last) if last else None,
                                         start)
            timing["write_seconds"] = time.perf_counter() - t0
            summary = {"path": str(out_dir), "partitions": len(parts), "dask": dask or "in-process",
                       "workers": workers, **meta["summary"], **{k: round(v, 3) for k, v in timing.items()},
                       "seconds": round(time.perf_counter() - t_start, 3)}
            # the whole plan's metadata (summary, sunset) beside the partitions: read_plan merges it
            (tmp / SUMMARY_FILE).write_text(json.dumps({"winback.plan": meta, "run": summary}, indent=1,
                                                       default=str), encoding="utf-8")
        del states
    finally:
        pbar.close()
        if cluster is not None or dask is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    return summary
