"""Campaign files: validation errors name the key and say what is allowed; examples plan."""

from __future__ import annotations

import copy
from pathlib import Path

import pyarrow.compute as pc
import pytest

from engine.planning.campaign import load_campaign
from engine.errors import ConfigError, RuleError

EXAMPLES = sorted(p for p in (Path(__file__).parent.parent / "examples").glob("*.toml")
                  if not p.name.startswith("providers"))

GOOD = {
    "campaign": {"id": "c-1", "name": "Test", "timezone": "Europe/Paris", "holdout": 0.1},
    "audience": {"where": "lapse_risk >= 0.6", "presets": ["inactive_30d"]},
    "policy": {"max_messages": 3, "window_days": 7, "min_gap_hours": 16, "quiet_hours": ["21:00", "08:00"],
               "channel_caps": {"sms": 1}, "capacity_per_hour": {"email": 1000}},
    "steps": [{"name": "a", "delay_days": 0, "channels": ["push", "email"], "template": "t"},
              {"name": "b", "delay_days": 3, "channels": ["email"], "template": "t", "exit_on": "click"}],
    "variants": [{"name": "x", "weight": 1}, {"name": "y", "weight": 2}],
    "templates": {"t": {"subject": "Hi", "body": "Hello {{ first_name }}"}},
}


def with_change(path: str, value) -> dict:
    """GOOD with one key (dotted, [i] for lists) replaced; value None deletes it."""
    doc = copy.deepcopy(GOOD)
    node = doc
    keys = path.replace("[", ".").replace("]", "").split(".")
    for k in keys[:-1]:
        node = node[int(k)] if k.isdigit() else node[k]
    last = int(keys[-1]) if keys[-1].isdigit() else keys[-1]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return doc


def test_a_good_campaign_loads_with_its_values():
    # when
    c = load_campaign(GOOD)
    # then
    assert c.id == "c-1" and c.timezone == "Europe/Paris" and c.holdout == 0.1
    assert c.policy.quiet_hours == (21 * 60, 8 * 60) and c.policy.channel_caps == {"sms": 1}
    assert [s.name for s in c.steps] == ["a", "b"] and c.steps[0].exit_on == "activity"
    assert c.steps[1].exit_on == "click" and c.steps[1].channels == ("email",)
    assert [v.weight for v in c.variants] == [1.0, 2.0]
    assert "inactive_30d" in c.audience.text


def test_defaults_fill_a_minimal_campaign():
    # when
    c = load_campaign({"campaign": {"id": "m"}, "steps": [{"name": "only", "channels": ["email"]}]})
    # then
    assert (c.timezone, c.holdout, c.approved) == ("UTC", 0.1, False)
    assert (c.policy.max_messages, c.policy.window_days, c.policy.min_gap_hours) == (3, 7, 16.0)
    assert c.steps[0].template == "only" and [v.name for v in c.variants] == ["control"]


@pytest.mark.parametrize("path,value,key,allowed", [
    ("campaign.id", None, "campaign.id", "required"),
    ("campaign.id", "has space", "campaign.id", "letters, digits"),
    ("campaign.timezone", "Mars/Olympus", "campaign.timezone", "IANA timezone"),
    ("campaign.holdout", 0.7, "campaign.holdout", "between 0 and 0.5"),
    ("campaign.holdout", "ten", "campaign.holdout", "must be a float"),
    ("campaign.approved", "yes", "campaign.approved", "must be a bool"),
    ("policy.quiet_hours", ["25:00", "08:00"], "policy.quiet_hours[0]", "local time like"),
    ("policy.quiet_hours", ["21:00"], "policy.quiet_hours", "two local times"),
    ("policy.window_days", 10, "policy.window_days", "7 or 30"),
    ("policy.max_messages", 0, "policy.max_messages", "at least 1"),
    ("policy.channel_caps", {"fax": 1}, "policy.channel_caps.fax", "email, sms, push"),
    ("policy.capacity_per_hour", {"email": -1}, "policy.capacity_per_hour.email", ">= 0"),
    ("steps[1].channels", ["email", "fax"], "steps[1].channels[1]", "unknown channel 'fax'"),
    ("steps[1].channels", [], "steps[1].channels", "at least one channel"),
    ("steps[0].delay_days", -1, "steps[0].delay_days", ">= 0"),
    ("steps[1].exit_on", "open", "steps[1].exit_on", "activity, click, purchase, none"),
    ("steps[1].template", "nope", "steps[1].template", "defined: t"),
    ("steps[1].name", "a", "steps[1].name", "duplicate"),
    ("variants[1].weight", 0, "variants[1].weight", "> 0"),
    ("steps", [], "steps", "at least one [[steps]]"),
    ("templates.t.body", None, "templates.t.body", "required"),
])
def test_errors_name_the_key_and_what_is_allowed(path, value, key, allowed):
    # given
    doc = with_change(path, value)
    # when
    with pytest.raises(ConfigError) as info:
        load_campaign(doc)
    # then
    assert f"[{key}]" in str(info.value)
    assert allowed in str(info.value)


def test_unknown_section_and_bad_rule_are_named():
    with pytest.raises(ConfigError, match=r"\[sendings\] unknown section"):
        load_campaign(GOOD | {"sendings": {}})
    with pytest.raises(RuleError, match=r"\[audience\.where\].*position 13"):
        load_campaign(with_change("audience.where", "lapse_risk >> 2"))


def test_file_errors_name_the_file(tmp_path):
    # given
    bad = tmp_path / "bad.toml"
    bad.write_text("[campaign\nid = 1\n")
    # then
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_campaign(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_campaign(tmp_path / "missing.toml")


@pytest.fixture(scope="module")
def small_world_scores(tmp_path_factory):
    """A real generated world of 400 users, scored: the input the examples are written for."""
    from engine.synth.generator import generate
    from engine.scoring.pipeline import score

    out = tmp_path_factory.mktemp("world")
    generate(400, seed=3, out_dir=out)
    users = next(p for p in out.iterdir() if p.name.startswith("users"))
    events = next(p for p in out.iterdir() if p.name.startswith("events"))
    return score(users, events, as_of="2026-11-01T00:00:00Z", items=out / "items.arrow"), out / "items.arrow"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_loads_and_plans_a_real_world(path, small_world_scores):
    # given (the catalogue too: an example may print items)
    from engine.planning.planner import plan

    scores, items = small_world_scores
    c = load_campaign(path)
    # when
    p = plan(scores, c, as_of="2026-11-02T00:00:00Z", items=items)
    # then
    assert p.num_rows == scores.num_rows * len(c.steps)
    assert set(p["reason"].drop_null().to_pylist()) <= {
        "not_in_audience", "holdout", "no_consent", "no_address", "suppressed", "channel_cap",
        "fatigue_budget", "min_gap", "capacity", "broadcast_guard", "not_in_step"}
    planned = p.filter(pc.is_null(p["reason"]))
    assert planned["body"].null_count == 0 and planned["to"].null_count == 0


def test_a_bad_preset_is_named_by_its_index():
    with pytest.raises(RuleError, match=r"\[audience\.presets\[0\]\].*position 1"):
        load_campaign(with_change("audience.presets", ["and"]))
