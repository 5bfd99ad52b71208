"""`winback simulate`: what users of a synthetic world do after the campaign."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate post-campaign behaviour in a generated world (for demos and evaluation)",
        description=(
            "From what was delivered (the ledger's sent messages; without --ledger every planned "
            "message), draw each user's response with the generator's behavioural model - opens, "
            "clicks, unsubscribes, revivals - and organic activity for everyone, holdout included. "
            "--policy blast evaluates batch-and-blast (one email at 10:00 UTC to every reachable "
            "user) on the same world. Writes DIR/events.arrow (with a 'send' row per delivery) and DIR/outcome.json."
        ),
        epilog=(
            "examples:\n"
            "  winback simulate plan.arrow --truth world/truth.arrow --ledger ledger.db -o outcomes/\n"
            "  winback simulate plan.arrow --truth world/truth.arrow --history world/events.arrow --seed 3 -o outcomes/\n"
            "  winback simulate plan.arrow --truth world/truth.arrow --policy blast --scores scores.arrow -o blast/"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("plan", help="plan file from 'winback plan'")
    p.add_argument("--truth", required=True, metavar="FILE", help="truth.arrow of the generated world")
    p.add_argument("--ledger", default=None, metavar="DB", help="ledger of 'winback send' (what was delivered)")
    p.add_argument("--policy", choices=("winback", "blast"), default="winback",
                   help="'winback' (default): the plan as delivered; 'blast': everyone reachable, one email at 10:00 UTC")
    p.add_argument("--scores", default=None, metavar="FILE",
                   help="with --policy blast: scores file, so the blast reaches the whole reachable base")
    p.add_argument("--history", default=None, metavar="EVENTS",
                   help="the world's events (world/events.arrow): earlier campaigns' sends count toward "
                        "fatigue in the 7 days before each delivery")
    p.add_argument("--days", type=int, default=14, metavar="N", help="days of outcomes after the campaign start (default 14)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory (replaced atomically)")
    p.set_defaults(func=run)


#: what :func:`run` imports, loaded by ``engine.cli`` before it (start-up with the collector held)
IMPORTS = ("engine.synth.simulate",)


def run(args: argparse.Namespace) -> int:
    from engine.synth.simulate import outcome_meta, simulate, write_outcomes

    res = simulate(args.plan, args.truth, args.ledger, seed=args.seed, days=args.days, policy=args.policy,
                   scores=args.scores, history=args.history)
    write_outcomes(res, args.output)
    m = outcome_meta(res)
    print(f"simulated {m['policy']}: {m['deliveries']:,} deliveries to {m['users']:,} users -> "
          f"{m['opens']:,} opens, {m['clicks']:,} clicks, {m['revived']:,} revived, "
          f"{m['unsubscribes']:,} unsubscribes over {m['days']} days -> {args.output}")
    return 0
