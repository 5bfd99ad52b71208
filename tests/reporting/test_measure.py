"""Lift statistics, simulation determinism and the report end to end on a small world."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow.feather as feather
import pytest

from engine.reporting import stats
from engine.errors import DependencyError
from engine.cli import main
from engine.synth.generator import generate
from tests.helpers import holdout_plan
from engine.planning.planner import plan
from engine.reporting.measure import report
from engine.scoring.pipeline import score
from engine.synth.simulate import delivered, simulate, write_outcomes


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
    assert a.equals(b)
    assert not a.equals(c)
    # holdout users get no message but may come back on their own
    held = set(p.filter(p["holdout"])["user_id"].to_pylist())
    assert not held & set(delivered(a)["user_id"].to_pylist())
    import pyarrow.compute as pc

    ev = a
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


def test_small_arms_are_too_small_to_tell_and_the_ledger_decides_what_was_delivered(tmp_path):
    """Given 40 treated vs 20 holdout users and a ledger where 2 messages went out."""
    import sqlite3

    import pyarrow as pa

    from engine.ledger.store import Ledger
    from engine.tz import from_epoch_seconds

    p = holdout_plan()
    with Ledger(tmp_path / "l.db") as led:
        led.load_plan(p)
    con = sqlite3.connect(tmp_path / "l.db")
    con.execute("UPDATE messages SET state='sent' WHERE message_id IN ('m1','m2')")
    con.commit()
    con.close()
    t = 1_790_000_000 + 3600
    ev = pa.table({"user_id": pa.array([1, 2, 4, 3], pa.int64()), "ts": from_epoch_seconds(np.array([t] * 4)),
                   "event": ["click", "session", "session", "session"]})
    # when reported against the ledger
    s = report(p, ev, ledger=tmp_path / "l.db")
    # then only the two sent messages count, and the verdict is "too small to tell"; user 1's click is
    # a message metric (only a messaged user can click), not a return: users 2, 3 (holdout) and 4 came back
    assert s["messages_sent"] == 2
    re = s["metrics"]["reengaged"]
    assert (re["treated"]["users"], re["treated"]["count"], re["holdout"]["users"], re["holdout"]["count"]) == \
        (40, 2, 20, 1)
    assert re["note"].startswith("too small to tell")
    assert s["per_protocol"]["treated"]["users"] == 2 and s["per_protocol"]["treated"]["count"] == 1
    # user 4 got nothing, so is not in the sunset list; sent user 2 came back, sent user 1 only clicked
    assert s["sunset_users"] == 1
    with pytest.raises(Exception, match="does not exist"):
        report(p, ev, ledger=tmp_path / "missing.db")


def test_missing_matplotlib_is_a_dependency_error_naming_the_extra(tmp_path):
    """Given matplotlib cannot be imported, the CLI prints one line naming pip install winback[report]."""
    import subprocess
    import sys

    import pyarrow.feather as feather

    feather.write_feather(holdout_plan(), tmp_path / "plan.arrow")
    feather.write_feather(pa_events(), tmp_path / "ev.arrow")
    code = ("import sys; sys.modules['matplotlib'] = None; from engine.cli import main; "
            f"sys.exit(main(['report', r'{tmp_path / 'plan.arrow'}', r'{tmp_path / 'ev.arrow'}', "
            f"'-o', r'{tmp_path / 'r'}']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == DependencyError.exit_code and r.stderr.startswith("DependencyError:") and "winback[report]" in r.stderr
    assert r.stderr.count("\n") == 1 and not (tmp_path / "r").exists()


def pa_events():
    import pyarrow as pa

    from engine.tz import from_epoch_seconds

    return pa.table({"user_id": pa.array([1], pa.int64()), "ts": from_epoch_seconds(np.array([1_790_003_600])),
                     "event": ["session"]})


def test_mistyped_report_and_simulate_options_are_one_line_and_write_nothing(loop, tmp_path, capsys):
    # given a real plan, its simulated outcomes and its world's truth
    d, _, p = loop
    write_outcomes(simulate(p, d / "world/truth.arrow", seed=3), tmp_path / "out")
    plan, out, truth = str(d / "plan.arrow"), str(tmp_path / "out"), str(d / "world/truth.arrow")
    cases = [  # (argv, what stderr says); --days 100000000 ran past a minute, --seed -1 was a traceback,
        # a --ledger that does not exist was silently left out of the report
        (["report", plan, out, "--days", "5000", "-o", str(tmp_path / "r")], "--days must be from 1 to 3650"),
        (["report", plan, out, "--ledger", str(tmp_path / "typo.db"), "-o", str(tmp_path / "r")],
         f"ledger {tmp_path / 'typo.db'} does not exist"),
        (["simulate", plan, "--truth", truth, "--seed", "-1", "-o", str(tmp_path / "s")], "--seed must be a whole"),
        (["simulate", plan, "--truth", truth, "--days", "99999", "-o", str(tmp_path / "s")], "--days must be from 1"),
        (["explain", "99999999999999999999999", "--plan", plan], "user ids are 64-bit whole numbers"),
        # the events file as --scores was an audience-rule error that named no file
        (["explain", "1", "--plan", plan, "--scores", str(d / "world/events.arrow")],
         f"{d / 'world/events.arrow'} has no column 'best_hour_local'"),
    ]
    for argv, says in cases:
        # when run, then exit 2, one line, nothing written
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and says in err, (argv, err)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out"]
    assert not (tmp_path / "typo.db").exists()
