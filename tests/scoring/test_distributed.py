"""Partitioned scoring (in-process and on a real LocalCluster) equals score() on the whole files."""

from __future__ import annotations

import json
import sys

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from engine.cli import main
from engine.scoring.distributed import SUMMARY_FILE, score_partitioned
from engine.errors import DependencyError, InputError
from engine.scoring.fatigue import quintiles
from engine.synth.generator import generate
from engine.io.partition import partition
from engine.scoring.fatigue import quintile_cuts as _quintile_cuts, quintile_of as _quintile
from engine.scoring.pipeline import score, summary_of

AS_OF = "2026-11-01"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("dist")
    generate(3000, seed=11, out_dir=d / "world")
    partition(d / "world/users.arrow", d / "world/events.arrow", d / "parts", partitions=3)
    single = score(d / "world/users.arrow", d / "world/events.arrow", as_of=AS_OF)
    return d, single


def _read(out_dir) -> pa.Table:
    return ds.dataset(str(out_dir), format="parquet", partitioning="hive").to_table()


def _assert_same_per_user(single: pa.Table, parted: pa.Table) -> None:
    assert parted.num_rows == single.num_rows
    a, b = single.sort_by("user_id"), parted.sort_by("user_id")
    for name in single.column_names:
        x, y = a[name], b[name].cast(a[name].type)
        if pa.types.is_floating(x.type):
            assert x.is_null().equals(y.is_null()), name
            xn, yn = x.to_numpy(zero_copy_only=False), y.to_numpy(zero_copy_only=False)
            # `winback partition` keeps each user's events in file order, so even the float32
            # histogram sums (send_time_confidence) come out the same
            np.testing.assert_allclose(yn, xn, rtol=1e-9, atol=0, equal_nan=True, err_msg=name)
        else:
            assert x.equals(y), name


def _assert_same_model(single: pa.Table, summary: dict) -> None:
    m1, m2 = summary_of(single)["model"], summary["model"]
    for k in ("r", "alpha", "a", "b", "log_likelihood"):
        assert m2[k] == pytest.approx(m1[k], rel=1e-9), k
    assert (m2["users"], m2["unique_rows"]) == (m1["users"], m1["unique_rows"])
    assert summary["lifecycle"] == summary_of(single)["lifecycle"]
    assert summary["send_time"] == summary_of(single)["send_time"]


def test_dask_local_cluster_equals_single_machine(world, tmp_path):
    pytest.importorskip("distributed")
    d, single = world
    # when the 3 partitions are scored on a LocalCluster (2 worker processes on 127.0.0.1)
    summary = score_partitioned(d / "parts", out_dir=tmp_path / "scores", as_of=AS_OF, dask="local",
                                n_workers=2, threads_per_worker=1)
    # then every user's row and the model equal the single-machine run
    assert summary["workers"] == 2 and summary["partitions"] == 3 and summary["users"] == 3000
    _assert_same_per_user(single, _read(tmp_path / "scores"))
    _assert_same_model(single, summary)
    on_disk = json.loads((tmp_path / "scores" / SUMMARY_FILE).read_text())
    assert on_disk["model"] == summary["model"]
    files = sorted(p.parent.name for p in (tmp_path / "scores").rglob("*.parquet"))
    assert files == ["part=0", "part=1", "part=2"]


def test_in_process_partitions_equal_single_machine_through_the_cli(world, tmp_path, capsys):
    d, single = world
    # when the partition directory is scored without --dask
    assert main(["score", str(d / "parts"), "--as-of", AS_OF, "-o", str(tmp_path / "scores"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "3 partitions in this process" in printed and "lapse_risk: " in printed
    # then the Parquet dataset equals score() per user, and each file carries the global model
    _assert_same_per_user(single, _read(tmp_path / "scores"))
    summary = json.loads((tmp_path / "scores" / SUMMARY_FILE).read_text())
    _assert_same_model(single, summary)
    part0 = pa.parquet.read_schema(tmp_path / "scores/part=0/part-0.parquet")
    assert json.loads(part0.metadata[b"winback.score"])["model"] == summary["model"]


def test_learned_lapse_model_is_the_same_in_partitions(world, tmp_path):
    # given the learned lapse model forced, on the whole files and on 3 partitions in this process
    d, _ = world
    single = score(d / "world/users.arrow", d / "world/events.arrow", as_of=AS_OF, lapse_model="learned")
    summary = score_partitioned(d / "parts", out_dir=tmp_path / "scores", as_of=AS_OF, lapse_model="learned")
    # then both trained the same model on the merged rows, and every user's lapse_risk is the same
    assert summary_of(single)["lapse_model"]["used"] == "learned"
    assert summary["lapse_model"]["model"] == summary_of(single)["lapse_model"]["model"]
    parted = _read(tmp_path / "scores")
    part0 = pa.parquet.read_schema(tmp_path / "scores/part=0/part-0.parquet")
    assert json.loads(part0.metadata[b"winback.score"])["lapse_model"]["model"] == \
        summary_of(single)["lapse_model"]["model"]
    _assert_same_per_user(single, parted)


def test_users_and_events_dirs_are_accepted_too(world, tmp_path, capsys):
    d, single = world
    assert main(["score", str(d / "parts/users"), str(d / "parts/events"), "--as-of", AS_OF,
                 "-o", str(tmp_path / "s"), "--no-progress"]) == 0
    assert _read(tmp_path / "s").num_rows == single.num_rows


def test_dask_needs_a_partitioned_input(world, tmp_path, capsys):
    d, _ = world
    code = main(["score", str(d / "world/users.arrow"), str(d / "world/events.arrow"), "--dask", "local",
                 "-o", str(tmp_path / "s"), "--no-progress"])
    assert code == 2 and "winback partition" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
    with pytest.raises(InputError, match="winback partition"):
        score_partitioned(d / "world", out_dir=tmp_path / "s", as_of=AS_OF)


def test_missing_dask_names_the_extra(world, tmp_path, monkeypatch):
    d, _ = world
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(DependencyError, match=r"pip install 'winback\[dask\]'"):
        score_partitioned(d / "parts", out_dir=tmp_path / "s", as_of=AS_OF, dask="local")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("seed", range(20))
def test_quintile_cut_points_equal_rank_quintiles(seed):
    """Quintiles from per-partition value counts equal fatigue.quintiles on all values at once."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    v = rng.integers(0, int(rng.integers(1, 30)), n).astype(float)
    v[rng.random(n) < 0.2] = np.nan
    parts = np.array_split(v, int(rng.integers(1, 5)))
    counts = [np.unique(p[~np.isnan(p)], return_counts=True) for p in parts]
    cuts = _quintile_cuts(np.concatenate([c[0] for c in counts]), np.concatenate([c[1] for c in counts]))
    np.testing.assert_array_equal(_quintile(v, cuts), quintiles(v))


def test_population_sums_do_not_depend_on_how_users_are_split():
    """Per-timezone fixed-point sums over any split of the users add up to the one-pass sums."""
    from engine.scoring.sendtime import POP_UNIT, population_histograms, population_sums

    rng = np.random.default_rng(3)
    hist = (rng.random((5000, 24)) * 2.0 ** -rng.integers(0, 14, (5000, 24))).astype(np.float32)
    tz = rng.integers(0, 4, 5000)
    whole = population_sums(hist, tz, 4)
    order = rng.permutation(5000)
    split = sum(population_sums(hist[i], tz[i], 4) for i in np.array_split(order, 7))
    np.testing.assert_array_equal(split, whole)
    np.testing.assert_allclose(whole * POP_UNIT, population_histograms(hist, tz, 4), rtol=1e-6)


def test_bad_rows_on_a_worker_stop_the_run_with_one_line(world, tmp_path, capfd):
    pytest.importorskip("distributed")
    d, _ = world
    # given as_of before the last events: those rows break the contract in every partition
    code = main(["score", str(d / "parts"), "--as-of", "2026-06-01", "--dask", "local", "-o", str(tmp_path / "s"),
                 "--no-progress"])
    # then the worker's InputError reaches the CLI: exit 2, one line, no output
    err = capfd.readouterr().err.strip()
    assert code == 2 and "after as_of" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "s").exists()


def test_send_time_cohorts_are_the_same_in_partitions(world, tmp_path):
    # given the send-time prior tilted by the users' country, on the whole files and on 3 partitions
    d, _ = world
    single = score(d / "world/users.arrow", d / "world/events.arrow", as_of=AS_OF, send_time_cohort="country")
    summary = score_partitioned(d / "parts", out_dir=tmp_path / "scores", as_of=AS_OF, send_time_cohort="country")
    # then the cohorts summed over the partitions are those of one pass, and so is every user's hour
    assert summary_of(single)["send_time"]["cohorts"]["cohorts"] > 1
    assert summary["send_time"] == summary_of(single)["send_time"]
    _assert_same_per_user(single, _read(tmp_path / "scores"))
