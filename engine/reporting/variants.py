"""Variants against each other: differences with intervals, a winner call, next weights.

The variants split the treated audience by a hash of (campaign id, user id), so any
two of them are comparable arms of one randomised experiment; their difference is
causal whatever the targeting.  Every user counts (intent-to-treat: a treated user of
the variant, messaged or not), over the report's window.

- ``vs_first``: each variant against the first one of the campaign (the control), per
  metric, with Newcombe's hybrid score interval (:mod:`engine.reporting.stats`).
- ``winner``: the variant with the highest re-engagement rate is a *clear* winner
  when its difference with every other variant has a lower bound above 0 at the
  Bonferroni-adjusted level 1 - 0.05 / (k - 1) for k variants; else "no clear
  winner".
- ``suggested_weights``: Thompson sampling shares, the posterior probability that each
  variant has the highest re-engagement rate under independent Beta(1 + re-engaged,
  1 + not) posteriors (Thompson 1933), estimated with ``draws`` seeded draws, each share
  at least ``floor`` so no variant stops being measured.  They split the *treated* share of
  the next run: the holdout stays what ``[campaign] holdout`` says, so the next run's
  lift is still measured against it.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from engine.reporting import stats

__all__ = ["compare_variants", "thompson_shares", "html_section", "terminal_lines", "METRICS"]

METRICS = ("reengaged", "converted", "clicked", "unsubscribed")


def _z(level: float) -> float:
    """Two-sided normal quantile for a confidence ``level`` (0..1)."""
    return NormalDist().inv_cdf(0.5 + level / 2)


def _none(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def thompson_shares(k: np.ndarray, n: np.ndarray, *, draws: int = 20000, seed: int = 0,
                    floor: float = 0.05) -> np.ndarray:
    """P(variant i has the highest rate) under Beta(1 + k, 1 + n - k) posteriors, mixed
    with the uniform so that each share is at least ``floor``: ``floor + (1 - k floor) P``."""
    k, n = np.asarray(k, np.float64), np.asarray(n, np.float64)
    if len(k) == 0:
        return np.zeros(0)
    rng = np.random.default_rng(seed)
    samples = rng.beta(1 + k[:, None], 1 + (n - k)[:, None], size=(len(k), draws))
    share = np.bincount(samples.argmax(axis=0), minlength=len(k)) / draws
    floor = min(floor, 1.0 / len(k))
    return floor + (1.0 - floor * len(k)) * share   # every share >= floor, summing to 1


def compare_variants(flags: dict[str, np.ndarray], treat: np.ndarray, variant: np.ndarray,
                     names: list[str], *, min_n: int = 200, seed: int = 0) -> dict:
    """Variant-vs-variant results among the treated users; see the module docstring.

    ``flags``: per-user 0/1 metrics (``reengaged``, ...); ``variant``: per-user variant
    name; ``names``: the campaign's variants in file order (the first is the control)."""
    names = [v for v in names if (treat & (variant == v)).any()]
    arms = {v: treat & (variant == v) for v in names}
    rows = []
    for v in names:
        m = arms[v]
        rows.append({"variant": v, "users": int(m.sum()),
                     **{f"{k}_rate": float(flags[k][m].mean()) if m.any() else None for k in METRICS if k in flags}})
    out = {"control": names[0] if names else None, "arms": rows, "vs_first": [], "winner": None,
           "winner_note": "", "suggested_weights": {}}
    if len(names) < 2:
        out["winner_note"] = "one variant: nothing to compare"
        return out
    for v in names[1:]:
        for metric in METRICS:
            if metric not in flags:
                continue
            a, b = arms[v], arms[names[0]]
            k1, n1, k2, n2 = int(flags[metric][a].sum()), int(a.sum()), int(flags[metric][b].sum()), int(b.sum())
            d, lo, hi = stats.newcombe_diff(k1, n1, k2, n2)
            note = stats.verdict(n1, n2, lo, hi, min_n=min_n, group="a variant",
                                 no_effect="too small to tell: the interval includes no difference")
            out["vs_first"].append({"variant": v, "against": names[0], "metric": metric, "difference": _none(d),
                                    "ci": [_none(lo), _none(hi)], "note": note})
    re = flags["reengaged"]
    rates = {v: float(re[arms[v]].mean()) for v in names}
    best = max(names, key=lambda v: rates[v])
    z = _z(1 - 0.05 / (len(names) - 1))
    lows = []
    for v in names:
        if v == best:
            continue
        _, lo, _ = stats.newcombe_diff(int(re[arms[best]].sum()), int(arms[best].sum()),
                                       int(re[arms[v]].sum()), int(arms[v].sum()), z)
        lows.append(lo)
    small = min(int(arms[v].sum()) for v in names) < min_n
    if not small and all(lo > 0 for lo in lows):
        out["winner"] = best
        out["winner_note"] = (f"{best} re-engages more than every other variant (interval above 0 at the "
                              f"{100 * (1 - 0.05 / (len(names) - 1)):.1f}% level, Bonferroni)")
    else:
        out["winner_note"] = ("no clear winner: " + (f"fewer than {min_n} users in a variant" if small else
                              f"{best} is ahead but an interval against it includes 0"))
    shares = thompson_shares(np.array([int(re[arms[v]].sum()) for v in names]),
                             np.array([int(arms[v].sum()) for v in names]), seed=seed)
    out["suggested_weights"] = {v: round(float(s), 3) for v, s in zip(names, shares)}
    return out


def _pp(x) -> str:
    return "-" if x is None else f"{100 * x:+.2f} pp"


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def terminal_lines(v: dict) -> list[str]:
    """The comparison for the terminal: per variant re-engagement, the differences on
    re-engagement against the control, the winner call and the suggested weights."""
    if not v or len(v.get("arms", [])) < 2:
        return []
    lines = ["variants (treated users, randomised: each against " + str(v["control"]) + "):"]
    diffs = {r["variant"]: r for r in v["vs_first"] if r["metric"] == "reengaged"}
    for a in v["arms"]:
        line = f"  {a['variant']:<20}{a['users']:>8,} users  re-engaged {_pct(a.get('reengaged_rate')):>7}"
        d = diffs.get(a["variant"])
        if d:
            line += f"  {_pp(d['difference'])} ({_pp(d['ci'][0])} .. {_pp(d['ci'][1])})"
            if d["note"]:
                line += f"  {d['note']}"
        lines.append(line)
    lines.append("  " + v["winner_note"])
    w = v.get("suggested_weights") or {}
    if w:
        lines.append("  suggested weights for the next run (Thompson sampling; the holdout stays as set): "
                     + ", ".join(f"{k} = {x:g}" for k, x in w.items())
                     + ("" if v.get("winner") else "; with no clear winner they lean on noise as much as on "
                        "signal (exploration): equal weights are as sound"))
    return lines


def html_section(v: dict, table) -> str:
    """The report's "Variant against variant" section; ``table(headers, rows)`` renders a table."""
    if not v or len(v.get("arms", [])) < 2:
        return ""
    arms = table(["variant", "treated users", "re-engaged", "converted", "clicked", "unsubscribed"],
                 [[a["variant"], a["users"], _pct(a.get("reengaged_rate")), _pct(a.get("converted_rate")),
                   _pct(a.get("clicked_rate")), _pct(a.get("unsubscribed_rate"))] for a in v["arms"]])
    diffs = table(["variant", "against", "metric", "difference", "95% CI", "note"],
                  [[r["variant"], r["against"], r["metric"], _pp(r["difference"]),
                    f"{_pp(r['ci'][0])} .. {_pp(r['ci'][1])}", r["note"]] for r in v["vs_first"]])
    w = v.get("suggested_weights") or {}
    toml = "\n".join(f'[[variants]]\nname = "{k}"\nweight = {x:g}' for k, x in w.items())
    import html as _html

    return ("<h2>Variant against variant</h2><p class=\"muted\">The variants are a random split of the treated "
            "audience, so these differences are causal (intent-to-treat, Newcombe 95% intervals).</p>"
            + arms + diffs + f"<p><b>{_html.escape(v['winner_note'])}</b></p>"
            + ("<p>Weights for the next run (Thompson sampling: the chance each variant is best, floored at 5%; "
               "they split the treated share, the holdout stays as set):</p>"
               f"<pre>{_html.escape(toml)}</pre>" if w else ""))
