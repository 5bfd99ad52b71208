"""`winback backtest`: would the scores have known who came back? AUC, lift, calibration, send-hour hits."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "backtest",
        help="check the scores on your own history: score as of T minus the horizon, compare with what happened",
        description=(
            "Score every user as of --as-of minus --horizon days from the events before that cut (the same "
            "scoring as 'winback score'), then compare with what users did between the cut and --as-of: "
            "AUC and top-decile lift of lapse_risk against recency-only and frequency-only rankings, "
            "calibration by decile (predicted vs actual share with no activity), and the share of users who "
            "engaged within an hour of their best_hour_local against their timezone's population best hour. "
            "Prints a table; with -o writes DIR/index.html (calibration plot, lift chart) and DIR/backtest.json."
        ),
        epilog=(
            "examples:\n"
            "  winback backtest world/users.arrow world/events.arrow --as-of 2026-11-01 -o backtest/\n"
            "  winback backtest users.parquet events/ --as-of 2026-11-01 --horizon 90\n"
            "  winback backtest users.csv events.csv --as-of 1997-10-01 --activity purchase -o backtest/"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("users", help="users file or directory (.arrow/.feather, .parquet, .csv)")
    p.add_argument("events", help="events file or directory; events after --as-of are ignored")
    p.add_argument("--as-of", required=True, metavar="T",
                   help="end of the checked window, ISO 8601 UTC (e.g. 2026-11-01); the scores are made as of "
                        "T minus --horizon days")
    p.add_argument("--horizon", type=float, default=None, metavar="DAYS",
                   help="length of the checked window and lapse_risk's horizon, in days (default 30)")
    p.add_argument("--activity", default=None, metavar="EVENTS",
                   help="comma-separated events that make a user active (default session,purchase,click)")
    p.add_argument("--default-timezone", default=None, metavar="TZ",
                   help="IANA timezone for users without one (default UTC)")
    p.add_argument("--penalizer", type=float, default=None, metavar="C",
                   help="L2 penalty of the BG/NBD fit, as in 'winback score' (default 0)")
    p.add_argument("--lapse-model", choices=("auto", "auto_pareto", "closed_form", "pareto", "learned"),
                   default=None,
                   help="lapse_risk at the cut, as in 'winback score' (default auto: BG/NBD, or the learned "
                        "model when a check one horizon before the cut says it ranks better); run once with "
                        "--lapse-model pareto to see whether Pareto/NBD ranks your users better")
    p.add_argument("--send-time-cohort", default=None, metavar="COLUMN",
                   help="score the cut with the send-time prior tilted by this users column's cohorts, as in "
                        "'winback score'; compare the best-hour rows with a run without it, e.g. "
                        "--send-time-cohort segment")
    p.add_argument("-o", "--output", default=None, metavar="DIR",
                   help="write DIR/index.html and DIR/backtest.json (replaced atomically; needs "
                        "pip install 'winback[report]' for the plots)")
    p.set_defaults(func=run)


#: what :func:`run` imports, loaded by ``engine.cli`` before it (start-up with the collector held)
IMPORTS = ("engine.scoring.backtest", "engine.scoring.pipeline", "engine.reporting.backtest_html")


def run(args: argparse.Namespace) -> int:
    from engine.reporting.backtest_html import backtest_report
    from engine.scoring.backtest import terminal_table

    options = {name: value for name, value in (
        ("horizon_days", args.horizon), ("activity", args.activity), ("default_timezone", args.default_timezone),
        ("penalizer", args.penalizer), ("lapse_model", args.lapse_model),
        ("send_time_cohort", args.send_time_cohort)) if value is not None}  # else the library's defaults (scoring.settings)
    result = backtest_report(args.users, args.events, out_dir=args.output, as_of=args.as_of, **options)
    print(terminal_table(result))
    if result.get("page"):
        print(f"page: {result['page']}")
    return 0
