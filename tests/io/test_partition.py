"""Hash partitioning keeps every event with its user and loses no row."""

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.feather as feather
from hypothesis import given
from hypothesis import strategies as st

from engine.cli import main
from engine.io.partition import partition_of, splitmix64


def _splitmix64_naive(x: int) -> int:
    mask = (1 << 64) - 1
    z = (x + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


@given(st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=50))
def test_splitmix64_matches_the_integer_definition(ids):
    """Property: the vectorised hash equals the textbook integer SplitMix64."""
    arr = np.array(ids, dtype=np.int64).view(np.uint64)
    assert [int(v) for v in splitmix64(arr)] == [_splitmix64_naive(int(v)) for v in arr]


def test_partition_of_is_stable_and_in_range():
    ids = np.arange(-500, 500, dtype=np.int64)
    parts = partition_of(ids, 7)
    assert parts.min() >= 0 and parts.max() < 7
    assert np.array_equal(parts, partition_of(ids, 7))
    # roughly balanced
    assert np.bincount(parts).min() > 80


def test_partition_round_trip(tmp_path):
    # given a small users and events table
    rng = np.random.default_rng(1)
    uids = rng.choice(10**9, size=300, replace=False).astype(np.int64)
    users = pa.table({"user_id": uids, "timezone": ["UTC"] * 300})
    ev_uid = rng.choice(uids, size=2000)
    events = pa.table({
        "user_id": ev_uid,
        "ts": pa.array(rng.integers(0, 10**6, 2000) * 1_000_000, pa.timestamp("us", tz="UTC")),
        "event": ["session"] * 2000,
    })
    feather.write_feather(users, tmp_path / "users.arrow")
    feather.write_feather(events, tmp_path / "events.arrow")
    # when partitioned through the CLI
    code = main(["partition", str(tmp_path / "users.arrow"), str(tmp_path / "events.arrow"),
                 "-o", str(tmp_path / "parts"), "--partitions", "4", "--no-progress"])
    assert code == 0
    # then every row is there once, and each event sits in its user's partition
    u = ds.dataset(tmp_path / "parts" / "users", format="parquet", partitioning="hive").to_table()
    e = ds.dataset(tmp_path / "parts" / "events", format="parquet", partitioning="hive").to_table()
    assert u.num_rows == 300 and e.num_rows == 2000
    assert sorted(u["user_id"].to_pylist()) == sorted(uids.tolist())
    upart = dict(zip(u["user_id"].to_pylist(), u["part"].to_pylist()))
    assert all(upart[uid] == p for uid, p in zip(e["user_id"].to_pylist(), e["part"].to_pylist()))


def test_missing_user_id_is_a_clear_error(tmp_path, capsys):
    feather.write_feather(pa.table({"id": [1, 2]}), tmp_path / "users.arrow")
    feather.write_feather(pa.table({"user_id": [1]}), tmp_path / "events.arrow")
    code = main(["partition", str(tmp_path / "users.arrow"), str(tmp_path / "events.arrow"),
                 "-o", str(tmp_path / "parts"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "user_id" in err and "users.arrow" in err
    assert not (tmp_path / "parts").exists()


def test_a_partition_count_past_the_limit_is_refused_before_any_file(tmp_path, capsys):
    # given a users and events file
    feather.write_feather(pa.table({"user_id": np.arange(3, dtype=np.int64), "timezone": ["UTC"] * 3}),
                          tmp_path / "users.arrow")
    feather.write_feather(pa.table({"user_id": np.arange(3, dtype=np.int64),
                                    "ts": pa.array([0, 1, 2], pa.timestamp("s", tz="UTC")),
                                    "event": ["session"] * 3}), tmp_path / "events.arrow")
    # when asked for a hundred million partitions (a directory per partition and table)
    code = main(["partition", str(tmp_path / "users.arrow"), str(tmp_path / "events.arrow"),
                 "-o", str(tmp_path / "parts"), "--partitions", "100000000", "--no-progress"])
    # then one message says the range, and nothing is written
    assert code == 2
    assert "--partitions must be 1 to 10,000" in capsys.readouterr().err
    assert not (tmp_path / "parts").exists()


def test_a_user_id_column_in_another_spelling_partitions_as_score_reads_it(tmp_path):
    """'User ID' in the users file is the user id for partition too (score already reads it so)."""
    from engine.io.partition import partition
    import pyarrow.dataset as ds

    users = pa.table({"User ID": pa.array(range(1, 201), pa.int64()), "email": [f"u{i}@x.io" for i in range(200)]})
    events = pa.table({"user_id": pa.array(range(1, 201), pa.int64()),
                       "ts": pa.array([1_790_000_000] * 200, pa.timestamp("s", tz="UTC")), "event": ["session"] * 200})
    feather.write_feather(users, tmp_path / "users.arrow")
    feather.write_feather(events, tmp_path / "events.arrow")
    partition(tmp_path / "users.arrow", tmp_path / "events.arrow", tmp_path / "parts", partitions=3)
    u = ds.dataset(tmp_path / "parts" / "users", partitioning="hive").to_table()
    e = ds.dataset(tmp_path / "parts" / "events", partitioning="hive").to_table()
    by_user = dict(zip(u["User ID"].to_pylist(), u["part"].to_pylist()))
    assert len(by_user) == 200 and all(by_user[i] == p for i, p in zip(e["user_id"].to_pylist(), e["part"].to_pylist()))
