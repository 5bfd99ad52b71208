"""winback backtest: score as of T - H, compare with (T - H, T]; on CDNOW and on a generated world."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.cli import main
from engine.scoring.backtest import auc, backtest, calibration, terminal_table, top_decile_lift
from engine.synth.generator import generate
from tests import cdnow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("w")
    generate(3000, seed=5, out_dir=d)
    return d


def _pairwise_auc(score, positive):
    """The definition: P(score of a random positive > score of a random negative), ties half."""
    pos, neg = score[positive], score[~positive]
    return float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum())
                 / (len(pos) * len(neg)))


@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=2, max_size=60))
def test_auc_is_the_pairwise_probability(rows):
    score = np.array([r[0] for r in rows], float)
    positive = np.array([r[1] for r in rows])
    got = auc(score, positive)
    if positive.all() or not positive.any():
        assert got is None
    else:
        assert got == pytest.approx(_pairwise_auc(score, positive), abs=1e-12)


def test_lift_and_calibration_on_hand_cases():
    positive = np.array([True] * 10 + [False] * 90)
    perfect = np.arange(100, 0, -1).astype(float)  # the positives first
    assert top_decile_lift(perfect, positive) == pytest.approx(10.0)
    assert top_decile_lift(-perfect, positive) == 0.0
    cal = calibration(np.linspace(0, 1, 100), np.linspace(0, 1, 100) > 0.5)
    assert [c["users"] for c in cal] == [10] * 10 and cal[0]["actual"] == 0.0 and cal[-1]["actual"] == 1.0
    assert all(a["predicted"] <= b["predicted"] for a, b in zip(cal, cal[1:]))


def test_cdnow_sample_backtest_beats_one_minus_p_alive():
    # given the CDNOW sample up to 1997-10-01 / when backtested over 30 days on purchases
    users, events = cdnow.tables()
    r = backtest(users, events, as_of=cdnow.AS_OF, horizon_days=30, activity="purchase")
    # then it scored as of 1997-09-01 and compared with September (measured: lapse_risk 0.751, 1-p_alive 0.585)
    assert r["cut"] == "1997-09-01T00:00:00Z" and r["users"] == 2357 and 0.85 < r["lapsed_share"] < 0.99
    assert r["auc"]["lapse_risk"] > r["auc"]["1 - p_alive"] + 0.1 and r["auc"]["lapse_risk"] > 0.7
    assert len(r["calibration"]) == 10 and sum(c["users"] for c in r["calibration"]) == 2357
    # predicted and actual no-return shares agree within a few points on every decile
    assert max(abs(c["predicted"] - c["actual"]) for c in r["calibration"]) < 0.08
    assert r["best_hour"]["engaged_users"] == 0  # no messages in CDNOW
    json.dumps(r)  # JSON-ready
    assert "lapse_risk" in terminal_table(r)


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.images, self.tags = set(), [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "img":
            self.images.append(a.get("src", ""))


def test_cli_on_a_generated_world_writes_the_page(world, tmp_path, capsys):
    out = tmp_path / "bt"
    assert main(["backtest", str(world / "users.arrow"), str(world / "events.arrow"), "--as-of", "2026-11-01",
                 "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "lapse_risk" in printed and "recency only" in printed and "best hour" in printed
    r = json.loads((out / "backtest.json").read_text())
    # lapse_risk ranks who comes back better than recency or frequency alone on the generated world
    assert r["auc"]["lapse_risk"] > r["auc"]["recency only"] > 0.8
    assert r["auc"]["lapse_risk"] > r["auc"]["frequency only"]
    assert r["top_decile_lift"]["lapse_risk"] >= 1.0
    assert r["best_hour"]["engaged_users"] > 50
    assert r["best_hour"]["hit_rate"] >= r["best_hour"]["population_hit_rate"] - 0.05
    # the fatigue model predicts who opens a message in the window better than the response rate alone
    f = r["fatigue"]
    assert f["messaged_users"] > 100 and f["auc_opened"] > max(0.55, f["auc_opened_response_rate"] - 0.02)
    assert 0.5 < f["predicted_opens"] / f["opens"] < 2.0 and "fatigue model" in printed
    page = _Page()
    page.feed((out / "index.html").read_text())
    assert {"rankings", "calibration", "best-hour", "send-hour", "gains", "calibration-plot", "fatigue"} <= page.ids
    # messages delivered near the user's best hour are opened more than the others (the generator's hour factor)
    d = r["best_hour"]["delivery"]
    assert d["messages"] == f["messages"] and "send hour" in printed
    assert d["best"]["near_open_rate"] > d["best"]["other_open_rate"]
    assert len(page.images) == 2 and all(src.startswith("data:image/png;base64,") for src in page.images)


def test_score_prints_the_last_backtest_of_the_same_inputs(world, tmp_path, capsys):
    # given a backtest of the world written to backtest/ and another one of other inputs beside it
    assert main(["backtest", str(world / "users.arrow"), str(world / "events.arrow"), "--as-of", "2026-11-01",
                 "-o", str(tmp_path / "backtest")]) == 0
    r = json.loads((tmp_path / "backtest" / "backtest.json").read_text())
    assert r["lapse_model"]["used"] in ("learned", "closed_form") and r["inputs"]["events"].endswith("events.arrow")
    other = tmp_path / "other"
    other.mkdir()
    (other / "backtest.json").write_text(json.dumps({**r, "inputs": {"users": "u", "events": "e"},
                                                     "auc": {"lapse_risk": 0.123}}))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "backtest.json").write_text("{not json")
    capsys.readouterr()
    # when the same users and events are scored into that directory
    args = ["score", str(world / "users.arrow"), str(world / "events.arrow"), "--as-of", "2026-11-01",
            "--no-progress"]
    assert main([*args, "-o", str(tmp_path / "scores.arrow")]) == 0
    printed = capsys.readouterr().out
    # then the headline of that backtest (not the other one) is printed
    line = next(ln for ln in printed.splitlines() if "last backtest" in ln)
    assert "backtest.json" in line and f"{r['auc']['lapse_risk']:.4f}" in line and "0.1230" not in line
    assert f"{r['auc']['recency only']:.4f}" in line and "top-decile lift" in line
    # and a score that forces the closed form says so
    assert main([*args, "--lapse-model", "closed_form", "-o", str(tmp_path / "s2.arrow")]) == 0
    assert "lapse_risk: BG/NBD closed form (the BG/NBD closed form was asked for)" in capsys.readouterr().out
    # and scoring into a directory with no backtest prints none
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert main([*args, "-o", str(elsewhere / "scores.arrow")]) == 0
    assert "last backtest" not in capsys.readouterr().out


def test_bad_input_exits_2_with_no_output(world, tmp_path, capsys):
    out = tmp_path / "bt"
    # the cut before any event
    assert main(["backtest", str(world / "users.arrow"), str(world / "events.arrow"), "--as-of", "2020-01-01",
                 "-o", str(out)]) == 2
    assert "--as-of" in capsys.readouterr().err and not out.exists()
    assert main(["backtest", str(world / "users.arrow"), str(world / "events.arrow"), "--as-of", "2026-11-01",
                 "--horizon", "-3", "-o", str(out)]) == 2
    assert "--horizon" in capsys.readouterr().err and not out.exists()
    # an events file without the ts column
    import pyarrow.feather as feather

    feather.write_feather(feather.read_table(world / "events.arrow").drop_columns(["ts"]), tmp_path / "e.arrow")
    assert main(["backtest", str(world / "users.arrow"), str(tmp_path / "e.arrow"), "--as-of", "2026-11-01",
                 "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "ts" in err and "e.arrow" in err and not out.exists()
    # timestamps as integers (epoch seconds): one line naming the file and the column, no traceback
    import pyarrow as pa
    import pyarrow.compute as pc

    ev = feather.read_table(world / "events.arrow")
    ev = ev.set_column(ev.schema.get_field_index("ts"), "ts", pc.divide(ev["ts"].cast(pa.int64()), 1_000_000))
    feather.write_feather(ev, tmp_path / "int_ts.arrow")
    assert main(["backtest", str(world / "users.arrow"), str(tmp_path / "int_ts.arrow"), "--as-of", "2026-11-01",
                 "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "int_ts.arrow" in err and "column 'ts'" in err and "int64" in err and not out.exists()


def test_send_hour_check_attributes_each_open_to_the_latest_message_before_it():
    """Hand case: two users (best hours 9 and 20, New York and UTC), five messages, three opens; the
    open rates near/away from each hour follow from the definition."""
    import pyarrow as pa

    from engine.schema import EVENTS
    from engine.scoring.backtest import _delivery, _zones

    day = 1_780_000_000 - 1_780_000_000 % 86_400  # a UTC midnight
    scores = pa.table({"user_id": [10, 20], "timezone": ["America/New_York", "UTC"]})
    zones, user_zone = _zones(scores, "UTC")
    ny = -4 * 3600  # New York in summer (checked below)
    send, opn = EVENTS.index("send"), EVENTS.index("open")
    rows = [  # (user, ts, event)
        (10, day + 9 * 3600 - ny, send),     # 09:00 local: near user 10's best hour
        (10, day + 9 * 3600 - ny + 600, opn),
        (10, day + 15 * 3600 - ny, send),    # 15:00 local: not near
        (20, day + 20 * 3600, send),         # 20:00 UTC: near user 20's best hour, opened twice (counted once)
        (20, day + 20 * 3600 + 60, opn),
        (20, day + 20 * 3600 + 120, opn),
        (20, day + 2 * 86_400 + 3 * 3600, send),  # 03:00: not near, not opened
        (30, day + 20 * 3600, send),         # a user not in the scores: left out
    ]
    uid = np.array([r[0] for r in rows], np.int64)
    ts = np.array([r[1] for r in rows], np.int64)
    code = np.array([r[2] for r in rows], np.int64)
    import datetime as dt
    from zoneinfo import ZoneInfo
    assert dt.datetime.fromtimestamp(int(ts[0]), ZoneInfo("America/New_York")).hour == 9
    d = _delivery(scores["user_id"].to_numpy(), uid, ts, code, np.ones(len(rows), bool), zones, user_zone,
                  best=np.array([9, 20]), pop=np.array([15, 15]), n_eng=np.array([3, 7]))
    assert d["messages"] == 4
    assert d["best"] == {"near_messages": 2, "near_open_rate": 1.0, "other_messages": 2, "other_open_rate": 0.0}
    # the population hour 15 (within 1 h): only user 10's 15:00 message, not opened
    assert d["population"]["near_messages"] == 1 and d["population"]["near_open_rate"] == 0.0
    assert d["population"]["other_open_rate"] == pytest.approx(2 / 3)
    assert [g["messages"] for g in d["by_engagements"]] == [0, 2, 2]


def test_bad_rows_are_named_by_file_and_file_row_and_the_advice_fits_the_backtest(world, tmp_path, capsys):
    """Given an events file whose last three rows (before the cut) name users the users file
    lacks, when backtested, then the one-line error names the file (not "the events table"),
    the rows by their number in the file, and suggests nothing the backtest has no option for."""
    import pyarrow as pa
    import pyarrow.feather as feather

    ev = feather.read_table(world / "events.arrow")
    stray = ev.slice(0, 3).set_column(0, "user_id", pa.array([1, 2, 3], pa.int64()))
    ev = pa.concat_tables([ev, stray.cast(ev.schema)])
    feather.write_feather(ev, tmp_path / "stray.arrow")
    n = ev.num_rows
    out = tmp_path / "bt"
    assert main(["backtest", str(world / "users.arrow"), str(tmp_path / "stray.arrow"), "--as-of", "2026-11-01",
                 "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and not out.exists()
    assert f"{tmp_path / 'stray.arrow'}: 3 of {n:,} events rows" in err and "[unknown_user]" in err
    assert f"row {n - 3} {{user_id: 1" in err and f"row {n - 1} {{user_id: 3" in err
    assert "rerun with --on-bad-rows" not in err and "winback validate" in err
