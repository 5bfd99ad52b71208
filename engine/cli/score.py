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
            "OUTPUT/part=K/part-0.parquet with the same per-user result as one pass over everything. "
            "When a 'winback backtest -o DIR' of the same USERS and EVENTS files sits beside OUTPUT (its "
            "backtest.json in OUTPUT's directory or a direct subdirectory), prints that backtest's headline."
        ),
        epilog=(
            "examples:\n"
            "  winback score world/users.arrow world/events.arrow --as-of 2026-11-01 -o scores.arrow\n"
            "  winback score users.parquet events/ -o scores.parquet --activity session,purchase\n"
            "  winback score users.csv events.csv -o scores.arrow --on-bad-rows quarantine\n"
            "  winback partition users.arrow events.arrow -o parts/ --partitions 16\n"
            "  winback score parts/ --as-of 2026-11-01 -o scores/ --dask local\n"
            "  winback score parts/users parts/events -o scores/ --dask tcp://10.0.0.5:8786\n"
            "  winback score world/users.arrow world/events.arrow --items world/items.arrow -o scores.arrow\n"
            "  winback score world/users.arrow world/events.arrow --horizon 90 --penalizer 0.001 -o scores.arrow"
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
    p.add_argument("--activity", default=None, metavar="EVENTS",
                   help="comma-separated events that make a user active (default session,purchase,click)")
    p.add_argument("--default-timezone", default=None, metavar="TZ",
                   help="IANA timezone for users without one (default UTC)")
    p.add_argument("--on-bad-rows", choices=("error", "quarantine"), default="error",
                   help="'error' (default): stop with a description of bad rows; 'quarantine': set them "
                        "aside beside the output (<output>.rejected/) and go on")
    p.add_argument("--cap", type=int, default=None, metavar="N",
                   help="cross-channel cap used for fatigue_budget, 1 to 1000 messages per --cap-window (default 3), e.g. --cap 5")
    p.add_argument("--cap-window", type=int, choices=(7, 30), default=None, metavar="DAYS",
                   help="window of the cap in days, 7 or 30 (default 7)")
    p.add_argument("--horizon", type=float, default=None, metavar="DAYS",
                   help="lapse_risk is the chance of no activity in the next DAYS days (default 30), "
                        "e.g. --horizon 90 for a quarterly view")
    p.add_argument("--penalizer", type=float, default=None, metavar="C",
                   help="L2 penalty on the BG/NBD parameters, lifetimes' penalizer_coef (default 0: plain "
                        "maximum likelihood); e.g. --penalizer 0.001 pulls a boundary fit inside")
    p.add_argument("--lapse-model", choices=("auto", "auto_pareto", "closed_form", "pareto", "learned"),
                   default=None,
                   help="lapse_risk: 'auto' (default) the BG/NBD closed form, or a model learned by time split "
                        "when a check on the last --horizon days says it ranks better; 'auto_pareto' also fits "
                        "Pareto/NBD at that check and takes it when it ranks better (about 0.4 s more); "
                        "'closed_form' (BG/NBD), 'pareto' (Pareto/NBD) or 'learned' to force one. Compare them "
                        "on your data with 'winback backtest --lapse-model ...', e.g. --lapse-model pareto")
    p.add_argument("--fatigue", choices=("learned", "rule"), default=None,
                   help="fatigue_budget: 'learned' (default) from each user's response decay with message volume "
                        "against the unsubscribe risk, or 'rule' (cap minus sends, less after unanswered streaks)")
    p.add_argument("--items", default=None, metavar="FILE",
                   help="the catalogue (item_id, title, category, added_at[, expires_at, editorial]): events "
                        "with an item_id then give each user category_affinity, affinity_confidence, "
                        "top_category and consumed_items, and each item its popularity and trend, for "
                        "'winback plan --items' to pick a theme and items per message "
                        "(e.g. --items world/items.arrow)")
    p.add_argument("--affinity-half-life", type=float, default=None, metavar="DAYS",
                   help="half-life of an item interaction in the category affinity (default 90 days)")
    p.add_argument("--tz-min-engagements", type=int, default=None, metavar="N",
                   help="a user without a timezone (none given, none from the phone) gets one from their "
                        "engagement hours only with at least N engagements (default 10; 0: never)")
    p.add_argument("--tz-min-posterior", type=float, default=None, metavar="P",
                   help="... and only when the zones within 2 hours of the inferred one hold at least this "
                        "posterior probability (0.5-1, default 0.6; see docs/campaigns.md for what it achieves)")
    p.add_argument("--send-time-cohort", default=None, metavar="COLUMN",
                   help="a users column (a segment, plan or country, at most 256 values; a timestamp such as "
                        "signup_at is read as its month) whose cohorts tilt the send-time prior of users with few "
                        "engagements toward the hours their cohort keeps (default: the timezone's hours only); "
                        "check it with 'winback backtest --send-time-cohort COLUMN', e.g. --send-time-cohort plan")
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


#: what :func:`run` imports, loaded by ``engine.cli`` before it (start-up with the collector held)
IMPORTS = ("engine.scoring.run", "engine.scoring.pipeline", "engine.io.atomic")


def run(args: argparse.Namespace) -> int:
    from engine.scoring.run import score_to

    options = {name: value for name, value in (
        ("activity", args.activity), ("default_timezone", args.default_timezone), ("policy_cap", args.cap),
        ("policy_window_days", args.cap_window), ("affinity_half_life_days", args.affinity_half_life),
        ("horizon_days", args.horizon), ("penalizer", args.penalizer), ("fatigue", args.fatigue),
        ("lapse_model", args.lapse_model),
        ("tz_min_engagements", args.tz_min_engagements), ("tz_min_posterior", args.tz_min_posterior),
        ("send_time_cohort", args.send_time_cohort))
        if value is not None}
    s = score_to(args.users, args.events, args.output, as_of=args.as_of, on_bad_rows=args.on_bad_rows,
                 dask=args.dask, workers=args.workers, items=args.items, progress=not args.no_progress, **options)
    if s["partitioned"]:
        return _print_partitioned(args, s)
    qdir = s["quarantine"]
    m = s["model"]
    rate = s["events"] / max(s["aggregation_seconds"], 1e-9)
    print(f"scored {s['users']:,} users from {s['events']:,} events in {s['seconds']:.1f} s "
          f"(aggregation {s['aggregation_seconds']:.2f} s, {rate / 1e6:.1f}M events/s) -> {args.output}")
    print(f"  BG/NBD (days): r={m['r']:.4g} alpha={m['alpha']:.4g} a={m['a']:.4g} b={m['b']:.4g}  "
          f"log-likelihood {m['log_likelihood']:.1f} over {m['users']:,} users / {m['unique_rows']:,} unique rows, "
          f"{m['iterations']} iterations, {m['seconds']:.2f} s; lapse_risk over {s['lapse_horizon_days']:g} days")
    _print_pareto(s.get("pareto_nbd"))
    lm = s.get("lapse_model") or {}
    if lm:
        print(f"  lapse_risk: {_lapse_name(lm)} ({lm['reason']})")
        v = lm.get("validation") or {}
        if v.get("auc_recency") is not None:  # the trivial baseline, beside the model, at the same check
            from engine.scoring.lapse_models import checked_auc

            print(f"  check on the last {v['checked_cut_days_before']} days: lapse_risk AUC {checked_auc(lm):.4f}, "
                  f"days_inactive alone {v['auc_recency']:.4f} ({v['users']:,} users)")
    for w in s.get("warnings", []):
        print(f"  warning: {w}")
    b = s.get("last_backtest")
    if b:
        other = "" if b["horizon_days"] == s["lapse_horizon_days"] else \
            f"; its horizon is {b['horizon_days']:g} days, this score's {s['lapse_horizon_days']:g}"
        print(f"  last backtest ({b['path']}, written {b['written_at']}): scored as of {b['cut']}, checked up to "
              f"{b['as_of']}: lapse_risk ({(b['lapse_model'] or 'closed_form').replace('_', ' ')}) AUC "
              f"{_num(b['auc_lapse_risk'])} vs recency only {_num(b['auc_recency'])}, top-decile lift "
              f"{_num(b['lift_lapse_risk'], 2)}x over {b['users']:,} users{other}")
    print("  lifecycle: " + ", ".join(f"{k} {v:,}" for k, v in s["lifecycle"].items()))
    if s.get("timezone_sources"):
        print("  timezones: " + ", ".join(f"{k} {v:,}" for k, v in s["timezone_sources"].items())
              + f" (hours: inferred from engagement hours; default: hours learned in "
              f"{s.get('default_timezone')}, sent in the campaign's timezone)")
    _print_cohorts((s.get("send_time") or {}).get("cohorts"))
    if s.get("items"):
        it = s["items"]
        print(f"  items: {it['items']:,} in {len(it['categories'])} categories; {it['item_events']:,} item events "
              f"gave affinities" + (f" ({it['unknown_item_events']:,} events name items not in the catalogue and "
                                     "were skipped)" if it["unknown_item_events"] else ""))
    _print_addresses(s)
    if s.get("users_rejected") or s.get("events_rejected"):
        print(f"  quarantined {s.get('users_rejected', 0):,} user rows and {s.get('events_rejected', 0):,} event rows "
              f"in {qdir}/ (each with a reason column)")
    return 0


def _print_addresses(s: dict) -> None:
    """One line per address column the users reader rewrote (engine.io.addresses)."""
    from engine.io.addresses import describe

    for line in describe(s.get("addresses") or {}):
        print(f"  {line}")


def _print_cohorts(c: dict | None) -> None:
    """The send-time cohorts' line (engine.scoring.cohorts): how many, and the largest ones' hours."""
    if not c:
        return
    shown = ", ".join(f"{r['cohort']} {r['best_hour']:02d}:00 ({r['users']:,} users)" for r in c["largest"][:6])
    more = f", and {c['cohorts'] - 6} more" if c["cohorts"] > 6 else ""
    print(f"  send-time cohorts by {c['column']}: {c['cohorts']} (hour each favours, local: {shown}{more}); users "
          f"with few engagements lean toward their cohort's hours")


def _lapse_name(lm: dict) -> str:
    return lm.get("name") or lm["used"].replace("_", " ")


def _print_pareto(pm: dict | None) -> None:
    """The Pareto/NBD fit's line (when it scores lapse_risk), or why it failed."""
    if not pm:
        return
    if "failed" in pm:
        print(f"  Pareto/NBD: not fitted ({pm['failed']})")
        return
    print(f"  Pareto/NBD (days): r={pm['r']:.4g} alpha={pm['alpha']:.4g} s={pm['s']:.4g} beta={pm['beta']:.4g}  "
          f"log-likelihood {pm['log_likelihood']:.1f}, {pm['iterations']} iterations, {pm['seconds']:.2f} s")


def _num(v, digits=4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _print_partitioned(args: argparse.Namespace, s: dict) -> int:
    qdir = s["quarantine"]
    m = s["model"]
    where = "in this process" if args.dask is None else f"on Dask ({args.dask}, {s['workers']} workers)"
    print(f"scored {s['users']:,} users from {s['events']:,} events in {s['partitions']} partitions {where} "
          f"in {s['seconds']:.1f} s (aggregate {s['aggregate_seconds']:.2f} s, fit {s['reduce_seconds']:.2f} s, "
          f"finalize {s['finalize_seconds']:.2f} s) -> {args.output}")
    print(f"  BG/NBD (days): r={m['r']:.4g} alpha={m['alpha']:.4g} a={m['a']:.4g} b={m['b']:.4g}  "
          f"log-likelihood {m['log_likelihood']:.1f} over {m['users']:,} users / {m['unique_rows']:,} unique rows")
    _print_pareto(s.get("pareto_nbd"))
    lm = s.get("lapse_model") or {}
    if lm:
        print(f"  lapse_risk: {_lapse_name(lm)} ({lm['reason']})")
    for w in s.get("warnings", m.get("warnings", [])):
        print(f"  warning: {w}")
    print("  lifecycle: " + ", ".join(f"{k} {v:,}" for k, v in s["lifecycle"].items()))
    if s.get("timezone_sources"):
        print("  timezones: " + ", ".join(f"{k} {v:,}" for k, v in s["timezone_sources"].items()))
    _print_addresses(s)
    if s.get("users_rejected") or s.get("events_rejected"):
        print(f"  quarantined {s.get('users_rejected', 0):,} user rows and {s.get('events_rejected', 0):,} event rows "
              f"in {qdir}/part=K/ (each with a reason column)")
    return 0
