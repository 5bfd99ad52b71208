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
    ap.add_argument("--users", type=int, default=100_000, help="users to synthesize (default 100000)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--rounds", type=int, default=3, help="winback rounds; best time counts (default 3)")
    ap.add_argument("--min-ratio", type=float, default=None, help="exit 1 when the fit ratio is below this")
    args = ap.parse_args(argv)

    x, t_x, T = synthesize(args.users, **TRUTH, seed=args.seed)
    print(f"{args.users:,} users drawn from BG/NBD {TRUTH} (days); "
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


def _fmt(p: dict, ll: float) -> str:
    return "  ".join(f"{k}={p[k]:.4f}" for k in ("r", "alpha", "a", "b")) + f"  log-likelihood={ll:.2f}"


if __name__ == "__main__":
    sys.exit(main())
