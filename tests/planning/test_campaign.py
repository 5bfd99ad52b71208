"""Campaign files: validation errors name the key and say what is allowed; examples plan."""

from __future__ import annotations

import copy
import re

import pyarrow.compute as pc
import pytest

from tests.helpers import EXAMPLES, ROOT
from engine.planning.campaign import load_campaign
from engine.errors import ConfigError, RuleError

EXAMPLES = sorted(p for p in EXAMPLES.glob("*.toml")
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
        "fatigue_budget", "min_gap", "capacity", "broadcast_guard", "cap_other_campaigns", "complaint", "not_in_step",
        "campaign_end"}  # (a sequence the first window's budget defers may reach the end)
    planned = p.filter(pc.is_null(p["reason"]))
    assert planned["body"].null_count == 0 and planned["to"].null_count == 0


def test_a_bad_preset_is_named_by_its_index():
    with pytest.raises(RuleError, match=r"\[audience\.presets\[0\]\].*position 1"):
        load_campaign(with_change("audience.presets", ["and"]))


# -- the strict schema: every key of every table -------------------------------------------------
from engine.planning.campaign import SCHEMA, schema_keys  # noqa: E402

_SLOT = {"campaign": "campaign", "audience": "audience", "policy": "policy", "steps": "steps[1]",
         "variants": "variants[0]", "templates.*": "templates.t", "content": "content", "offers": "offers[0]",
         "offers.cost": "offers[0].cost"}
#: an offer in every document of these tests, so the [[offers]] keys are typed like the others
OFFER = {"name": "ten-off", "where": "monetary > 50", "text": "10% off", "cost": {"share": 0.1}}


def _typo(key: str) -> str:
    """The mistakes of a tired marketer: a letter dropped (``holdot``, ``delay_day``), or
    doubled for the shortest keys."""
    typo = key[:-1] if len(key) > 3 else key + key[-1]
    return typo if all(typo not in keys for keys in SCHEMA.values()) else key[0] + key[2:]


def _doc_with(slot: str, key: str, value) -> dict:
    doc = copy.deepcopy(GOOD) | {"content": {}, "offers": [copy.deepcopy(OFFER)]}
    node = doc
    for part in slot.replace("[", ".").replace("]", "").split("."):
        node = node[int(part)] if part.isdigit() else node[part]
    node[key] = value
    return doc


@pytest.mark.parametrize("table,key", [(t, k) for t, k, _ in schema_keys()])
def test_every_mistyped_key_is_refused_naming_table_and_nearest_key(table, key):
    """Property: for every key of the schema, the same key with a typo is an error that
    names the typo, its table and the key meant; the message is one line."""
    # given
    typo = _typo(key)
    assert typo not in SCHEMA[table], "the typo must not itself be a key"
    doc = _doc_with(_SLOT[table], typo, 1)
    # when
    with pytest.raises(ConfigError) as info:
        load_campaign(doc)
    # then
    msg = str(info.value)
    assert f"[{_SLOT[table]}.{typo}] unknown key in [{_SLOT[table]}]" in msg
    assert f"did you mean {key!r}?" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("table,key", [(t, k) for t, k, _ in schema_keys()])
def test_every_key_refuses_a_value_of_the_wrong_type(table, key):
    # given: a list of lists is a valid value of no key
    doc = _doc_with(_SLOT[table], key, [[1]])
    # then
    with pytest.raises(ConfigError) as info:
        load_campaign(doc)
    assert f"[{_SLOT[table]}.{key}" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("table,key,value", [
    (t, k, v) for t, k, spec in schema_keys() if spec.kind in ("int", "float")
    for v in ([spec.lo - 1] if spec.lo is not None else []) + ([spec.hi + 1] if spec.hi is not None else [])
    + ([spec.lo] if spec.lo_open else [])])
def test_every_numeric_key_refuses_values_out_of_range(table, key, value):
    value = int(value) if SCHEMA[table][key].kind == "int" else float(value)
    with pytest.raises(ConfigError, match=rf"\[{re.escape(_SLOT[table])}\.{key}\] must"):
        load_campaign(_doc_with(_SLOT[table], key, value))


def test_the_defects_of_the_issue_are_refused():
    for slot, typo, meant in [("campaign", "holdot", "holdout"), ("policy", "max_mesages", "max_messages"),
                              ("policy", "quiet_hour", "quiet_hours"), ("steps[0]", "delay_day", "delay_days"),
                              ("variants[1]", "subjct", "subject"), ("audience", "wher", "where")]:
        with pytest.raises(ConfigError) as info:
            load_campaign(_doc_with(slot, typo, 1))
        assert f"[{slot}.{typo}] unknown key" in str(info.value)
        if meant:
            assert f"did you mean {meant!r}" in str(info.value)


def test_a_mistyped_key_in_a_file_exits_2_with_one_line(tmp_path, capsys):
    # given: a real campaign file and the real command line
    from engine.cli import main

    src = (ROOT / "examples" / "winback_lapsing.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(src.replace("\nholdout =", "\nholdot =", 1))
    assert "holdot" in bad.read_text()
    scores = tmp_path / "scores.arrow"
    scores.write_bytes(b"")
    # when
    code = main(["plan", str(scores), str(bad), "-o", str(tmp_path / "plan.arrow")])
    # then
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "[campaign.holdot] unknown key in [campaign]; did you mean 'holdout'?" in err
    assert not (tmp_path / "plan.arrow").exists()


@pytest.mark.parametrize("key, table, what", [
    ("steps", {"name": "a", "channels": ["email"], "template": "t"}, "step"),
    ("variants", {"name": "x", "weight": 1}, "variant"),
    ("offers", {"name": "vip", "where": "lapse_risk >= 0.5", "cost": {"fixed": 5.0}}, "offer"),
])
def test_a_repeated_name_in_an_array_of_tables_is_refused_at_its_index(key, table, what):
    doc = copy.deepcopy(GOOD)
    doc[key] = [t for t in doc.get(key, []) if t["name"] != table["name"]] + [table, dict(table)]
    with pytest.raises(ConfigError, match=rf"\[{key}\[{len(doc[key]) - 1}\]\.name\] duplicate {what} name "
                                          rf"'{table['name']}'"):
        load_campaign(doc)


@pytest.mark.parametrize("key", ["variants", "offers"])
def test_an_array_of_tables_that_is_not_a_list_is_refused(key):
    with pytest.raises(ConfigError, match=rf"\[{key}\] must be \[\[{key}\]\] tables with name"):
        load_campaign(GOOD | {key: {"name": "x"}})


@pytest.mark.parametrize("line", ['as_of = "yesterday"', "as_of = 9999-12-31T00:00:00Z", 'as_of = "1969-07-20"',
                                  'ends_at = "2026-13-01"', "ends_at = 2300-01-01"])
def test_a_start_or_end_that_is_no_instant_or_out_of_range_is_named_in_the_file(tmp_path, capsys, line):
    # given a real campaign file whose [campaign] start or end is not a date, or years off
    from engine.cli import main

    src = (ROOT / "examples" / "winback_lapsing.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(src.replace("\napproved = false", f"\napproved = false\n{line}", 1))
    scores = tmp_path / "scores.arrow"
    scores.write_bytes(b"")
    # when planned, then one line names the file and the key, exit 2, no plan
    code = main(["plan", str(scores), str(bad), "-o", str(tmp_path / "plan.arrow")])
    err = capsys.readouterr().err
    key = line.split(" ")[0]
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"ConfigError: {bad}: [campaign.{key}] must be a date or an ISO 8601 instant") and "2199" in err
    assert not (tmp_path / "plan.arrow").exists()


def test_a_start_years_ahead_on_the_command_line_is_refused_not_a_traceback(tmp_path, capsys, small_world_scores):
    # given real scores and a start in the year 9999 (out of every calendar a plan is computed in)
    import pyarrow.feather as feather
    from engine.cli import main

    scores = tmp_path / "scores.arrow"
    feather.write_feather(small_world_scores[0], scores)
    # when planned, then one line, exit 2, no plan
    code = main(["plan", str(scores), str(ROOT / "examples" / "winback_lapsing.toml"), "--as-of", "9999-12-31T23:00:00Z",
                 "-o", str(tmp_path / "plan.arrow")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "as-of 9999-12-31T23:00:00+00:00 is not between 1900 and 2199" in err
    assert not (tmp_path / "plan.arrow").exists()


@pytest.mark.parametrize("subject", ['{{ first_name ', "{{ 1 / 0 }}", "{% for i in range(9) %}x{% endfor %}"])
def test_a_template_that_does_not_parse_is_named_by_file_and_key_before_scores_are_read(tmp_path, capsys, subject):
    # given a real campaign file with a broken subject, and a scores file that is not even Arrow
    from engine.cli import main

    src = (ROOT / "examples" / "winback_lapsing.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(src.replace('subject = "What\'s new since you left"', f"subject = {subject!r}", 1))
    assert subject in bad.read_text()
    scores = tmp_path / "scores.arrow"
    scores.write_bytes(b"")
    # when planned, then one line names the file and the template key, exit 2, no plan
    code = main(["plan", str(scores), str(bad), "-o", str(tmp_path / "plan.arrow")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"ConfigError: {bad}: [templates.whats_new.subject] template ")
    assert not (tmp_path / "plan.arrow").exists()


def test_a_campaign_saved_with_a_byte_order_mark_loads(tmp_path):
    # given the example campaign as a Windows editor saves it (UTF-8 with a BOM)
    example = ROOT / "examples" / "winback_lapsing.toml"
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + example.read_bytes())
    # when loaded, then it is the same campaign
    got, want = load_campaign(path), load_campaign(example)
    assert (got.id, got.policy, got.steps, got.templates) == (want.id, want.policy, want.steps, want.templates)
