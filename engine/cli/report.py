"""`winback report`: lift against the holdout with intervals, plots and a sunset list."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="measure a campaign: lift vs holdout with 95%% intervals, plots, sunset list",
        description=(
            "Compare the audience outside the holdout with the holdout over --days days after the "
            "campaign start (intent-to-treat): re-engagement, open, click, conversion and unsubscribe "
            "rates with Newcombe intervals, per variant, step and channel; writes DIR/index.html with "
            "plots, DIR/summary.json and DIR/sunset.csv/.arrow (users who got the whole sequence and "
            "did not come back)."
        ),
        epilog=(
            "examples:\n"
            "  winback report plan.arrow outcomes/ --ledger ledger.db -o report/\n"
            "  winback report plan.arrow events.arrow -o report/ --days 30\n"
            "  winback report plan.arrow outcomes/ --blast blast/ -o report/   # beside batch-and-blast\n"
            "  winback report plan.arrow outcomes/ --feedback received/ -o report/   # plus survey answers"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("plan", help="plan file from 'winback plan'")
    p.add_argument("outcomes", help="events after the campaign: a 'winback simulate' directory, or an events file")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="report directory (replaced atomically)")
    p.add_argument("--ledger", default=None, metavar="DB", help="ledger of 'winback send', for what was delivered")
    p.add_argument("--days", type=int, default=14, metavar="N", help="days after the start that count (default 14)")
    p.add_argument("--blast", default=None, metavar="DIR",
                   help="a 'winback simulate --policy blast' directory to compare against")
    p.add_argument("--feedback", default=None, metavar="DIR",
                   help="a 'winback receive' output directory whose events (opens, clicks, survey answers) are "
                        "added to the outcomes, e.g. --feedback received/")
    p.set_defaults(func=run)


#: what :func:`run` imports, loaded by ``engine.cli`` before it (start-up with the collector held)
IMPORTS = ("engine.reporting.measure", "engine.reporting.html")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine.reporting.measure import report
    from engine.reporting.measure import MIN_N
    from engine.reporting.html import headline, terminal_table, theme_lines

    s = report(args.plan, args.outcomes, ledger=args.ledger, days=args.days, out_dir=args.output, blast=args.blast,
               feedback=args.feedback)
    print(terminal_table(s))
    print()
    print("headline: " + headline(s))
    for w in s.get("warnings", []):
        print("warning: " + w)
    mp = s["messages_per_incremental_reengaged_user"]
    line = f"winback: {s['messages_sent']:,} messages"
    if mp:
        line += f", {mp:,.1f} per incremental re-engaged user"
    line += f", {s['metrics']['unsubscribed']['treated']['count']:,} unsubscribes"
    print(line)
    if "blast" in s:
        b = s["blast"]
        bl = f"batch-and-blast: {b['messages_sent']:,} messages"
        if b["messages_per_incremental_reengaged_user"]:
            bl += f", {b['messages_per_incremental_reengaged_user']:,.1f} per incremental re-engaged user"
        bl += f", {b['unsubscribed']:,} unsubscribes"
        print(bl)
    from engine.reporting import harm, offers, steps, survey, variants

    for lines in (variants.terminal_lines(s.get("variants") or {}), offers.terminal_lines(s.get("offers") or []),
                  steps.terminal_lines(s.get("by_step") or []), harm.terminal_lines(s.get("harm") or {}),
                  survey.terminal_lines(s.get("survey") or {})):
        if lines:
            print("\n".join(lines))
    for key, title in (("by_theme", "lift by theme (per step: treated vs the holdout given the same theme)"),
                       ("theme_experiment", "theme experiment (random themes, [content] explore)")):
        rows = s.get(key) or []
        big = [r for r in rows if min(r["treated"]["users"], r["holdout"]["users"]) >= MIN_N]
        if rows:
            print(f"{title}:" + ("" if big else f" every group is under {MIN_N} users, see the HTML report"))
            if big:
                print("\n".join(theme_lines(big)))
            if len(big) < len(rows) and big:
                print(f"  ({len(rows) - len(big)} smaller groups in the HTML report)")
    for step, weights in (s.get("suggested_theme_weights") or {}).items():
        print(f"suggested for step {step!r} from the experiment: themes = {{ "
              + ", ".join(f"{k} = {v:g}" for k, v in weights.items()) + " }")
    out = Path(args.output)
    ads = s.get("ads_removal") or {}
    if ads:
        print(f"ads removal: {ads['remove']:,} of {ads['audience']:,} audience users came back or opted out -> "
              + ", ".join(str(out / f) for f in ads["files"][:2]) + (" ..." if len(ads["files"]) > 2 else ""))
    if s.get("skipped_at_send"):
        print("not delivered at send time: " + ", ".join(f"{k} {v:,}" for k, v in s["skipped_at_send"].items()))
    print(f"sunset list: {s['sunset_users']:,} users -> {out / 'sunset.csv'} "
          f"(suppress them with: winback sunset {out} --ledger LEDGER --dry-run)")
    print(f"report: {out / 'index.html'}")
    return 0
