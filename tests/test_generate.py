"""The synthetic world: deterministic, in contract, and faithful to its own parameters."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo

import numpy as np
import pyarrow.feather as feather
import pytest

from engine.cli import main
from engine.generate import generate
from engine.io import iter_events, load_users
from engine.timeutil import parse_as_of, to_epoch_seconds


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    summary = generate(3000, seed=11, out_dir=out)
    return out, summary


def test_same_seed_same_files_other_seed_other_files(tmp_path, world):
    out, _ = world
    generate(3000, seed=11, out_dir=tmp_path / "a")
    generate(3000, seed=12, out_dir=tmp_path / "b")
    for name in ("users", "events", "truth"):
        assert feather.read_table(out / f"{name}.arrow").equals(feather.read_table(tmp_path / "a" / f"{name}.arrow"))
    assert not feather.read_table(out / "events.arrow").equals(feather.read_table(tmp_path / "b" / "events.arrow"))


def test_world_passes_the_data_contract(world):
    out, summary = world
    as_of = parse_as_of(summary["as_of"])
    users = load_users(out / "users.arrow")
    n = sum(len(b) for b in iter_events(out / "events.arrow", users, as_of=as_of))  # raises on any bad row
    assert n == summary["events"] and users.table.num_rows == 3000
    truth = feather.read_table(out / "truth.arrow")
    assert truth["user_id"].to_pylist() == feather.read_table(out / "users.arrow")["user_id"].to_pylist()
    assert set(truth.column_names) >= {"alive", "activity_rate", "p_drop", "dropout_at", "preferred_hour_local",
                                       "preferred_weekday", "resp_email", "resp_sms", "resp_push",
                                       "fatigue_sensitivity", "unsub_risk", "value_mean"}


def test_alive_share_matches_the_latent_model(world):
    out, summary = world
    truth = feather.read_table(out / "truth.arrow")
    # a user is gone once the Geometric(p) dropout comes before the end of the window; with
    # p ~ Beta(0.7, 6) and ~55 expected active days most users are gone, but not all
    share = summary["alive_share"]
    assert 0.2 < share < 0.6
    alive = truth["alive"].to_numpy(zero_copy_only=False)
    p = truth["p_drop"].to_numpy()
    assert p[alive].mean() < p[~alive].mean()  # survivors drop out less often


def test_engagement_clusters_at_the_preferred_local_hour(world):
    out, _ = world
    ev = feather.read_table(out / "events.arrow")
    users = feather.read_table(out / "users.arrow")
    truth = feather.read_table(out / "truth.arrow")
    names = np.asarray(ev["event"].cast("string").to_numpy(zero_copy_only=False))
    m = names == "session"
    uid = ev["user_id"].to_numpy()[m]
    ts = to_epoch_seconds(ev["ts"])[m]
    ids = users["user_id"].to_numpy()
    pos = np.searchsorted(ids[np.argsort(ids)], uid)
    order = np.argsort(ids)
    tz = np.asarray(users["timezone"].fill_null("UTC").to_numpy(zero_copy_only=False))[order][pos]
    pref = truth["preferred_hour_local"].to_numpy()[order][pos]
    hits = 0
    sample = np.random.default_rng(0).choice(len(ts), 2000, replace=False)
    for i in sample:
        h = dt.datetime.fromtimestamp(int(ts[i]), zoneinfo.ZoneInfo(tz[i])).hour
        d = abs(h - int(pref[i])) % 24
        hits += min(d, 24 - d) <= 1
    assert hits / len(sample) > 2 * 3 / 24   # well above the uniform share of a 3-hour band


def test_alive_users_open_more(world):
    out, _ = world
    ev = feather.read_table(out / "events.arrow")
    truth = feather.read_table(out / "truth.arrow")
    names = np.asarray(ev["event"].cast("string").to_numpy(zero_copy_only=False))
    uid = ev["user_id"].to_numpy()
    alive_ids = set(truth.filter(truth["alive"])["user_id"].to_pylist())
    is_alive = np.array([u in alive_ids for u in uid])
    sends_a = ((names == "send") & is_alive).sum()
    sends_d = ((names == "send") & ~is_alive).sum()
    opens_a = ((names == "open") & is_alive).sum()
    opens_d = ((names == "open") & ~is_alive).sum()
    assert opens_a / sends_a > 2 * opens_d / sends_d


def test_bad_rows_are_counted_and_present(tmp_path):
    s = generate(1000, seed=3, out_dir=tmp_path, bad_rows=0.01)
    meta = json.loads((tmp_path / "world.json").read_text())
    assert meta["bad_rows"] == s["bad_rows"]
    assert set(s["bad_rows"]) >= {"unknown_event", "unknown_channel", "missing_channel", "future_ts",
                                  "unknown_user", "null_user_id", "duplicate_user_id", "unknown_timezone"}
    ev = feather.read_table(tmp_path / "events.arrow")
    assert (np.asarray(ev["event"].cast("string").to_numpy(zero_copy_only=False)) == "pageview").sum() \
        == s["bad_rows"]["unknown_event"]


def test_cli_summary_and_bad_arguments(tmp_path, capsys):
    assert main(["generate", "--users", "200", "--seed", "1", "-o", str(tmp_path / "w"), "--no-progress"]) == 0
    assert "generated 200 users" in capsys.readouterr().out
    assert main(["generate", "--users", "0", "-o", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "--users must be at least 1" in capsys.readouterr().err
