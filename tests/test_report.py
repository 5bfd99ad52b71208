"""Lift statistics, simulation determinism and the report end to end on a small world."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow.feather as feather
import pytest

from engine import stats
from engine.cli import main
from engine.generate import generate
from engine.plan import plan
from engine.report import report
from engine.score import score
from engine.simulate import simulate, write_outcomes


def test_wilson_and_newcombe_match_hand_computed_values():
    # Newcombe (1998) table II example: 56/70 vs 48/80 -> difference 0.2, CI 0.0524 .. 0.3339
    d, lo, hi = stats.newcombe_diff(56, 70, 48, 80)
    assert d == pytest.approx(0.2)
    assert lo == pytest.approx(0.0524, abs=5e-4) and hi == pytest.approx(0.3339, abs=5e-4)
    lo1, hi1 = stats.wilson(0, 10)
    assert lo1 == 0.0 and hi1 == pytest.approx(0.2775, abs=1e-4)
    assert all(math.isnan(v) for v in stats.newcombe_diff(1, 0, 1, 10))


def test_relative_lift_interval_contains_the_point():
    r, lo, hi = stats.relative_lift(60, 1000, 40, 1000)
    assert r == pytest.approx(0.5) and lo < r < hi


def test_difference_interval_covers_the_true_lift_at_least_90_of_100_times():
    """Statistical: on worlds with a known effect the 95% interval covers it >= 90 of 100 seeds."""
    covered = 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        p_treat, p_ctrl = 0.06, 0.04
        n1, n2 = 2700, 300                                # a 10 % holdout
        k1 = int((rng.random(n1) < p_treat).sum())
        k2 = int((rng.random(n2) < p_ctrl).sum())
        _, lo, hi = stats.newcombe_diff(k1, n1, k2, n2)
        covered += lo <= p_treat - p_ctrl <= hi
    assert covered >= 90


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    d = tmp_path_factory.mktemp("loop")
    generate(4000, seed=5, out_dir=d / "world")
    scores = score(d / "world/users.arrow", d / "world/events.arrow", as_of="2026-11-01")
    p = plan(scores, "examples/winback_lapsing.toml")
    feather.write_feather(p, d / "plan.arrow")
    feather.write_feather(scores, d / "scores.arrow")
    return d, scores, p


def test_simulation_is_deterministic_per_seed(loop):
    d, _, p = loop
    a = simulate(p, d / "world/truth.arrow", seed=1)
    b = simulate(p, d / "world/truth.arrow", seed=1)
    c = simulate(p, d / "world/truth.arrow", seed=2)
    assert a["events"].equals(b["events"])
    assert not a["events"].equals(c["events"])
    # holdout users get no message but may come back on their own
    held = set(p.filter(p["holdout"])["user_id"].to_pylist())
    assert not held & set(a["messages"]["user_id"].to_pylist())
    import pyarrow.compute as pc

    ev = a["events"]
    active = set(ev.filter(pc.equal(ev["event"].cast("string"), "session"))["user_id"].to_pylist())
    assert held & active


def test_report_writes_html_plots_summary_and_sunset(loop, tmp_path):
    d, scores, p = loop
    write_outcomes(simulate(p, d / "world/truth.arrow", seed=1), tmp_path / "out")
    write_outcomes(simulate(p, d / "world/truth.arrow", seed=1, policy="blast", scores=scores), tmp_path / "blast")
    s = report(p, tmp_path / "out", out_dir=tmp_path / "report", blast=tmp_path / "blast")
    for f in ("index.html", "summary.json", "lift.png", "hours.png", "cumulative.png", "sunset.csv", "sunset.arrow"):
        assert (tmp_path / "report" / f).exists(), f
    html = (tmp_path / "report" / "index.html").read_text()
    assert '<img src="lift.png"' in html and "batch-and-blast" in html
    on_disk = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert on_disk["metrics"]["reengaged"]["treated"]["users"] == s["metrics"]["reengaged"]["treated"]["users"]
    re = s["metrics"]["reengaged"]
    assert re["lift_ci"][0] <= re["lift"] <= re["lift_ci"][1]
    assert s["blast"]["messages_sent"] > 0


def test_report_cli_prints_headline(loop, tmp_path, capsys):
    d, _, p = loop
    write_outcomes(simulate(p, d / "world/truth.arrow", seed=3), tmp_path / "out")
    code = main(["report", str(d / "plan.arrow"), str(tmp_path / "out"), "-o", str(tmp_path / "r")])
    assert code == 0
    out = capsys.readouterr().out
    assert "headline: re-engagement" in out and "index.html" in out
    code = main(["report", str(d / "plan.arrow"), str(tmp_path / "missing"), "-o", str(tmp_path / "r2")])
    assert code == 2 and not (tmp_path / "r2").exists()
