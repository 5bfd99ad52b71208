"""`winback partition`: hash-partition users and events for per-partition scoring."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "partition",
        help="split users and events into Parquet datasets partitioned by user-id hash",
        description=(
            "Write USERS and EVENTS as Parquet datasets under DIR/users/part=K and "
            "DIR/events/part=K, partitioned by a stable hash of user_id, so each partition "
            "holds all events of its users and can be scored on its own."
        ),
        epilog="example:\n  winback partition world/users.arrow world/events.arrow -o world-parts/ --partitions 16",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("users", help="users file or directory (Arrow IPC, Parquet or CSV)")
    p.add_argument("events", help="events file or directory (Arrow IPC, Parquet or CSV)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory (replaced atomically)")
    p.add_argument("--partitions", type=int, default=8, metavar="N", help="number of partitions (default 8)")
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.io.partition import partition

    summary = partition(args.users, args.events, args.output, partitions=args.partitions, progress=not args.no_progress)
    print(
        f"wrote {summary['users']:,} users and {summary['events']:,} events "
        f"in {summary['partitions']} partitions to {summary['path']}"
    )
    return 0
