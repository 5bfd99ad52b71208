"""`winback plan`: audience, drip steps, channel and time per user, caps, holdout."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="plan a campaign over the scores: who gets which message, on which channel, when",
        description=(
            "Apply CAMPAIGN (a TOML file: audience rule, drip steps, policy, holdout, variants, "
            "templates) to SCORES and write one row per (user, step): message_id, channel, send_at "
            "(UTC), variant, rendered subject/body, and for users not messaged the reason "
            "(not_in_audience, holdout, no_consent, no_address, suppressed, channel_cap, "
            "fatigue_budget, min_gap, capacity). With --items (the catalogue the scores were computed "
            "with), every messaged or held-out row also gets a content theme (new_in_your_categories, "
            "leaving_soon, editorial, trending, broaden) and its top items, usable in templates as "
            "{{ theme }} and {{ items[0].title }}. A partitioned scores dataset (from 'winback score parts/') "
            "with an OUTPUT without a file suffix is planned partition by partition (in this process, or on Dask "
            "with --dask) into OUTPUT/part=K/part-0.parquet, with capacity levelled over all partitions: the "
            "same plan in a fraction of the memory."
        ),
        epilog=(
            "examples:\n"
            "  winback plan scores.arrow examples/winback_lapsing.toml -o plan.arrow\n"
            "  winback plan scores.arrow examples/sms_last_chance.toml --ledger ledger.db -o plan.arrow\n"
            "  winback plan scores.arrow examples/winback_content.toml --items world/items.arrow -o plan.arrow\n"
            "  winback explain 1000011 --plan plan.arrow --scores scores.arrow\n"
            "  winback plan scores/ examples/winback_lapsing.toml -o plan/ --dask local   # a partitioned scores dataset\n"
            "  winback plan scores/ examples/winback_lapsing.toml -o plan/   # the same in this process, partition by partition"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scores", help="scores file from 'winback score'")
    p.add_argument("campaign", help="campaign TOML file (see examples/ and docs/campaigns.md)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="plan file (.arrow), written atomically")
    p.add_argument("--as-of", default=None, metavar="T",
                   help="campaign start, ISO 8601 UTC (default: [campaign] as_of, else the scores' as-of)")
    p.add_argument("--ledger", default=None, metavar="DB",
                   help="SQLite ledger of earlier sends: its suppressions are honoured and its broadcasts "
                        "feed the broadcast guard")
    p.add_argument("--items", default=None, metavar="FILE",
                   help="the catalogue given to 'winback score --items': pick a theme and items per message "
                        "(e.g. --items world/items.arrow); see docs/content.md")
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar (partitioned planning)")
    from engine.cli.score import add_dask_options

    add_dask_options(p, "plan a partitioned scores dataset (the output of 'winback score parts/ -o scores/') "
                        "partition by partition on Dask: 'local' (a LocalCluster here) or a scheduler address such "
                        "as tcp://10.0.0.5:8786; capacity is levelled over all partitions at once, so the plan is the "
                        "one a single machine makes; OUTPUT is then a directory (plan/part=K/part-0.parquet) that "
                        "'winback send' reads like a file")
    p.set_defaults(func=run)


#: what :func:`run` imports, loaded by ``engine.cli`` before it (start-up with the collector held)
IMPORTS = ("engine.planning.run",)


def run(args: argparse.Namespace) -> int:
    import sys

    from engine.planning.run import plan_to

    s = plan_to(args.scores, args.campaign, args.output, as_of=args.as_of, ledger=args.ledger, items=args.items,
                dask=args.dask, workers=args.workers, progress=not args.no_progress,
                warn=lambda text: sys.stderr.write(f"warning: {text}\n"))
    if s["partitioned"]:
        where = f"on Dask ({args.dask}, {s['workers']} workers)" if args.dask else "one after another in this process"
        print(f"planned {s['planned']:,} messages ({s['rows']:,} user-steps) in {s['partitions']} partitions "
              f"{where} in {s['seconds']:.1f} s -> {args.output}/")
    else:
        print(f"planned {s['planned']:,} messages ({s['rows']:,} user-steps) -> {args.output}")
    print("  per step/channel: " + ", ".join(f"{k} {v:,}" for k, v in sorted(s["by_step_channel"].items())))
    print("  not messaged:     " + ", ".join(f"{k} {v:,}" for k, v in sorted(s["by_reason"].items(), key=lambda kv: -kv[1])))
    hours = s["by_utc_hour"]
    peak = max(hours) or 1
    bars = "".join(" .:-=+*#%@"[min(9, int(9 * h / peak))] for h in hours)
    print(f"  send hour (UTC 0-23): |{bars}|  peak {peak:,}/h")
    if s.get("timezones"):
        print("  timezones:        " + ", ".join(f"{k} {v:,}" for k, v in s["timezones"].items()))
    for text in [*(s.get("warnings") or ()), *send_warnings(s, args.output)]:
        sys.stderr.write(f"warning: {text}\n")
    if s.get("by_theme"):
        print("  themes:           " + ", ".join(f"{k} {v:,}" for k, v in s["by_theme"].items()))
    return 0


def send_warnings(s: dict, output, now: float | None = None) -> list[str]:
    """What 'winback send' will do with a plan that sends nothing: one warning when it plans
    no message, and one when every planned send time is already past ``now`` (the wall clock):
    both are legitimate (a narrow audience, a backtest), so they are said, not refused.  Kept
    out of the plan's summary, which must not depend on when it was made."""
    import time

    if not s["planned"]:
        reasons = sorted(s["by_reason"].items(), key=lambda kv: -kv[1])[:3]
        why = ", ".join(f"{k} {v:,}" for k, v in reasons) or "no scored users"
        hint = (" - nobody is in the audience: check [audience] where and the scores columns it reads "
                "(a column that is null for every user selects nobody)") if [k for k, _ in reasons] == ["not_in_audience"] else ""
        return [f"this plan plans no message ({s['rows']:,} user-steps not messaged: {why}){hint}; "
                "'winback send' will send nothing"]
    last = _last_send_at(output)
    now = time.time() if now is None else now
    if last is None or last >= now:
        return []
    from engine.tz import iso_utc

    return [f"every planned send time is already past: the last is {iso_utc(last)}, {(now - last) / 86400:.0f} days "
            f"before now ({iso_utc(int(now))}); 'winback send' will skip every message as too_late (more than "
            "--max-lateness, default 6h, late; campaign_end after the campaign's end) and send nothing, unless "
            "--now sends it all at once. Fine for a backtest or a demo ('winback simulate'); to send it on "
            "schedule, re-score and re-plan as of now (--as-of)"]


def _last_send_at(output) -> int | None:
    """The latest ``send_at`` (epoch s) of the plan written at ``output`` (a file or a
    partitioned directory), None when it plans nothing."""
    from pathlib import Path

    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    path = Path(output)
    fmt = "parquet" if path.is_dir() or path.suffix == ".parquet" else "ipc"
    col = ds.dataset(str(path), format=fmt).to_table(columns=["send_at"])["send_at"]
    last = pc.max(col).as_py()
    return None if last is None else int(last.timestamp())
