"""The synthetic world's behavioural model, shared by the generator and the simulator.

A user responds to a message (opens it; a click follows an open) with probability

    p = alive * resp[channel] * hour_factor * fatigue_factor

where ``hour_factor = exp(-d**2 / (2 * HOUR_SIGMA**2))`` with ``d`` the circular
distance in hours (0-12) between the local delivery hour and the user's preferred
hour, floored at ``HOUR_FLOOR``, and ``fatigue_factor = exp(-fatigue_sens * n7)``
with ``n7`` the number of messages the user received in the 7 days before this one.
A user who is not alive may still respond with ``DEAD_RESPONSE_SCALE`` times the
probability (mail opened by a gone user happens, rarely).  A click follows an open
with ``CLICK_GIVEN_OPEN``; a click that leads back to the product revives a gone
user with ``REVIVE_GIVEN_CLICK`` (that is the win-back).  Each message also
triggers an unsubscribe with ``unsub_risk * (1 + n7)``.

Content themes (:data:`engine.schema.THEMES`): each user of a world with items has a
true theme (``truth.theme``), the kind of message that speaks to them.  A message
with a theme multiplies the open probability by ``theme_factor``: ``THEME_MATCH``
when its theme is the user's, ``THEME_MISS`` when it is another; a message without
a theme (code -1), or a user without a known theme, keeps the factor 1.0.

All functions are vectorised over numpy arrays of equal length.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "HOUR_SIGMA",
    "HOUR_FLOOR",
    "DEAD_RESPONSE_SCALE",
    "CLICK_GIVEN_OPEN",
    "REVIVE_GIVEN_CLICK",
    "hour_distance",
    "response_probability",
    "unsubscribe_probability",
    "THEME_MATCH",
    "THEME_MISS",
    "theme_factor",
]

HOUR_SIGMA = 2.5
HOUR_FLOOR = 0.15
DEAD_RESPONSE_SCALE = 0.15
CLICK_GIVEN_OPEN = 0.35
REVIVE_GIVEN_CLICK = 0.5
THEME_MATCH = 1.5
THEME_MISS = 0.8


def hour_distance(local_hour: np.ndarray, preferred_hour: np.ndarray) -> np.ndarray:
    """Circular distance in hours (0..12) between two local hours of day (0..23, may be fractional)."""
    d = np.abs(np.asarray(local_hour, dtype=np.float64) - np.asarray(preferred_hour, dtype=np.float64)) % 24.0
    return np.minimum(d, 24.0 - d)


def response_probability(
    alive: np.ndarray,
    channel_rate: np.ndarray,
    local_hour: np.ndarray,
    preferred_hour: np.ndarray,
    recent_messages_7d: np.ndarray,
    fatigue_sensitivity: np.ndarray,
) -> np.ndarray:
    """Probability (0..1) that a user opens a message delivered at ``local_hour``; see module docstring."""
    d = hour_distance(local_hour, preferred_hour)
    hour_factor = np.maximum(np.exp(-(d**2) / (2.0 * HOUR_SIGMA**2)), HOUR_FLOOR)
    fatigue = np.exp(-np.asarray(fatigue_sensitivity, dtype=np.float64) * np.asarray(recent_messages_7d, dtype=np.float64))
    alive_factor = np.where(np.asarray(alive, dtype=bool), 1.0, DEAD_RESPONSE_SCALE)
    p = alive_factor * np.asarray(channel_rate, dtype=np.float64) * hour_factor * fatigue
    return np.clip(p, 0.0, 1.0)


def unsubscribe_probability(unsub_risk: np.ndarray, recent_messages_7d: np.ndarray) -> np.ndarray:
    """Probability (0..1) that a message triggers an unsubscribe; grows with recent message load."""
    p = np.asarray(unsub_risk, dtype=np.float64) * (1.0 + np.asarray(recent_messages_7d, dtype=np.float64))
    return np.clip(p, 0.0, 1.0)


def theme_factor(message_theme_codes: np.ndarray, user_theme_codes: np.ndarray) -> np.ndarray:
    """Open-probability factor of a message's theme for its user: ``THEME_MATCH`` if the codes
    (indices into ``engine.schema.THEMES``) agree, ``THEME_MISS`` if not, 1.0 where either is -1."""
    m = np.asarray(message_theme_codes, dtype=np.int64)
    u = np.asarray(user_theme_codes, dtype=np.int64)
    return np.where((m < 0) | (u < 0), 1.0, np.where(m == u, THEME_MATCH, THEME_MISS))
