"""Guards around planning: scores fit to plan, suppressions by id or address, the broadcast guard."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pytest

from engine.errors import InputError, PolicyError
from engine.ledger.store import Ledger
from engine.planning.campaign import load_campaign
from engine.planning.guard import check_scores, complained_users, guard_counts, suppressed_matrix
from engine.schema import CHANNELS
from tests.helpers import ROOT, one_step, reachable_users


def test_check_scores_passes_good_scores_and_names_a_missing_column():
    check_scores(reachable_users(4), "scores.arrow")
    with pytest.raises(InputError, match=r"scores\.arrow has no column 'p_alive' .*'winback score'"):
        check_scores(reachable_users(2).drop_columns(["p_alive"]), "scores.arrow")


def test_check_scores_lists_at_most_five_example_rows():
    ids = pa.array([1, None, None, None, None, None, None, 8], pa.int64())
    with pytest.raises(InputError, match=r"null in 6 rows \(e\.g\. rows \[1, 2, 3, 4, 5\]\)"):
        check_scores(reachable_users(8, user_id=ids), "s.arrow")


def test_check_scores_accepts_null_timezones():
    check_scores(reachable_users(3, timezone=pa.array(["UTC", None, "Asia/Kolkata"])), "s.arrow")


def test_suppressed_matrix_matches_by_user_id_or_by_the_channels_address(tmp_path):
    # given: user 1000 suppressed on sms by id (ledger), user 1002's email address suppressed (extra)
    scores = reachable_users(4)
    ledger = tmp_path / "ledger.db"
    with Ledger(ledger) as led:
        led.add_suppressions([{"channel": "sms", "user_id": 1000, "reason": "unsubscribe"}])
    extra = pa.table({"channel": ["email", "push"], "address": ["email-2", "email-3"],
                      "user_id": pa.array([None, None], pa.int64()), "reason": ["bounce", "bounce"]})
    # when
    got = suppressed_matrix(str(ledger), scores, extra)
    # then: 'email-3' is no push token, so it suppresses nobody on push
    want = np.zeros((4, len(CHANNELS)), bool)
    want[0, CHANNELS.index("sms")] = True
    want[2, CHANNELS.index("email")] = True
    assert got.tolist() == want.tolist()
    assert not suppressed_matrix(None, scores).any()
    assert not suppressed_matrix(str(tmp_path / "absent.db"), scores).any()


def test_complained_users_from_the_scores_column_and_complaint_suppressions_only():
    scores = reachable_users(4, complained=[True, False, False, None])
    extra = pa.table({"channel": ["push", "email"], "address": pa.array([None, None], pa.string()),
                      "user_id": pa.array([1002, 1003], pa.int64()), "reason": ["complaint", "unsubscribe"]})
    assert complained_users(None, scores, extra).tolist() == [True, False, True, False]


def test_broadcast_guard_thresholds_approval_and_the_ledger(tmp_path):
    targeted = load_campaign(one_step())
    doc = one_step()
    doc["campaign"]["approved"] = False
    unapproved = load_campaign(doc)
    # under the default 80 % share: a targeted campaign, no checks
    assert guard_counts(unapproved, 79, 100, None, int(time.time())) is False
    assert guard_counts(unapproved, 0, 0, None, int(time.time())) is False
    with pytest.raises(PolicyError, match=r"80 of 100 reachable users \(80%.*approved = true"):
        guard_counts(unapproved, 80, 100, None, int(time.time()))
    with pytest.raises(PolicyError, match="needs the ledger"):
        guard_counts(targeted, 90, 100, None, int(time.time()))
    ledger = tmp_path / "ledger.db"
    assert guard_counts(targeted, 90, 100, str(ledger), int(time.time())) is True  # a first send
    with Ledger(ledger) as led:
        led.record_broadcast("earlier", time.time() - 100 * 86400)
    assert guard_counts(targeted, 90, 100, str(ledger), int(time.time())) is True  # 100 days is enough
    with Ledger(ledger) as led:
        led.record_broadcast("recent", time.time() - 30 * 86400)
    with pytest.raises(PolicyError, match=r"already went out 30 days ago .*once per 90 days"):
        guard_counts(targeted, 90, 100, str(ledger), int(time.time()))


@pytest.mark.parametrize("column,value,expected", [
    ("user_id", pa.array(["1000", "1001", "1002"]),
     "column 'user_id' is string (e.g. ['1000', '1001', '1002']), not whole numbers"),
    ("user_id", pa.array([1000.0, 1001.0, 1002.0]), "column 'user_id' is double"),
    ("best_hour_local", pa.array([9, 99, 10], pa.int8()),
     "column 'best_hour_local' is outside 0-23 in 1 rows (e.g. user_id, best_hour_local: [(1001, 99)])"),
    ("best_hour_local", pa.array([-5, 9, 10], pa.int8()), "column 'best_hour_local' is outside 0-23 in 1 rows"),
    ("p_alive", pa.array([0.5, 5.0, 0.2]),
     "column 'p_alive' is outside 0-1 in 1 rows (e.g. user_id, p_alive: [(1001, 5.0)])"),
    # numbers as text are read as numbers (engine.planning.scores_in); text that is no number is refused
    ("lapse_risk", pa.array(["0.1", "high", "0.3"]), "column 'lapse_risk' has 1 value that is not a number"),
])
def test_hand_edited_scores_are_refused_by_plan_with_one_line(tmp_path, capsys, column, value, expected):
    # given real scores on disk with one column edited into something no score is
    import pyarrow.feather as feather
    from engine.cli import main

    scores = reachable_users(3, **{column: value})
    path = tmp_path / "scores.arrow"
    feather.write_feather(scores, path)
    # when planned, then one line names the file, the column and example rows; exit 2; no plan
    code = main(["plan", str(path), str(ROOT / "examples" / "winback_lapsing.toml"), "--as-of", "2026-11-01", "-o",
                 str(tmp_path / "plan.arrow")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert f"scores {path}: {expected}" in err
    assert not (tmp_path / "plan.arrow").exists()


def test_null_hours_and_nan_probabilities_still_pass():
    # unknown is not wrong: a user without a best hour or a probability is planned as before
    check_scores(reachable_users(3, best_hour_local=pa.array([None, 9, 10], pa.int8()),
                                 p_alive=pa.array([float("nan"), 0.5, None])), "s.arrow")


@pytest.mark.parametrize("as_of", ["yesterday", 12345, "9999-01-01"])
def test_an_edited_scores_as_of_is_refused_naming_the_file(tmp_path, capsys, as_of):
    # given real scores whose winback.score as_of was edited (a number would have started the campaign in 1970)
    import pyarrow.feather as feather
    from engine.cli import main
    from engine.io.meta import SCORE, with_meta

    path = tmp_path / "scores.arrow"
    feather.write_feather(with_meta(reachable_users(3), SCORE, {"as_of": as_of}), path)
    # when planned without --as-of (the start is the scores' as_of), then one line, exit 2, no plan
    code = main(["plan", str(path), str(ROOT / "examples" / "winback_lapsing.toml"), "-o", str(tmp_path / "p.arrow")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"InputError: scores {path}: metadata winback.score key as_of must be an ISO 8601 instant")
    assert not (tmp_path / "p.arrow").exists()
