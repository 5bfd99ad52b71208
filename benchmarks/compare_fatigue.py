"""Side by side: the learned fatigue budget vs the fixed rule, on a generated world.

One run, one world (``winback generate``): the world is scored twice (``fatigue="rule"``
and ``"learned"``), each scores table is planned with the same campaign, each plan's
messages are simulated with the generator's behavioural model (same seed; every planned
message delivered) and measured against its holdout.  Printed per budget: messages,
unsubscribes, re-engagement lift and **unsubscribes per incremental re-engaged user**
(lower is better), and for the learned model the rank correlation (Spearman) of
``fatigue_sensitivity`` with the world's true per-user fatigue sensitivity, overall and
for users with 1, 3 and 5+ opens in the 26 weeks scored.

    python benchmarks/compare_fatigue.py --world /tmp/world-100k
    python benchmarks/compare_fatigue.py --world /tmp/world-100k --campaign examples/winback_lapsing.toml --seeds 1,2,3
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pyarrow.feather as feather  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", required=True, metavar="DIR", help="a 'winback generate' output directory")
    ap.add_argument("--campaign", default="examples/winback_lapsing.toml", help="campaign file (default lapsing)")
    ap.add_argument("--seeds", default="7", help="simulation seeds, comma-separated (default 7)")
    args = ap.parse_args(argv)
    import engine
    from scipy.stats import spearmanr

    world = Path(args.world)
    as_of = json.loads((world / "world.json").read_text())["as_of"]
    truth = feather.read_table(world / "truth.arrow")
    scores = {k: engine.score(world / "users.arrow", world / "events.arrow", as_of=as_of, fatigue=k)
              for k in ("rule", "learned")}
    s = scores["learned"]
    meta = engine.summary_of(s)["fatigue"]
    t = dict(zip(truth["user_id"].to_pylist(), truth["fatigue_sensitivity"].to_numpy()))
    true = np.array([t[u] for u in s["user_id"].to_pylist()])
    est = s["fatigue_sensitivity"].to_numpy()
    print(f"learned fatigue: population beta {meta['beta']:.4f} per message of load (truth: mean "
          f"{true.mean():.4f}), response drift {meta.get('drift_per_week', 0.0):+.4f} per week, spread {meta['sigma']:.4f}, unsubscribe per message {meta['unsubscribe_per_message']:.5f}"
          f" (truth: mean {truth['unsub_risk'].to_numpy().mean():.5f}), {meta['users_with_opens']:,} users with opens")
    opens = s["email_opens_90d"].to_numpy() + s["sms_opens_90d"].to_numpy() + s["push_opens_90d"].to_numpy()
    print(f"  Spearman(fatigue_sensitivity, truth): all users {spearmanr(est, true).correlation:.3f}" + "".join(
        f", {k}+ opens in 90 d ({int((opens >= k).sum()):,}) {spearmanr(est[opens >= k], true[opens >= k]).correlation:.3f}"
        for k in (1, 3, 5) if (opens >= k).sum() > 10))
    budgets = {k: np.bincount(v["fatigue_budget"].to_numpy(), minlength=4) for k, v in scores.items()}
    for k, b in budgets.items():
        print(f"  fatigue_budget {k:>7}: " + ", ".join(f"{i}: {c:,}" for i, c in enumerate(b)))
    print(f"{'budget':>8} {'seed':>5} {'messages':>9} {'unsubs':>7} {'lift pp':>8} {'incr. users':>12} "
          f"{'unsubs / incr. user':>20}")
    with tempfile.TemporaryDirectory() as tmp:
        for k, sc in scores.items():
            plan = engine.plan(sc, args.campaign, as_of=as_of)
            for seed in (int(v) for v in args.seeds.split(",")):
                out = Path(tmp) / f"{k}-{seed}"
                engine.write_outcomes(engine.simulate(plan, world / "truth.arrow", seed=seed), out)
                r = engine.report(plan, out)
                c = r["metrics"]["reengaged"]
                unsub = r["metrics"]["unsubscribed"]["treated"]["count"]
                incr = (c["lift"] or 0.0) * c["treated"]["users"]
                per = unsub / incr if incr > 0 else float("nan")
                print(f"{k:>8} {seed:>5} {r['messages_sent']:>9,} {unsub:>7,} {100 * (c['lift'] or 0):>8.2f} "
                      f"{incr:>12.0f} {per:>20.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
