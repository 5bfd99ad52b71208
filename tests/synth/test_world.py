"""The synthetic world's behavioural model: hour distance, response and unsubscribe probabilities, themes,
offers, hidden appeal and survey reasons."""

from __future__ import annotations

import numpy as np
import pytest

from engine.synth import world as w


def test_hour_distance_is_circular_and_at_most_twelve():
    assert w.hour_distance(np.array([23, 1, 12, 0, 6.5]), np.array([1, 23, 0, 12, 6])).tolist() == \
        [2.0, 2.0, 12.0, 12.0, 0.5]


def test_response_probability_follows_the_formula():
    # at the preferred hour, no recent messages: alive x rate; gone: scaled by DEAD_RESPONSE_SCALE
    p = w.response_probability(np.array([True, False]), np.array([0.2, 0.2]), np.array([9, 9]), np.array([9, 9]),
                               np.array([0, 0]), np.array([0.3, 0.3]))
    assert p.tolist() == pytest.approx([0.2, 0.2 * w.DEAD_RESPONSE_SCALE])
    # 12 hours off: the hour factor is floored; two recent messages: exp(-2 x sensitivity)
    far = w.response_probability(np.array([True]), np.array([0.2]), np.array([21]), np.array([9]), np.array([2]),
                                 np.array([0.3]))
    assert far[0] == pytest.approx(0.2 * w.HOUR_FLOOR * np.exp(-0.6))
    one_off = w.response_probability(np.array([True]), np.array([1.0]), np.array([10]), np.array([9]),
                                     np.array([0]), np.array([0.0]))
    assert one_off[0] == pytest.approx(np.exp(-1 / (2 * w.HOUR_SIGMA**2)))
    assert w.response_probability(np.array([True]), np.array([5.0]), np.array([9]), np.array([9]), np.array([0]),
                                  np.array([0.0]))[0] == 1.0  # clipped


def test_unsubscribe_theme_and_offer_factors():
    assert w.unsubscribe_probability(np.array([0.01, 0.5]), np.array([2, 3])).tolist() == pytest.approx([0.03, 1.0])
    assert w.theme_factor(np.array([0, 1, -1, 2]), np.array([0, 0, 0, -1])).tolist() == \
        [w.THEME_MATCH, w.THEME_MISS, 1.0, 1.0]
    assert w.offer_size(np.array([0.2, 0.1, 0.5]), np.array([0.0, 5.0, 10.0]), np.array([50.0, 50.0, 1.0])).tolist() \
        == pytest.approx([0.2, 0.2, 1.0])


def test_content_appeal_is_fixed_by_the_text_and_within_the_spread():
    assert w.content_appeal(None) == 1.0
    a = [w.content_appeal(f"subject {i}") for i in range(200)]
    assert all(1 - w.APPEAL_SPREAD <= x <= 1 + w.APPEAL_SPREAD for x in a)
    assert w.content_appeal("subject 3") == a[3] and len(set(a)) == 200
    assert min(a) < 0.9 and max(a) > 1.1  # spread over the range, not stuck at 1


def test_reason_weights_follow_the_users_truth():
    r = ["too_many_messages", "found_an_alternative", "not_relevant", "too_expensive", "other"]
    got = w.reason_weights(r, np.array([True, False]), np.array([0.05, 0.0]))
    assert got.shape == (2, 5)
    assert got[0].tolist() == pytest.approx([0.5, 0.1, 0.5, 0.3, 0.2])
    assert got[1].tolist() == pytest.approx([1e-9, 1.0, 0.5, 0.3, 0.2])
    assert w.reason_weights([], np.array([True]), np.array([0.1])).shape == (1, 1)
