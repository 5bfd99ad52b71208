"""Offers, content variants, ads and survey steps in the planner, on a small real world."""

from __future__ import annotations

import copy
import json
import tomllib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from engine.errors import ConfigError
from engine.planning.campaign import load_campaign
from engine.planning.planner import plan
from engine.scoring.pipeline import score
from engine.synth.generator import generate
from tests.helpers import EXAMPLES

EXAMPLE = EXAMPLES / "winback_offers.toml"


@pytest.fixture(scope="module")
def scores(tmp_path_factory):
    d = tmp_path_factory.mktemp("offers")
    generate(3000, seed=11, out_dir=d / "world")
    return score(d / "world/users.arrow", d / "world/events.arrow", as_of="2026-11-01T00:00:00Z")


def doc(**changes) -> dict:
    with open(EXAMPLE, "rb") as fh:
        d = tomllib.load(fh)
    d = copy.deepcopy(d)
    for key, value in changes.items():
        d[key] = value
    return d


def by_user(p, col):
    t = p.select(["user_id", col]).to_pylist()
    out: dict = {}
    for r in t:
        out.setdefault(r["user_id"], set()).add(r[col])
    return out


def test_every_user_gets_at_most_one_offer_the_same_at_every_step(scores):
    p = plan(scores, EXAMPLE)
    offers = by_user(p, "offer")
    assert all(len(v) == 1 for v in offers.values())
    assert {next(iter(v)) for v in offers.values()} == {None, "vip-20", "free-shipping"}
    # the first matching offer wins: a valuable buyer gets vip-20 even though free-shipping also holds
    step0 = p.filter(pc.equal(p["step_index"], 0))
    vip = step0.filter(pc.equal(step0["offer_segment"], "vip-20"))
    assert vip.num_rows and set(vip["offer"].drop_null().to_pylist()) == {"vip-20"}


def test_the_no_offer_variant_withholds_offers_and_the_holdout_carries_its_would_be_offer(scores):
    whole = plan(scores, EXAMPLE)
    p = whole.filter(pc.equal(whole["step_index"], 0))
    none = p.filter(pc.equal(p["variant"], "no-offer"))
    assert none["offer"].null_count == none.num_rows and none["offer_segment"].null_count < none.num_rows
    held = p.filter(p["holdout"])
    assert held["offer"].null_count < held.num_rows              # the offer they would have got
    assert held.filter(pc.is_null(held["reason"])).num_rows == 0  # and no message


def test_offer_text_fills_the_template_and_variants_change_the_subject(scores):
    p = plan(scores, EXAMPLE)
    sent = p.filter(pc.and_(pc.is_null(p["reason"]), pc.equal(p["step"], "we-miss-you")))
    rows = sent.select(["variant", "offer", "subject", "body"]).to_pylist()
    c = load_campaign(EXAMPLE)
    text = {o.name: o.text for o in c.offers}
    for r in rows:
        if r["offer"]:
            assert text[r["offer"]] in r["body"]
        else:
            assert "Here is" not in r["body"]
        if r["variant"] == "offer-first":
            assert ("this week only" in r["subject"]) == bool(r["offer"])
        else:
            assert r["subject"].startswith("We miss you")
    # the variant's subject applies to its listed step only
    later = p.filter(pc.and_(pc.is_null(p["reason"]), pc.equal(p["step"], "reminder")))
    assert set(later["subject"].to_pylist()) == {"Still thinking about it?"}


def test_a_variant_template_names_the_template_column(scores):
    d = doc()
    d["templates"]["short"] = {"subject": "Back?", "body": "Come back."}
    d["variants"] = [{"name": "a", "weight": 1.0}, {"name": "b", "weight": 1.0, "template": "short"}]
    p = plan(scores, load_campaign(d))
    sent = p.filter(pc.and_(pc.is_null(p["reason"]), pc.equal(p["variant"], "b")))
    assert set(sent["template"].to_pylist()) == {"short"} and set(sent["body"].to_pylist()) == {"Come back."}


@pytest.mark.parametrize("change, words", [
    ({"variants": [{"name": "a", "offer": "nope"}]}, ["variants[0].offer", "nope", "vip-20"]),
    ({"variants": [{"name": "a", "subject": "x", "template": "why"}]}, ["either template or subject"]),
    ({"variants": [{"name": "a", "steps": ["later"]}]}, ["variants[0].steps[0]", "later"]),
    ({"variants": [{"name": "a", "colour": "red"}]}, ["variants[0].colour", "unknown key"]),
    ({"offers": [{"name": "x", "where": "monetary >", "cost": {"fixed": 1.0}}]}, ["offers[0].where"]),
    ({"offers": [{"name": "x", "cost": {"share": 1.5}}]}, ["offers[0].cost.share"]),
    ({"offers": [{"name": "x"}]}, ["offers[0].cost", "required"]),
])
def test_bad_variants_and_offers_name_the_key(change, words):
    with pytest.raises(Exception) as exc:
        load_campaign(doc(**change))
    for w in words:
        assert w in str(exc.value)


def test_unique_codes_are_handed_out_once_each_and_too_few_is_an_error(scores, tmp_path):
    codes = tmp_path / "codes.txt"
    codes.write_text("\n".join(f"FS-{i:05d}" for i in range(20000)) + "\n")
    d = doc()
    d["offers"][1]["codes"] = str(codes)
    p = plan(scores, load_campaign(d))
    fs = p.filter(pc.and_(pc.equal(p["offer"], "free-shipping"), pc.invert(p["holdout"])))
    per_user = by_user(fs, "offer_code")
    got = [next(iter(v)) for v in per_user.values() if next(iter(v)) is not None]
    assert got and len(got) == len(set(got)) and all(len(v) == 1 for v in per_user.values())
    assert p.filter(p["holdout"])["offer_code"].null_count == p.filter(p["holdout"]).num_rows
    codes.write_text("ONLY-ONE\n")
    with pytest.raises(ConfigError, match="has 1 codes but .* users get this offer"):
        plan(scores, load_campaign(d))
    codes.write_text("A\nA\n")
    with pytest.raises(ConfigError, match="appears twice"):
        plan(scores, load_campaign(d))


def test_the_ads_step_takes_consenting_users_of_its_rule_with_every_identifier(scores):
    p = plan(scores, EXAMPLE)
    ads = p.filter(pc.equal(p["step"], "ads-unresponsive"))
    planned = ads.filter(pc.is_null(ads["reason"]))
    assert planned.num_rows and set(planned["channel"].to_pylist()) == {"ads"}
    uid = set(planned["user_id"].to_pylist())
    consent = dict(zip(scores["user_id"].to_pylist(), scores["consent_ads"].to_pylist()))
    assert all(consent[u] for u in uid)
    for to in planned["to"].to_pylist()[:50]:
        ids = json.loads(to)
        assert "email" in ids or "phone" in ids
    # the step's rule holds for held-out users too: they are "holdout" only where it holds
    reasons = set(ads["reason"].drop_null().to_pylist())
    assert "not_in_step" in reasons and "holdout" in reasons


def test_a_survey_step_renders_one_link_per_reason(scores):
    p = plan(scores, EXAMPLE)
    why = p.filter(pc.and_(pc.is_null(p["reason"]), pc.equal(p["step"], "why")))
    body = why["body"][0].as_py()
    mid = why["message_id"][0].as_py()
    for r in load_campaign(EXAMPLE).steps[-1].reasons:
        assert f"message_id={mid}&amp;reason={r}" in body     # email bodies are HTML-escaped


def test_a_survey_step_needs_a_url_and_a_message_step_takes_no_reasons():
    d = doc()
    del d["steps"][-1]["survey_url"]
    with pytest.raises(ConfigError, match=r"steps\[3\]\.survey_url\] is required"):
        load_campaign(d)
    d = doc()
    d["steps"][0]["reasons"] = ["x"]
    with pytest.raises(ConfigError, match="only a kind = \"survey\" step"):
        load_campaign(d)


def test_unresponsive_owned_preset_is_every_owned_channel_unreachable_or_unengaged(scores):
    from engine.planning.rules import Rule

    got = Rule("unresponsive_owned_3")(scores)
    want = np.ones(scores.num_rows, bool)
    for c, addr in (("email", "email"), ("sms", "phone"), ("push", "push_token")):
        reach = (np.asarray(scores[f"consent_{c}"].fill_null(False)) & np.asarray(scores[addr].is_valid())
                 & ~np.asarray(scores[f"{c}_suppressed"].fill_null(False)))
        streak = np.asarray(scores[f"{c}_unengaged_streak"].fill_null(-1)) >= 3
        want &= ~reach | streak
    assert np.array_equal(got, want) and 0 < got.sum() < len(got)


def test_partitioned_planning_refuses_offer_codes(scores, tmp_path):
    from engine.planning.partitioned import plan_partitioned

    codes = tmp_path / "c.txt"
    codes.write_text("A\nB\n")
    d = doc()
    d["offers"][0]["codes"] = str(codes)
    with pytest.raises(ConfigError, match="need one-table planning"):
        plan_partitioned(tmp_path / "scores", load_campaign(d), out_dir=tmp_path / "plan")


def test_survey_answers_lower_the_cap_or_stop_messages_in_the_next_plan(scores, tmp_path):
    # given a base plan, and answers from two users who got several messages
    base = plan(scores, EXAMPLE)
    sent = base.filter(pc.is_null(base["reason"]))
    counts = sent.group_by("user_id").aggregate([("message_id", "count")])
    many = counts.filter(pc.greater_equal(counts["message_id_count"], 2))["user_id"].to_pylist()[:2]
    assert len(many) == 2
    actions = tmp_path / "survey_actions.csv"
    actions.write_text(f"user_id,reason,action\n{many[0]},too_many_messages,lower_cap\n"
                       f"{many[1]},not_relevant,sunset\n")
    # when the campaign acts on them
    d = doc()
    d["policy"]["survey_actions"] = str(actions)
    p = plan(scores, load_campaign(d))
    # then the first gets one message at most, the second none (suppressed), the rest as before
    mine = p.filter(pc.equal(p["user_id"], many[0]))
    assert mine.filter(pc.is_null(mine["reason"])).num_rows == 1
    assert set(mine["reason"].drop_null().to_pylist()) <= {"fatigue_budget", "not_in_step"}
    gone = p.filter(pc.equal(p["user_id"], many[1]))
    assert gone["reason"].null_count == 0 and "suppressed" in gone["reason"].to_pylist()
    others = pc.invert(pc.is_in(p["user_id"], value_set=pa.array(many, pa.int64())))
    assert p.filter(others)["reason"].to_pylist() == base.filter(
        pc.invert(pc.is_in(base["user_id"], value_set=pa.array(many, pa.int64()))))["reason"].to_pylist()
    d["policy"]["survey_actions"] = str(tmp_path / "missing.csv")
    with pytest.raises(ConfigError, match="survey_actions.*does not exist"):
        plan(scores, load_campaign(d))


def test_partitioned_planning_of_the_offers_campaign_equals_one_plan(tmp_path):
    """Offers, variants, the ads step's rule and identifiers, the survey links: the same
    plan partition by partition as on the whole table."""
    from engine.io.partition import partition
    from engine.io.plans import read_plan
    from engine.io.readers import read_table
    from engine.planning.partitioned import plan_partitioned
    from engine.scoring.distributed import score_partitioned

    generate(2000, seed=23, out_dir=tmp_path / "world", as_of="2026-11-01T00:00:00Z")
    partition(tmp_path / "world/users.arrow", tmp_path / "world/events.arrow", tmp_path / "parts", partitions=3)
    score_partitioned(tmp_path / "parts", out_dir=tmp_path / "scores", as_of="2026-11-01T00:00:00Z")
    cmp = load_campaign(EXAMPLE)
    single = plan(read_table(tmp_path / "scores", "scores"), cmp)
    plan_partitioned(tmp_path / "scores", cmp, out_dir=tmp_path / "plan")
    parted, _ = read_plan(tmp_path / "plan")
    a, b = single.sort_by("message_id"), parted.sort_by("message_id")
    assert a.num_rows == b.num_rows and pc.sum(pc.equal(a["channel"], "ads")).as_py() > 0
    for name in a.column_names:
        assert a[name].equals(b[name].cast(a[name].type)), name
