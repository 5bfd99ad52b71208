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

Offers and variants (engine.planning.offers, engine.planning.variants): a message
carrying an offer of relative size ``s`` (its share of the order plus its fixed cost
over the user's mean order value, capped at 1) multiplies the click-given-open
probability by ``1 + OFFER_CLICK_GAIN * s``, and a click on it is followed by an
order with ``OFFER_ORDER_GIVEN_CLICK`` (the order the offer's cost is paid on).  A
variant that sets its own subject, body or template has a hidden appeal,
``content_appeal``: a factor on the open probability between ``1 - APPEAL_SPREAD`` and
``1 + APPEAL_SPREAD``, fixed by a SHA-256 hash of that text (the world's taste, which
no one can read off the copy; only an experiment finds it).  An ``ads`` delivery (the
user joins an ad audience) is answered like a message with the channel rate
``ADS_RESPONSE`` and no hour factor (an "open" is an engagement with the ad).  A
survey message opened is answered with ``SURVEY_ANSWER_GIVEN_OPEN``; the reason follows
the user's truth (``reason_weights``): fatigue-sensitive users say "too many
messages", gone users "found an alternative".

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
    "OFFER_CLICK_GAIN",
    "OFFER_ORDER_GIVEN_CLICK",
    "APPEAL_SPREAD",
    "ADS_RESPONSE",
    "SURVEY_ANSWER_GIVEN_OPEN",
    "reason_weights",
    "offer_size",
    "content_appeal",
]

HOUR_SIGMA = 2.5
HOUR_FLOOR = 0.15
DEAD_RESPONSE_SCALE = 0.15
CLICK_GIVEN_OPEN = 0.35
REVIVE_GIVEN_CLICK = 0.5
THEME_MATCH = 1.5
THEME_MISS = 0.8
OFFER_CLICK_GAIN = 2.0
OFFER_ORDER_GIVEN_CLICK = 0.5
APPEAL_SPREAD = 0.3
#: the ``ads`` channel's response rate (an ad engagement, then a click) when the truth has no ``resp_ads``
ADS_RESPONSE = 0.05
#: a survey message opened is answered with this probability
SURVEY_ANSWER_GIVEN_OPEN = 0.4


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


def offer_size(share: np.ndarray, fixed: np.ndarray, value_mean: np.ndarray) -> np.ndarray:
    """Relative size of an offer (0..1): ``share + fixed / value_mean``, capped at 1."""
    v = np.maximum(np.asarray(value_mean, dtype=np.float64), 1e-9)
    return np.clip(np.asarray(share, dtype=np.float64) + np.asarray(fixed, dtype=np.float64) / v, 0.0, 1.0)


def content_appeal(text: str | None) -> float:
    """The hidden appeal of a variant's own copy (1.0 for ``None``: the step's template)."""
    if text is None:
        return 1.0
    import hashlib

    u = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little") / 2.0**64
    return 1.0 + APPEAL_SPREAD * (2.0 * u - 1.0)


def reason_weights(reasons: list[str], alive: np.ndarray, fatigue_sensitivity: np.ndarray) -> np.ndarray:
    """[users, reasons] weights of each survey reason: ``too_many_messages`` 10 x the
    fatigue sensitivity, ``found_an_alternative`` 1 for a gone user (0.1 alive),
    ``not_relevant`` 0.5, ``too_expensive`` 0.3, any other 0.2."""
    alive = np.asarray(alive, dtype=bool)
    sens = np.asarray(fatigue_sensitivity, dtype=np.float64)
    cols = []
    for r in reasons:
        if r == "too_many_messages":
            cols.append(10.0 * sens)
        elif r == "found_an_alternative":
            cols.append(np.where(alive, 0.1, 1.0))
        else:
            cols.append(np.full(len(alive), {"not_relevant": 0.5, "too_expensive": 0.3}.get(r, 0.2)))
    return np.maximum(np.stack(cols, axis=1), 1e-9) if cols else np.ones((len(alive), 1))
