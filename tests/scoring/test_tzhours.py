"""Timezones from engagement hours: the posterior kernel, the zone it names, and the rule end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import numpy.testing as npt
import pyarrow as pa
import pyarrow.feather as feather
from hypothesis import given, settings, strategies as st

from engine.scoring import tzhours
from engine.scoring.sendtime import _kernel
from tests import naive

SPREAD = {"rho": 0.6, "sigma": 1.5, "kernel": _kernel(1.5).tolist()}
EVENING = np.exp(-0.5 * ((np.arange(24) - 19) / 2.5) ** 2) + 0.02  # local-hour activity, a peak at 19:00
EVENING = EVENING / EVENING.sum()


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 5), k=st.integers(1, 6), within=st.integers(0, 2), data=st.data())
def test_posteriors_match_naive(n, k, within, data):
    """The kernel's best shift and its mass equal the naive loops' for any histograms and priors."""
    hist = np.array(data.draw(st.lists(st.lists(st.sampled_from([0.0, 0.25, 1.0, 3.0, 7.5]), min_size=24,
                                                max_size=24), min_size=n, max_size=n)), np.float32)
    shifts = np.array(data.draw(st.lists(st.integers(0, 23), min_size=k, max_size=k, unique=True)), np.int64)
    w = np.array(data.draw(st.lists(st.floats(0.01, 1.0), min_size=k, max_size=k)))
    prior = w / w.sum()
    profile = np.array(data.draw(st.lists(st.floats(0.0, 1.0), min_size=24, max_size=24))) + 1e-9
    profile = profile / profile.sum()
    best, post = tzhours.posteriors(hist, np.arange(n), shifts, prior, profile, SPREAD, within)
    want = naive.tz_hour_posteriors(hist, list(range(n)), list(shifts), list(prior), list(profile),
                                    SPREAD["kernel"], SPREAD["rho"], within)
    npt.assert_allclose(post, [m for _, m in want], rtol=1e-9)
    # the best index can differ only where two shifts carry the same mass
    for b, (wb, wm), p in zip(best, want, post):
        assert b == wb or np.isclose(p, wm)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 40), k=st.integers(1, 6), within=st.integers(0, 2), data=st.data())
def test_serial_and_parallel_posteriors_are_the_same(n, k, within, data):
    """The one-thread kernel used for a few users gives the parallel kernel's numbers exactly."""
    hist = np.array(data.draw(st.lists(st.lists(st.sampled_from([0.0, 0.5, 2.0, 9.0]), min_size=24, max_size=24),
                                       min_size=max(n, 1), max_size=max(n, 1))), np.float32)
    shifts = np.array(data.draw(st.lists(st.integers(0, 23), min_size=k, max_size=k, unique=True)), np.int64)
    users = np.array(data.draw(st.lists(st.integers(0, max(n, 1) - 1), min_size=n, max_size=n)), np.int64)
    log_prior = np.log(np.full(k, 1.0 / k))
    log_pop = np.log(EVENING)
    args = (hist, users, shifts, log_prior, tzhours._logmix(SPREAD), log_pop, within)
    for a, b in zip(tzhours._posteriors_serial(*args), tzhours._posteriors(*args)):
        npt.assert_array_equal(a, b)


def test_activity_at_a_zones_evening_points_at_that_zone():
    # given candidates UTC (shift 0) and New York (shift 19 from UTC: -5 h), and a user active at 00 UTC
    hist = np.zeros((1, 24), np.float32)
    hist[0, [23, 0, 0, 1]] = [6, 10, 0, 6]
    hist[0, 12] = 1
    # when
    best, post = tzhours.posteriors(hist, np.array([0]), np.array([0, 19]), np.array([0.5, 0.5]), EVENING, SPREAD)
    # then 00 UTC is 19:00 in New York: the evening, not midnight
    assert best[0] == 1 and post[0] > 0.95


def test_candidates_are_the_known_zones_by_hour_and_the_most_common_names_each():
    shifts, prior, names = tzhours.candidates({"Europe/Berlin": 6, "Europe/Paris": 3, "America/New_York": 1},
                                              "UTC", 1_793_491_200 + 86_400 * 2)  # 2026-11-03: no DST in either
    assert shifts.tolist() == [1, 19] and names == ["Europe/Berlin", "America/New_York"]
    npt.assert_allclose(prior, [0.9, 0.1])


def test_no_evidence_or_no_known_zones_leaves_the_default():
    table = pa.table({"user_id": [1], "timezone": pa.array([None], pa.string()),
                      "timezone_source": ["default"]})
    hist = np.ones((1, 24), np.float32)
    out, info = tzhours.infer(table, hist, np.array([50]), None, SPREAD, default_tz="UTC", as_of=0,
                              min_engagements=10, min_posterior=0.6)
    assert out["timezone_source"].to_pylist() == ["default"] and info["inferred"] == 0


def _blanked_world(tmp_path, seed, one_zone=False, share=0.3):
    from engine.synth.generator import generate

    generate(3000, seed=seed, out_dir=tmp_path)
    users = feather.read_table(tmp_path / "users.arrow")
    tz = users["timezone"].to_pylist()
    if one_zone:
        tz = ["Asia/Tokyo" if z is not None else None for z in tz]
    blank = (np.random.default_rng(seed).random(users.num_rows) < share) & np.array([z is not None for z in tz])
    users = users.set_column(users.column_names.index("timezone"), "timezone",
                             pa.array([None if b else z for z, b in zip(tz, blank)], pa.string()))
    users = users.set_column(users.column_names.index("phone"), "phone", pa.nulls(users.num_rows, pa.string()))
    feather.write_feather(users, tmp_path / "users_blank.arrow")
    return np.array(tz, object), blank


def _winback(*args):
    exe = Path(sys.executable).with_name("winback")  # the console script, as a user runs it
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True)


def test_score_and_plan_from_the_cli_count_and_use_zones_from_hours(tmp_path):
    # given a world where a third of the users lost their timezone and phone
    truth, blank = _blanked_world(tmp_path, seed=4)
    # when scored and planned from the command line
    r = _winback("score", tmp_path / "users_blank.arrow", tmp_path / "events.arrow", "-o", tmp_path / "s.arrow",
                 "--as-of", "2026-11-01", "--no-progress")
    assert r.returncode == 0, r.stderr
    # then the summary counts the zones inferred from hours, and each one is a known zone
    assert "hours" in r.stdout
    s = feather.read_table(tmp_path / "s.arrow")
    meta = json.loads(s.schema.metadata[b"winback.score"])
    src = np.array(s["timezone_source"].to_pylist())
    assert meta["timezone_sources"]["hours"] == (src == "hours").sum() == meta["timezone_inference"]["inferred"] > 0
    zones = np.array(s["timezone"].to_pylist(), object)
    assert set(zones[src == "hours"]) <= set(zones[src == "given"])
    assert all(z is None for z in zones[src == "default"])
    # and a plan sends those users in their inferred zone and counts them apart from the default
    (tmp_path / "c.toml").write_text('[campaign]\nid = "c"\ntimezone = "UTC"\n[audience]\nwhere = "lapse_risk >= 0.6"\n'
                                     '[[steps]]\nname = "a"\ndelay_days = 0\nchannels = ["email"]\ntemplate = "t"\n')
    r = _winback("plan", tmp_path / "s.arrow", tmp_path / "c.toml", "-o", tmp_path / "p.arrow",
                 "--as-of", "2026-11-01")
    assert r.returncode == 0, r.stderr
    p = feather.read_table(tmp_path / "p.arrow")
    tzs = json.loads(p.schema.metadata[b"winback.plan"])["summary"]["timezones"]
    assert tzs["hours"] == meta["timezone_sources"]["hours"]
    hours_users = set(s.filter(pa.array(src == "hours"))["user_id"].to_pylist())
    assert p.filter(pa.compute.is_in(p["user_id"], pa.array(sorted(hours_users)))).num_rows > 0
    planned = p.filter(pa.compute.is_in(p["user_id"], pa.array(sorted(hours_users))))
    by_user = dict(zip(s["user_id"].to_pylist(), zones))
    assert all(by_user[u] == z for u, z in zip(planned["user_id"].to_pylist(), planned["timezone"].to_pylist()))


def test_a_world_in_one_zone_gets_that_zone_and_no_other(tmp_path):
    # given every user in Tokyo, a third of them without a zone
    truth, blank = _blanked_world(tmp_path, seed=5, one_zone=True)
    # when
    from engine.scoring.pipeline import score

    s = score(tmp_path / "users_blank.arrow", tmp_path / "events.arrow", as_of="2026-11-01")
    # then inference invents no spread: every inferred user is in Tokyo
    src = np.array(s["timezone_source"].to_pylist())
    zones = np.array(s["timezone"].to_pylist(), object)
    assert (src == "hours").sum() > 0 and set(zones[src == "hours"]) == {"Asia/Tokyo"}


def test_partitioned_scoring_infers_the_same_zones(tmp_path):
    from engine.scoring.pipeline import aggregate, finalize, reduce_stats, settings as cfg_of

    _blanked_world(tmp_path, seed=6)
    users = feather.read_table(tmp_path / "users_blank.arrow")
    events = feather.read_table(tmp_path / "events.arrow")
    cfg = cfg_of(as_of="2026-11-01")
    whole = finalize(aggregate(users, events, cfg), reduce_stats([aggregate(users, events, cfg).stats], cfg))
    half = users.num_rows // 2
    parts = []
    for u in (users.slice(0, half), users.slice(half)):
        ids = u["user_id"]
        parts.append(aggregate(u, events.filter(pa.compute.is_in(events["user_id"], ids)), cfg))
    pop = reduce_stats([p.stats for p in parts], cfg)
    split = pa.concat_tables([finalize(p, pop) for p in parts])
    assert split["timezone"].to_pylist() == whole["timezone"].to_pylist()
    assert split["best_hour_local"].to_pylist() == whole["best_hour_local"].to_pylist()
