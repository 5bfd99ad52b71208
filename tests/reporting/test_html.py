"""The report's headline, terminal table and theme lines from a summary dict."""

from __future__ import annotations

from engine.reporting.html import headline, terminal_table, theme_lines


def metric(rate_t, rate_h, lift, lo, hi, rel=None, note=""):
    return {"treated": {"users": 1000, "rate": rate_t}, "holdout": {"users": 100, "rate": rate_h},
            "lift": lift, "lift_ci": [lo, hi], "relative_lift": rel, "note": note}


def test_headline_gives_rates_lift_interval_and_note():
    s = {"metrics": {"reengaged": metric(0.12, 0.10, 0.02, 0.005, 0.035, rel=0.2)}}
    assert headline(s) == ("re-engagement 12.00% treated vs 10.00% holdout: lift +2.00 pp "
                           "(95% CI +0.50 pp to +3.50 pp), relative 20.0%")
    s = {"metrics": {"reengaged": metric(None, None, None, None, None, note="no holdout")}}
    assert headline(s) == "re-engagement - treated vs - holdout: lift - (95% CI - to -) - no holdout"


def test_terminal_table_has_one_line_per_metric_under_a_header():
    s = {"metrics": {"reengaged": metric(0.12, 0.10, 0.02, 0.005, 0.035),
                     "converted": metric(0.05, 0.05, 0.0, -0.01, 0.01)}}
    lines = terminal_table(s).split("\n")
    assert lines[0].split() == ["metric", "treated", "holdout", "lift", "95%", "CI"]
    assert lines[1].split()[:4] == ["reengaged", "12.00%", "10.00%", "+2.00"]
    assert lines[2].startswith("converted") and "-1.00 pp .. +1.00 pp" in lines[2]


def test_theme_lines_one_per_row_with_the_note():
    row = {"step": "a", "theme": "trending", "messages_sent": 1234, **metric(0.1, 0.08, 0.02, -0.01, 0.05),
           "note": "too small to tell"}
    [line] = theme_lines([row])
    assert line.startswith("  a: trending") and "1,234 msgs" in line and line.endswith("too small to tell")
