"""engine.planning.assign: holdout and variant draws, stable per (campaign, user)."""

from __future__ import annotations

import numpy as np

from engine.planning.assign import assignments, labels, unit, user_hash
from engine.planning.campaign import load_campaign

BASE = {"campaign": {"id": "c1", "holdout": 0.2}, "audience": {"where": "true"},
        "steps": [{"name": "s", "channels": ["email"], "template": "t"}],
        "variants": [{"name": "a", "weight": 3}, {"name": "b", "weight": 1}]}


def test_shares_follow_the_holdout_and_the_variant_weights():
    ids = np.arange(200_000, dtype=np.int64)
    hold, var = assignments(ids, load_campaign(BASE))
    assert abs(hold.mean() - 0.2) < 0.005
    assert abs((var == 0).mean() - 0.75) < 0.005


def test_draws_are_stable_and_reshuffle_with_the_campaign_id():
    ids = np.arange(10_000, dtype=np.int64)
    a1, _ = assignments(ids, load_campaign(BASE))
    a2, _ = assignments(ids[::-1].copy(), load_campaign(BASE))
    assert np.array_equal(a1, a2[::-1])  # per user, not per position
    other = load_campaign({**BASE, "campaign": {"id": "c2", "holdout": 0.2}})
    assert (assignments(ids, other)[0] != a1).mean() > 0.2
    u = unit(user_hash(ids, other))
    assert u.min() >= 0 and u.max() < 1


def test_labels_are_nulls_below_zero():
    assert labels(np.array([1, -1, 0]), ["x", "y"]).to_pylist() == ["y", None, "x"]
