"""Side by side: winback's BG/NBD vs ``lifetimes.BetaGeoFitter`` on the same users.

Users are drawn from BG/NBD itself with numpy (lambda ~ Gamma(r, 1/alpha) per day,
p ~ Beta(a, b), tenure T uniform in [7, 730] days), then rounded to whole days as
``winback score`` does (x = repeat active days, t_x and T in days).  Both libraries fit
the same (x, t_x, T) and then predict P(alive) and the expected activity in the next
30 days for every user.  Printed: both parameter sets and log-likelihoods, the seconds
of each, and ``ratio = lifetimes seconds / winback seconds`` (higher is better), all
measured in this run.  numba compilation is done before timing (it is cached on disk in
real runs).

    python benchmarks/compare_bgnbd.py                  # 100k users
    python benchmarks/compare_bgnbd.py --users 1000000  # lifetimes takes minutes here
    python benchmarks/compare_bgnbd.py --users 20000 --min-ratio 100
    python benchmarks/compare_bgnbd.py --users 20000,100000 --seeds 0,1,2,3   # worst case over seeds
    python benchmarks/compare_bgnbd.py --world /tmp/world-1m                  # a 'winback generate' world

With ``--world DIR`` the (x, t_x, T) summary is the one ``winback score`` fits (the
fused pass over DIR's events as of its world.json as_of), and lifetimes fits it both
per user (its usual input) and on winback's compressed rows with weights.
Several sizes/seeds print one line each and the worst and best winback fit time.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from engine.scoring.bgnbd import BGNBD  # noqa: E402

TRUTH = dict(r=0.4, alpha=15.0, a=0.7, b=2.5)  # days


def synthesize(n: int, r: float, alpha: float, a: float, b: float, seed: int = 0):
    """(x, t_x, T) of ``n`` users drawn from BG/NBD, whole days."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    T = rng.integers(7, 731, n).astype(np.float64)
    n_tx = rng.poisson(lam * T)
    x = np.minimum(n_tx, rng.geometric(p))
    t_x = np.where(x > 0, T * rng.beta(np.maximum(x, 1), np.maximum(n_tx - x + 1, 1)), 0.0)
    t_x = np.minimum(np.ceil(t_x), T)
    # a user is active on at most one "transaction" per day: x <= t_x
    x = np.minimum(x, t_x)
    return x.astype(np.float64), t_x, T


def _best(fn, rounds: int):
    best, out = float("inf"), None
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", default="100000", help="users to synthesize, comma-separated (default 100000)")
    ap.add_argument("--seed", "--seeds", dest="seeds", default="0", help="random seed(s), comma-separated (default 0)")
    ap.add_argument("--world", default=None, metavar="DIR", help="fit the summary of a 'winback generate' world")
    ap.add_argument("--rounds", type=int, default=3, help="winback rounds; best time counts (default 3)")
    ap.add_argument("--min-ratio", type=float, default=None, help="exit 1 when the fit ratio is below this")
    args = ap.parse_args(argv)

    if args.world is not None:
        return _world(Path(args.world), args)
    sizes = [int(v) for v in args.users.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")]
    if len(sizes) * len(seeds) > 1:
        return _sweep(sizes, seeds, args)
    return _one(sizes[0], seeds[0], args)


def _one(users: int, seed: int, args) -> int:
    x, t_x, T = synthesize(users, **TRUTH, seed=seed)
    print(f"{users:,} users drawn from BG/NBD {TRUTH} (days); "
          f"{np.mean(x > 0):.0%} with repeat activity")

    warm = BGNBD().fit(x[:2000], t_x[:2000], T[:2000])  # compile the kernels
    warm.expected(30.0, x[:10], t_x[:10], T[:10])
    ours_fit, model = _best(lambda: BGNBD().fit(x, t_x, T), args.rounds)
    ours_pred, _ = _best(lambda: (model.p_alive(x, t_x, T), model.expected(30.0, x, t_x, T)), args.rounds)
    d = model.diagnostics_
    print(f"winback   fit {ours_fit:8.3f} s  predict {ours_pred:8.3f} s  "
          f"({d['unique_rows']:,} unique rows, {d['iterations']} iterations)")
    print("winback   " + _fmt(model.params_, d["log_likelihood"]))

    try:
        import pandas as pd
        from lifetimes import BetaGeoFitter
    except ImportError:
        print("lifetimes is not installed: no ratio")
        return 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        ref = BetaGeoFitter(penalizer_coef=0.0).fit(pd.Series(x), pd.Series(t_x), pd.Series(T))
        ref_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref_p = ref.conditional_probability_alive(x, t_x, T)
        ref_e = np.asarray(ref.conditional_expected_number_of_purchases_up_to_time(30.0, x, t_x, T))
        ref_pred = time.perf_counter() - t0
    probe = BGNBD()
    probe.params_ = {k: float(ref.params_[k]) for k in ("r", "alpha", "a", "b")}
    ref_ll = float(probe.log_likelihood(x, t_x, T).sum())
    print(f"lifetimes fit {ref_fit:8.3f} s  predict {ref_pred:8.3f} s  "
          f"({int(np.sum(~np.isfinite(ref_e)))} NaN expectations)")
    print("lifetimes " + _fmt(probe.params_, ref_ll))
    ratio = ref_fit / ours_fit
    print(f"ratio fit {ratio:.0f}x  predict {ref_pred / ours_pred:.1f}x  (lifetimes / winback)")
    ok = np.isfinite(ref_e)
    print(f"max |p_alive diff| {np.max(np.abs(model.p_alive(x, t_x, T) - ref_p)):.2e}, "
          f"max |expected diff| {np.max(np.abs(model.expected(30.0, x, t_x, T)[ok] - ref_e[ok])):.2e} "
          "(parameter sets differ slightly)")
    if args.min_ratio is not None and ratio < args.min_ratio:
        print(f"fit ratio {ratio:.1f} is below the floor {args.min_ratio}")
        return 1
    return 0



def _lifetimes_fit(x, t_x, T, weights=None):
    import pandas as pd
    from lifetimes import BetaGeoFitter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        ref = BetaGeoFitter(penalizer_coef=0.0).fit(pd.Series(x), pd.Series(t_x), pd.Series(T), weights=weights)
        return time.perf_counter() - t0, ref


def _sweep(sizes, seeds, args) -> int:
    """One line per (size, seed): winback's best-of-rounds fit time, lifetimes' time, the ratio."""
    warm = synthesize(2000, **TRUTH, seed=0)
    BGNBD().fit(*warm)
    print(f"{'users':>9} {'seed':>5} {'rows':>8} {'evals':>6} {'winback s':>10} {'lifetimes s':>12} {'ratio':>7}")
    times, ratios = [], []
    for n in sizes:
        for seed in seeds:
            x, t_x, T = synthesize(n, **TRUTH, seed=seed)
            ours, m = _best(lambda: BGNBD().fit(x, t_x, T), args.rounds)
            ref_s, _ = _lifetimes_fit(x, t_x, T)
            d = m.diagnostics_
            times.append((n, ours))
            ratios.append(ref_s / ours)
            print(f"{n:>9,} {seed:>5} {d['unique_rows']:>8,} {d['evaluations']:>6} {ours:>10.3f} {ref_s:>12.2f} "
                  f"{ref_s / ours:>6.0f}x" + (f"  {d['boundary']}" if d["boundary"] else ""))
    for n in sizes:
        t = [v for k, v in times if k == n]
        print(f"{n:,} users: winback fit worst {max(t):.3f} s, best {min(t):.3f} s (worst/best {max(t) / min(t):.2f})")
    print(f"lowest ratio {min(ratios):.0f}x")
    if args.min_ratio is not None and min(ratios) < args.min_ratio:
        print(f"fit ratio {min(ratios):.1f} is below the floor {args.min_ratio}")
        return 1
    return 0


def _world(world: Path, args) -> int:
    """Fit the (x, t_x, T) summary that 'winback score' fits on a generated world, against lifetimes."""
    import json

    from engine.scoring.pipeline import aggregate, settings

    as_of = json.loads((world / "world.json").read_text())["as_of"]
    t0 = time.perf_counter()
    part = aggregate(world / "users.arrow", world / "events.arrow", settings(as_of=as_of))
    agg = time.perf_counter() - t0
    keep = part.in_window
    x, t_x, T = part.x[keep], part.t_x[keep], part.T[keep]
    cx, ct, cT, cw = part.stats.bgnbd
    BGNBD().fit(x[:2000], t_x[:2000], T[:2000])
    print(f"{world}: {part.table.num_rows:,} users, {len(x):,} active in the model window, {len(cx):,} unique "
          f"rows (aggregation {agg:.1f} s)")
    ours_rows, m = _best(lambda: BGNBD().fit(cx, ct, cT, weights=cw), args.rounds)
    ours_users, _ = _best(lambda: BGNBD().fit(x, t_x, T), args.rounds)
    d = m.diagnostics_
    print(f"winback   fit {ours_rows:8.3f} s on the compressed rows ({d['evaluations']} evaluations), "
          f"{ours_users:8.3f} s from the per-user rows")
    print("winback   " + _fmt(m.params_, d["log_likelihood"]))
    try:
        import lifetimes  # noqa: F401
    except ImportError:
        print("lifetimes is not installed: no ratio")
        return 0
    ref_rows, ref = _lifetimes_fit(cx, ct, cT, weights=cw)
    print(f"lifetimes fit {ref_rows:8.3f} s on the compressed rows with weights: ratio {ref_rows / ours_rows:.0f}x")
    ref_users, ref = _lifetimes_fit(x, t_x, T)
    print(f"lifetimes fit {ref_users:8.3f} s on the per-user rows: ratio {ref_users / ours_users:.0f}x "
          "(each library from per-user rows)")
    probe = BGNBD()
    probe.params_ = {k: float(ref.params_[k]) for k in ("r", "alpha", "a", "b")}
    print("lifetimes " + _fmt(probe.params_, float(probe.log_likelihood(cx, ct, cT) @ cw)))
    if args.min_ratio is not None and ref_users / ours_users < args.min_ratio:
        print(f"fit ratio {ref_users / ours_users:.1f} is below the floor {args.min_ratio}")
        return 1
    return 0


def _fmt(p: dict, ll: float) -> str:
    return "  ".join(f"{k}={p[k]:.4f}" for k in ("r", "alpha", "a", "b")) + f"  log-likelihood={ll:.2f}"


if __name__ == "__main__":
    sys.exit(main())
