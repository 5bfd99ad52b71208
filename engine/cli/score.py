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
            "stored in the output's schema metadata (winback.score). Given a 'winback partition' "
            "output (pass the directory once, or its users/ and events/ directories), scores it "
            "partition by partition (with --dask, on a Dask cluster) and writes a Parquet dataset "
            "OUTPUT/part=K/part-0.parquet with the same per-user result as one pass over everything."
        ),
        epilog=(
            "examples:\n"
            "  winback score world/users.arrow world/events.arrow --as-of 2026-11-01 -o scores.arrow\n"
            "  winback score users.parquet events/ -o scores.parquet --activity session,purchase\n"
            "  winback score users.csv events.csv -o scores.arrow --on-bad-rows quarantine\n"
            "  winback partition users.arrow events.arrow -o parts/ --partitions 16\n"
            "  winback score parts/ --as-of 2026-11-01 -o scores/ --dask local\n"
            "  winback score parts/users parts/events -o scores/ --dask tcp://10.0.0.5:8786\n"
            "  winback score world/users.arrow world/events.arrow --items world/items.arrow -o scores.arrow"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("users", help="users file or directory (.arrow/.feather, .parquet, .csv)")
    p.add_argument("events", nargs="?", default=None,
                   help="events file or directory (.arrow/.feather, .parquet, .csv); omit it when USERS is a "
                        "'winback partition' output directory")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="scores file; .arrow (default), .parquet or .csv by suffix; written atomically "
                        "(a Parquet dataset directory for a partitioned input)")
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
    p.add_argument("--items", default=None, metavar="FILE",
                   help="the catalogue (item_id, title, category, added_at[, expires_at, editorial]): events "
                        "with an item_id then give each user category_affinity, affinity_confidence, "
                        "top_category and consumed_items, and each item its popularity and trend, for "
                        "'winback plan --items' to pick a theme and items per message "
                        "(e.g. --items world/items.arrow)")
    p.add_argument("--affinity-half-life", type=float, default=90.0, metavar="DAYS",
                   help="half-life of an item interaction in the category affinity (default 90 days)")
    add_dask_options(p, "score a partitioned input on Dask: 'local' (a LocalCluster on this machine) or a "
                        "scheduler address such as tcp://10.0.0.5:8786 (workers need winback[dask] and the "
                        "data on storage they can read)")
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    p.set_defaults(func=run)


def add_dask_options(p: argparse.ArgumentParser, what: str) -> None:
    """``--dask ADDRESS`` (help: ``what``) and ``--workers N``, shared by score and plan."""
    p.add_argument("--dask", default=None, metavar="ADDRESS", help=what + "; needs pip install 'winback[dask]'")
    p.add_argument("--workers", type=int, default=2, metavar="N",
                   help="worker processes of --dask local (default 2, one thread each)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine.io.atomic import write_table
    from engine.scoring.pipeline import score, summary_of

    qdir = None
    if args.on_bad_rows == "quarantine":
        qdir = str(Path(args.output).with_suffix("")) + ".rejected"
    parts = _partitioned(args)
    if parts is not None:
        return _run_partitioned(args, parts, qdir)
    if args.events is None:
        from engine.errors import ConfigError

        raise ConfigError(f"{args.users}: give EVENTS too, or pass the directory written by 'winback partition'")
    table = score(args.users, args.events, as_of=args.as_of, activity=args.activity,
                  default_timezone=args.default_timezone, on_bad_rows=args.on_bad_rows, quarantine=qdir,
                  policy_cap=args.cap, policy_window_days=args.cap_window, progress=not args.no_progress,
                  items=args.items, affinity_half_life_days=args.affinity_half_life)
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
    if s.get("timezone_sources"):
        print("  timezones: " + ", ".join(f"{k} {v:,}" for k, v in s["timezone_sources"].items())
              + f" (default: hours learned in {args.default_timezone}, sent in the campaign's timezone)")
    if s.get("items"):
        it = s["items"]
        print(f"  items: {it['items']:,} in {len(it['categories'])} categories; {it['item_events']:,} item events "
              f"gave affinities" + (f" ({it['unknown_item_events']:,} events name items not in the catalogue and "
                                     "were skipped)" if it["unknown_item_events"] else ""))
    if s.get("users_rejected") or s.get("events_rejected"):
        print(f"  quarantined {s.get('users_rejected', 0):,} user rows and {s.get('events_rejected', 0):,} event rows "
              f"in {qdir}/ (each with a reason column)")
    return 0


def _partitioned(args: argparse.Namespace) -> str | None:
    """The partition directory when USERS (and EVENTS) name a 'winback partition' output."""
    from pathlib import Path

    from engine.scoring.distributed import is_partitioned
    from engine.errors import ConfigError, InputError

    users = Path(args.users)
    if not users.exists():
        raise InputError(f"{users}: no such file or directory; pass the users file, or the directory written "
                         "by 'winback partition'")
    if args.events is None and is_partitioned(users):
        return str(users)
    if args.events is not None and users.name == "users" and Path(args.events).name == "events" \
            and users.parent.resolve() == Path(args.events).parent.resolve() and is_partitioned(users.parent):
        return str(users.parent)
    if args.dask is not None:
        raise ConfigError(f"--dask needs a partitioned input; run 'winback partition {args.users} "
                          f"{args.events or 'EVENTS'} -o parts/ --partitions N' first, then "
                          "'winback score parts/ --dask ...'")
    return None


def _run_partitioned(args: argparse.Namespace, parts: str, qdir: str | None) -> int:
    from engine.scoring.distributed import score_partitioned

    s = score_partitioned(parts, out_dir=args.output, as_of=args.as_of, dask=args.dask, n_workers=args.workers,
                          activity=args.activity, default_timezone=args.default_timezone,
                          on_bad_rows=args.on_bad_rows, quarantine=qdir, policy_cap=args.cap,
                          policy_window_days=args.cap_window, items=args.items,
                          affinity_half_life_days=args.affinity_half_life)
    m = s["model"]
    where = "in this process" if args.dask is None else f"on Dask ({args.dask}, {s['workers']} workers)"
    print(f"scored {s['users']:,} users from {s['events']:,} events in {s['partitions']} partitions {where} "
          f"in {s['seconds']:.1f} s (aggregate {s['aggregate_seconds']:.2f} s, fit {s['reduce_seconds']:.2f} s, "
          f"finalize {s['finalize_seconds']:.2f} s) -> {args.output}")
    print(f"  BG/NBD (days): r={m['r']:.4g} alpha={m['alpha']:.4g} a={m['a']:.4g} b={m['b']:.4g}  "
          f"log-likelihood {m['log_likelihood']:.1f} over {m['users']:,} users / {m['unique_rows']:,} unique rows")
    print("  lifecycle: " + ", ".join(f"{k} {v:,}" for k, v in s["lifecycle"].items()))
    if s.get("users_rejected") or s.get("events_rejected"):
        print(f"  quarantined {s.get('users_rejected', 0):,} user rows and {s.get('events_rejected', 0):,} event rows "
              f"in {qdir}/part=K/ (each with a reason column)")
    return 0
