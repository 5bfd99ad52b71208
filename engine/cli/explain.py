"""`winback explain`: the whole plan decision for one user."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="show why one user got (or did not get) each message of a plan",
        description="Print every step's decision for USER_ID (channel, send time, variant, reason) "
                    "and, with --scores, the scores that drove it.",
        epilog="examples:\n  winback explain 1000011 --plan plan.arrow --scores scores.arrow\n"
               "  winback explain 1000011 --plan plan.arrow --items world/items.arrow   # titles of the picked items\n"
               "  winback explain 1000011 --plan plan.arrow --ledger ledger.db   # what happened at send time",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("user_id", type=int, help="the user's id")
    p.add_argument("--plan", required=True, metavar="FILE", help="plan file from 'winback plan'")
    p.add_argument("--scores", default=None, metavar="FILE", help="scores file, to show the inputs too")
    p.add_argument("--items", default=None, metavar="FILE",
                   help="the catalogue the plan was made with, to show the picked items' titles")
    p.add_argument("--ledger", default=None, metavar="DB",
                   help="the ledger 'winback send' wrote: also show what happened at send time (sent, re-timed, "
                        "skipped with its reason: exited, suppressed, cap_other_campaigns, too_late, complaint), the "
                        "user's messages from other campaigns and suppressions, e.g. --ledger ledger.db")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


#: what :func:`run` imports, loaded by ``engine.cli`` before it (start-up with the collector held)
IMPORTS = ("engine.planning.explain",)


def run(args: argparse.Namespace) -> int:
    from engine.io.plans import read_plan
    from engine.io.readers import read_table
    from engine.planning.explain import explain

    plan_table, name = read_plan(args.plan)
    from engine.io.plans import require_plan_columns

    require_plan_columns(plan_table, name, ("user_id", "step", "step_index", "channel", "send_at", "reason"))
    scores = read_table(args.scores, "scores") if args.scores else None
    if scores is not None:
        from engine.planning.guard import checked_scores

        scores = checked_scores(scores, args.scores)  # an events or users file here names itself, not an audience column
    out = explain(args.user_id, plan_table, scores, ledger=args.ledger)
    for text in out.get("warnings") or ():
        sys.stderr.write(f"warning: {text}\n")
    titles = {}
    if args.items:
        from engine.io.items import load_items

        cat = load_items(args.items).table
        wanted = {i for r in out["steps"] for i in (r.get("items") or [])}
        titles = {i: t for i, t in zip(cat["item_id"].to_pylist(), cat["title"].to_pylist()) if i in wanted}
        for r in out["steps"]:
            r["item_titles"] = [titles.get(i) for i in (r.get("items") or [])]
    if args.json:
        print(json.dumps(out, default=str, indent=2))
        return 0
    camp = out.get("campaign") or {}
    print(f"user {out['user_id']} in campaign {camp.get('campaign_id')} (audience: {camp.get('audience')})")
    s = out.get("scores")
    if s:
        keys = ["lifecycle", "days_inactive", "p_alive", "lapse_risk", "timezone", "best_hour_local",
                "send_time_confidence", "fatigue_budget", "sends_7d", "email_response_rate",
                "push_response_rate", "sms_response_rate", "consent_email", "consent_push", "consent_sms"]
        print("  scores: " + ", ".join(f"{k}={s[k]:.3g}" if isinstance(s.get(k), float) else f"{k}={s.get(k)}"
                                       for k in keys if k in s))
    if "in_audience" in out:
        print(f"  audience rule: {'true' if out['in_audience'] else 'false'}")
    first = out["steps"][0]
    print(f"  holdout: {'yes' if first.get('holdout') else 'no'}, variant {first.get('variant')}")
    rankings = {c["step"]: c["ranking"] for c in out.get("channels", [])}
    for r in out["steps"]:
        if r["reason"] is None:
            value = r.get("expected_value")
            print(f"  step {r['step_index']} {r['step']}: {r['channel']} at {r['send_at']} UTC "
                  f"({r.get('local_time', '?')} {r.get('timezone')}), expected value "
                  f"{'?' if value is None else format(value, '.3g')}")
            if r.get("moved"):
                print(f"      moved {r['moved']}")
        else:
            print(f"  step {r['step_index']} {r['step']}: not sent - {r['reason']}")
        sent = r.get("sent")
        if sent:
            what = sent["state"] + (f" at {sent['sent_at']} UTC" if sent.get("sent_at") else "") + \
                (f" - {sent['why']}" if sent.get("why") else "") + \
                (f" (re-timed to {sent['retimed_to']} UTC)" if sent.get("retimed_to") else "") + \
                (f" ({sent['late_hours']:g} h after its planned time)" if sent.get("late_hours") else "")
            print(f"      at send time: {what}")
        if r.get("theme"):
            shown = [f"{i} {titles[i]!r}" if i in titles else str(i) for i in r.get("items") or []]
            print(f"      content: {r['theme']}" + (f", items {', '.join(shown)}" if shown else ", no items found"))
        for c in rankings.get(r["step"], []):
            flags = [name for name, bad in (("no consent", not c["consent"]), ("no address", not c["address"]),
                                            ("suppressed", c["suppressed"])) if bad]
            rate = "?" if c["response_rate"] is None else f"{c['response_rate']:.3f}"
            print(f"      {c['channel']:<5} response {rate}  {', '.join(flags) or 'reachable'}")
    led = out.get("ledger")
    if led is not None:
        other = led["other_campaigns"]
        print(f"  ledger {led['path']}: {len(other)} messages from other campaigns"
              + (":" if other else ""))
        for m in other[:20]:
            when = m["sent_at"] or m["send_at"]
            print(f"      {m['campaign_id']} {m['step']} {m['channel']} {m['state']} {when} UTC"
                  + (f" - {m['last_error']}" if m["last_error"] else ""))
        for sup in led["suppressions"]:
            print(f"      suppressed on {sup['channel']} ({sup['reason']}) since {sup['at']} UTC")
    return 0
