"""Side by side: scoring with the catalogue (category affinity, item statistics) vs without.

One run, one generated world with a catalogue (``winback generate --items N``): the
whole ``engine.score.score`` (read, validate, fused pass, BG/NBD fit, derived columns)
without ``items`` and with ``items``, each in its own process for ``--rounds`` rounds,
alternating; the best time of each is compared.  The target (issue: content themes)
is scoring with items within 1.5x of scoring without on 1M users and 100k items:

    ratio = seconds without items / seconds with items    (higher is better; >= 0.67 meets it)

Then it times ``plan --items`` (theme and top-3 picks for every audience user and step
of ``examples/winback_content.toml``) against the same plan without items.

    python benchmarks/compare_items.py --quick --min-ratio 0.4      # CI guard, 20k users
    python benchmarks/compare_items.py --users 1000000 --items 100000 --dir /tmp/world-1m
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AS_OF = "2026-11-01T00:00:00Z"

_CHILD = r"""
import json, resource, sys, time
from engine.scoring.pipeline import score
world, with_items = sys.argv[1], sys.argv[2] == "1"
t0 = time.perf_counter()
s = score(f"{world}/users.arrow", f"{world}/events.arrow", as_of="2026-11-01T00:00:00Z",
          items=f"{world}/items.arrow" if with_items else None)
sec = time.perf_counter() - t0
if len(sys.argv) > 3:
    import pyarrow.feather as f
    f.write_feather(s, sys.argv[3], compression="uncompressed")
print(json.dumps({"seconds": sec, "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def _run(world: Path, with_items: bool, out: Path | None = None) -> dict:
    cmd = [sys.executable, "-c", _CHILD, str(world), "1" if with_items else "0"] + ([str(out)] if out else [])
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=None, help="catalogue size (default users // 10)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", default=None, help="world directory (generated when missing)")
    ap.add_argument("--quick", action="store_true", help="20k users, 2k items, 2 rounds, no plan timing")
    ap.add_argument("--min-ratio", type=float, default=None,
                    help="exit 1 when without/with falls below this (the CI guard)")
    a = ap.parse_args(argv)
    if a.quick:
        a.users, a.items, a.rounds = 20_000, 2_000, 2
    n_items = a.items or max(200, a.users // 10)
    world = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix="winback-items-"))
    if not (world / "items.arrow").exists():
        from engine.synth.generator import generate

        t0 = time.perf_counter()
        generate(a.users, seed=1, out_dir=world, as_of=AS_OF, n_items=n_items)
        print(f"generated {a.users:,} users / {n_items:,} items in {time.perf_counter() - t0:.1f} s -> {world}")
    meta = json.loads((world / "world.json").read_text())
    _run(world, True)  # compile and cache the kernels outside the timing
    best = {False: None, True: None}
    for _ in range(a.rounds):
        for with_items in (False, True):
            r = _run(world, with_items)
            if best[with_items] is None or r["seconds"] < best[with_items]["seconds"]:
                best[with_items] = r
    ratio = best[False]["seconds"] / best[True]["seconds"]
    print(f"world: {meta['n_users']:,} users, {meta['n_events']:,} events, {meta.get('n_items', n_items):,} items")
    print(f"score without items: {best[False]['seconds']:.2f} s, peak RSS {best[False]['rss_gb']:.2f} GiB")
    print(f"score with items:    {best[True]['seconds']:.2f} s, peak RSS {best[True]['rss_gb']:.2f} GiB")
    print(f"ratio without/with: {ratio:.2f} (with items takes {1 / ratio:.2f}x the time; target <= 1.5x)")
    if not a.quick:
        _plan_timing(world)
    if a.min_ratio is not None and ratio < a.min_ratio:
        print(f"GUARD FAIL: scoring with items is {1 / ratio:.2f}x scoring without, above the floor's "
              f"{1 / a.min_ratio:.2f}x: the affinity pass (engine/affinity.py) or the item columns got slower")
        return 1
    return 0


def _plan_timing(world: Path) -> None:
    from engine.planning.planner import plan

    with tempfile.TemporaryDirectory() as tmp:
        scores = Path(tmp) / "scores.arrow"
        _run(world, True, scores)
        campaign = ROOT / "examples" / "winback_content.toml"
        plain = ROOT / "examples" / "winback_lapsing.toml"
        t0 = time.perf_counter()
        p0 = plan(str(scores), str(plain))
        t_plain = time.perf_counter() - t0
        t0 = time.perf_counter()
        p1 = plan(str(scores), str(campaign), items=str(world / "items.arrow"))
        t_items = time.perf_counter() - t0
        print(f"plan without items: {t_plain:.2f} s ({p0.num_rows:,} rows); plan with items "
              f"(themes + top-3 picks): {t_items:.2f} s ({p1.num_rows:,} rows); peak RSS of this process "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
