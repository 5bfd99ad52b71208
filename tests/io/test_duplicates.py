"""engine.io.duplicates: exact duplicate event rows, counted on a sample of users and said in a warning."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.cli import main
from engine.io.duplicates import WARN_FRACTION, DuplicateSample, duplicate_rows, duplicates_warning
from engine.io.readers import EventBatch
from engine.scoring.pipeline import score, summary_of
from engine.synth.generator import generate

AS_OF = "2026-11-01T00:00:00Z"

rows = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 2), st.integers(-1, 1),
                          st.sampled_from([float("nan"), 0.0, -0.0, 1.5]), st.integers(0, 1)), max_size=40)


@given(rows, st.booleans())
def test_duplicate_rows_marks_every_copy_but_the_first(data, with_item):
    """Property: the hashed sort marks exactly the rows whose fields (value by its bits) were seen before."""
    cols = [np.array([r[i] for r in data], dt) for i, dt in
            enumerate((np.int64, np.int64, np.int8, np.int8, np.float64, np.int64))]
    got = duplicate_rows(*cols[:5], cols[5] if with_item else None)
    seen, want = set(), []
    for r in data:
        key = (r[0], r[1], r[2], r[3], np.float64(r[4]).tobytes(), r[5] if with_item else None)
        want.append(key in seen)
        seen.add(key)
    assert got.tolist() == want


def _batch(uidx, ts):
    n = len(uidx)
    return EventBatch(np.asarray(uidx, np.int64), np.asarray(ts, np.int64), np.zeros(n, np.int8),
                      np.zeros(n, np.int8), np.full(n, np.nan), None)


def test_the_sample_keeps_whole_users_and_estimates_the_fraction():
    # given 64 users, a sample of at least 8 of them, and batches where user 5's rows and user 8's rows repeat
    s = DuplicateSample(64, sample_users=8)
    assert s.stride == 8 and s.users == 8
    s.add(_batch(np.arange(64), np.arange(64)))
    s.add(_batch([5, 8, 8], [5, 8, 8]))  # one copy of user 5 (not sampled), two of user 8 (sampled)
    r = s.result()
    # then only the sampled users' rows count: 8 users' 8 rows, plus user 8's two copies
    assert r["sampled_rows"] == 10 and r["duplicate_rows"] == 2 and r["fraction"] == pytest.approx(0.2)
    assert r["example"] == (8, 8, 0, 0)
    assert s.rows_seen == 67
    # and a small file is sampled whole
    assert DuplicateSample(100).stride == 1


def test_the_warning_names_an_example_and_what_to_do():
    ids = pa.array([101, 202, 303])
    quiet = {"sampled_users": 3, "sampled_rows": 1000, "duplicate_rows": 3, "fraction": 0.003,
             "example": (1, 0, 0, -1)}
    assert duplicates_warning(quiet, ids) is None  # 0.3 %: genuine repeats of a date-only log (CDNOW)
    loud = {**quiet, "duplicate_rows": 50, "fraction": 0.05}
    text = duplicates_warning(loud, ids)
    assert "5.0% of event rows repeat another row exactly" in text and "user 202" in text
    assert "1970-01-01T00:00:00Z" in text and "remove the copies upstream" in text and WARN_FRACTION <= 0.05


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("dups")
    generate(1500, seed=5, out_dir=d)
    return d


def test_a_log_delivered_twice_scores_with_a_warning(world, tmp_path, capsys):
    # given the events, and the same events with 10 % of their rows delivered twice
    users, events = feather.read_table(world / "users.arrow"), feather.read_table(world / "events.arrow")
    doubled = pa.concat_tables([events, events.take(np.arange(0, events.num_rows, 10))])
    clean, dirty = score(users, events, as_of=AS_OF), score(users, doubled, as_of=AS_OF)
    # then the clean log has no warning and the doubled one says how much, with the estimate in the metadata
    assert not any("repeat another row" in w for w in summary_of(clean)["warnings"])
    meta = summary_of(dirty)
    assert meta["duplicate_events"]["fraction"] == pytest.approx(1 / 11, abs=0.01)
    assert any("repeat another row exactly" in w for w in meta["warnings"])
    # and lapse_risk (active days) does not change, while the row counts do, as the warning says
    np.testing.assert_array_equal(clean["lapse_risk"].to_numpy(), dirty["lapse_risk"].to_numpy())
    assert (dirty["sends_30d"].to_numpy() >= clean["sends_30d"].to_numpy()).all()
    # and validate says it too, exit 0 (the rows break no contract)
    path = tmp_path / "events.arrow"
    feather.write_feather(doubled, path)
    assert main(["validate", str(world / "users.arrow"), str(path), "--as-of", AS_OF, "--no-progress"]) == 0
    assert "repeat another row exactly" in capsys.readouterr().out
