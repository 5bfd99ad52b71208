"""engine.scoring.run and engine.planning.run: the score and plan commands as library calls
(the routing between one table and a partitioned dataset), end to end on a small world."""

from __future__ import annotations

import pytest

from engine.errors import ConfigError, InputError
from engine.io.partition import partition
from engine.io.plans import read_plan
from engine.io.readers import read_table
from engine.planning.run import memory_warning, plan_to
from engine.scoring.run import partitioned_input, score_to
from engine.synth.generator import DEFAULT_AS_OF, generate
from tests.helpers import EXAMPLES

CAMPAIGN = EXAMPLES / "winback_lapsing.toml"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    generate(1_500, seed=5, out_dir=out, days=120)
    return out


def test_one_table_and_partitions_give_the_same_scores_and_plans(world, tmp_path):
    one = score_to(world / "users.arrow", world / "events.arrow", tmp_path / "scores.arrow", as_of=DEFAULT_AS_OF)
    assert one["partitioned"] is False and one["users"] == 1_500
    partition(world / "users.arrow", world / "events.arrow", tmp_path / "parts", partitions=3)
    assert partitioned_input(tmp_path / "parts", None) == str(tmp_path / "parts")
    many = score_to(tmp_path / "parts", None, tmp_path / "scores", as_of=DEFAULT_AS_OF)
    assert many["partitioned"] is True and many["users"] == 1_500
    a = read_table(tmp_path / "scores.arrow").sort_by("user_id")
    b = read_table(tmp_path / "scores").sort_by("user_id")
    assert a["lapse_risk"].to_pylist() == pytest.approx(b["lapse_risk"].to_pylist(), rel=1e-9)

    single = plan_to(tmp_path / "scores.arrow", CAMPAIGN, tmp_path / "plan.arrow")
    parted = plan_to(tmp_path / "scores", CAMPAIGN, tmp_path / "plan")
    assert single["partitioned"] is False and parted["partitioned"] is True
    assert single["planned"] == parted["planned"] > 0
    assert read_plan(tmp_path / "plan.arrow")[0].num_rows == read_plan(tmp_path / "plan")[0].num_rows


def test_options_reach_the_scores_and_mistakes_are_config_errors(world, tmp_path):
    s = score_to(world / "users.arrow", world / "events.arrow", tmp_path / "s.arrow", as_of=DEFAULT_AS_OF,
                 policy_cap=5)
    assert read_table(tmp_path / "s.arrow")["fatigue_budget"].to_numpy().max() <= 5 and s["users"] == 1_500
    with pytest.raises(ConfigError, match="did you mean 'policy_cap'"):
        score_to(world / "users.arrow", world / "events.arrow", tmp_path / "x.arrow", policy_capp=5)
    with pytest.raises(ConfigError, match="--dask needs a partitioned input"):
        score_to(world / "users.arrow", world / "events.arrow", tmp_path / "x.arrow", dask="local")
    with pytest.raises(ConfigError, match="give EVENTS too"):
        score_to(world / "users.arrow", None, tmp_path / "x.arrow")
    with pytest.raises(InputError, match="no such file"):
        score_to(tmp_path / "nope.arrow", None, tmp_path / "x.arrow")
    assert not (tmp_path / "x.arrow").exists()


def test_memory_warning_only_when_the_plan_will_not_fit(world, tmp_path):
    score_to(world / "users.arrow", world / "events.arrow", tmp_path / "s.arrow", as_of=DEFAULT_AS_OF)
    assert memory_warning(tmp_path / "s.arrow", with_items=False) is None
    warned = []
    plan_to(tmp_path / "s.arrow", CAMPAIGN, tmp_path / "p.arrow", warn=warned.append)
    assert warned == []
