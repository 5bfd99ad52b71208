"""Content end to end: items -> affinity in scores -> theme and picks in the plan -> templates -> report."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pytest

from engine.planning.campaign import load_campaign
from engine.errors import ConfigError, InputError
from engine.synth.generator import generate
from engine.io.items import load_items
from engine.planning.planner import plan
from engine.reporting.measure import report
from engine.schema import THEMES
from engine.scoring.pipeline import score
from engine.synth.simulate import simulate
from engine.tz import to_epoch_seconds

AS_OF = "2026-11-01T00:00:00Z"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("content")
    generate(3000, seed=5, out_dir=d, as_of=AS_OF, n_items=400)
    s = score(d / "users.arrow", d / "events.arrow", as_of=AS_OF, items=d / "items.arrow")
    feather.write_feather(s, d / "scores.arrow")
    return d


def _campaign(**step_extra) -> dict:
    steps = [{"name": "one", "channels": ["email", "push"], "template": "t", "items": 3},
             {"name": "two", "delay_days": 3, "channels": ["email", "push"], "template": "t", "items": 2,
              **step_extra}]
    return {"campaign": {"id": "c-content", "holdout": 0.2},
            "audience": {"where": "days_inactive >= 30"},  # below the broadcast share of the base
            "policy": {"max_messages": 5, "quiet_hours": []},
            "steps": steps,
            "templates": {"t": {"subject": "{{ items[0].title | default(\"picks\") }}",
                                "body": "{{ theme }}: {{ items[0].title }} / {{ items[1].title }}"}}}


def test_every_audience_row_gets_a_theme_and_holdout_rows_too(world):
    p = plan(world / "scores.arrow", load_campaign(_campaign()), items=world / "items.arrow")
    reason = p["reason"].fill_null("").to_pylist()
    theme = p["theme"].to_pylist()
    assert set(t for t in theme if t) <= set(THEMES)
    for r, t in zip(reason, theme):
        if r == "not_in_audience":
            assert t is None
    held = [t for r, t in zip(reason, theme) if r == "holdout"]
    assert held and all(t is not None for t in held)
    planned = [t for r, t in zip(reason, theme) if r == ""]
    assert planned and sum(t is not None for t in planned) / len(planned) > 0.9
    assert p.schema.field("items").type == pa.list_(pa.int64())


def test_plan_never_picks_consumed_expired_or_repeated_items(world):
    p = plan(world / "scores.arrow", load_campaign(_campaign()), items=world / "items.arrow")
    s = feather.read_table(world / "scores.arrow")
    consumed = dict(zip(s["user_id"].to_pylist(), map(set, s["consumed_items"].to_pylist())))
    it = load_items(world / "items.arrow")
    expires = dict(zip(it.ids.tolist(), it.expires.tolist()))
    added = dict(zip(it.ids.tolist(), it.added.tolist()))
    seen: dict[int, set] = {}
    rows = p.filter(pc.is_null(p["reason"]))
    send = to_epoch_seconds(rows["send_at"])
    n_items = 0
    for uid, items, t in zip(rows["user_id"].to_pylist(), rows["items"].to_pylist(), send):
        assert not set(items) & consumed[uid]
        assert all(added[i] <= t < expires[i] for i in items)
        assert not set(items) & seen.get(uid, set())
        seen.setdefault(uid, set()).update(items)
        n_items += len(items)
    assert n_items > 0


def test_a_pinned_theme_holds_at_its_step(world):
    p = plan(world / "scores.arrow", load_campaign(_campaign(theme="editorial")), items=world / "items.arrow")
    two = p.filter(pc.and_(pc.equal(p["step"], "two"), pc.is_valid(p["theme"])))
    assert two.num_rows and set(two["theme"].to_pylist()) == {"editorial"}
    weighted = plan(world / "scores.arrow", load_campaign(_campaign(themes={"trending": 0, "broaden": 0})),
                    items=world / "items.arrow")
    two = weighted.filter(pc.equal(weighted["step"], "two"))
    assert not {"trending", "broaden"} & set(two["theme"].drop_null().to_pylist())


def test_item_fields_render_and_are_escaped_for_email(world, tmp_path):
    items = feather.read_table(world / "items.arrow")
    titles = [f"<b>T{i} & co</b>" for i in range(items.num_rows)]
    items = items.set_column(items.column_names.index("title"), "title", pa.array(titles))
    feather.write_feather(items, tmp_path / "items.arrow")
    p = plan(world / "scores.arrow", load_campaign(_campaign()), items=tmp_path / "items.arrow")
    sent = p.filter(pc.and_(pc.is_null(p["reason"]), pc.greater(pc.list_value_length(p["items"]), 1)))
    mail = sent.filter(pc.equal(sent["channel"], "email")).slice(0, 20).to_pylist()
    push = sent.filter(pc.equal(sent["channel"], "push")).slice(0, 20).to_pylist()
    assert mail and push
    for r in mail:
        assert "&lt;b&gt;T" in r["body"] and "&amp; co" in r["body"] and "<b>" not in r["body"]
        assert r["body"].startswith(r["theme"] + ": ")
    for r in push:
        assert "<b>T" in r["body"]
    # the subject is not HTML: never escaped
    assert all("<b>T" in r["subject"] for r in mail)


def test_scores_without_items_or_templates_without_catalogue_fail_clearly(world, tmp_path):
    plain = score(world / "users.arrow", world / "events.arrow", as_of=AS_OF)
    with pytest.raises(InputError, match="--items"):
        plan(plain, load_campaign(_campaign()), items=world / "items.arrow")
    with pytest.raises(ConfigError, match=r"items\[0\]\.title.*--items"):
        plan(world / "scores.arrow", load_campaign(_campaign()))
    c = _campaign()
    c["templates"]["t"]["body"] = "{{ items[0].price }}"
    with pytest.raises(ConfigError, match=r"unknown field \{\{ items\[0\]\.price \}\}"):
        plan(world / "scores.arrow", load_campaign(c), items=world / "items.arrow")


def test_scores_whose_metadata_was_edited_into_no_json_say_so(world):
    scores = feather.read_table(world / "scores.arrow")
    broken = scores.replace_schema_metadata({**scores.schema.metadata, b"winback.score": b"{not json"})
    with pytest.raises(InputError, match="winback.score metadata is not a readable JSON object"):
        plan(broken, load_campaign(_campaign()), items=world / "items.arrow")


@pytest.mark.parametrize("extra, message", [
    ({"theme": "news"}, "unknown theme 'news'"),
    ({"themes": {"trending": -1}}, "weight >= 0"),
    ({"themes": {"popular": 1}}, "unknown theme"),
    ({"items": 50}, "from 0 to 20"),
])
def test_campaign_content_keys_are_checked(extra, message):
    with pytest.raises(ConfigError, match=message):
        load_campaign(_campaign(**extra))


def test_unknown_item_events_are_counted_and_skipped(world, tmp_path):
    ev = feather.read_table(world / "events.arrow")
    shifted = pa.array(ev["item_id"].fill_null(0).to_numpy() + 1, mask=ev["item_id"].is_null().to_numpy(
        zero_copy_only=False))
    ev = ev.set_column(ev.column_names.index("item_id"), "item_id", shifted)
    s = score(world / "users.arrow", ev, as_of=AS_OF, items=world / "items.arrow")
    import json

    meta = json.loads(s.schema.metadata[b"winback.score"])["items"]
    assert meta["unknown_item_events"] > 0


def test_validate_cli_names_the_bad_item_rows(world, tmp_path):
    bad = pa.table({"item_id": ["1", "2", "2", "x"], "title": ["a", "", "c", "d"],
                    "category": ["drama|kids", "news", "news", ""],
                    "added_at": ["2026-01-01", "2026-01-02", "2026-01-03", "soon"]})
    pacsv.write_csv(bad, tmp_path / "items.csv")
    proc = subprocess.run([sys.executable, "-m", "engine", "validate", str(world / "users.arrow"),
                           str(world / "events.arrow"), "--as-of", AS_OF, "--items", str(tmp_path / "items.csv"),
                           "--no-progress"], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    for part in ("items.csv", "'title'", "null_title", "duplicate_item_id", "bad_item_id", "row 3"):
        assert part in proc.stderr


def test_report_shows_lift_by_theme(world, tmp_path):
    p = plan(world / "scores.arrow", load_campaign(_campaign()), items=world / "items.arrow")
    out = simulate(p, world / "truth.arrow", seed=1)
    s = report(p, out)
    rows = s["by_theme"]
    assert rows and {r["step"] for r in rows} == {"one", "two"}
    for r in rows:
        assert r["theme"] in THEMES
        assert r["treated"]["users"] > 0 and r["holdout"]["users"] >= 0
    total_sent = sum(r["messages_sent"] for r in rows)
    assert 0 < total_sent <= s["messages_sent"]


def test_explore_draws_random_themes_for_a_stable_share_of_users(world):
    c = _campaign()
    c["content"] = {"explore": 0.3}
    p = plan(world / "scores.arrow", load_campaign(c), items=world / "items.arrow")
    one = p.filter(pc.and_(pc.equal(p["step"], "one"), pc.is_valid(p["theme"])))
    explored = one["explored"].to_numpy(zero_copy_only=False)
    assert 0.2 < explored.mean() < 0.4
    # the heuristic gives few themes at the first step; the draw spreads explorers over all of them
    drawn = set(one.filter(pa.array(explored))["theme"].to_pylist())
    assert len(drawn) >= 4
    # the same users explore at every step, and a rerun draws the same themes
    two = p.filter(pc.and_(pc.equal(p["step"], "two"), pc.is_valid(p["theme"])))
    ex1 = set(one.filter(pa.array(explored))["user_id"].to_pylist())
    ex2 = set(two.filter(pc.fill_null(two["explored"], False))["user_id"].to_pylist())
    assert ex2 <= ex1
    again = plan(world / "scores.arrow", load_campaign(c), items=world / "items.arrow")
    assert again["theme"].equals(p["theme"]) and again["items"].equals(p["items"])
    # a pin beats the draw
    c["steps"][1]["theme"] = "trending"
    pinned = plan(world / "scores.arrow", load_campaign(c), items=world / "items.arrow")
    two = pinned.filter(pc.and_(pc.equal(pinned["step"], "two"), pc.is_valid(pinned["theme"])))
    assert set(two["theme"].to_pylist()) == {"trending"}


def test_report_has_a_theme_experiment_when_the_campaign_explores(world):
    c = _campaign()
    c["content"] = {"explore": 0.5}
    p = plan(world / "scores.arrow", load_campaign(c), items=world / "items.arrow")
    s = report(p, simulate(p, world / "truth.arrow", seed=2))
    rows = s["theme_experiment"]
    assert rows and len({r["theme"] for r in rows if r["step"] == "one"}) >= 4
    assert all(set(r["vs_other_themes"]) == {"lift", "lift_ci", "note"} for r in rows)
    assert isinstance(s["suggested_theme_weights"], dict)
    # every theme of a step is compared with the same control: all held-out explorers of the step
    ctrl = {r["holdout"]["users"] for r in rows if r["step"] == "one"}
    assert len(ctrl) == 1 and ctrl.pop() > 0
    assert report(plan(world / "scores.arrow", load_campaign(_campaign()), items=world / "items.arrow"),
                  simulate(p, world / "truth.arrow", seed=2))["theme_experiment"] == []


def test_csv_scores_hold_lists_as_text_and_plans_say_what_csv_lost(world, tmp_path):
    from engine.io.atomic import write_table

    s = feather.read_table(world / "scores.arrow")
    write_table(s, tmp_path / "scores.csv")
    back = pacsv.read_csv(tmp_path / "scores.csv")
    first = [x for x in s["consumed_items"].to_pylist() if x][0]
    assert "|".join(map(str, first)) in back["consumed_items"].to_pylist()
    # a plan without content works from the CSV (empty timezone fields read as null) ...
    c = _campaign()
    c["templates"]["t"] = {"subject": "hi", "body": "back"}
    assert plan(tmp_path / "scores.csv", load_campaign(c)).num_rows == 2 * s.num_rows
    # ... and one with content says the CSV lost the item metadata
    with pytest.raises(InputError, match="CSV keeps neither"):
        plan(tmp_path / "scores.csv", load_campaign(c), items=world / "items.arrow")


def test_suggested_weights_follow_the_experiment_intervals():
    from engine.reporting.measure import suggested_weights

    def row(step, theme, lo, hi, note=""):
        return {"step": step, "theme": theme, "vs_other_themes": {"lift": (lo + hi) / 2, "lift_ci": [lo, hi],
                                                                   "note": note}}

    rows = [row("a", "trending", 0.01, 0.05), row("a", "broaden", -0.04, -0.01), row("a", "editorial", -0.01, 0.02),
            row("b", "new_in_your_categories", 0.02, 0.09, "too small to tell: fewer than 200 users in an arm")]
    assert suggested_weights(rows) == {"a": {"trending": 2.0, "broaden": 0.5}}
    assert suggested_weights([]) == {}
