"""One timezone rule for score and plan: given, else the phone's, else the default, consistently."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather

from engine.planning.campaign import load_campaign
from engine.scoring.pipeline import score
from engine.tz import infer_timezones, to_epoch_seconds
from tests.helpers import NO_SENDS, one_step, reachable_users


def test_a_valid_zone_is_kept_else_the_phone_decides_else_the_default():
    zones, source = infer_timezones(
        pa.array(["Europe/Paris", None, "Mars/Base", None, None, "Asia/Tokyo"]),
        pa.array(["+12125550123", "+12125550123", "+819012345678", "+15551013405", "+34612345678", None]))
    assert zones.to_pylist() == ["Europe/Paris", "America/New_York", "Asia/Tokyo", None, None, "Asia/Tokyo"]
    # +1 555 is no real area code; a Spanish mobile is Madrid or the Canaries: no guess
    assert source.to_pylist() == ["given", "phone", "phone", "default", "default", "given"]


def test_scoring_keeps_users_with_an_invalid_zone_and_counts_the_sources(tmp_path):
    # given a generated world whose first three users have a valid zone, an invalid one
    # with a New York phone, and none
    from engine.synth.generator import generate

    generate(300, seed=2, out_dir=tmp_path)
    users = feather.read_table(tmp_path / "users.arrow")
    tz, phone = users["timezone"].to_pylist(), users["phone"].to_pylist()
    tz[:3], phone[:3] = ["Europe/Paris", "Mars/Olympus_Mons", None], ["+33612345678", "+12125550123", None]
    users = users.set_column(users.column_names.index("timezone"), "timezone", pa.array(tz, pa.string()))
    users = users.set_column(users.column_names.index("phone"), "phone", pa.array(phone, pa.string()))
    feather.write_feather(users, tmp_path / "users.arrow")
    # when scored without the engagement-hours step (tests/scoring/test_tzhours.py has it)
    s = score(tmp_path / "users.arrow", tmp_path / "events.arrow", as_of="2026-11-01T00:00:00Z",
              tz_min_engagements=0)
    # then nobody is dropped, user 2 is in New York by the phone, user 3 has the default
    first = s.filter(pa.compute.is_in(s["user_id"], value_set=users["user_id"][:3]))
    assert s.num_rows == users.num_rows
    assert first["timezone"].to_pylist() == ["Europe/Paris", "America/New_York", None]
    assert first["timezone_source"].to_pylist() == ["given", "phone", "default"]
    counts = json.loads(s.schema.metadata[b"winback.score"])["timezone_sources"]
    assert counts["phone"] >= 1 and sum(counts.values()) == s.num_rows


def test_a_user_without_a_zone_is_planned_at_the_utc_instant_scoring_learned():
    # given two users whose best hour is 14: one in New York, one unknown (scored in UTC)
    from engine.planning.planner import plan

    scores = reachable_users(2, timezone=pa.array(["America/New_York", None], pa.string()),
                             best_hour_local=pa.array([14, 14], pa.int8()))
    scores = scores.replace_schema_metadata({b"winback.score": json.dumps({"default_timezone": "UTC"}).encode()})
    doc = one_step(quiet_hours=[])
    doc["campaign"]["timezone"] = "America/New_York"
    # when planned by a New York campaign
    p = plan(scores, load_campaign(doc), as_of="2026-11-10T00:00:00Z", ledger=NO_SENDS)
    # then the New York user gets 14:00 New York (19 UTC), the unknown one 14:00 UTC (09:00 New York)
    hours = [dt.datetime.fromtimestamp(t, dt.timezone.utc).hour for t in to_epoch_seconds(p["send_at"])]
    assert hours == [19, 14]
    summary = json.loads(p.schema.metadata[b"winback.plan"])["summary"]
    assert summary["timezones"]["campaign_default (America/New_York)"] == 1
    assert np.all(p["timezone"].to_numpy(zero_copy_only=False) == "America/New_York")
