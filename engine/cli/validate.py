"""`winback validate`: check users and events against the data contract."""

from __future__ import annotations

import argparse

EPILOG = """\
examples:
  winback validate world/users.arrow world/events.arrow --as-of 2026-11-01
  winback validate users.csv events/ --on-bad-rows quarantine --quarantine-dir rejected/

exit status: 0 when every row passes (or bad rows were quarantined), 2 when a file
breaks the data contract (the message names the file, column, row count and examples).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        help="check users and events files against the data contract",
        description=(
            "Read USERS and EVENTS exactly as 'winback score' does and report every row that "
            "breaks the data contract (null or duplicate user_id, unknown timezone, event or "
            "channel, events of unknown users, timestamps after --as-of, wrong types), per kind."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("users", help="users file or directory (.arrow/.feather, .parquet or .csv)")
    p.add_argument("events", help="events file or directory (.arrow/.feather, .parquet or .csv)")
    p.add_argument("--as-of", default=None, metavar="T",
                   help="ISO 8601 date or time (UTC unless it has an offset); events after it are bad rows "
                        "(default: now)")
    p.add_argument("--on-bad-rows", choices=("error", "quarantine"), default="error",
                   help="'error' (default): exit 2 with a description of the bad rows; 'quarantine': write "
                        "them with a reason column to a .rejected.arrow file and exit 0")
    p.add_argument("--quarantine-dir", default=None, metavar="DIR",
                   help="where quarantined rows go (users.rejected.arrow, events.rejected.arrow); "
                        "default: <name>.rejected.arrow beside each input")
    p.add_argument("--items", default=None, metavar="FILE",
                   help="also check a catalogue (item_id, title, category, added_at[, expires_at, editorial]), "
                        "e.g. --items world/items.arrow")
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    p.set_defaults(func=run)


#: what :func:`run` imports, loaded by ``engine.cli`` before it (start-up with the collector held)
IMPORTS = ("engine.io.validation", "engine.io.addresses")


def run(args: argparse.Namespace) -> int:
    from engine.io.validation import validate

    report = validate(args.users, args.events, as_of=args.as_of, on_bad_rows=args.on_bad_rows,
                      quarantine_dir=args.quarantine_dir, progress=not args.no_progress, items=args.items)
    print(f"{'table':<8}{'rows read':>14}{'good':>14}{'rejected':>12}")
    print(f"{'users':<8}{report.users_read:>14,}{report.users_good:>14,}"
          f"{report.users_read - report.users_good:>12,}")
    print(f"{'events':<8}{report.events_read:>14,}{report.events_good:>14,}"
          f"{report.events_read - report.events_good:>12,}")
    if report.items is not None:
        print(f"{'items':<8}{report.items_read:>14,}{report.items_good:>14,}"
              f"{report.items_read - report.items_good:>12,}")
    from engine.io.addresses import describe

    for line in [*report.notes, *describe(report.addresses)]:
        print(line)
    if report.clean:
        print("clean: every row passes the data contract")
        return 0
    print()
    print(f"{'table':<8}{'reason':<20}{'column':<15}{'rows':>12}")
    for what, reason, column, count in report.rows():
        print(f"{what:<8}{reason:<20}{column:<15}{count:>12,}")
    for what, path in report.quarantine.items():
        print(f"rejected {what} rows written to {path}")
    return 0
