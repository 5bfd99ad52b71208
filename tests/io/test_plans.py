"""Plan files: one Arrow file or a partitioned directory, its metadata, the campaign start, who came back."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from engine.errors import InputError
from engine.io.meta import PLAN, with_meta
from engine.io.plans import campaign_start, plan_meta, read_plan, reengaged_users
from engine.schema import PLAN_SUMMARY_FILE, TIMESTAMP

START = dt.datetime(2026, 11, 2, tzinfo=dt.timezone.utc)


def _plan(n: int = 4) -> pa.Table:
    return pa.table({
        "message_id": [f"m{i}" for i in range(n)], "user_id": pa.array(range(1, n + 1), pa.int64()),
        "step_index": pa.array([i % 2 for i in range(n)], pa.int16()),
        "send_at": pa.array([START + dt.timedelta(hours=1 + i) for i in range(n)], TIMESTAMP)})


def test_a_table_passes_through_and_an_arrow_file_keeps_its_metadata(tmp_path):
    t = with_meta(_plan(), PLAN, {"campaign_id": "c1", "as_of": "2026-11-01T00:00:00Z"})
    assert read_plan(t) == (t, "plan table")
    feather.write_feather(t, tmp_path / "plan.arrow")
    got, name = read_plan(tmp_path / "plan.arrow")
    assert name == str(tmp_path / "plan.arrow") and plan_meta(got)["campaign_id"] == "c1"
    assert campaign_start(got) == dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc).timestamp()


def test_a_partitioned_plan_takes_the_whole_plans_metadata_from_its_summary(tmp_path):
    d = tmp_path / "plan"
    d.mkdir()
    t = _plan()
    pq.write_table(t.slice(0, 2), d / "part-0.parquet")
    pq.write_table(t.slice(2), d / "part-1.parquet")
    meta = {"campaign_id": "c2", "steps": [{"name": "a"}, {"name": "b"}]}
    (d / PLAN_SUMMARY_FILE).write_text(json.dumps({"winback.plan": meta}))
    got, _ = read_plan(d)
    assert got.num_rows == 4 and plan_meta(got) == meta


def test_without_as_of_the_start_is_the_earliest_step_zero_send():
    t = _plan()
    assert plan_meta(t) == {}
    assert campaign_start(t) == (START + dt.timedelta(hours=1)).timestamp()
    assert campaign_start(_plan(0)) == 0.0


def test_without_as_of_rows_with_no_send_do_not_move_the_start(tmp_path):
    """Given a plan without metadata (a CSV) whose step-0 rows include users not messaged (send_at
    null), then the start is the earliest real send, not the null (which put the report's
    window in the year -292 billion and counted no one)."""
    t = _plan()
    t = t.set_column(3, "send_at", pa.array([None, None, START + dt.timedelta(hours=3), None], TIMESTAMP))
    assert campaign_start(t) == (START + dt.timedelta(hours=3)).timestamp()
    unsent = t.set_column(3, "send_at", pa.nulls(4, TIMESTAMP))
    assert campaign_start(unsent) == 0.0


def test_a_broken_arrow_plan_is_one_input_error(tmp_path):
    (tmp_path / "plan.arrow").write_bytes(b"not arrow")
    with pytest.raises(InputError, match=r"is not an Arrow IPC file .*'winback plan'"):
        read_plan(tmp_path / "plan.arrow")


def test_reengaged_users_are_active_after_the_start_only(tmp_path):
    before, after = START - dt.timedelta(days=1), START + dt.timedelta(days=1)
    events = pa.table({"user_id": pa.array([1, 2, 3, 4, 2], pa.int64()),
                       "ts": pa.array([after, before, after, after, after], TIMESTAMP),
                       "event": pa.array(["purchase", "session", "open", "click", "send"]).dictionary_encode()})
    feather.write_feather(events, tmp_path / "events.arrow")
    got = reengaged_users(tmp_path / "events.arrow", _plan())
    assert got.tolist() == [1, 4] and got.dtype == np.int64
    feather.write_feather(events.drop_columns(["ts"]), tmp_path / "bad.arrow")
    with pytest.raises(InputError, match="no column 'ts'"):
        reengaged_users(tmp_path / "bad.arrow", _plan())
