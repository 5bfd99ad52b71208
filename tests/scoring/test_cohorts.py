"""Send-time priors by cohort (engine.scoring.cohorts): sparse users borrow their cohort's hours."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.cli import main
from engine.errors import InputError
from engine.scoring import cohorts, sendtime
from engine.scoring.pipeline import score, summary_of
from tests import naive

AS_OF = "2026-09-01"
T_AS_OF = 1_788_220_800  # 2026-09-01T00:00:00Z


def test_codes_read_text_numbers_booleans_dictionaries_and_months():
    t = pa.table({"user_id": [1, 2, 3, 4],
                  "plan": ["pro", None, "free", "pro"],
                  "tier": pa.array([2, 1, None, 2], pa.int32()),
                  "vip": [True, False, True, None],
                  "seg": pa.array(["a", "b", "a", None]).dictionary_encode(),
                  "signup_at": pa.array([T_AS_OF - 86400 * 40, T_AS_OF, None, T_AS_OF - 86400 * 400],
                                        pa.timestamp("s", tz="UTC")),
                  "born": pa.array([0, 31, None, 59], pa.date32()),
                  "score": [1.0, float("nan"), None, 2.5]})
    code, names = cohorts.codes(t, "plan")
    assert [names[c] if c >= 0 else None for c in code] == ["pro", None, "free", "pro"]
    code, names = cohorts.codes(t, "tier")
    assert [names[c] if c >= 0 else None for c in code] == ["2", "1", None, "2"]
    code, names = cohorts.codes(t, "vip")
    assert [names[c] if c >= 0 else None for c in code] == ["true", "false", "true", None]
    code, names = cohorts.codes(t, "seg")
    assert [names[c] if c >= 0 else None for c in code] == ["a", "b", "a", None]
    code, names = cohorts.codes(t, "signup_at")  # the signup month, UTC
    assert [names[c] if c >= 0 else None for c in code] == ["2026-07", "2026-09", None, "2025-07"]
    code, names = cohorts.codes(t, "born")
    assert [names[c] if c >= 0 else None for c in code] == ["1970-01", "1970-02", None, "1970-03"]
    code, names = cohorts.codes(t, "score")  # NaN is no cohort, like null
    assert [names[c] if c >= 0 else None for c in code] == ["1", None, None, "2.5"]


def test_a_missing_or_too_varied_or_shapeless_column_is_one_clear_error():
    t = pa.table({"user_id": list(range(300)), "plan": ["p"] * 300, "email": [f"u{i}@x.io" for i in range(300)],
                  "tags": [[1]] * 300})
    with pytest.raises(InputError, match=r"users: no column 'segment' for --send-time-cohort; the users columns "
                                         r"are: plan, email, tags"):
        cohorts.codes(t, "segment")
    with pytest.raises(InputError, match=r"'email' \(--send-time-cohort\) has 300 distinct values, e.g. 'u0@x.io'"):
        cohorts.codes(t, "email")
    with pytest.raises(InputError, match=r"'tags' .* is of type list<item: int64>"):
        cohorts.codes(t, "tags")


@settings(max_examples=60, deadline=None)
@given(n_users=st.integers(1, 30), n_zones=st.integers(1, 3), n_cohorts=st.integers(1, 4),
       weight=st.sampled_from([0.5, 5.0, 50.0]), data=st.data())
def test_group_priors_match_the_naive_prior_of_every_user(n_users, n_zones, n_cohorts, weight, data):
    # given users in zones and cohorts (some null), with sparse local-hour histograms
    tz = np.array(data.draw(st.lists(st.integers(0, n_zones - 1), min_size=n_users, max_size=n_users)), np.int64)
    code = np.array(data.draw(st.lists(st.integers(-1, n_cohorts - 1), min_size=n_users, max_size=n_users)), np.int64)
    cells = data.draw(st.lists(st.sampled_from([0.0, 0.0, 0.0, 0.5, 1.0, 3.0]), min_size=n_users * 24,
                               max_size=n_users * 24))
    hour = np.array(cells).reshape(n_users, 24)
    wd = np.ones((n_users, 7))
    names = [f"c{i}" for i in range(n_cohorts)]
    zone_sums = sendtime.population_sums(hour, tz, n_zones)
    pop_h = sendtime.population_shares(zone_sums * sendtime.POP_UNIT)
    pop_w = np.full((n_zones, 7), 1 / 7)
    # when the cohorts are fitted (as if in two partitions) and each user's prior is looked up
    half = n_users // 2
    parts = [cohorts.part_sums(hour[sl], wd[sl], code[sl], names) for sl in (slice(0, half), slice(half, None))]
    fit = cohorts.fit(parts, zone_sums.sum(axis=0), np.full(7, 1 << 24), "segment", weight=weight)
    group, rows_h, rows_w = cohorts.group_priors(pop_h, pop_w, tz, code, names, fit)
    # then every user's prior is the naive one, and every row is a distribution
    want = naive.cohort_prior(pop_h, tz, code, hour, zone_sums.sum(axis=0), weight)
    np.testing.assert_allclose(rows_h[group], np.array(want), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(rows_h.sum(axis=1), 1.0)
    np.testing.assert_allclose(rows_w, 1 / 7)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=24, max_size=24), st.integers(1, 10_000))
def test_a_cohort_that_engages_like_everyone_leaves_the_prior_as_it_was(everyone, scale):
    # given a cohort whose engagements by hour are the population's, scaled
    everyone = np.asarray(everyone, np.float64)
    if everyone.sum() == 0:
        everyone[3] = 1.0
    sums = np.round(everyone / sendtime.POP_UNIT).astype(np.int64)
    part = {"hours": {"c": np.round(everyone * scale / sendtime.POP_UNIT).astype(np.int64)},
            "wd": {"c": np.full(7, 1 << 24)}, "users": {"c": 3}}
    fit = cohorts.fit([part], sums, np.full(7, 1 << 24), "segment")
    # then its tilt is 1 at every hour anyone engaged
    tilt = fit["tilt_hours"]["c"]
    np.testing.assert_allclose(tilt[everyone > 0], 1.0, rtol=1e-6)


def _two_cohort_world(tmp_path):
    """200 rich users engaging at 08:00 (cohort early) or 20:00 (late), every 3 days, and 100
    sparse users per cohort: half with one session at 14:00, half with none."""
    uid, ts, seg = [], [], {}
    day = 86400
    for i in range(400):
        u = i + 1
        seg[u] = "early" if i % 2 == 0 else "late"
        if i < 200:
            hour = 8 if seg[u] == "early" else 20
            for d in range(3, 90, 3):
                uid.append(u)
                ts.append(T_AS_OF - d * day + hour * 3600)
        elif i < 300:
            uid.append(u)
            ts.append(T_AS_OF - 5 * day + 14 * 3600)
    users = pa.table({"user_id": pa.array(sorted(seg), pa.int64()), "segment": [seg[u] for u in sorted(seg)],
                      "signup_at": pa.array([T_AS_OF - 200 * day] * 400, pa.timestamp("s", tz="UTC"))})
    events = pa.table({"user_id": pa.array(uid, pa.int64()), "ts": pa.array(ts, pa.timestamp("s", tz="UTC")),
                       "event": ["session"] * len(uid)})
    feather.write_feather(users, tmp_path / "users.arrow")
    feather.write_feather(events, tmp_path / "events.arrow")
    return tmp_path / "users.arrow", tmp_path / "events.arrow"


def test_sparse_users_get_their_cohorts_hour_and_rich_users_keep_their_own(tmp_path):
    users, events = _two_cohort_world(tmp_path)
    # when scored without a cohort and with --send-time-cohort segment
    plain = score(users, events, as_of=AS_OF).sort_by("user_id")
    tilted = score(users, events, as_of=AS_OF, send_time_cohort="segment").sort_by("user_id")
    seg = np.array(tilted["segment"].to_pylist())
    idx = np.arange(400)
    before, after = (t["best_hour_local"].to_numpy().astype(int) for t in (plain, tilted))
    sparse = idx >= 200
    # then without a cohort the sparse users' hour does not depend on their cohort
    assert (before[200:300:2] == before[201:300:2]).all() and (before[300::2] == before[301::2]).all()
    # and with it, the silent users get their cohort's hour
    silent = idx >= 300
    assert set(after[silent & (seg == "early")]) == {8} and set(after[silent & (seg == "late")]) == {20}
    # a user's one session at 14:00 is evidence the cohort weighs against, not overrides
    assert set(after[200:300]) <= {8, 14, 20}
    # rich users keep their own hour either way
    assert (after[~sparse] == before[~sparse]).all()
    assert set(after[~sparse & (seg == "early")]) == {8}
    # and the summary names the column and each cohort's hour
    c = summary_of(tilted)["send_time"]["cohorts"]
    assert c["column"] == "segment" and c["cohorts"] == 2 and c["weight"] == cohorts.COHORT_WEIGHT
    assert {r["cohort"]: r["best_hour"] for r in c["largest"]} == {"early": 8, "late": 20}
    assert summary_of(plain)["send_time"]["cohorts"] is None


def test_a_null_or_unseen_cohort_keeps_the_timezone_prior(tmp_path):
    users, events = _two_cohort_world(tmp_path)
    t = feather.read_table(users)
    seg = t["segment"].to_pylist()
    seg[300:] = [None] * 100  # the silent sparse users have no cohort
    t = t.set_column(t.column_names.index("segment"), "segment", pa.array(seg))
    feather.write_feather(t, users)
    plain = score(users, events, as_of=AS_OF).sort_by("user_id")
    tilted = score(users, events, as_of=AS_OF, send_time_cohort="segment").sort_by("user_id")
    a, b = (x["best_hour_local"].to_numpy()[300:] for x in (plain, tilted))
    assert (a == b).all()


def test_the_cli_takes_the_option_and_names_a_missing_column_without_a_traceback(tmp_path, capsys):
    users, events = _two_cohort_world(tmp_path)
    out = tmp_path / "scores.arrow"
    assert main(["score", str(users), str(events), "--as-of", AS_OF, "-o", str(out), "--no-progress",
                 "--send-time-cohort", "segment"]) == 0
    assert "cohorts" in summary_of(feather.read_table(out))["send_time"]
    printed = capsys.readouterr().out
    assert "send-time cohorts by segment: 2 (hour each favours, local: early 08:00 (200 users), late 20:00" in printed
    bad = tmp_path / "bad.arrow"
    rc = main(["score", str(users), str(events), "--as-of", AS_OF, "-o", str(bad), "--no-progress",
               "--send-time-cohort", "segmnet"])
    err = capsys.readouterr().err
    assert rc != 0 and f"{users}: no column 'segmnet' for --send-time-cohort" in err and "segment" in err
    assert "Traceback" not in err and not bad.exists()
    assert not list(tmp_path.glob("bad.arrow*"))
