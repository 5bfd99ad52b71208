"""`winback generate`: a synthetic world with a known truth."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from engine.synth import DEFAULT_AS_OF, FORMATS

    p = sub.add_parser(
        "generate",
        help="generate a synthetic world (users, events, truth) to try winback on",
        description=(
            "Write DIR/users.arrow, DIR/events.arrow, DIR/truth.arrow and DIR/world.json: users\n"
            "over ~20 timezones with BG/NBD-style activity, dropouts, purchases and a past\n"
            "campaign history whose responses depend on the hour, channel and fatigue.\n"
            "truth.arrow says who is really alive, their preferred hour and channel response\n"
            "rates, so scoring accuracy and campaign lift can be measured. Same seed, same files.\n"
            "With a catalogue (--items, on by default) DIR/items.arrow lists the items, sessions\n"
            "and purchases name an item_id chosen from drifting tastes, and truth.arrow says\n"
            "which message theme each user answers (theme, taste_drift).\n"
            "All files appear together once complete (world.json last)."
        ),
        epilog=(
            "examples:\n"
            "  winback generate --users 100000 --seed 7 -o world/\n"
            "  winback generate --users 5000 --bad-rows 0.01 -o bad-world/   # for 'winback validate'\n"
            "  winback generate --users 1000000 --format parquet -o big/     # smaller files (zstd)\n"
            "  winback generate --users 50000 --items 5000 -o world/         # 5000 catalogue items\n"
            "  winback generate --users 50000 --items 0 -o plain/            # no catalogue, no item_id"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--users", type=int, default=10_000, metavar="N", help="number of users (default 10000)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    p.add_argument("--as-of", default=DEFAULT_AS_OF, metavar="T",
                   help=f"end of the history, ISO 8601 UTC (default {DEFAULT_AS_OF})")
    p.add_argument("--days", type=int, default=365, metavar="D", help="days of history before --as-of (default 365)")
    p.add_argument("--bad-rows", type=float, default=0.0, metavar="F",
                   help="mix in about F (0 <= F < 0.5) of bad rows of every kind 'winback validate' "
                        "rejects, e.g. 0.01; world.json counts them per kind (default 0)")
    p.add_argument("--items", type=int, default=None, metavar="N",
                   help="catalogue size: N items in DIR/items.arrow, an item_id on 70%% of sessions and "
                        "every purchase, and a true theme per user; 0 = no catalogue (the files of "
                        "earlier versions). Default: users // 20, between 200 and 100000; "
                        "e.g. --items 5000")
    p.add_argument("--format", choices=FORMATS, default="arrow",
                   help="file format: arrow (Arrow IPC, uncompressed, memory-mappable; default) "
                        "or parquet (.parquet files, zstd, about 2.5x smaller)")
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.synth.generator import generate

    s = generate(args.users, seed=args.seed, out_dir=args.output, as_of=args.as_of, days=args.days,
                 bad_rows=args.bad_rows, format=args.format, progress=not args.no_progress,
                 n_items=args.items)
    print(f"generated {s['n_users']:,} users and {s['n_events']:,} events in {s['seconds']:.1f} s "
          f"(as of {s['as_of']}, seed {s['seed']}); {s['alive_share']:.1%} of users truly alive")
    print("  " + ", ".join(f"{k} {v:,}" for k, v in s["events_by_type"].items()))
    if s["n_items"]:
        print(f"  {s['n_items']:,} catalogue items")
    if s["bad_rows"]:
        for table, kinds in s["bad_rows"].items():
            print(f"  bad {table} rows mixed in: " + ", ".join(f"{k} {v:,}" for k, v in kinds.items()))
    print("  files: " + ", ".join(s["files"].values()))
    return 0
