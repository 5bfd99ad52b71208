"""A plan from a scores CSV (which keeps no schema metadata) starts where the Arrow file's plan starts."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow.feather as feather
import pytest

from engine.io.atomic import write_table
from engine.planning.planner import plan, scores_meta
from engine.scoring.pipeline import score
from engine.synth.generator import generate

CAMPAIGN = "examples/winback_lapsing.toml"  # no [campaign] as_of: the start is the scores' as_of


@pytest.fixture(scope="module")
def scores_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("csvscores")
    generate(800, seed=11, out_dir=d / "world")
    s = score(d / "world/users.arrow", d / "world/events.arrow", as_of="2026-11-01T00:00:00Z")
    write_table(s, d / "scores.arrow")
    write_table(s, d / "scores.csv")
    return d


def test_the_scores_as_of_comes_back_from_the_columns_of_a_csv(scores_files):
    """Given scores written as CSV (no metadata), then their as_of is recovered exactly from
    last_active_at + days_inactive."""
    from engine.io.readers import read_table

    meta = scores_meta(read_table(scores_files / "scores.csv", "scores"))
    assert dt.datetime.fromisoformat(meta["as_of"]) == dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)


def test_a_plan_from_the_csv_scores_equals_the_plan_from_the_arrow_scores(scores_files):
    """Given the same scores as Arrow and as CSV and a campaign with no start, when planned, then
    both plans start at the scores' as_of and send the same messages at the same instants (not
    'now' for the CSV); and a start 10 days later flags both as stale."""
    a = plan(scores_files / "scores.arrow", CAMPAIGN)
    c = plan(scores_files / "scores.csv", CAMPAIGN)
    start = [json.loads(p.schema.metadata[b"winback.plan"])["as_of"] for p in (a, c)]
    assert start[0] == start[1] == "2026-11-01T00:00:00+00:00"
    for name in ("message_id", "user_id", "step", "channel", "send_at", "reason"):
        assert a[name].equals(c[name]), name
    later = [plan(scores_files / f, CAMPAIGN, as_of="2026-11-11T00:00:00Z") for f in ("scores.arrow", "scores.csv")]
    warnings = [json.loads(p.schema.metadata[b"winback.plan"])["summary"].get("warnings") for p in later]
    assert warnings[0] and warnings[1][1:] == warnings[0]  # the CSV's first: its lost metadata


def test_planning_from_a_csv_warns_once_what_its_missing_metadata_loses(scores_files, tmp_path, capsys):
    """Given the same scores as CSV, Parquet and Arrow, when planned, then the CSV's plan carries
    one warning naming what is lost (fatigue parameters, default_timezone, lapse model) and what to
    do (.arrow or .parquet), and the CLI prints it once on stderr and exits 0; Parquet keeps the
    metadata whole, so its plan, like the Arrow file's, has no such warning."""
    from engine.cli import main
    from engine.io.meta import SCORE, read_meta
    from engine.io.readers import read_table

    write_table(feather.read_table(scores_files / "scores.arrow"), tmp_path / "scores.parquet")
    assert read_meta(read_table(tmp_path / "scores.parquet", "scores"), SCORE) == \
        read_meta(feather.read_table(scores_files / "scores.arrow"), SCORE)
    warns = {}
    for f in (scores_files / "scores.csv", tmp_path / "scores.parquet", scores_files / "scores.arrow"):
        warns[f.suffix] = json.loads(plan(f, CAMPAIGN).schema.metadata[b"winback.plan"])["summary"].get("warnings")
    assert warns[".parquet"] is None and warns[".arrow"] is None
    [text] = warns[".csv"]
    for part in ("scores.csv", "no winback.score metadata", "fatigue", "default_timezone", "lapse model",
                 ".arrow or .parquet"):
        assert part in text
    capsys.readouterr()
    assert main(["plan", str(scores_files / "scores.csv"), CAMPAIGN, "-o", str(tmp_path / "plan.arrow")]) == 0
    err = capsys.readouterr().err
    assert err.count("no winback.score metadata") == 1  # (and one that the schedule is past, if it is)
    user = feather.read_table(tmp_path / "plan.arrow")["user_id"][0].as_py()
    assert main(["explain", str(user), "--plan", str(tmp_path / "plan.arrow"),
                 "--scores", str(scores_files / "scores.csv")]) == 0
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and ".arrow or .parquet" in err
    assert main(["explain", str(user), "--plan", str(tmp_path / "plan.arrow"),
                 "--scores", str(tmp_path / "scores.parquet")]) == 0
    assert "warning:" not in capsys.readouterr().err


def _retyped(t, name, arr):
    return t.set_column(t.schema.get_field_index(name), name, arr)


def test_scores_that_went_through_another_tool_plan_the_same(scores_files):
    """Given the scores with numbers as text, booleans as yes/no and 0/1, timestamps as ISO
    text and a template field as large_string (what a spreadsheet or pandas round trip
    makes), when planned, then the plan is the one the original scores give."""
    import pyarrow as pa
    import pyarrow.compute as pc

    orig = feather.read_table(scores_files / "scores.arrow")
    t = orig
    for name in ("p_alive", "days_inactive", "fatigue_budget", "best_hour_local"):
        t = _retyped(t, name, pc.cast(t[name], pa.string()))
    t = _retyped(t, "consent_email", pa.array([None if v is None else ("yes" if v else "no")
                                               for v in t["consent_email"].to_pylist()]))
    t = _retyped(t, "email_suppressed", pc.cast(t["email_suppressed"], pa.int8()))
    t = _retyped(t, "last_active_at", pc.strftime(t["last_active_at"], "%Y-%m-%dT%H:%M:%SZ"))
    t = _retyped(t, "first_name", pc.cast(t["first_name"], pa.large_string()))
    want, got = plan(orig, CAMPAIGN), plan(t, CAMPAIGN)
    for col in ("message_id", "user_id", "channel", "send_at", "subject", "body", "reason"):
        assert got[col].to_pylist() == want[col].to_pylist(), col


def test_a_score_value_of_the_wrong_kind_is_one_input_error_naming_column_and_rows(scores_files):
    import pyarrow as pa
    import pyarrow.compute as pc

    from engine.errors import InputError

    t = feather.read_table(scores_files / "scores.arrow")
    text = pc.cast(t["monetary"], pa.string()).to_pylist()
    text[5] = "twelve"
    bad = _retyped(t, "monetary", pa.array(text, pa.string()))
    uid = t["user_id"][5].as_py()
    with pytest.raises(InputError, match=rf"column 'monetary' has 1 value that is not a number, e.g. row 5 \(user_id {uid}: 'twelve'\)"):
        plan(bad, CAMPAIGN)
    flags = pa.array(["maybe"] * t.num_rows)
    with pytest.raises(InputError, match="column 'complained' has 800 values that are not true/false"):
        plan(_retyped(t, "complained", flags), CAMPAIGN)


def test_days_since_in_an_audience_rule_counts_to_the_as_of_recovered_from_a_csv(scores_files, tmp_path):
    """Given a campaign whose audience uses days_since(), when planned from the CSV scores, then
    it selects the users the Arrow scores select (it stopped with 'days_since() needs an as-of
    instant')."""
    text = open(CAMPAIGN, encoding="utf-8").read().replace(
        'where = "days_inactive >= 14 and', 'where = "days_since(last_active_at) >= 14 and')
    assert "days_since(last_active_at)" in text
    campaign = tmp_path / "c.toml"
    campaign.write_text(text, encoding="utf-8")
    from engine.io.readers import read_table

    a = plan(feather.read_table(scores_files / "scores.arrow"), campaign)
    c = plan(read_table(scores_files / "scores.csv", "scores"), campaign)
    assert c["reason"].to_pylist() == a["reason"].to_pylist()
    assert c["message_id"].to_pylist() == a["message_id"].to_pylist()
