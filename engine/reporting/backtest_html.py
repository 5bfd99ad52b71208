"""The backtest's HTML page (calibration plot, cumulative-gains chart) from :func:`engine.scoring.backtest.backtest`.

The plots are PNGs drawn with matplotlib (the ``report`` extra) and embedded as data
URIs, so ``index.html`` is one self-contained file; ``backtest.json`` beside it holds
the numbers.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from engine.io.atomic import atomic_dir
from engine.reporting.plots import figure

__all__ = ["render_html", "write_backtest", "backtest_report"]

_CSS = ("body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}"
        "th{background:#f3f4f6}td:first-child,th:first-child{text-align:left}.warn{color:#b45309}"
        "img{max-width:100%}")


def _fmt(v, pct=False, digits=4):
    if v is None:
        return "-"
    return f"{100 * v:.1f}%" if pct else f"{v:.{digits}f}"


def _plots(result: dict) -> dict[str, str]:
    out = {}
    fig, ax = figure((5.2, 4.2))
    cal = result["calibration"]
    ax.plot([0, 1], [0, 1], color="#999", lw=1, ls="--", label="perfect calibration")
    ax.plot([c["predicted"] for c in cal], [c["actual"] for c in cal], "o-", color="#2563eb", label="lapse_risk")
    ax.set_xlabel("predicted chance of no activity (bin mean)")
    ax.set_ylabel("actual share with no activity")
    ax.set_title(f"Calibration, {result['horizon_days']:g}-day horizon")
    ax.legend(loc="upper left")
    out["calibration"] = _png(fig)
    fig, ax = figure((5.2, 4.2))
    for name, g in result["gains"].items():
        if g:
            q = [(i + 1) / len(g) for i in range(len(g))]
            ax.plot([0] + q, [0] + g, lw=2 if name == "lapse_risk" else 1, label=name)
    ax.plot([0, 1], [0, 1], color="#999", lw=1, ls="--", label="random")
    ax.set_xlabel("share of users, riskiest first")
    ax.set_ylabel("share of non-returners found")
    ax.set_title("Cumulative gains (lift chart)")
    ax.legend(loc="lower right", fontsize=8)
    out["gains"] = _png(fig)
    return out


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _delivery_table(d: dict) -> str:
    """The send-hour check: open rates of the window's messages delivered near each hour or not."""
    if not d.get("messages"):
        return ""

    def cells(g):
        out = ""
        for name in ("best", "population"):
            x = g[name]
            ratio = (f"{x['near_open_rate'] / x['other_open_rate']:.2f}x" if x["near_open_rate"] is not None
                     and x["other_open_rate"] else "-")
            out += (f"<td>{_fmt(x['near_open_rate'], True)} ({x['near_messages']:,})</td>"
                    f"<td>{_fmt(x['other_open_rate'], True)}</td><td>{ratio}</td>")
        return out

    rows = f"<tr><td>all</td><td>{d['messages']:,}</td>{cells(d)}</tr>" + "".join(
        f"<tr><td>{html.escape(g['engagements'])}</td><td>{g['messages']:,}</td>{cells(g)}</tr>"
        for g in d["by_engagements"] if g["messages"])
    return f"""
<p>When an open happens follows when the message arrived, so the shares above mostly show the sender's schedule.
Below, the same users' messages in the window: the open rate of those delivered within an hour of the hour
against the others (messages landed near the hour by chance, so this is an observational estimate).</p>
<table id="send-hour"><thead><tr><th>engagements before the cut</th><th>messages</th>
<th>near best_hour_local (messages)</th><th>other</th><th>ratio</th>
<th>near population best hour (messages)</th><th>other</th><th>ratio</th></tr></thead><tbody>{rows}</tbody></table>"""


def render_html(result: dict, plots: dict[str, str] | None = None) -> str:
    """The page as a string; ``plots`` maps "calibration"/"gains" to image URIs (drawn when None)."""
    plots = _plots(result) if plots is None else plots
    e = html.escape
    rows = "".join(f"<tr><td>{e(k)}</td><td>{_fmt(result['auc'][k])}</td>"
                   f"<td>{_fmt(result['top_decile_lift'][k], digits=2)}</td></tr>" for k in result["auc"])
    cal = "".join(f"<tr><td>{c['bin']}</td><td>{c['users']:,}</td><td>{_fmt(c['predicted'], True)}</td>"
                  f"<td>{_fmt(c['actual'], True)}</td></tr>" for c in result["calibration"])
    b = result["best_hour"]
    hours = "".join(f"<tr><td>{e(g['engagements'])}</td><td>{g['users']:,}</td><td>{_fmt(g['hit_rate'], True)}</td>"
                    f"<td>{_fmt(g['population_hit_rate'], True)}</td></tr>" for g in b["by_engagements"])
    warns = "".join(f"<p class='warn'>warning: {e(w)}</p>" for w in result.get("warnings", []))
    f = result.get("fatigue", {})
    fatigue = "" if not f.get("messaged_users") else (
        "<h2>Fatigue model</h2><table id='fatigue'><thead><tr><th>users messaged</th><th>messages</th>"
        "<th>opens</th><th>predicted opens</th><th>AUC opened (fatigue model)</th><th>AUC opened (response rate)"
        f"</th></tr></thead><tbody><tr><td>{f['messaged_users']:,}</td><td>{f['messages']:,}</td>"
        f"<td>{f['opens']:,}</td><td>{f['predicted_opens']:,.0f}</td><td>{_fmt(f['auc_opened'])}</td>"
        f"<td>{_fmt(f['auc_opened_response_rate'])}</td></tr></tbody></table>")
    best_hour = ("<h2>Best send hour</h2><p>Nobody opened or clicked a message in the window, so the send hour "
                 "cannot be checked on this history.</p>") if not b["engaged_users"] else f"""<h2>Best send hour</h2>
<p>{b['engaged_users']:,} users opened or clicked in the window; the share who did so within an hour of their
<code>best_hour_local</code> against within an hour of their timezone's population best hour.</p>
<table id="best-hour"><thead><tr><th>engagements before the cut</th><th>users</th><th>best_hour_local</th>
<th>population best hour</th></tr></thead><tbody>
<tr><td>all</td><td>{b['engaged_users']:,}</td><td>{_fmt(b['hit_rate'], True)}</td>
<td>{_fmt(b['population_hit_rate'], True)}</td></tr>{hours}</tbody></table>"""
    best_hour += _delivery_table(b.get("delivery") or {})
    m = result.get("model", {})
    model = ", ".join(f"{k}={m[k]:.4g}" for k in ("r", "alpha", "a", "b") if k in m)
    lm = result.get("lapse_model") or {}
    model += (f". lapse_risk at the cut: {lm.get('name') or lm['used'].replace('_', ' ')} ({lm['reason']})" if lm else "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>winback backtest {e(result['as_of'])}</title>
<style>{_CSS}</style></head><body>
<h1>Backtest: would the scores have known?</h1>
<p>Scored as of <b>{e(result['cut'])}</b> from the history before it, then compared with what users did in the
next {result['horizon_days']:g} days, up to {e(result['as_of'])}. {result['users']:,} users were active before
the cut; {_fmt(result['lapsed_share'], True)} of them had no activity in the window. BG/NBD (days): {e(model)}.</p>
{warns}
<h2>Who will not come back</h2>
<p>AUC: the chance that a random user who did not come back was ranked riskier than one who did (0.5 = a coin).
Top-decile lift: the no-return rate among the riskiest 10 % over the overall rate.</p>
<table id="rankings"><thead><tr><th>ranking</th><th>AUC</th><th>top-decile lift</th></tr></thead>
<tbody>{rows}</tbody></table>
<img id="gains" alt="cumulative gains chart" src="{plots['gains']}">
<h2>Calibration</h2>
<table id="calibration"><thead><tr><th>bin of lapse_risk</th><th>users</th><th>predicted</th><th>actual</th></tr>
</thead><tbody>{cal}</tbody></table>
<img id="calibration-plot" alt="calibration plot" src="{plots['calibration']}">
{best_hour}
{fatigue}
</body></html>
"""


def write_backtest(result: dict, out_dir) -> Path:
    """Write ``out_dir/index.html`` and ``out_dir/backtest.json`` atomically; returns the page's path."""
    page = render_html(result)
    with atomic_dir(out_dir) as tmp:
        (tmp / "backtest.json").write_text(json.dumps(result, indent=2, default=float))
        (tmp / "index.html").write_text(page, encoding="utf-8")
    return Path(out_dir) / "index.html"


def backtest_report(users, events, *, out_dir=None, **options) -> dict:
    """:func:`engine.scoring.backtest.backtest` and, with ``out_dir``, its page and JSON (atomically).

    The plots are drawn before anything is written, so a missing matplotlib leaves no output.
    """
    from engine.scoring.backtest import backtest

    result = backtest(users, events, **options)
    if out_dir is not None:
        result["page"] = str(write_backtest(result, out_dir))
    return result
