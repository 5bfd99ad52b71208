"""engine.validate and `winback validate`: users rules, combined report, exit codes, quarantine."""

from __future__ import annotations


import pyarrow as pa
import pyarrow.feather as feather
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import DATA
from engine.cli import main
from engine.errors import InputError
from engine.io.readers import load_users, read_table
from engine.io.validation import validate
from tests.helpers import AS_OF, FORMATS, events_table, write

AS_OF_TEXT = "2026-09-21T00:00:00Z"  # >= AS_OF of the events fixture


def users_table() -> pa.Table:
    return pa.table({
        "user_id": pa.array([1, 2, 3, 4, 5], pa.int64()),
        "timezone": ["Europe/Paris", "America/New_York", None, "Asia/Kolkata", "UTC"],
        "email": ["a@x.io", "b@x.io", "c@x.io", None, "e@x.io"],
        "consent_email": [True, True, False, None, True],
        "country": ["FR", "US", "DE", "IN", "GB"],
    })


USER_KINDS = {
    "null_user_id": "user_id",
    "bad_user_id": "user_id",
    "duplicate_user_id": "user_id",
    "unknown_timezone": "timezone",
    "bad_consent_email": "consent_email",
    "bad_signup_at": "signup_at",
}


def _mutate_users(kind: str) -> pa.Table:
    """Users with row 3 broken by rule ``kind``."""
    t = users_table().to_pydict()
    t["signup_at"] = ["2026-01-0%d" % (i + 1) for i in range(5)]
    if kind == "null_user_id":
        t["user_id"][3] = None
    elif kind == "bad_user_id":
        t["user_id"] = [str(v) for v in t["user_id"]]
        t["user_id"][3] = "four"
    elif kind == "duplicate_user_id":
        t["user_id"][3] = 2
    elif kind == "unknown_timezone":
        t["timezone"][3] = "Europe/Atlantis"
    elif kind == "bad_consent_email":
        t["consent_email"] = ["yes", "no", "1", "maybe", None]
    elif kind == "bad_signup_at":
        t["signup_at"][3] = "last tuesday"
    return pa.table(t)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", list(USER_KINDS))
def test_each_users_rule_raises_a_clear_error(tmp_path, fmt, kind):
    # given users whose row 3 breaks one rule
    path = write(_mutate_users(kind), tmp_path, fmt, "users")
    # when loaded in error mode / then one paragraph names file, column, count, rule and row
    with pytest.raises(InputError) as info:
        load_users(path)
    msg = str(info.value)
    assert str(path) in msg and f"column '{USER_KINDS[kind]}'" in msg and f"[{kind}]" in msg
    assert "1 of 5 users rows" in msg and "row 3 {" in msg and "--on-bad-rows quarantine" in msg


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", list(USER_KINDS))
def test_each_users_rule_is_quarantined_without_losing_rows(tmp_path, fmt, kind):
    path = write(_mutate_users(kind), tmp_path, fmt, "users")
    out = tmp_path / "users.rejected.csv"
    users = load_users(path, on_bad_rows="quarantine", quarantine=out)
    rejected = read_table(out)
    assert users.table.num_rows + rejected.num_rows == 5
    assert rejected["reason"].to_pylist() == [kind]
    assert rejected["row"].to_pylist() == [3]


def test_first_copy_of_a_duplicate_is_kept(tmp_path):
    # given user 2 twice with different emails
    t = users_table().to_pydict()
    t["user_id"][3] = 2
    users = load_users(write(pa.table(t), tmp_path, "feather", "users"), on_bad_rows="quarantine",
                       quarantine=tmp_path / "q.arrow")
    # then the first row's email survives and the index points at it
    assert users.table["user_id"].to_pylist() == [1, 2, 3, 5]
    assert users.table["email"].to_pylist()[1] == "b@x.io"
    assert users.index.lookup([2]).tolist() == [1]


def test_validate_reports_clean_files(tmp_path):
    users = write(users_table(), tmp_path, "feather", "users")
    events = write(events_table(), tmp_path, "parquet", "events")
    report = validate(users, events, as_of=AS_OF)
    assert report.clean and report.users_read == 5 and report.events_good == 8
    assert report.rows() == []


def test_validate_counts_users_and_events_together(tmp_path):
    # given one bad user row (user 4 null) and the events of user 4 that then match nobody
    users = write(_mutate_users("null_user_id"), tmp_path, "csv", "users")
    events = write(events_table(), tmp_path, "feather", "events")
    # when validated in error mode / then one error names both files
    with pytest.raises(InputError) as info:
        validate(users, events, as_of=AS_OF)
    msg = str(info.value)
    assert str(users) in msg and str(events) in msg and "[null_user_id]" in msg and "[unknown_user]" in msg
    # and in quarantine mode the report has both, and every row is accounted for
    report = validate(users, events, as_of=AS_OF, on_bad_rows="quarantine", quarantine_dir=tmp_path / "rej")
    assert report.users_bad == {"null_user_id": 1} and report.events_bad == {"unknown_user": 1}
    assert report.users_good + read_table(report.quarantine["users"]).num_rows == report.users_read == 5
    assert report.events_good + read_table(report.quarantine["events"]).num_rows == report.events_read == 8


def test_cli_exit_0_on_clean_files(tmp_path, capsys):
    users = write(users_table(), tmp_path, "feather", "users")
    events = write(events_table(), tmp_path, "dir", "events")
    code = main(["validate", str(users), str(events), "--as-of", AS_OF_TEXT, "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "clean" in out and "events" in out


def test_cli_exit_2_with_one_line_and_no_output_file(tmp_path, capsys):
    # given a future event
    users = write(users_table(), tmp_path, "feather", "users")
    events = write(events_table(), tmp_path, "csv", "events")
    # when validated as of a day before the last event
    code = main(["validate", str(users), str(events), "--as-of", "2026-08-22", "--no-progress"])
    err = capsys.readouterr().err
    # then exit 2, one line naming the file and the rule, no quarantine file written
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("InputError: ") and "[future_ts]" in lines[0]
    assert "Traceback" not in err
    assert not list(tmp_path.glob("*rejected*"))


def test_cli_quarantine_exit_0_and_says_where(tmp_path, capsys):
    users = write(_mutate_users("unknown_timezone"), tmp_path, "parquet", "users")
    events = write(events_table(), tmp_path, "feather", "events")
    qdir = tmp_path / "rejected"
    code = main(["validate", str(users), str(events), "--as-of", AS_OF_TEXT, "--on-bad-rows", "quarantine",
                 "--quarantine-dir", str(qdir), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "unknown_timezone" in out and "unknown_user" in out
    assert str(qdir / "users.rejected.arrow") in out and (qdir / "events.rejected.arrow").exists()


def test_cli_missing_column(tmp_path, capsys):
    users = write(users_table().rename_columns(["id", "timezone", "email", "consent_email", "country"]),
                  tmp_path, "feather", "users")
    events = write(events_table(), tmp_path, "feather", "events")
    code = main(["validate", str(users), str(events), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "'user_id'" in err and "id, timezone, email" in err


def test_cli_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["validate", "--help"])
    out = capsys.readouterr().out
    for option in ("--as-of", "--on-bad-rows", "--quarantine-dir", "--no-progress", "example"):
        assert option in out


BAD = DATA / "bad"


def test_hand_made_bad_files_every_rule_once(tmp_path):
    # given tests/data/bad: one row per users rule and one row per events rule
    report = validate(BAD / "users.csv", BAD / "events.csv", as_of="2026-11-01", on_bad_rows="quarantine",
                      quarantine_dir=tmp_path)
    # then each rule catches exactly its row, and nothing is lost
    assert report.users_bad == {"null_user_id": 1, "duplicate_user_id": 1, "unknown_timezone": 1,
                                "bad_consent_email": 1, "bad_user_id": 1, "bad_signup_at": 1}
    assert report.events_bad == {k: 1 for k in (
        "null_user_id", "bad_user_id", "unknown_user", "null_event", "unknown_event", "null_ts", "bad_ts",
        "future_ts", "unknown_channel", "missing_channel", "bad_value")}
    assert (report.users_read, report.users_good) == (9, 3)
    assert (report.events_read, report.events_good) == (16, 5)
    rejected = read_table(tmp_path / "events.rejected.arrow")
    assert rejected["row"].to_pylist() == list(range(5, 16))


def test_hand_made_bad_files_through_the_cli(capsys, tmp_path):
    code = main(["validate", str(BAD / "users.csv"), str(BAD / "events.csv"), "--as-of", "2026-11-01",
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "users.csv: 6 of 9 users rows" in err and "events.csv: 11 of 16 events rows" in err


@given(rows=st.lists(st.tuples(st.one_of(st.none(), st.integers(-3, 6)),
                               st.sampled_from(["UTC", "Europe/Paris", "Nowhere/Special", None])), max_size=30))
def test_users_quarantine_keeps_first_copies_and_loses_nothing(tmp_path_factory, rows):
    """Kept users are the first valid row of each id, in file order; kept + rejected = rows read."""
    d = tmp_path_factory.mktemp("u")
    path = d / "users.arrow"
    feather.write_feather(pa.table({"user_id": pa.array([r[0] for r in rows], pa.int64()),
                                    "timezone": pa.array([r[1] for r in rows], pa.string())}), path)
    users = load_users(path, on_bad_rows="quarantine", quarantine=d / "q.arrow")
    rejected = read_table(d / "q.arrow")
    # naive: walk the rows, keep the first copy of each non-null id when its zone is known
    seen, kept = set(), []
    for uid, zone in rows:
        if uid is None or uid in seen:
            continue
        seen.add(uid)
        if zone != "Nowhere/Special":
            kept.append(uid)
    assert users.table["user_id"].to_pylist() == kept
    assert users.table.num_rows + rejected.num_rows == len(rows) == users.rows_read
    assert len(set(rejected["row"].to_pylist())) == rejected.num_rows  # each row rejected at most once
