"""The BG/NBD fit as ``winback score`` runs it, against lifetimes on the same summary.

The summary is what scoring hands the model: the fused pass over a world's events gives
each user's (x, t_x, T) in days, compressed to unique rows with user counts as weights
(``engine.scoring.pipeline.aggregate`` then ``reduce_stats``'s ``compress``).  Both fits
get exactly those rows and weights: winback's ``BGNBD().fit`` and
``lifetimes.BetaGeoFitter(penalizer_coef=0).fit(..., weights=...)``.  Best of
``--rounds`` each, winback's fit timed as the mean of a batch of back-to-back fits about as
long as one lifetimes fit (so both sides meet the same machine noise);
``ratio = lifetimes seconds / winback seconds`` (higher is better).

The default world is ``winback generate --users 200000 --seed 7`` (about 12M events).  The
CI guard uses the 1M-user seed-7 world (59.5M events, about a minute to make and
aggregate): a slow optimiser shows on real summaries, not on ones drawn from BG/NBD
itself, and erratically by size (measured 2026-12-01 with the fit of main: subsets of
that world's users took 6-8 BFGS iterations at 200k and 400k users, 40+ at 600k, 5 at
800k, 500 at all 1M (315 s, lifetimes 5.5 s)).  ``--shape bgnbd`` uses the
BG/NBD-process world instead.  A winback fit already far below the floor gets one round;
with ``--min-ratio``, a fit still running after ten times what the floor allows (at least
10 s) is stopped and fails, so the guard's time stays bounded.

    python benchmarks/compare_fit.py                        # 200k users, seed 7
    python benchmarks/compare_fit.py --users 1000000 --dir /tmp/worlds

``WINBACK_BENCH_SLOWDOWN=fit:3`` fits three times per timed round.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import AS_OF, ROOT, bgnbd_world, generator_world, peak_mib, slowdown  # noqa: E402

sys.path.insert(0, str(ROOT))


def summary(world: Path):
    """(x, t_x, T, weights) of the world's users exactly as scoring fits them, and the seconds it took."""
    from engine.scoring.bgnbd import compress
    from engine.scoring.pipeline import aggregate, settings

    t0 = time.perf_counter()
    part = aggregate(world / "users.arrow", world / "events.arrow", settings(as_of=AS_OF))
    x, t_x, T, w = compress(*part.stats.bgnbd[:3], weights=part.stats.bgnbd[3])[:4]
    return (x, t_x, T, w), time.perf_counter() - t0


def _timed_fit(model_cls, rows, repeat: int, batch: int, limit: float | None):
    """Seconds of ``repeat`` fits (the mean over ``batch`` back-to-back runs of them) and the
    model; with ``limit``, in a forked child killed after ``limit`` s (None then)."""
    if limit is None:
        t0 = time.perf_counter()
        for _ in range(repeat * batch):
            model = model_cls().fit(*rows[:3], weights=rows[3])
        return (time.perf_counter() - t0) / batch, model
    import multiprocessing as mp
    import queue

    ctx = mp.get_context("fork")  # the child shares the summary without a copy
    results = ctx.Queue()

    def child():
        t0 = time.perf_counter()
        for _ in range(repeat * batch):
            m = model_cls().fit(*rows[:3], weights=rows[3])
        results.put(((time.perf_counter() - t0) / batch, m.params_, m.diagnostics_))

    proc = ctx.Process(target=child, daemon=True)
    proc.start()
    try:
        seconds, params, diagnostics = results.get(timeout=limit)
    except queue.Empty:
        proc.kill()
        proc.join()
        return None
    proc.join()
    model = model_cls()
    model.params_, model.diagnostics_ = params, diagnostics
    return seconds, model


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=200_000, help="users in the world (default 200000)")
    ap.add_argument("--seed", type=int, default=7, help="world seed (default 7)")
    ap.add_argument("--shape", choices=("generator", "bgnbd"), default="generator",
                    help="'generator' (winback generate, default) or 'bgnbd' (benchmarks/bgnbd_world.py)")
    ap.add_argument("--rounds", type=int, default=3, help="fits of each, best kept (default 3)")
    ap.add_argument("--dir", default=None, help="keep the world here (default: a temporary directory)")
    ap.add_argument("--min-ratio", type=float, default=None, help="exit 1 when lifetimes / winback is below this")
    args = ap.parse_args(argv)
    from engine.scoring.bgnbd import BGNBD

    with tempfile.TemporaryDirectory(prefix="winback-fit-") as tmp:
        base = Path(args.dir) if args.dir else Path(tmp)
        make = generator_world if args.shape == "generator" else bgnbd_world
        world = make(args.users, args.seed, base)
        (x, t_x, T, w), agg = summary(world)
    repeat = slowdown("fit")
    ours, theirs = [], []
    batch = None
    model = bg = None
    try:
        from lifetimes import BetaGeoFitter
    except ImportError:
        BetaGeoFitter = None
    for _ in range(args.rounds):
        if BetaGeoFitter is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                bg = BetaGeoFitter(penalizer_coef=0.0).fit(x, t_x, T, weights=w)
                theirs.append(time.perf_counter() - t0)
        # with a floor, a fit 10x slower than the floor allows is stopped (CI time stays bounded)
        limit = max(10.0, 10 * min(theirs) / args.min_ratio) if theirs and args.min_ratio else None
        if batch is None:  # winback's fit is ~30x shorter: repeat it to a similar span, so that both
            probe = _timed_fit(BGNBD, (x, t_x, T, w), 1, 1, limit)  # sides meet the same machine noise
            if probe is None:
                batch = 1
            else:
                batch = max(1, min(50, int(min(theirs) / max(probe[0], 1e-6)))) if theirs else 1
        got = _timed_fit(BGNBD, (x, t_x, T, w), repeat, batch, None if limit is None else limit * batch)
        if got is None:
            print(f"winback's fit did not finish within {limit:.0f} s (lifetimes {min(theirs):.2f} s): stopped")
            print(f"FAIL: the BG/NBD fit is below 1/{10 * args.min_ratio:.0f} of lifetimes on the same summary: "
                  "profile engine/scoring/bgnbd.py fit (iterations, likelihood cost)")
            return 1
        seconds, model = got
        ours.append(seconds)
        if theirs and args.min_ratio and min(theirs) / min(ours) < args.min_ratio / 3:
            print(f"  (winback's fit took {ours[-1]:.1f} s, far below the floor already: no more rounds)")
            break
    p = model.params_
    print(f"BG/NBD fit on the summary of {args.shape} world {args.users:,} users (seed {args.seed}): {len(x):,} unique "
          f"rows, {int(w.sum()):,} users (summary from the pass in {agg:.1f} s); best of {args.rounds}:")
    print(f"  winback   {min(ours):8.3f} s  (mean of {batch} fits a round)  r={p['r']:.4g} alpha={p['alpha']:.4g} a={p['a']:.4g} b={p['b']:.4g}  "
          f"iterations {model.diagnostics_.get('iterations')}, converged {model.diagnostics_.get('converged')}")
    if not theirs:
        print("  lifetimes not installed (pip install 'winback[bench]'): no ratio")
        return 0
    q = bg.params_
    print(f"  lifetimes {min(theirs):8.3f} s  r={q['r']:.4g} alpha={q['alpha']:.4g} a={q['a']:.4g} b={q['b']:.4g}")
    ratio = min(theirs) / min(ours)
    print(f"ratio lifetimes / winback = {ratio:.1f}x  (peak RSS {peak_mib():.0f} MiB, this process)")
    if args.min_ratio is not None and ratio < args.min_ratio:
        print(f"FAIL: the BG/NBD fit is only {ratio:.1f}x lifetimes on the same summary, below the floor "
              f"{args.min_ratio}x: profile engine/scoring/bgnbd.py fit (iterations, likelihood cost)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
