"""`winback send`: dispatch a plan through the channel providers, tracked in a ledger."""

from __future__ import annotations

import argparse

EPILOG = """\
examples:
  winback send plan.arrow --providers providers.toml --ledger ledger.db --now
  winback send plan.arrow --providers providers.toml --ledger ledger.db --dry-run
  winback send plan.arrow --providers providers.toml --ledger ledger.db \\
      --events events.arrow --max-seconds 3600
  winback send plan.arrow --providers providers.toml --ledger ledger.db \\
      --events feedback/ --max-lateness 2d      # a plan started late: re-timed, spacing kept

Release: a message claimed late is re-timed to its next allowed local slot (out of
quiet hours, its step spacing kept after the user's previous message), or skipped as
too_late when more than --max-lateness past its target, or as campaign_end when it
would go after the campaign's end; one closer than min_gap_hours to another campaign's
message goes that long after it; every message is checked against the cap over every
campaign in the ledger.  --now sends everything at once (only the caps hold).

exit codes: 0 every message is final (sent, dead or skipped); 75 stopped by
--max-seconds with messages pending; 130 interrupted (SIGINT/SIGTERM); run the
same command again on the same ledger to resume.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "send",
        help="send a plan through rate-limited channel providers, resumable from a ledger",
        description=(
            "Load PLAN's planned messages into the ledger (once; reruns add only new ones), "
            "release each at its send_at (or all now), send through the providers at each "
            "channel's rate_per_second with retries and backoff, and record every result in "
            "the ledger so a killed run resumes where it stopped."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("plan", help="plan file written by 'winback plan' (plan.arrow)")
    p.add_argument("--providers", required=True, metavar="TOML",
                   help="providers file: [channels.NAME] with adapter, URL, rate_per_second, concurrency")
    p.add_argument("--ledger", required=True, metavar="DB",
                   help="SQLite ledger file; created on first use, reused to resume")
    p.add_argument("--now", action="store_true",
                   help="send every planned message at once, ignoring send times, step spacing and quiet hours "
                        "(the cap still holds, and when it has room for only some of a user's messages "
                        "the earlier-planned ones go); the only way to send a plan as one burst")
    p.add_argument("--max-lateness", default="6h", metavar="DURATION", type=_duration,
                   help="how late past its target a message may still go, e.g. 90m, 6h, 2d (default 6h); "
                        "later ones are skipped as too_late")
    p.add_argument("--dry-run", action="store_true",
                   help="print what would go out per channel, step and hour, with samples; touch nothing")
    p.add_argument("--events", metavar="PATH", action="append",
                   help="fresh events (Arrow/Parquet/CSV file, or the directory 'winback receive' writes; "
                        "repeatable): users who did what a step's exit_on names since the campaign start leave "
                        "the later steps, and unsubscribe/complaint/bounce rows suppress that user's channel for "
                        "every pending message; re-read every 30 s during the send, e.g. --events feedback/")
    p.add_argument("--retry-dead", action="store_true",
                   help="give this plan's messages that died of retryable failures (the provider was down, timed "
                        "out or kept answering 429/5xx until max_attempts) a new round; the release checks still "
                        "apply (re-timed out of quiet hours, too_late past --max-lateness), permanent failures "
                        "stay dead, e.g. winback send plan.arrow --providers p.toml --ledger ledger.db --retry-dead")
    p.add_argument("--at-most-once", action="store_true",
                   help="never resend a message that was in flight when a previous run crashed "
                        "(it becomes dead instead); default is at-least-once for such messages")
    p.add_argument("--max-seconds", type=float, metavar="N",
                   help="stop cleanly after N seconds (exit 75 if messages are still pending)")
    p.add_argument("--other-ledger", action="store_true",
                   help="send a plan through a ledger other than the one it was planned with ('winback plan "
                        "--ledger'); refused without this flag, since a different ledger cannot know what the "
                        "first one sent (use it only for a copy of that ledger made on purpose)")
    p.add_argument("--replan", action="store_true",
                   help="this plan replaces an earlier plan of the same campaign in the ledger: messages not "
                        "yet attempted take this plan's channel, address, time and content, and the ones it no "
                        "longer plans are skipped (replanned); sent and in-flight messages are never touched. "
                        "Without it a plan that differs from the ledger's pending messages is refused, e.g. "
                        "winback send plan-v2.arrow --providers p.toml --ledger ledger.db --replan")
    p.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    p.set_defaults(func=run)


def _duration(text: str) -> float:
    """Seconds of a duration like 90m, 6h, 2d or 3600 (seconds)."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text or "")
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration; use e.g. 90m, 6h or 2d")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


#: what :func:`run` imports, loaded by ``engine.cli`` before it (start-up with the collector held)
IMPORTS = ("engine.sending.dispatcher", "engine.ledger.store")


def run(args: argparse.Namespace) -> int:
    import sqlite3
    from pathlib import Path

    from engine.ledger.store import ledger_error
    from engine.sending.dispatcher import send

    try:
        summary = send(
            args.plan, args.providers, args.ledger, now=args.now, dry_run=args.dry_run,
            events=args.events, at_most_once=args.at_most_once, max_seconds=args.max_seconds,
            progress=not args.no_progress, max_lateness=args.max_lateness, other_ledger=args.other_ledger,
            replan=args.replan, retry_dead=args.retry_dead,
        )
    except sqlite3.DatabaseError as exc:  # the ledger broke mid-run (disk full, damaged page)
        raise ledger_error(Path(args.ledger), exc) from None
    if args.dry_run:
        preview = summary.dry_run
        total = sum(preview.column("messages").to_pylist())
        print(f"dry run: {total:,} messages planned (nothing sent, ledger untouched)")
        if summary.loaded != total:
            print(f"ledger: {summary.loaded:,} of them are new to {args.ledger}; it already holds the other "
                  f"{total - summary.loaded:,} (sent, pending or skipped: a send never repeats them)")
        for note in getattr(summary, "notes", ()):
            print(note)
        if summary.exited:
            print(f"--events: {summary.exited:,} later-step messages would be skipped (exited): their users "
                  "already did what the step's exit_on names")
        if summary.suppressed:
            print(f"--events: {summary.suppressed:,} messages would be skipped (suppressed): their users "
                  "unsubscribed, complained or bounced on that channel")
        if summary.gave_up:
            print(f"ledger: {summary.gave_up:,} of this plan's messages died of retryable failures; --retry-dead "
                  "would give them a new round")
        if any(summary.replanned.values()):
            print(f"--replan: {summary.replanned['changed']:,} pending messages would take this plan's version, "
                  f"{summary.replanned['dropped']:,} it no longer plans would be skipped")
        print(f"{'hour (UTC)':<17} {'channel':<8} {'step':<20} messages")
        for row in preview.slice(0, 48).to_pylist():
            print(f"{row['hour']:%Y-%m-%d %H:00} {row['channel']:<8} {str(row['step']):<20} {row['messages']:>8,}")
        if preview.num_rows > 48:
            print(f"... {preview.num_rows - 48} more hours")
        for s in summary.samples:
            print(f"sample {s.get('channel')}: {s.get('message_id')} user {s.get('user_id')} to {s.get('to')}"
                  f" at {s.get('send_at')}: {s.get('subject') or ''}")
        return 0
    parts = [f"{ch}: {int(c['sent']):,} sent, {int(c['dead']):,} dead, {int(c['retried']):,} retried"
             for ch, c in summary.per_channel.items()]
    print(f"sent {summary.sent:,} messages in {summary.seconds:.1f} s "
          f"({summary.sent / max(summary.seconds, 1e-9):,.0f}/s); " + "; ".join(parts or ["nothing due"]))
    if any(summary.replanned.values()):
        print(f"replanned: {summary.replanned['changed']:,} pending messages took this plan's version, "
              f"{summary.replanned['dropped']:,} it no longer plans were skipped")
    for note in getattr(summary, "notes", ()):
        print(note)
    if args.now:
        print("--now: every message was released at once, ignoring send times and quiet hours")
    if summary.retimed or summary.skipped:
        print(f"release checks: {summary.retimed:,} late messages re-timed; skipped "
              + (", ".join(f"{n:,} {why}" for why, n in sorted(summary.skipped.items())) or "none"))
    if summary.exited or summary.suppressed or summary.recovered:
        print(f"skipped {summary.exited:,} (exited) and {summary.suppressed:,} (suppressed); "
              f"{summary.recovered:,} recovered from a crashed run")
    if summary.revived:
        print(f"--retry-dead: {summary.revived:,} messages that had died of retryable failures got a new round")
    if summary.gave_up:
        print(f"{summary.gave_up:,} messages died of retryable failures (provider down, timeouts, 429/5xx until "
              "max_attempts); once the provider is back, run the same command with --retry-dead")
    if not summary.complete:
        print(f"stopped with {summary.pending:,} messages pending; run the same command again to resume")
        return 75
    return 0
