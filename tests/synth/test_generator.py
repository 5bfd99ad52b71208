"""The synthetic world: deterministic, in contract, and faithful to its own parameters."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest

from engine.synth import world as model
from engine.cli import main
from engine.synth.generator import TIMEZONES, generate
from engine.io.readers import iter_events, load_users, read_table
from engine.schema import CHANNELS, EVENTS
from engine.tz import parse_as_of, to_epoch_seconds
from engine.io.validation import validate


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
        assert (out / f"{name}.arrow").read_bytes() == (tmp_path / "a" / f"{name}.arrow").read_bytes()
    assert not feather.read_table(out / "events.arrow").equals(feather.read_table(tmp_path / "b" / "events.arrow"))


def test_world_passes_the_data_contract(world):
    out, summary = world
    as_of = parse_as_of(summary["as_of"])
    users = load_users(out / "users.arrow")
    n = sum(len(b) for b in iter_events(out / "events.arrow", users, as_of=as_of))  # raises on any bad row
    assert n == summary["n_events"] and users.table.num_rows == 3000
    assert json.loads((out / "world.json").read_text())["n_events"] == n
    truth = feather.read_table(out / "truth.arrow")
    assert truth["user_id"].to_pylist() == feather.read_table(out / "users.arrow")["user_id"].to_pylist()
    assert set(truth.column_names) >= {"alive", "activity_rate", "p_drop", "dropout_at", "preferred_hour_local",
                                       "preferred_weekday", "resp_email", "resp_sms", "resp_push",
                                       "fatigue_sensitivity", "unsub_risk", "value_mean"}


def test_alive_share_matches_the_latent_model(world):
    # given the drawn latent rates and the observation span of every user
    out, summary = world
    truth = feather.read_table(out / "truth.arrow")
    users = feather.read_table(out / "users.arrow")
    lam, p = truth["activity_rate"].to_numpy(), truth["p_drop"].to_numpy()
    alive = truth["alive"].to_numpy(zero_copy_only=False)
    as_of = parse_as_of(summary["as_of"])
    start = np.maximum(to_epoch_seconds(users["signup_at"]), as_of - summary["days"] * 86400)
    span = (as_of - start) / 86400
    # then the population draws match their priors: E[lambda] = r / alpha, E[p] = a / (a + b)
    prm = summary["parameters"]
    assert lam.mean() == pytest.approx(prm["r"] / prm["alpha"], rel=0.1)
    assert p.mean() == pytest.approx(prm["a"] / (prm["a"] + prm["b"]), rel=0.1)
    # and the alive share matches the closed form: with N ~ Poisson(lambda T) active days and a
    # Geometric(p) dropout, P(alive) = E[(1 - p)^N] = exp(-lambda p T)
    implied = np.exp(-lam * p * span)
    sd = np.sqrt((implied * (1 - implied)).sum()) / len(implied)
    assert abs(alive.mean() - implied.mean()) < 4 * sd
    assert summary["alive_share"] == pytest.approx(alive.mean())
    assert p[alive].mean() < p[~alive].mean()  # survivors drop out less often
    # and every gone user has a dropout instant inside their span, no alive user has one
    assert truth["dropout_at"].null_count == alive.sum()
    drop = to_epoch_seconds(truth["dropout_at"].drop_null())
    assert np.all((drop >= start[~alive]) & (drop < as_of))


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


def test_bad_rows_recorded_are_exactly_what_the_validator_finds(tmp_path):
    # given a small world with 1 % bad rows of every kind
    s = generate(1000, seed=3, out_dir=tmp_path, bad_rows=0.01)
    # when the files are validated the way score reads them
    report = validate(tmp_path / "users.arrow", tmp_path / "events.arrow", as_of=s["as_of"],
                      on_bad_rows="quarantine", quarantine_dir=tmp_path / "q")
    # then every kind is present and the counts match world.json exactly
    meta = json.loads((tmp_path / "world.json").read_text())
    assert meta["bad_rows"] == s["bad_rows"]
    assert set(s["bad_rows"]["users"]) == {"null_user_id", "duplicate_user_id", "unknown_timezone"}
    assert set(s["bad_rows"]["events"]) == {"unknown_event", "unknown_channel", "missing_channel", "future_ts",
                                            "unknown_user", "null_user_id"}
    assert report.users_bad == s["bad_rows"]["users"]
    assert report.events_bad == s["bad_rows"]["events"]
    assert report.events_good == s["n_events"] and report.users_good == 1000
    n_bad = sum(s["bad_rows"]["events"].values())
    assert 0.005 < n_bad / (n_bad + s["n_events"]) < 0.02


def test_no_event_after_as_of_and_all_within_the_window(world):
    out, summary = world
    ts = to_epoch_seconds(feather.read_table(out / "events.arrow")["ts"])
    as_of = parse_as_of(summary["as_of"])
    assert ts.max() < as_of
    assert ts.min() >= as_of - summary["days"] * 86400


def test_users_follow_the_contract_shape(world):
    out, _ = world
    users = feather.read_table(out / "users.arrow")
    ids = users["user_id"].to_numpy()
    assert len(np.unique(ids)) == len(ids) and not np.all(np.diff(ids) > 0)   # unique, not sequential
    tz = users["timezone"]
    assert 0 < tz.null_count < 0.06 * len(ids)
    zones = set(tz.drop_null().to_pylist())
    assert zones <= {z for z, _ in TIMEZONES}
    assert {"America/New_York", "Europe/Berlin", "Australia/Sydney", "Asia/Kolkata", "Asia/Kathmandu"} <= zones
    assert 0.85 < users["email"].drop_null().length() / len(ids) < 0.95
    assert 0.45 < users["phone"].drop_null().length() / len(ids) < 0.55
    assert all(p.startswith("+") and p[1:].isdigit() for p in users["phone"].drop_null().to_pylist())
    assert users["consent_email"].null_count > 0
    assert set(users["plan"].to_pylist()) == {"free", "pro", "enterprise"}
    events = feather.read_table(out / "events.arrow")
    assert events.schema.field("event").type == pa.dictionary(pa.int8(), pa.string())
    assert events.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert set(events["event"].unique().to_pylist()) == set(EVENTS)
    assert events["event"].chunk(0).dictionary.to_pylist() == list(EVENTS)      # no unknown names offered
    assert events["channel"].chunk(0).dictionary.to_pylist() == list(CHANNELS)
    names = np.asarray(events["event"].cast(pa.string()).to_numpy(zero_copy_only=False))
    assert events.filter(pa.array(np.isin(names, ["session", "purchase"])))["channel"].null_count == \
        np.isin(names, ["session", "purchase"]).sum()
    assert events.filter(pa.array(names != "purchase"))["value"].null_count == (names != "purchase").sum()


def test_opens_are_likelier_at_the_preferred_local_hour(world):
    # given every email send with the user's local hour at delivery and whether it was opened
    out, _ = world
    ev = feather.read_table(out / "events.arrow")
    users = feather.read_table(out / "users.arrow").sort_by("user_id")
    truth = feather.read_table(out / "truth.arrow").sort_by("user_id")
    names = np.asarray(ev["event"].cast("string").to_numpy(zero_copy_only=False))
    chan = np.asarray(ev["channel"].cast("string").fill_null("").to_numpy(zero_copy_only=False))
    uid, ts = ev["user_id"].to_numpy(), to_epoch_seconds(ev["ts"])
    ids = users["user_id"].to_numpy()
    send = (names == "send") & (chan == "email")
    opens = (names == "open") & (chan == "email")
    # an open belongs to the latest send to that user at or before it
    s_uid, s_ts = uid[send], ts[send]
    order = np.lexsort((s_ts, s_uid))
    s_uid, s_ts = s_uid[order], s_ts[order]
    key = lambda u, t: u.astype(np.float64) * 1e10 + t   # noqa: E731 - users sorted, then time
    at = np.searchsorted(key(s_uid, s_ts), key(uid[opens], ts[opens]), side="right") - 1
    opened = np.zeros(len(s_uid), bool)
    opened[at] = True
    pos = np.searchsorted(ids, s_uid)
    tz = np.asarray(users["timezone"].fill_null("UTC").to_numpy(zero_copy_only=False))[pos]
    pref = truth["preferred_hour_local"].to_numpy()[pos]
    local_hour = np.empty(len(s_uid))
    for zone in np.unique(tz):
        m = tz == zone
        info = zoneinfo.ZoneInfo(zone)
        local_hour[m] = [dt.datetime.fromtimestamp(int(t), info).hour for t in s_ts[m]]
    near = model.hour_distance(local_hour, pref) <= 1
    # then opens are clearly more frequent near the preferred hour than far from it
    assert near.sum() > 200 and (~near).sum() > 200
    assert opened[near].mean() > 1.5 * opened[~near].mean()


def test_parquet_world_reads_the_same_as_arrow(tmp_path, world):
    out, summary = world
    s = generate(3000, seed=11, out_dir=tmp_path, format="parquet")
    assert s["n_events"] == summary["n_events"]
    for name in ("users", "truth", "events"):
        assert read_table(tmp_path / f"{name}.parquet").equals(feather.read_table(out / f"{name}.arrow"))


def test_cli_summary_and_bad_arguments(tmp_path, capsys):
    assert main(["generate", "--users", "200", "--seed", "1", "-o", str(tmp_path / "w"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "generated 200 users" in out and "session" in out and "truly alive" in out
    assert (tmp_path / "w" / "events.arrow").exists() and (tmp_path / "w" / "world.json").exists()
    assert main(["generate", "--users", "0", "-o", str(tmp_path / "x"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--users must be at least 1" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x" / "events.arrow").exists()
    (tmp_path / "a-file").write_text("")
    assert main(["generate", "--users", "10", "-o", str(tmp_path / "a-file" / "w"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("InputError: cannot write the world to") and len(err.strip().splitlines()) == 1


def test_no_send_on_a_channel_after_its_unsubscribe_bounce_or_complaint(world):
    # given every send and every suppressing event per (user, channel)
    out, _ = world
    ev = feather.read_table(out / "events.arrow")
    names = np.asarray(ev["event"].cast(pa.string()).to_numpy(zero_copy_only=False))
    chan = np.asarray(ev["channel"].cast(pa.string()).fill_null("").to_numpy(zero_copy_only=False))
    uid, ts = ev["user_id"].to_numpy(), to_epoch_seconds(ev["ts"])
    first_stop: dict = {}
    for i in np.flatnonzero(np.isin(names, ["unsubscribe", "bounce", "complaint"])):
        k = (uid[i], chan[i])
        first_stop[k] = min(first_stop.get(k, ts[i]), ts[i])
    # then no send on that channel follows the first of them
    assert len(first_stop) > 50
    sends = np.flatnonzero(names == "send")
    late = [i for i in sends if ts[i] > first_stop.get((uid[i], chan[i]), np.iinfo(np.int64).max)]
    assert late == []


def test_single_user_and_tiny_chunks_still_pass_the_contract(tmp_path):
    # given worlds of 1 and 5 users made 2 users at a time
    for n in (1, 5):
        s = generate(n, seed=n, out_dir=tmp_path / str(n), chunk_users=2)
        # then they validate clean and count what they hold
        report = validate(tmp_path / str(n) / "users.arrow", tmp_path / str(n) / "events.arrow", as_of=s["as_of"])
        assert report.clean and report.users_good == n and report.events_good == s["n_events"]
        assert sum(s["events_by_type"].values()) == s["n_events"]


