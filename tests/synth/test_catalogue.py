"""The synthetic world's catalogue, item events with drifting tastes, and the theme truth."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather
import pytest

from engine.cli import main
from engine.synth.generator import generate
from engine.synth.catalogue import CATEGORIES, default_n_items
from engine.schema import ITEMS_OPTIONAL, ITEMS_REQUIRED, THEMES
from engine.tz import parse_as_of, to_epoch_seconds

DAY = 86_400


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    base = tmp_path_factory.mktemp("items-world")
    with_items = generate(4000, seed=5, out_dir=base / "items", n_items=600)
    without = generate(4000, seed=5, out_dir=base / "plain", n_items=0)
    return base / "items", with_items, base / "plain", without


def _read(d, name):
    return feather.read_table(d / f"{name}.arrow")


def _kinds(ev):
    return ev["event"].cast(pa.string())


def test_items_file_follows_the_schema_and_has_new_leaving_and_editorial_items(worlds):
    d, summary, *_ = worlds
    items = _read(d, "items")
    for name, typ in {**ITEMS_REQUIRED, **ITEMS_OPTIONAL}.items():
        assert items.schema.field(name).type == typ, name
    assert items.num_rows == summary["n_items"] == 600
    ids = items["item_id"].to_numpy()
    assert len(np.unique(ids)) == len(ids) and not (np.diff(np.sort(ids)) == 1).all()
    assert items["title"].null_count == 0 and items["category"].null_count == 0
    lens = pc.list_value_length(items["category"]).to_numpy()
    assert set(lens.tolist()) == {1, 2}
    assert 0.6 < (lens == 1).mean() < 0.8
    cats = items["category"].to_pylist()
    assert all(set(c) <= set(CATEGORIES) and len(set(c)) == len(c) for c in cats)
    as_of = parse_as_of(summary["as_of"])
    added = to_epoch_seconds(items["added_at"])
    assert (added <= as_of).all()
    expiring = items.filter(pc.is_valid(items["expires_at"]))
    exp = to_epoch_seconds(expiring["expires_at"])
    assert (exp > to_epoch_seconds(expiring["added_at"])).all()
    assert 0.04 < ((exp > as_of) & (exp <= as_of + 21 * DAY)).sum() / len(ids) < 0.13     # leaving soon
    assert (exp <= as_of).sum() > 0                                                          # already gone
    assert 0.18 < (added > as_of - 60 * DAY).mean() < 0.32                                 # new since you left
    assert 0 < pc.sum(items["editorial"]).as_py() < 0.1 * len(ids)
    special = pc.match_substring_regex(items["title"], "[&<']").to_numpy(zero_copy_only=False)
    assert 0 < special.mean() < 0.1
    assert "popularity" not in items.column_names                 # latent: seen only through events


def test_item_events_name_available_items_and_every_purchase_carries_one(worlds):
    d, *_ = worlds
    ev, items = _read(d, "events"), _read(d, "items")
    kinds = _kinds(ev)
    has_item = pc.is_valid(ev["item_id"])
    # only sessions and purchases name items; every purchase does, about 70 % of sessions do
    other = ev.filter(pc.invert(pc.is_in(kinds, value_set=pa.array(["session", "purchase"]))))
    assert other["item_id"].null_count == other.num_rows
    purchases = ev.filter(pc.equal(kinds, "purchase"))
    assert purchases.num_rows > 0 and purchases["item_id"].null_count == 0
    sessions = ev.filter(pc.equal(kinds, "session"))
    assert 0.66 < 1 - sessions["item_id"].null_count / sessions.num_rows < 0.74
    # the item was in the catalogue and available (added, not yet expired) at the event time
    with_item = ev.filter(has_item)
    pos = pc.index_in(with_item["item_id"], value_set=items["item_id"]).to_numpy(zero_copy_only=False)
    assert not np.isnan(pos.astype(float)).any()
    pos = pos.astype(np.int64)
    ts = to_epoch_seconds(with_item["ts"])
    added = to_epoch_seconds(items["added_at"])[pos]
    never = pc.is_null(items["expires_at"]).to_numpy(zero_copy_only=False)[pos]
    exp = to_epoch_seconds(pc.fill_null(items["expires_at"], pa.scalar(0, items["expires_at"].type)))[pos]
    assert (added <= ts).all()
    assert (never | (ts < exp)).all()
    # popularity is Zipf-like: the most named item takes many times the events of the median one
    counts = np.bincount(pos, minlength=items.num_rows)
    assert counts.max() > 10 * np.median(counts)


def test_same_seed_same_bytes_and_no_catalogue_leaves_the_world_as_it_was(worlds, tmp_path):
    d, summary, plain, plain_summary = worlds
    again = generate(4000, seed=5, out_dir=tmp_path / "again", n_items=600)
    for name in ("users", "events", "truth", "items"):
        assert (d / f"{name}.arrow").read_bytes() == (tmp_path / "again" / f"{name}.arrow").read_bytes(), name
    assert {k: v for k, v in again.items() if k not in ("seconds", "files")} == \
        {k: v for k, v in summary.items() if k not in ("seconds", "files")}
    # n_items=0: no items file, no item_id column, no theme truth
    assert not (plain / "items.arrow").exists() and "items" not in plain_summary["files"]
    assert plain_summary["n_items"] == 0
    assert "item_id" not in _read(plain, "events").column_names
    assert not {"theme", "taste_drift"} & set(_read(plain, "truth").column_names)
    # with items, every other column is what it is without them
    assert (d / "users.arrow").read_bytes() == (plain / "users.arrow").read_bytes()
    assert _read(d, "events").drop_columns(["item_id"]).equals(_read(plain, "events"))
    assert _read(d, "truth").drop_columns(["theme", "taste_drift"]).equals(_read(plain, "truth"))
    meta = json.loads((d / "world.json").read_text())
    assert meta["n_items"] == 600 and meta["files"]["items"].endswith("items.arrow")
    assert meta["n_events"] == plain_summary["n_events"]


def test_default_catalogue_size():
    assert default_n_items(10) == 200 and default_n_items(100_000) == 5000
    assert default_n_items(10**8) == 100_000


def test_theme_truth_follows_its_rule(worlds):
    d, summary, *_ = worlds
    truth = _read(d, "truth")
    theme = np.array(truth["theme"].to_pylist(), dtype=object)
    drift = truth["taste_drift"].to_numpy()
    assert set(theme) <= set(THEMES) and set(theme) == set(THEMES)
    assert ((drift > 0) & (drift < 1)).all() and drift.mean() == pytest.approx(0.25, abs=0.03)   # Beta(1, 3)
    assert ((theme == "broaden") == (drift > 0.5)).all()
    as_of = parse_as_of(summary["as_of"])
    alive = truth["alive"].to_numpy(zero_copy_only=False)
    drop = to_epoch_seconds(pc.fill_null(truth["dropout_at"], pa.scalar(as_of * 10**6, truth["dropout_at"].type)))
    long_gone = ~alive & (drop < as_of - 180 * DAY) & (drift <= 0.5)
    assert long_gone.any() and (theme[long_gone] == "trending").all()
    rest = theme[(drift <= 0.5) & ~long_gone]
    assert np.mean(rest == "new_in_your_categories") == pytest.approx(0.4, abs=0.05)


def test_high_drift_users_change_categories_more_than_low_drift_users(worlds):
    d, summary, *_ = worlds
    ev, items, truth = _read(d, "events"), _read(d, "items"), _read(d, "truth")
    ev = ev.filter(pc.is_valid(ev["item_id"]))
    first_cat = pc.list_element(items["category"], 0)
    cat_code = pc.index_in(first_cat, value_set=pa.array(CATEGORIES)).to_numpy().astype(np.int64)
    pos = pc.index_in(ev["item_id"], value_set=items["item_id"]).to_numpy().astype(np.int64)
    cat = cat_code[pos]
    # items with a second category blur the signal; keep the one-category items
    single = (pc.list_value_length(items["category"]).to_numpy() == 1)[pos]
    as_of = parse_as_of(summary["as_of"])
    late = to_epoch_seconds(ev["ts"]) >= as_of - summary["days"] * DAY // 2
    uid = ev["user_id"].to_numpy()
    users = truth["user_id"].to_numpy()
    by_id = np.argsort(users)
    u = by_id[np.searchsorted(users[by_id], uid)]
    assert (users[u] == uid).all()
    K = len(CATEGORIES)
    hist = np.zeros((len(users), 2, K))
    np.add.at(hist, (u[single], late[single].astype(int), cat[single]), 1.0)
    n = hist.sum(axis=2)
    ok = (n >= 8).all(axis=1)                                     # enough events early and late
    share = hist[ok] / n[ok][:, :, None]
    tv = 0.5 * np.abs(share[:, 0] - share[:, 1]).sum(axis=1)     # total variation, early vs late
    drift = truth["taste_drift"].to_numpy()[ok]
    high, low = tv[drift > 0.5], tv[drift < 0.15]
    assert len(high) >= 20 and len(low) >= 20
    se = np.sqrt(high.var() / len(high) + low.var() / len(low))
    assert high.mean() - low.mean() > max(0.04, 3 * se), (high.mean(), low.mean(), se)


def test_cli_items_option(tmp_path):
    assert main(["generate", "--users", "300", "--items", "0", "-o", str(tmp_path / "a"), "--no-progress"]) == 0
    assert not (tmp_path / "a" / "items.arrow").exists()
    assert main(["generate", "--users", "300", "--items", "250", "-o", str(tmp_path / "b"), "--no-progress"]) == 0
    assert feather.read_table(tmp_path / "b" / "items.arrow").num_rows == 250
    assert main(["generate", "--users", "300", "--items", "-1", "-o", str(tmp_path / "c"), "--no-progress"]) == 2
