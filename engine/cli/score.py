"""`winback score`: one row per user with lapse risk, best send time and fatigue budget."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score",
        help="score every user: lapse risk, best send time, fatigue budget, labels",
        description=(
            "Read USERS and EVENTS, stream the events once through the fused numba pass, fit the "
            "BG/NBD lapse model, and write one row per user (every users column passes through) "
            "with activity summary, per-channel engagement, p_alive/lapse_risk, best send hour, "
            "next_send_at, fatigue budget, lifecycle, contact rating and RFM. The model fit is "
            "stored in the output's schema metadata (winback.score)."
        ),
        epilog=(
            "examples:\n"
            "  winback score world/users.arrow world/events.arrow --as-of 2026-11-01 -o scores.arrow\n"
            "  winback score users.parquet events/ -o scores.parquet --activity session,purchase\n"
            "  winback score users.csv events.csv -o scores.arrow --on-bad-rows quarantine"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("users", help="users file or directory (.arrow/.feather, .parquet, .csv)")
    p.add_argument("events", help="events file or directory (.arrow/.feather, .parquet, .csv)")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="scores file; .arrow (default), .parquet or .csv by suffix; written atomically")
    p.add_argument("--as-of", default=None, metavar="T",
                   help="score as of this UTC instant, ISO 8601 (default: now); later events are bad rows")
    p.add_argument("--activity", default="session,purchase,click", metavar="EVENTS",
                   help="comma-separated events that make a user active (default session,purchase,click)")
    p.add_argument("--default-timezone", default="UTC", metavar="TZ",
                   help="IANA timezone for users without one (default UTC)")
    p.add_argument("--on-bad-rows", choices=("error", "quarantine"), default="error",
                   help="'error' (default): stop with a description of bad rows; 'quarantine': set them "
                        "aside beside the output (<output>.rejected/) and go on")
    p.add_argument("--cap", type=int, default=3, metavar="N",
                   help="cross-channel cap used for fatigue_budget (default 3 messages)")
    p.add_argument("--cap-window", type=int, choices=(7, 30), default=7, metavar="DAYS",
                   help="window of the cap in days, 7 or 30 (default 7)")
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine.atomic import write_table
    from engine.score import score, summary_of

    qdir = None
    if args.on_bad_rows == "quarantine":
        qdir = str(Path(args.output).with_suffix("")) + ".rejected"
    table = score(args.users, args.events, as_of=args.as_of, activity=args.activity,
                  default_timezone=args.default_timezone, on_bad_rows=args.on_bad_rows, quarantine=qdir,
                  policy_cap=args.cap, policy_window_days=args.cap_window, progress=not args.no_progress)
    write_table(table, args.output)
    s = summary_of(table)
    m = s["model"]
    rate = s["events"] / max(s["aggregation_seconds"], 1e-9)
    print(f"scored {s['users']:,} users from {s['events']:,} events in {s['seconds']:.1f} s "
          f"(aggregation {s['aggregation_seconds']:.2f} s, {rate / 1e6:.1f}M events/s) -> {args.output}")
    print(f"  BG/NBD (days): r={m['r']:.4g} alpha={m['alpha']:.4g} a={m['a']:.4g} b={m['b']:.4g}  "
          f"log-likelihood {m['log_likelihood']:.1f} over {m['users']:,} users / {m['unique_rows']:,} unique rows, "
          f"{m['iterations']} iterations")
    print("  lifecycle: " + ", ".join(f"{k} {v:,}" for k, v in s["lifecycle"].items()))
    if s.get("users_rejected") or s.get("events_rejected"):
        print(f"  quarantined {s.get('users_rejected', 0):,} user rows and {s.get('events_rejected', 0):,} event rows "
              f"in {qdir}/ (each with a reason column)")
    return 0
