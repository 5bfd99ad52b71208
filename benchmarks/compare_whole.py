"""The whole of scoring against polars computing only the core per-user aggregates.

winback is timed twice, each as a fresh process (start-up included):

- **cli**: ``winback score USERS EVENTS --as-of ... -o scores.arrow``, the command users
  run: read, validate, the fused pass, the BG/NBD fit, send times, budgets, labels, the
  atomic write;
- **api**: ``engine.score(users, events, as_of=...)`` (the Python API path) in a fresh
  interpreter, from ``import engine`` to the returned table;

against **polars**: a lazy ``scan_ipc`` and one ``group_by`` of the core aggregates only
(distinct active days, first/last activity, purchases, revenue, last purchase, per
channel sends/opens/clicks in 90 days and last open/click, sends in 7 and 30 days; see
``_bench.polars_core``), also a fresh process.  Best of ``--rounds`` each, alternating;
``ratio = polars seconds / winback seconds`` (higher is better); the worst of cli and api
counts for ``--min-ratio``.

The default world is BG/NBD-process activity (``benchmarks/bgnbd_world.py``: heterogeneous
rates, sparse ids, time order), 200k users / about 10M events; ``--shape generator`` uses
``winback generate`` instead.

    python benchmarks/compare_whole.py                                  # 200k users, ~10M events
    python benchmarks/compare_whole.py --users 1000000 --dir /tmp/worlds  # ~50M events

``WINBACK_BENCH_SLOWDOWN=score:3`` runs each winback process three times per round.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import AS_OF, ROOT, bgnbd_world, generator_world, polars_core, slowdown, timed  # noqa: E402

_API = """
import json, sys, time
t0 = time.perf_counter()
import engine
s = engine.score(sys.argv[1], sys.argv[2], as_of=sys.argv[3])
from engine.scoring.pipeline import summary_of
m = summary_of(s)
print(json.dumps({"seconds": time.perf_counter() - t0, "aggregation": m["aggregation_seconds"],
                  "events": m["events"], "users": m["users"]}))
"""


def _polars_child(users: str, events: str) -> None:
    sys.stdout.write(json.dumps(polars_core(users, events)) + "\n")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--polars"]:
        _polars_child(*argv[1:3])
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=200_000, help="users (default 200000)")
    ap.add_argument("--seed", type=int, default=11, help="world seed (default 11)")
    ap.add_argument("--shape", choices=("bgnbd", "generator"), default="bgnbd",
                    help="'bgnbd' (BG/NBD-process activity, default) or 'generator' (winback generate)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds, best kept (default 2)")
    ap.add_argument("--paths", default="cli,api", help="winback paths to time: cli, api or both (default both)")
    ap.add_argument("--dir", default=None, help="keep the world here (default: a temporary directory)")
    ap.add_argument("--min-ratio", type=float, default=None,
                    help="exit 1 when polars seconds / winback seconds (the worse path) is below this")
    args = ap.parse_args(argv)
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    py = sys.executable
    repeat = slowdown("score")
    with tempfile.TemporaryDirectory(prefix="winback-whole-") as tmp:
        base = Path(args.dir) if args.dir else Path(tmp)
        world = (bgnbd_world if args.shape == "bgnbd" else generator_world)(args.users, args.seed, base)
        users, events = str(world / "users.arrow"), str(world / "events.arrow")
        out = str(Path(tmp) / "scores.arrow")
        cmds = {
            "cli": [py, "-m", "engine", "score", users, events, "--as-of", AS_OF, "-o", out, "--no-progress"],
            "api": [py, "-c", _API, users, events, AS_OF],
            "polars": [py, __file__, "--polars", users, events],
        }
        timed(cmds["cli"])  # the numba cache and the page cache warm for everyone
        best: dict[str, dict] = {}
        for _ in range(args.rounds):
            for name in [*paths, "polars"]:
                runs = [timed(cmds[name], cwd=ROOT) for _ in range(1 if name == "polars" else repeat)]
                r = {"seconds": sum(x["seconds"] for x in runs), "peak_mib": max(x["peak_mib"] for x in runs),
                     "stdout": runs[-1]["stdout"]}
                print(f"  {name:7s} {r['seconds']:7.3f} s  peak RSS {r['peak_mib']:6.0f} MiB")
                if name not in best or r["seconds"] < best[name]["seconds"]:
                    best[name] = r
    n_events = None
    if "api" in best:
        info = json.loads(best["api"]["stdout"].strip().splitlines()[-1])
        n_events = info["events"]
        best["api"]["note"] = f"(aggregation {info['aggregation']:.2f} s)"
    if "cli" in best:
        line = best["cli"]["stdout"].strip().splitlines()[0]
        best["cli"]["note"] = f"({line.split(' in ', 1)[1].split(' -> ')[0]})" if " in " in line else ""
    pol = best["polars"]
    print(f"\n{args.shape} world, {args.users:,} users, {n_events or 0:,} events (seed {args.seed}), best of "
          f"{args.rounds}, every step a fresh process:")
    ratios = []
    for name in paths:
        r = best[name]
        ratio = pol["seconds"] / r["seconds"]
        ratios.append((ratio, name))
        print(f"  winback {name:4s} {r['seconds']:7.3f} s  peak RSS {r['peak_mib']:6.0f} MiB  {r.get('note', '')}")
    print(f"  polars core {pol['seconds']:7.3f} s  peak RSS {pol['peak_mib']:6.0f} MiB")
    for ratio, name in ratios:
        print(f"ratio polars core / whole winback {name} = {ratio:.2f}x")
    worst = min(ratios)
    if args.min_ratio is not None and worst[0] < args.min_ratio:
        print(f"FAIL: whole winback score ({worst[1]}) is only {worst[0]:.2f}x polars's core aggregates, below the "
              f"floor {args.min_ratio}x: compare its aggregation and fit times with compare_score.py and compare_fit.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
