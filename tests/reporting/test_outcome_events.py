"""winback report reads outcome events in every type the data contract accepts, or says which rows it cannot use."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather

from engine.cli import main
from engine.reporting.measure import report
from engine.tz import from_epoch_seconds
from tests.helpers import holdout_plan

START = 1_790_000_000


def _events():
    """Users 1, 2, 4 (treated) and 3 (holdout) come back an hour after the start; user 5 a day
    before it (does not count); user 999 is no plan user (does not count)."""
    t = START + 3600
    return pa.table({"user_id": pa.array([1, 2, 4, 3, 5, 999], pa.int64()),
                     "ts": from_epoch_seconds(np.array([t, t, t, t, START - 86400, t])),
                     "event": ["session", "session", "session", "purchase", "session", "session"]})


def _counts(summary):
    re = summary["metrics"]["reengaged"]
    return re["treated"]["users"], re["treated"]["count"], re["holdout"]["users"], re["holdout"]["count"]


def test_ids_as_text_and_times_as_iso_text_or_seconds_count_like_the_typed_file(tmp_path):
    """Given the same outcome events with user ids as text and ts as ISO text (an Arrow file) or
    as naive seconds (CSV), when reported, then the counts are the typed file's: 3 of 40 treated
    and 1 of 20 held out came back."""
    p = holdout_plan()
    ev = _events()
    secs = (START + 3600, START + 3600, START + 3600, START + 3600, START - 86400, START + 3600)
    text = pa.table({"user_id": [str(u) for u in ev["user_id"].to_pylist()],
                     "ts": [str(np.datetime64(s, "s")) for s in secs], "event": ev["event"]})
    feather.write_feather(text, tmp_path / "text.arrow")
    naive = ev.set_column(1, "ts", pa.array(np.array(secs), pa.timestamp("s")))
    pacsv.write_csv(naive.set_column(2, "event", ev["event"].dictionary_encode()), tmp_path / "naive.csv")
    assert _counts(report(p, ev)) == (40, 3, 20, 1)
    assert _counts(report(p, tmp_path / "text.arrow")) == (40, 3, 20, 1)
    assert _counts(report(p, tmp_path / "naive.csv")) == (40, 3, 20, 1)


def test_an_empty_csv_of_outcomes_reports_no_one_came_back(tmp_path):
    """Given an outcomes CSV with a header and no rows (its columns have no type), the report says 0 came back."""
    p = holdout_plan()
    (tmp_path / "empty.csv").write_text("user_id,ts,event,channel,message_id\n")
    assert _counts(report(p, tmp_path / "empty.csv")) == (40, 0, 20, 0)


def test_rows_without_a_user_or_a_time_are_one_line_naming_the_column_and_nothing_is_written(tmp_path, capsys):
    """Given an outcome row with no user_id (or a ts that is no time), when reported through the CLI,
    then exit 2 with one line naming the file, the column and the row, and no report directory."""
    p = holdout_plan()
    feather.write_feather(p, tmp_path / "plan.arrow")
    ev = _events()
    no_user = ev.set_column(0, "user_id", pa.array([1, None, 4, 3, 5, 999], pa.int64()))
    feather.write_feather(no_user, tmp_path / "no_user.arrow")
    bad_ts = ev.set_column(1, "ts", pa.array(["2026-09-21T09:00:00", "yesterday", "2026-09-21", "2026-09-21",
                                             "2026-09-20", "2026-09-21"]))
    feather.write_feather(bad_ts, tmp_path / "bad_ts.arrow")
    for name, column, row in (("no_user", "user_id", "row 1"), ("bad_ts", "ts", "row 1")):
        code = main(["report", str(tmp_path / "plan.arrow"), str(tmp_path / f"{name}.arrow"),
                     "-o", str(tmp_path / f"r_{name}")])
        err = capsys.readouterr().err
        assert code == 2, err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert f"{name}.arrow" in err and f"column '{column}'" in err and row in err
        assert not (tmp_path / f"r_{name}").exists()


def test_deliveries_to_users_outside_the_plan_or_without_a_channel_are_counted_right(tmp_path):
    """Given simulate-style send rows (with message ids) where one goes to a user the plan does
    not list and one lost its channel, when reported, then the stray delivery counts for nobody
    and the channel comes from the plan (it was an IndexError and a TypeError)."""
    p = holdout_plan()
    planned = p.filter(pa.compute.is_null(p["reason"]))
    mids = planned["message_id"][:2].to_pylist()
    uids = planned["user_id"][:2].to_pylist()
    t = from_epoch_seconds(np.array([START + 60] * 3))
    sends = pa.table({"user_id": pa.array([uids[0], uids[1], 999_999], pa.int64()), "ts": t,
                      "event": ["send"] * 3, "channel": [None, planned["channel"][1].as_py(), "email"],
                      "message_id": [mids[0], mids[1], "stray-1"]})
    out = pa.concat_tables([_events().append_column("channel", pa.nulls(6, pa.string()))
                            .append_column("message_id", pa.nulls(6, pa.string())), sends])
    summary = report(p, out)
    assert summary["messages_sent"] == 2
    assert {r["channel"] for r in summary["by_step_channel"]} == {planned["channel"][0].as_py(),
                                                                   planned["channel"][1].as_py()}


def test_a_plan_that_went_through_another_tool_reports_as_the_original(tmp_path):
    """send_at as ISO text or epoch seconds, user ids as digits, holdout as yes/no: the report
    is the typed plan's; a plan without a holdout column, or with a send_at in year 10000 or
    an unknown timezone, is one InputError naming the column."""
    import pyarrow.compute as pc
    import pytest

    from engine.errors import InputError

    p = holdout_plan()
    want = _counts(report(p, _events()))
    i = p.schema.get_field_index
    iso = p.set_column(i("send_at"), "send_at", pc.strftime(p["send_at"], "%Y-%m-%dT%H:%M:%SZ"))
    iso = iso.set_column(i("user_id"), "user_id", pc.cast(p["user_id"], pa.string()))
    iso = iso.set_column(i("holdout"), "holdout", pa.array(["yes" if h else "no" for h in p["holdout"].to_pylist()]))
    assert _counts(report(iso, _events())) == want
    secs = p.set_column(i("send_at"), "send_at", pa.array([START] * p.num_rows, pa.int64()))
    assert _counts(report(secs, _events())) == want
    with pytest.raises(InputError, match="the plan has no column holdout"):
        report(p.drop_columns(["holdout"]), _events())
    far = p.set_column(i("send_at"), "send_at", pa.array([253_402_300_800] * p.num_rows, pa.int64()))
    with pytest.raises(InputError, match="column 'send_at' has 60 values that are not instants from 1970 to 2199"):
        report(far, _events())
    zoned = p.append_column("timezone", pa.array(["Mars/Olympus\x00"] + ["UTC"] * (p.num_rows - 1)))
    assert _counts(report(zoned, _events())) == want  # an unknown zone is the campaign's (it was a ValueError)
