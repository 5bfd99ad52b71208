"""`winback sunset`: suppress the users a report put on its sunset list."""

from __future__ import annotations

import argparse

EPILOG = """\
examples:
  winback sunset report/ --ledger ledger.db --dry-run     # count first, write nothing
  winback sunset report/ --ledger ledger.db
  winback sunset report/sunset.csv --ledger ledger.db --channels email

A user is on the sunset list when, outside the holdout, they received the whole
sequence (or the campaign's [policy] sunset_after messages) and did not come back.
Each becomes a suppression in the ledger (by user id, reason sunset) on the channels
they were messaged on, so every later 'winback plan --ledger' and 'winback send'
leaves them out.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sunset",
        help="write a report's sunset list to the ledger as suppressions (with a dry run)",
        description="Suppress in LEDGER every user of SUNSET (the sunset.arrow/.csv of 'winback report', or the "
                    "report directory): later plans and sends leave them out.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("sunset", help="the report directory, or its sunset.arrow / sunset.csv")
    p.add_argument("--ledger", required=True, metavar="DB",
                   help="the ledger to write the suppressions to (the one 'winback send' and 'winback plan' use)")
    p.add_argument("--channels", default=None, metavar="LIST",
                   help="comma-separated channels to suppress, e.g. email,sms (default: the channels each user was "
                        "messaged on)")
    p.add_argument("--dry-run", action="store_true", help="count what would be suppressed; write nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.reporting.sunset import apply_sunset

    channels = [c.strip() for c in args.channels.split(",") if c.strip()] if args.channels else None
    out = apply_sunset(args.sunset, args.ledger, channels=channels, dry_run=args.dry_run)
    for note in out.get("notes") or ():
        print(note)
    if args.dry_run:
        print(f"dry run: {out['users']:,} users, {out['new']:,} new suppressions of {out['suppressions']:,} "
              f"would be written to {args.ledger} (nothing written)")
    else:
        print(f"sunset {out['users']:,} users: {out['new']:,} new suppressions in {args.ledger} "
              f"({out['suppressions'] - out['new']:,} were already there)")
    return 0
