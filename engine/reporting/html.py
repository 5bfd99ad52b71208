"""The report's HTML page and terminal table, from the summary dict of :func:`engine.report.report`."""

from __future__ import annotations

import html

__all__ = ["render_html", "headline", "terminal_table", "theme_lines"]


def _pct(x, digits=1) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}%"


def _pp(x) -> str:
    return "-" if x is None else f"{100 * x:+.2f} pp"


def headline(summary: dict) -> str:
    """One line: the re-engagement lift with its interval."""
    c = summary["metrics"]["reengaged"]
    lo, hi = c["lift_ci"]
    text = (f"re-engagement {_pct(c['treated']['rate'], 2)} treated vs {_pct(c['holdout']['rate'], 2)} holdout: "
            f"lift {_pp(c['lift'])} (95% CI {_pp(lo)} to {_pp(hi)})")
    if c["relative_lift"] is not None:
        text += f", relative {_pct(c['relative_lift'])}"
    if c["note"]:
        text += f" - {c['note']}"
    return text


def terminal_table(summary: dict) -> str:
    lines = [f"{'metric':<14}{'treated':>10}{'holdout':>10}{'lift':>12}{'95% CI':>26}"]
    for name, c in summary["metrics"].items():
        lo, hi = c["lift_ci"]
        lines.append(f"{name:<14}{_pct(c['treated']['rate'], 2):>10}{_pct(c['holdout']['rate'], 2):>10}"
                     f"{_pp(c['lift']):>12}{_pp(lo) + ' .. ' + _pp(hi):>26}")
    return "\n".join(lines)


def _table(headers, rows) -> str:
    th = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def _theme_table(rows: list[dict]) -> str:
    return _table(["step", "theme", "messages", "treated", "rate", "holdout", "rate", "lift", "95% CI", "note"],
                  [[c["step"], c["theme"], c["messages_sent"], c["treated"]["users"], _pct(c["treated"]["rate"], 2),
                    c["holdout"]["users"], _pct(c["holdout"]["rate"], 2), _pp(c["lift"]),
                    f"{_pp(c['lift_ci'][0])} .. {_pp(c['lift_ci'][1])}", c["note"]] for c in rows])


def theme_lines(rows: list[dict]) -> list[str]:
    """One terminal line per (step, theme) row of the report."""
    def pp(x):
        return "-" if x is None else f"{100 * x:+.2f} pp"

    def rate(x):
        return "-" if x is None else f"{100 * x:.2f}%"

    return [f"  {c['step'] + ': ' + c['theme']:<38}{c['messages_sent']:>7,} msgs  {rate(c['treated']['rate']):>7} vs "
            f"{rate(c['holdout']['rate']):>7}  lift {pp(c['lift'])} ({pp(c['lift_ci'][0])} .. {pp(c['lift_ci'][1])})"
            + (f"  {c['note']}" if c["note"] else "") for c in rows]


def render_html(summary: dict) -> str:
    camp = summary["campaign"]
    metrics = _table(
        ["metric", "treated users", "treated rate", "holdout users", "holdout rate", "lift", "95% CI", "relative", "note"],
        [[k, c["treated"]["users"], _pct(c["treated"]["rate"], 2), c["holdout"]["users"], _pct(c["holdout"]["rate"], 2),
          _pp(c["lift"]), f"{_pp(c['lift_ci'][0])} .. {_pp(c['lift_ci'][1])}", _pct(c["relative_lift"]), c["note"]]
         for k, c in summary["metrics"].items()])
    pp = summary.get("per_protocol")
    if pp is not None:
        metrics += ("<p class=\"muted\">Per protocol (users who received at least one message vs the holdout; "
                    "biased toward reachable users, so not the headline): "
                    f"{_pct(pp['treated']['rate'], 2)} of {pp['treated']['users']:,} vs "
                    f"{_pct(pp['holdout']['rate'], 2)}, lift {_pp(pp['lift'])} "
                    f"({_pp(pp['lift_ci'][0])} .. {_pp(pp['lift_ci'][1])}).</p>")
    variants = _table(["variant", "treated", "rate", "lift", "95% CI", "note"],
                      [[v, c["treated"]["users"], _pct(c["treated"]["rate"], 2), _pp(c["lift"]),
                        f"{_pp(c['lift_ci'][0])} .. {_pp(c['lift_ci'][1])}", c["note"]]
                       for v, c in summary["by_variant"].items()])
    steps = _table(["step", "channel", "sent", "open rate", "click rate", "unsubscribe rate", "re-engaged"],
                   [[r["step"], r["channel"], r["sent"], _pct(r.get("open_rate")), _pct(r.get("click_rate")),
                     _pct(r.get("unsubscribe_rate"), 2), _pct(r.get("reengaged_rate"))]
                    for r in summary["by_step_channel"]])
    themes = ""
    if summary.get("by_theme"):
        themes = ("<h2>Lift by theme</h2><p class=\"muted\">Per step, the users the plan gave each theme, treated "
                  "against held out (held-out users get a theme too). Themes follow from each user's history, so "
                  "read each row against its own holdout rather than themes against each other.</p>"
                  + _theme_table(summary["by_theme"])
                  + '<img src="themes.png" alt="re-engagement lift by theme with 95% intervals">')
    if summary.get("theme_experiment"):
        themes += ("<h2>Theme experiment</h2><p class=\"muted\">Users whose theme was drawn at random "
                   "([content] explore), against all held-out explorers of the step: within a step, these rows "
                   "compare themes with each other on like users.</p>"
                   + _theme_table(summary["theme_experiment"]))
        sugg = summary.get("suggested_theme_weights") or {}
        if sugg:
            lines = "\n".join(f"# step {step}\nthemes = {{ " + ", ".join(f"{k} = {v:g}" for k, v in w.items()) + " }"
                              for step, w in sugg.items())
            themes += ("<p>Weights the experiment supports (a theme that re-engaged more than the step's other "
                       "drawn themes gets 2, one that re-engaged less 0.5), for the campaign's "
                       f"<code>[[steps]]</code>:</p><pre>{html.escape(lines)}</pre>")
    from engine.reporting import harm, offers, survey
    from engine.reporting import steps as step_rules
    from engine.reporting import variants as variant_compare

    sections = (variant_compare.html_section(summary.get("variants") or {}, _table)
                + offers.html_section(summary.get("offers") or [], _table)
                + step_rules.html_section(summary.get("by_step") or [], _table)
                + survey.html_section(summary.get("survey") or {}, _table))
    ads = summary.get("ads_removal") or {}
    if ads:
        sections += (f"<h2>Ads audience removal</h2><p>{ads['remove']:,} of the {ads['audience']:,} users put in an ad "
                     "audience came back, opted out or were suppressed: upload "
                     + ", ".join(f'<a href="{html.escape(f)}">{html.escape(f)}</a>' for f in ads["files"])
                     + " as removals (same hashing as the audience).</p>")
    harm_html = harm.html_section(summary.get("harm") or {}, _table)
    blast = ""
    if "blast" in summary:
        b = summary["blast"]

        def fmt(x):
            return "-" if x is None else f"{x:,.1f}"
        blast = "<h2>winback vs batch-and-blast</h2>" + _table(
            ["", "messages sent", "messages per re-engaged user", "messages per incremental re-engaged user",
             "unsubscribes"],
            [["winback", summary["messages_sent"], fmt(summary["messages_per_reengaged_user"]),
              fmt(summary["messages_per_incremental_reengaged_user"]), b["winback_unsubscribed"]],
             ["batch-and-blast", b["messages_sent"], fmt(b["messages_per_reengaged_user"]),
              fmt(b["messages_per_incremental_reengaged_user"]), b["unsubscribed"]]])
    skipped = ""
    if summary.get("skipped_at_send"):
        skipped = ("<h2>Not delivered at send time</h2><p class=\"muted\">Planned messages the send skipped or gave "
                   "up on, by reason (the ledger's record; <code>winback explain USER --ledger</code> tells one "
                   "user's story).</p>" + _table(["reason", "messages"],
                                                 [[html.escape(k), v] for k, v in summary["skipped_at_send"].items()]))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>winback report: {html.escape(str(camp.get('name')))}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #111; padding: 0 1rem; }}
h1 {{ font-size: 1.5rem; }} h2 {{ font-size: 1.15rem; margin-top: 2rem; }}
.warn {{ background: #fef3c7; border-left: 4px solid #d97706; padding: .5rem 1rem; }}
.headline {{ font-size: 1.1rem; background: #eff6ff; border-left: 4px solid #2563eb; padding: .75rem 1rem; }}
table {{ border-collapse: collapse; margin: .5rem 0; font-size: .9rem; }}
td, th {{ border-bottom: 1px solid #e5e7eb; padding: .3rem .6rem; text-align: right; }}
th {{ background: #f9fafb; }} td:first-child, th:first-child {{ text-align: left; }}
img {{ max-width: 100%; margin: .5rem 0; }} .muted {{ color: #6b7280; font-size: .85rem; }}
</style></head><body>
<h1>{html.escape(str(camp.get('name')))} <span class="muted">({html.escape(str(camp.get('id')))}, from {html.escape(str(camp.get('start')))}, {camp.get('days')} days)</span></h1>
<p class="headline">{html.escape(headline(summary))}</p>
{''.join(f'<p class="warn">warning: {html.escape(w)}</p>' for w in summary.get('warnings', []))}
<p class="muted">{html.escape(summary['headline'])}. Intervals: Newcombe hybrid score (difference), Katz log ratio (relative).</p>
<h2>Treated vs holdout</h2>{metrics}
<img src="lift.png" alt="lift per variant with 95% intervals">
<h2>Variants against the holdout</h2>{variants}
{sections}
{themes}
<h2>Steps and channels</h2><p class="muted">Rates among recipients; observational (the plan chose who got which channel).</p>{steps}
<img src="hours.png" alt="re-engagement by send hour relative to the best hour">
<img src="cumulative.png" alt="cumulative re-engagement treated vs holdout">
{blast}
{skipped}
{harm_html}
<h2>Sunset</h2><p>{summary['sunset_users']:,} users received their whole sequence (or the campaign's <code>sunset_after</code>
messages) and did not come back: <a href="sunset.csv">sunset.csv</a> (also <code>sunset.arrow</code>);
<code>winback sunset REPORT --ledger LEDGER</code> suppresses them (<code>--dry-run</code> first).</p>
</body></html>
"""
