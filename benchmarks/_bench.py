"""Shared pieces of the side-by-side benchmarks: timed child processes with their own peak
RSS, the deliberate-slowdown hook, the generated worlds, and the polars core aggregates.

``WINBACK_BENCH_SLOWDOWN`` (benchmarks only; the library never reads it) repeats a timed
winback step so that a guard can be shown to fail on a real regression, e.g.
``WINBACK_BENCH_SLOWDOWN=pass:3`` runs the fused pass three times inside the timed
section, ``fit:3`` the BG/NBD fit, ``startup:3`` the whole small ``winback score``
command, ``score:3`` the whole large one.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AS_OF = "2026-11-01T00:00:00Z"
AS_OF_S = int(dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc).timestamp())
DAY = 86400


def slowdown(step: str) -> int:
    """How many times to repeat ``step`` (``WINBACK_BENCH_SLOWDOWN=step:N[,step:N]``; default 1)."""
    for part in os.environ.get("WINBACK_BENCH_SLOWDOWN", "").split(","):
        name, _, times = part.partition(":")
        if name.strip() == step:
            return max(1, int(times or 3))
    return 1


def timed(cmd: list[str], *, env: dict | None = None, cwd: Path = ROOT) -> dict:
    """Run ``cmd``; its wall seconds, its own peak RSS (MiB, from wait4) and its stdout.

    Raises SystemExit with the tail of stderr when it fails.
    """
    import tempfile

    # /usr/bin/time reports the command's own peak: a forked copy of this (larger) process
    # would count its pages until exec in a plain wait4
    gnu_time = Path("/usr/bin/time")
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, \
            tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        full = [str(gnu_time), "-f", "%M", "-o", rss.name, *cmd] if gnu_time.exists() else list(cmd)
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdout=out, stderr=err, text=True, cwd=cwd, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        out, err = out.read(), err.read()
        lines = [ln for ln in rss.read().split() if ln.isdigit()]
    peak = (int(lines[-1]) if lines else usage.ru_maxrss) / 1024.0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd[:4]))} ... failed ({proc.returncode}):\n{err.strip()[-2000:]}")
    return {"seconds": seconds, "peak_mib": peak, "stdout": out}


def peak_mib() -> float:
    """This process's peak RSS in MiB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def generator_world(n_users: int, seed: int, base: Path) -> Path:
    """``winback generate`` world of ``n_users`` and ``seed`` under ``base`` (reused when present)."""
    world = base / f"gen-{n_users}-s{seed}"
    if not (world / "events.arrow").exists():
        sys.path.insert(0, str(ROOT))
        from engine.synth.generator import generate

        t0 = time.perf_counter()
        generate(n_users, seed=seed, out_dir=world, as_of=AS_OF)
        print(f"generated {n_users:,} users (seed {seed}) in {time.perf_counter() - t0:.1f} s -> {world}")
    return world


def bgnbd_world(n_users: int, seed: int, base: Path) -> Path:
    """BG/NBD-process world (``benchmarks/bgnbd_world.py``) under ``base`` (reused when present)."""
    world = base / f"bgnbd-{n_users}-s{seed}"
    if not (world / "events.arrow").exists():
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import bgnbd_world as bw

        t0 = time.perf_counter()
        info = bw.generate(n_users, world, seed=seed)
        print(f"generated a BG/NBD-process world: {info['users']:,} users, {info['events']:,} events "
              f"(seed {seed}) in {time.perf_counter() - t0:.1f} s -> {world}")
    return world


def ordered_events(world: Path, order: str) -> Path:
    """The world's events file, or a copy sorted by ``time``/``user`` or shuffled (``random``)."""
    src = world / "events.arrow"
    if order == "file":
        return src
    dst = world / f"events.{order}.arrow"
    if dst.exists():
        return dst
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.feather as feather

    t = feather.read_table(src, memory_map=True)
    if order == "time":
        idx = pc.sort_indices(t, sort_keys=[("ts", "ascending")])
    elif order == "user":
        idx = pc.sort_indices(t, sort_keys=[("user_id", "ascending"), ("ts", "ascending")])
    elif order == "random":
        idx = np.random.default_rng(0).permutation(t.num_rows)
    else:
        raise SystemExit(f"--order {order}: choose file, time, user or random")
    feather.write_feather(t.take(idx), dst, compression="uncompressed", chunksize=1 << 20)
    return dst


def core_aggs(pl, *, suppressed: bool = False) -> list:
    """The polars expressions of winback's core per-user aggregates over columns ``t``
    (epoch s), ``e`` (event), ``c`` (channel), ``value``; with ``suppressed`` also whether
    each channel saw an unsubscribe, bounce or complaint."""
    t, e, c = pl.col("t"), pl.col("e"), pl.col("c")
    age = AS_OF_S - t
    act = e.is_in(["session", "purchase", "click"])
    buy = e == "purchase"
    aggs = [
        (t // DAY).filter(act).n_unique().alias("days"),
        t.filter(act).min().alias("first"), t.filter(act).max().alias("last"),
        buy.sum().alias("purchases"), pl.col("value").filter(buy).sum().alias("revenue"),
        t.filter(buy).max().alias("last_purchase"),
        ((e == "send") & (age <= 7 * DAY)).sum().alias("sends7"),
        ((e == "send") & (age <= 30 * DAY)).sum().alias("sends30"),
    ]
    for ch in ("email", "sms", "push"):
        for name in ("send", "open", "click"):
            aggs.append(((e == name) & (c == ch) & (age <= 90 * DAY)).sum().alias(f"{ch}_{name}90"))
        aggs.append(t.filter(e.is_in(["open", "click"]) & (c == ch)).max().alias(f"{ch}_last_eng"))
        if suppressed:
            aggs.append((e.is_in(["unsubscribe", "bounce", "complaint"]) & (c == ch)).any().alias(f"{ch}_supp"))
    return aggs


def polars_core(users: str, events: str) -> dict:
    """The core per-user aggregates in polars (lazy scan, one group_by): distinct active days,
    first/last activity, purchases (count, revenue, last), per channel sends/opens/clicks in
    90 days and the last open/click, sends in 7 and 30 days."""
    import polars as pl

    t0 = time.perf_counter()
    ev = pl.scan_ipc(events).select(
        pl.col("user_id"), pl.col("ts").dt.epoch("s").alias("t"), pl.col("event").cast(pl.Utf8).alias("e"),
        pl.col("channel").cast(pl.Utf8).alias("c"), pl.col("value"))
    aggs = core_aggs(pl)
    m = ev.group_by("user_id").agg(aggs).collect()
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "users": m.height, "check": {"days": int(m["days"].sum()),
                                                             "sends7": int(m["sends7"].sum())}}
