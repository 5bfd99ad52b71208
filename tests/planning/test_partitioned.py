"""Planning a partitioned scores dataset (in-process and on a real LocalCluster) equals plan() on all users."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from engine.io.plans import read_plan
from engine.io.readers import read_table as read_any
from engine.planning.campaign import load_campaign
from engine.cli import main
from engine.scoring.distributed import score_partitioned
from engine.errors import InputError, PolicyError
from engine.synth.generator import generate
from engine.io.partition import partition
from engine.planning.planner import plan
from engine.planning.partitioned import SUMMARY_FILE, plan_partitioned

AS_OF = "2026-11-01T00:00:00Z"


def _campaign(capacity: int) -> dict:
    # tight hourly capacity so the global levelling decides many send times
    return {"campaign": {"id": "dist-plan", "holdout": 0.15},
            "audience": {"where": "days_inactive >= 30"},  # below the broadcast share of the base
            "policy": {"max_messages": 3, "capacity_per_hour": {"email": capacity, "push": capacity}},
            "steps": [{"name": "a", "channels": ["email", "push"], "template": "t", "items": 2},
                      {"name": "b", "delay_days": 2, "channels": ["push", "email"], "template": "t", "items": 2}],
            "templates": {"t": {"subject": "hi {{ first_name }}", "body": "{{ theme }} {{ items[0].title }}"}}}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("plandist")
    generate(2500, seed=21, out_dir=d / "world", as_of=AS_OF, n_items=300)
    partition(d / "world/users.arrow", d / "world/events.arrow", d / "parts", partitions=3)
    score_partitioned(d / "parts", out_dir=d / "scores", as_of=AS_OF, items=str(d / "world/items.arrow"))
    return d


def _same_plan(single: pa.Table, parted: pa.Table) -> None:
    assert parted.num_rows == single.num_rows
    a, b = single.sort_by("message_id"), parted.sort_by("message_id")
    for name in single.column_names:
        assert a[name].equals(b[name].cast(a[name].type)), name


def test_partitions_in_process_equal_one_plan(world, tmp_path):
    # given the partitioned scores, and the same scores as one table
    cmp = load_campaign(_campaign(capacity=5))
    items = str(world / "world/items.arrow")
    whole = read_any(world / "scores", "scores")
    single = plan(whole, cmp, items=items)
    # when planned partition by partition
    s = plan_partitioned(world / "scores", cmp, out_dir=tmp_path / "plan", items=items)
    parted, _ = read_plan(tmp_path / "plan")
    # then the rows are the same, capacity bound, and the summary is the whole plan's
    _same_plan(single, parted)
    assert single.filter(pc.equal(single["reason"], "capacity")).num_rows > 0
    meta = json.loads(parted.schema.metadata[b"winback.plan"])
    single_meta = json.loads(single.schema.metadata[b"winback.plan"])
    assert meta["summary"] == single_meta["summary"]
    assert meta["sunset"] == single_meta["sunset"]
    assert s["planned"] == single_meta["summary"]["planned"]
    assert json.loads((tmp_path / "plan" / SUMMARY_FILE).read_text())["run"]["partitions"] == 3


def test_the_plan_does_not_depend_on_row_order(world):
    cmp = load_campaign(_campaign(capacity=5))
    whole = read_any(world / "scores", "scores")
    shuffled = whole.take(pa.array(list(range(whole.num_rows))[::-1]))
    _same_plan(plan(whole, cmp, items=str(world / "world/items.arrow")),
               plan(shuffled, cmp, items=str(world / "world/items.arrow")))


def test_dask_local_cluster_equals_one_plan_through_the_cli(world, tmp_path, capsys):
    pytest.importorskip("distributed")
    camp = tmp_path / "c.toml"
    camp.write_text("""
[campaign]
id = "dist-plan-cli"
holdout = 0.1
[audience]
where = "days_inactive >= 30"
[policy]
capacity_per_hour = { email = 12, push = 12 }
[[steps]]
name = "a"
channels = ["email", "push"]
[[steps]]
name = "b"
delay_days = 3
channels = ["email"]
""")
    code = main(["plan", str(world / "scores"), str(camp), "-o", str(tmp_path / "plan"), "--dask", "local",
                 "--workers", "2"])
    assert code == 0
    out = capsys.readouterr().out
    assert "3 partitions on Dask (local, 2 workers)" in out
    parted = ds.dataset(str(tmp_path / "plan"), format="parquet").to_table()
    single = plan(read_any(world / "scores", "scores"), load_campaign(camp))
    _same_plan(single, parted)


def test_the_cli_plans_partitions_in_process_for_a_directory_output(world, tmp_path, capsys):
    camp = tmp_path / "c.toml"
    camp.write_text('[campaign]\nid = "cli-parts"\n[audience]\nwhere = "days_inactive >= 30"\n'
                    '[policy]\ncapacity_per_hour = { email = 10 }\n[[steps]]\nname = "a"\nchannels = ["email"]\n')
    assert main(["plan", str(world / "scores"), str(camp), "-o", str(tmp_path / "plan")]) == 0
    assert "3 partitions one after another in this process" in capsys.readouterr().out
    parted, _ = read_plan(tmp_path / "plan")
    _same_plan(plan(read_any(world / "scores", "scores"), load_campaign(camp)), parted)
    # and a file output still gets one table
    assert main(["plan", str(world / "scores"), str(camp), "-o", str(tmp_path / "plan.arrow")]) == 0
    assert (tmp_path / "plan.arrow").is_file()


def test_the_broadcast_guard_counts_the_whole_population(world, tmp_path):
    c = _campaign(capacity=1000)
    c["audience"] = {"where": "p_alive >= 0"}  # everyone
    with pytest.raises(PolicyError, match="whole base"):
        plan_partitioned(world / "scores", load_campaign(c), out_dir=tmp_path / "p",
                         items=str(world / "world/items.arrow"))
    assert not (tmp_path / "p").exists()


def test_a_plain_scores_file_is_not_a_partitioned_dataset(world, tmp_path):
    with pytest.raises(InputError, match="not a partitioned scores dataset"):
        plan_partitioned(world / "world/users.arrow", load_campaign(_campaign(10)), out_dir=tmp_path / "p")
