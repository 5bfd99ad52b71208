"""Side by side: winback's fused scoring pass vs the same aggregates in polars and duckdb.

One run, one world, one Arrow IPC events file (per seed and event order):

1. **winback**: ``load_users`` + ``iter_events`` (validation, user-id lookup, codes; read
   on a second thread) + the fused numba pass (:mod:`engine.scoring.kernels`) on every core;
2. **polars**: a lazy ``scan_ipc`` of the same file, ``group_by`` aggregates;
3. **duckdb**: the same aggregates in SQL over the memory-mapped Arrow table.

"The same aggregates" per user: distinct active days, first/last activity, purchases
(count, sum, last), per channel sends/opens/clicks in 90 days, last open/click and
suppression flags, the unengaged streak (sends after the last open/click, capped at
8 like winback), sends in 7 and 30 days, and the decayed engagement histogram by
local hour (24 bins) and weekday (7 bins).  The baselines get each user's UTC offset
*as of as_of* (no DST history), which is cheaper than winback's exact per-hour offset
table: the comparison favours them.  All three use every core.

Worlds: ``--shape generator`` (``winback generate``, seeds ``--seeds``; its events file is
in random order) or ``--shape bgnbd`` (``benchmarks/bgnbd_world.py``: BG/NBD-process
activity with heterogeneous rates and sparse user ids, in time order).  ``--order``
also runs copies of the events file sorted by time, by user, or shuffled.

Each method runs in its own process (so its peak RSS is its own) for ``--rounds``
rounds, alternating, and the best time of each is compared:
``ratio = baseline seconds / winback seconds`` (higher is better).
``--min-ratio R`` exits 1 when winback's ratio against the fastest baseline is
below ``R`` (the CI guard, see ``benchmarks/floors.toml``).  Unless ``--quick``, it
also times the BG/NBD fit against ``lifetimes.BetaGeoFitter`` on the same
(x, t_x, T) and prints scoring accuracy against the world's truth: the AUC of
``lapse_risk`` for "not alive", and the share of users with 5+ engagements whose
``best_hour_local`` is within one hour of their true preferred hour, next to the
same share for their timezone population's best hour.

Measured 2026-12-01 on a 2-core machine shared with other jobs (load 2-10; noisy): 1M
users / 59.5M events, winback 9.66-11.26 s, ratio vs the fastest 3.26x-7.17x; the
BG/NBD-process world, 1M users / 49.8M events, 6.63 s, 4.56x; peak RSS at 1M: winback
1.1 GiB, polars 6.4 GiB, duckdb 4.7 GiB.  2026-12-02 with the one-pass events decoder
(load 4-9): 5.1x-6.0x on seed 7 and 12.2x on seed 3 (main beside it 3.3x-4.7x, 6.9x), 4.9x
on the BG/NBD world, 1.9x on a time-ordered copy.  2026-12-05 (quiet machine), with sparse
blocks folded front to back and look-ups asked for ahead: 7.66x (seed 7), 7.48x (seed 8),
6.67x (time order), 6.03x (BG/NBD world, 1M).  Every run and the accuracy figures:
``benchmarks/README.md``.

    python benchmarks/compare_score.py --quick --seeds 7,8 --min-ratio 1.5
    python benchmarks/compare_score.py --order file,time,user      # 100k users
    python benchmarks/compare_score.py --shape bgnbd --users 200000
    python benchmarks/compare_score.py --users 1000000 --dir /tmp/world-1m

``WINBACK_BENCH_SLOWDOWN=pass:3`` folds every batch three times (the guard's check).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zoneinfo
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from _bench import bgnbd_world, core_aggs, generator_world, ordered_events, slowdown  # noqa: E402

AS_OF = "2026-11-01T00:00:00Z"
AS_OF_S = int(dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc).timestamp())
DAY = 86400
DECAY = float(np.log(2.0)) / (60.0 * DAY)  # 60-day half-life, per second
METHODS = ("winback", "polars", "duckdb")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _zone_offsets(users_path: str):
    """users.user_id and each user's UTC offset (s) at as_of, as a pyarrow table."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.feather as feather

    users = feather.read_table(users_path, columns=["user_id", "timezone"], memory_map=True)
    tz = users["timezone"].fill_null("UTC")
    names = pc.unique(tz).to_pylist()
    when = dt.datetime.fromtimestamp(AS_OF_S, dt.timezone.utc)
    offs = [int(when.astimezone(zoneinfo.ZoneInfo(z)).utcoffset().total_seconds()) for z in names]
    idx = pc.index_in(tz, value_set=pa.array(names))
    off = pa.array(np.asarray(offs, np.int64)[idx.to_numpy(zero_copy_only=False)])
    return pa.table({"user_id": users["user_id"], "off": off})


# -- the three methods ---------------------------------------------------------------------
def run_winback(users: str, events: str) -> dict:
    from engine.scoring import kernels
    from engine.tz import offset_table
    from engine.io.readers import iter_events, load_users
    from engine.schema import DEFAULT_ACTIVITY, EVENT_CODE, EVENTS
    from engine.scoring.pipeline import DECODERS

    is_act = np.zeros(len(EVENTS) + 1, np.bool_)
    for name in DEFAULT_ACTIVITY:
        is_act[EVENT_CODE[name]] = True
    _warm(kernels, is_act)  # numba's cached kernels load outside the timed section (like the imports)
    t0 = time.perf_counter()
    # WINBACK_BENCH_SLOWDOWN=pass:N streams and folds the events N times (the guard's check)
    for _ in range(slowdown("pass")):
        u = load_users(users)
        table = u.table
        tz = table["timezone"].fill_null("UTC").combine_chunks().dictionary_encode()
        zones = tz.dictionary.to_pylist()
        user_tz = tz.indices.to_numpy(zero_copy_only=False).astype(np.int32)
        off_table, off_t0 = offset_table(zones, AS_OF_S - 730 * DAY, AS_OF_S)
        acc = kernels.Accumulators.zeros(table.num_rows, 731)
        day0 = AS_OF_S // DAY - acc.day_bits.shape[1] * 64 + 1
        n = 0
        # read as `winback score` reads (engine.scoring.pipeline.aggregate): batches decoded on
        # DECODERS threads ahead of the fold, each batch's block counts taken where it was decoded
        with kernels.Folder(acc, user_tz=user_tz, off_table=off_table, off_t0=off_t0, as_of=AS_OF_S,
                            is_activity=is_act, day0=day0, window_days=730, half_life_days=60.0,
                            n_threads=kernels.threads()) as folder:
            for batch, counts in iter_events(events, u, as_of=AS_OF_S, read_ahead=2, then=folder.counts,
                                             decoders=min(DECODERS, kernels.threads())):
                folder.add(batch, counts)
                n += len(batch)
    days = kernels.frequency_from_bits(acc.day_bits)
    streak = kernels.unengaged_streak(acc.recent_age, acc.last_eng, np.int64(AS_OF_S))
    seconds = time.perf_counter() - t0
    check = {"days": int(days.sum()), "streak": int(streak.sum()), "sends7": int(acc.sends7.sum()),
             "hour": float(acc.hour_hist.sum())}
    return {"seconds": seconds, "events": n, "users": table.num_rows, "check": check, "threads": kernels.threads()}


def _warm(kernels, is_act) -> None:
    """Load the pass's kernels (serial and parallel) and the id lookups from numba's cache."""
    from engine.io.readers import EventBatch, UserIndex, iter_events

    n_users, n = 3 << kernels.BLOCK_SHIFT, 4096
    uidx = np.arange(n, dtype=np.int64) % n_users
    z8 = np.zeros(n, np.int8)
    b = EventBatch(uidx, np.full(n, AS_OF_S - DAY, np.int64), z8, z8, np.zeros(n))
    for partition in (False, True):
        acc = kernels.Accumulators.zeros(n_users, 731)
        kernels.accumulate(acc, b, user_tz=np.zeros(n_users, np.int32), off_table=np.zeros((1, 24), np.int32),
                           off_t0=AS_OF_S - DAY, as_of=AS_OF_S, is_activity=is_act,
                           day0=AS_OF_S // DAY - acc.day_bits.shape[1] * 64 + 1, window_days=730,
                           half_life_days=60.0, partition=partition)
    kernels.frequency_from_bits(acc.day_bits)
    kernels.unengaged_streak(acc.recent_age, acc.last_eng, np.int64(AS_OF_S))
    kernels.block_counts_serial(uidx, kernels.BLOCK_SHIFT, np.int64(4), np.int64(1))  # the decoders' counts
    import pyarrow as pa

    from engine.schema import CHANNELS, EVENTS

    for ids in (np.arange(10, dtype=np.int64), np.array([1, 1 << 40], np.int64)):  # table and hash lookups
        UserIndex(ids).lookup(ids)
        # the events decoder (engine.io.decode) on the files' column types, with and without item ids
        k = len(ids)
        codes = pa.array(np.zeros(k, np.int8))
        cols = {"user_id": pa.array(ids), "ts": pa.array(np.full(k, (AS_OF_S - DAY) * 1_000_000), pa.timestamp("us", "UTC")),
                "event": pa.DictionaryArray.from_arrays(codes, pa.array(EVENTS)),
                "channel": pa.DictionaryArray.from_arrays(codes, pa.array(CHANNELS)),
                "value": pa.array([None] * k, pa.float64())}
        for extra in ({}, {"item_id": pa.array([None] * k, pa.int64())}):
            for _ in iter_events(pa.table({**cols, **extra}), UserIndex(ids), as_of=AS_OF_S):
                pass


def run_polars(users: str, events: str) -> dict:
    import polars as pl

    t0 = time.perf_counter()
    off = pl.from_arrow(_zone_offsets(users)).lazy()
    ev = pl.scan_ipc(events).select(
        pl.col("user_id"),
        pl.col("ts").dt.epoch("s").alias("t"),
        pl.col("event").cast(pl.Utf8).alias("e"),
        pl.col("channel").cast(pl.Utf8).alias("c"),
        pl.col("value"),
    )
    t, e, c = pl.col("t"), pl.col("e"), pl.col("c")
    age = AS_OF_S - t
    aggs = core_aggs(pl, suppressed=True)
    main = ev.group_by("user_id").agg(aggs)
    chan = ev.filter(c.is_not_null() & e.is_in(["send", "open", "click"]))
    streak = chan.group_by("user_id", "c").agg(
        (t.filter(e == "send") > t.filter(e.is_in(["open", "click"])).max().fill_null(-1)).sum().alias("n"))
    streak = streak.with_columns(pl.col("n").clip(upper_bound=8))
    eng = ev.filter(e.is_in(["open", "click", "session"])).join(off, on="user_id").with_columns(
        local=t + pl.col("off"), w=(-(age.cast(pl.Float64)) * DECAY).exp())
    hour = eng.group_by("user_id", (pl.col("local") // 3600 % 24).alias("h")).agg(pl.col("w").sum())
    wday = eng.group_by("user_id", ((pl.col("local") // DAY + 3) % 7).alias("d")).agg(pl.col("w").sum())
    m, s, h, w = pl.collect_all([main, streak, hour, wday])
    seconds = time.perf_counter() - t0
    check = {"days": int(m["days"].sum()), "streak": int(s["n"].sum()), "sends7": int(m["sends7"].sum()),
             "hour": float(h["w"].sum())}
    return {"seconds": seconds, "events": None, "users": m.height, "check": check}


def _arrow(rel):
    """A duckdb relation's result as a pyarrow Table (duckdb 1.x and 2.x spell it differently)."""
    return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()


def run_duckdb(users: str, events: str) -> dict:
    import duckdb
    import pyarrow.feather as feather

    t0 = time.perf_counter()
    con = duckdb.connect()
    con.register("ev_raw", feather.read_table(events, memory_map=True))
    con.register("off", _zone_offsets(users))
    con.sql(f"""create temp view ev as select user_id, epoch(ts)::bigint as t, event::varchar as e,
                   channel::varchar as c, value, {AS_OF_S} - epoch(ts)::bigint as age from ev_raw""")
    per_ch = []
    for ch in ("email", "sms", "push"):
        for name in ("send", "open", "click"):
            per_ch.append(f"count(*) filter (where e = '{name}' and c = '{ch}' and age <= {90 * DAY}) as {ch}_{name}90")
        per_ch.append(f"max(t) filter (where e in ('open', 'click') and c = '{ch}') as {ch}_last_eng")
        per_ch.append(f"bool_or(e in ('unsubscribe', 'bounce', 'complaint') and c = '{ch}') as {ch}_supp")
    main = _arrow(con.sql(f"""
        select user_id,
          count(distinct t // {DAY}) filter (where e in ('session', 'purchase', 'click')) as days,
          min(t) filter (where e in ('session', 'purchase', 'click')) as first,
          max(t) filter (where e in ('session', 'purchase', 'click')) as last,
          count(*) filter (where e = 'purchase') as purchases,
          sum(value) filter (where e = 'purchase') as revenue,
          max(t) filter (where e = 'purchase') as last_purchase,
          count(*) filter (where e = 'send' and age <= {7 * DAY}) as sends7,
          count(*) filter (where e = 'send' and age <= {30 * DAY}) as sends30,
          {", ".join(per_ch)}
        from ev group by user_id"""))
    streak = con.sql("""
        with le as (select user_id, c, max(t) as le from ev where e in ('open', 'click') group by all)
        select sum(least(n, 8)) from (
          select s.user_id, s.c, count(*) as n from ev s left join le using (user_id, c)
          where s.e = 'send' and s.c is not null and (le.le is null or s.t > le.le) group by all)""").fetchall()[0][0]
    con.sql(f"""create temp table eng as select ev.user_id, t + off.off as local,
                    exp(-age * {DECAY!r}) as w from ev join off using (user_id)
                    where e in ('open', 'click', 'session')""")
    hour = _arrow(con.sql("select user_id, local // 3600 % 24 as h, sum(w) as w from eng group by all"))
    _arrow(con.sql(f"select user_id, (local // {DAY} + 3) % 7 as d, sum(w) as w from eng group by all"))
    seconds = time.perf_counter() - t0
    check = {"days": int(main["days"].to_numpy().sum()), "streak": int(streak or 0),
             "sends7": int(main["sends7"].to_numpy().sum()), "hour": float(hour["w"].to_numpy().sum())}
    return {"seconds": seconds, "events": None, "users": main.num_rows, "check": check}


def _child(method: str, users: str, events: str) -> None:
    res = {"winback": run_winback, "polars": run_polars, "duckdb": run_duckdb}[method](users, events)
    res["peak_mib"] = _peak_mib()
    sys.stdout.write(json.dumps(res) + "\n")


def _run_child(method: str, users: str, events: str) -> dict:
    """One method in a fresh process; its peak RSS from /usr/bin/time where there is one.

    The child's own ``ru_maxrss`` is not enough: Linux carries the forked parent's peak over
    exec, so after this process wrote a sorted copy of the events (5 GB at 1M users) every
    child reported that instead of its own."""
    import tempfile

    gnu_time = Path("/usr/bin/time")
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        cmd = [sys.executable, __file__, "--child", method, users, events]
        if gnu_time.exists():
            cmd = [str(gnu_time), "-f", "%M", "-o", rss.name, *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            raise SystemExit(f"{method} failed:\n{proc.stderr.strip()[-2000:]}")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        kib = [ln for ln in rss.read().split() if ln.isdigit()]
    if kib:
        res["peak_mib"] = int(kib[-1]) / 1024.0
    return res


# -- model fit and accuracy (full mode) -----------------------------------------------------
def _auc(score: np.ndarray, positive: np.ndarray) -> float:
    from scipy.stats import rankdata

    r = rankdata(score)
    n1, n0 = positive.sum(), (~positive).sum()
    return float((r[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def accuracy_and_fit(world: Path) -> None:
    import pyarrow.feather as feather

    from engine.scoring.pipeline import score, summary_of

    t0 = time.perf_counter()
    s = score(world / "users.arrow", world / "events.arrow", as_of=AS_OF)
    took = time.perf_counter() - t0
    meta = summary_of(s)
    truth = feather.read_table(world / "truth.arrow")
    assert s["user_id"].equals(truth["user_id"])
    gone = ~truth["alive"].to_numpy(zero_copy_only=False)
    auc = _auc(s["lapse_risk"].to_numpy(), gone)
    eng = s["engagements"].to_numpy() >= 5
    pref = truth["preferred_hour_local"].to_numpy().astype(int)

    def within1(hours):
        d = np.abs(np.asarray(hours, int) - pref) % 24
        return float((np.minimum(d, 24 - d) <= 1)[eng].mean())

    pop = meta["send_time"]["population_best_hour"]
    tz = s["timezone"].fill_null("UTC").to_pylist()
    base = np.array([pop.get(z, 0) for z in tz])
    print(f"score() end to end: {took:.2f} s (aggregation {meta['aggregation_seconds']:.2f} s)")
    print(f"accuracy: AUC(lapse_risk, not alive) = {auc:.3f} over {len(gone):,} users ({gone.mean():.0%} gone)")
    print(f"accuracy: best_hour_local within 1 h of truth: {within1(s['best_hour_local'].to_numpy()):.1%} "
          f"vs population best hour {within1(base):.1%} ({eng.sum():,} users with 5+ engagements)")
    x = s["frequency"].to_numpy().astype(float)
    t_x = s["recency_days"].to_numpy()
    T = s["tenure_days"].to_numpy()
    ok = T > 0
    from engine.scoring.bgnbd import BGNBD

    t0 = time.perf_counter()
    BGNBD().fit(x[ok], t_x[ok], T[ok])
    ours = time.perf_counter() - t0
    try:
        import warnings

        from lifetimes import BetaGeoFitter
    except ImportError:
        print(f"BG/NBD fit: winback {ours:.2f} s (lifetimes not installed)")
        return
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        BetaGeoFitter(penalizer_coef=0.0).fit(x[ok], t_x[ok], T[ok])
    theirs = time.perf_counter() - t0
    print(f"BG/NBD fit on {ok.sum():,} users: winback {ours:.2f} s, lifetimes {theirs:.2f} s, "
          f"ratio {theirs / ours:.1f}x")


# -- main ---------------------------------------------------------------------------------
def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        _child(*argv[1:4])
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=100_000, help="users in the generated world (default 100000)")
    ap.add_argument("--quick", action="store_true", help="30k users, 2 rounds, no model fit or accuracy")
    ap.add_argument("--rounds", type=int, default=None, help="rounds per method, best kept (default 3; quick 2)")
    ap.add_argument("--dir", default=None,
                    help="a world directory to use (holding events.arrow), or a directory to keep the generated "
                         "worlds in (default: temporary)")
    ap.add_argument("--seeds", default="7", help="comma-separated world seeds; the worst ratio counts (default 7)")
    ap.add_argument("--shape", choices=("generator", "bgnbd"), default="generator",
                    help="'generator' (winback generate, default) or 'bgnbd': BG/NBD-process activity with "
                         "heterogeneous rates, sparse user ids, time-ordered (benchmarks/bgnbd_world.py)")
    ap.add_argument("--order", default="file",
                    help="comma-separated event orders: file (as written), time, user, random (default file)")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of winback,polars,duckdb")
    ap.add_argument("--min-ratio", type=float, default=None,
                    help="exit 1 when winback's worst ratio vs the fastest baseline is below this")
    args = ap.parse_args(argv)
    n_users = 30_000 if args.quick and args.users == 100_000 else args.users
    rounds = args.rounds or (2 if args.quick else 3)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    orders = [x.strip() for x in args.order.split(",") if x.strip()]
    ratios: list[tuple[float, str]] = []
    with tempfile.TemporaryDirectory(prefix="winback-bench-") as tmp:
        base = Path(args.dir) if args.dir else Path(tmp)
        for seed in seeds:
            if (base / "events.arrow").exists():
                world = base
            elif args.shape == "generator":
                world = generator_world(n_users, seed, base)
            else:
                world = bgnbd_world(n_users, seed, base)
            for order in orders:
                label = f"{args.shape} world, seed {seed}, {order} order"
                ratio = _compare(world, ordered_events(world, order), methods, rounds, label)
                if ratio is not None:
                    ratios.append((ratio, label))
            if not args.quick and args.shape == "generator" and (world / "truth.arrow").exists():
                accuracy_and_fit(world)
    if len(ratios) > 1:
        print("ratios vs the fastest baseline: " + ", ".join(f"{r:.2f}x ({w})" for r, w in ratios))
    worst = min(ratios) if ratios else None
    if args.min_ratio is not None and worst is not None and worst[0] < args.min_ratio:
        print(f"FAIL: winback's scoring pass is only {worst[0]:.2f}x the fastest baseline ({worst[1]}), below the "
              f"floor {args.min_ratio}x: profile engine/scoring/kernels.py and engine/io/readers.py iter_events")
        return 1
    return 0


def _compare(world: Path, events_path: Path, methods: list[str], rounds: int, label: str) -> float | None:
    """Best of ``rounds`` of each method on one events file; prints the table; the ratio vs the fastest."""
    users, events = str(world / "users.arrow"), str(events_path)
    print(f"{label}: {events}")
    best: dict[str, dict] = {}
    for _ in range(rounds):
        for m in methods:
            r = _run_child(m, users, events)
            print(f"  {m:8s} {r['seconds']:7.3f} s  peak RSS {r['peak_mib']:7.0f} MiB  check {r['check']}")
            if m not in best or r["seconds"] < best[m]["seconds"]:
                best[m] = r
    n_events = best.get("winback", {}).get("events")
    threads = best.get("winback", {}).get("threads", 1)
    print(f"\n{label}: {best[methods[0]]['users']:,} users, {n_events or 0:,} events, best of {rounds} "
          f"(winback on {threads} threads, polars {_version('polars')}, duckdb {_version('duckdb')}, "
          f"{os.cpu_count()} cores):")
    for m, r in best.items():
        rate = f"{n_events / r['seconds'] / 1e6:6.1f}M events/s" if n_events else ""
        print(f"  {m:8s} {r['seconds']:7.3f} s  {rate}  peak RSS {r['peak_mib']:.0f} MiB")
    if "winback" not in best or len(best) < 2:
        return None
    checks = {m: r["check"] for m, r in best.items()}
    same = all(c["days"] == checks["winback"]["days"] and c["sends7"] == checks["winback"]["sends7"]
               and c["streak"] == checks["winback"]["streak"] for c in checks.values())
    fastest = min((r["seconds"], m) for m, r in best.items() if m != "winback")
    for m, r in best.items():
        if m != "winback":
            print(f"  ratio {m} / winback = {r['seconds'] / best['winback']['seconds']:.2f}x")
    ratio = fastest[0] / best["winback"]["seconds"]
    print(f"ratio vs fastest baseline ({fastest[1]}) = {ratio:.2f}x; integer checksums "
          f"{'identical' if same else 'DIFFER'}\n")
    return ratio


def _version(name: str) -> str:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001 - a version string is cosmetic
        return "?"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
