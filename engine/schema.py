"""The data contract as constants: event and channel codes, column names, units.

Events and channels are carried through the numeric core as small integer codes
(``int8``); ``-1`` means "no channel".  Timestamps inside the core are ``int64``
seconds since the Unix epoch, UTC.  Timestamps in output tables are
``timestamp[us, tz=UTC]``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

EVENTS: tuple[str, ...] = (
    "session",
    "purchase",
    "send",
    "open",
    "click",
    "unsubscribe",
    "bounce",
    "complaint",
)
EVENT_CODE: dict[str, int] = {name: i for i, name in enumerate(EVENTS)}
SESSION, PURCHASE, SEND, OPEN, CLICK, UNSUBSCRIBE, BOUNCE, COMPLAINT = range(len(EVENTS))

CHANNELS: tuple[str, ...] = ("email", "sms", "push")
CHANNEL_CODE: dict[str, int] = {name: i for i, name in enumerate(CHANNELS)}
#: Channels a providers file may configure: the messaging channels plus ``ads``
#: (audience files for ad platforms, written by the file adapter).
PROVIDER_CHANNELS: tuple[str, ...] = CHANNELS + ("ads",)
#: An instant that never happened (no activity, no message): the smallest int64.
NEVER = np.iinfo(np.int64).min
#: Events that must name a channel.
CHANNEL_EVENTS: frozenset[str] = frozenset(
    {"send", "open", "click", "unsubscribe", "bounce", "complaint"}
)
#: Events that make a user "alive" unless the caller says otherwise.
DEFAULT_ACTIVITY: tuple[str, ...] = ("session", "purchase", "click")
#: Events that count as engagement for the send-time histogram.
ENGAGEMENT_EVENTS: tuple[str, ...] = ("open", "click", "session")

#: Address and consent columns per channel in the users table.
ADDRESS_COLUMN = {"email": "email", "sms": "phone", "push": "push_token"}
CONSENT_COLUMN = {c: f"consent_{c}" for c in CHANNELS}

LIFECYCLE: tuple[str, ...] = ("active", "at_risk", "lapsing", "lapsed", "dormant")

TIMESTAMP = pa.timestamp("us", tz="UTC")
SECONDS_PER_DAY = 86_400
#: the largest cap, in messages per policy window, that a score (--cap) or a campaign (max_messages) takes
MAX_CAP = 1000
#: seconds after its planned instant a message may go out and still be on time ('winback send'
#: releases it as planned; planning keeps steps this far clear of an earlier one's window edge)
GRACE_SECONDS = 15 * 60

USERS_REQUIRED = {"user_id": pa.int64()}
USERS_OPTIONAL = {
    "timezone": pa.string(),
    "email": pa.string(),
    "phone": pa.string(),
    "push_token": pa.string(),
    "consent_email": pa.bool_(),
    "consent_sms": pa.bool_(),
    "consent_push": pa.bool_(),
    "consent_ads": pa.bool_(),
    "signup_at": TIMESTAMP,
}
EVENTS_REQUIRED = {"user_id": pa.int64(), "ts": TIMESTAMP, "event": pa.string()}
EVENTS_OPTIONAL = {"channel": pa.string(), "value": pa.float64(), "item_id": pa.int64()}

#: The optional catalogue: one row per item.  ``category`` is a list of strings (or one
#: string; in CSV, categories separated by ``|``).  Any other column (``url``, ``price``,
#: ``image``...) passes through to message templates as ``{{ items[0].url }}``.
ITEMS_REQUIRED = {"item_id": pa.int64(), "title": pa.string(), "category": pa.list_(pa.string()),
                  "added_at": TIMESTAMP}
ITEMS_OPTIONAL = {"expires_at": TIMESTAMP, "editorial": pa.bool_()}

#: Content themes of a win-back message (engine.themes), in the planner's default order
#: of preference for a user whose tastes are known.
THEMES: tuple[str, ...] = ("new_in_your_categories", "leaving_soon", "editorial", "trending", "broaden")
THEME_CODE: dict[str, int] = {name: i for i, name in enumerate(THEMES)}

#: Columns of plan.arrow that every later step relies on (more may follow).
PLAN_SCHEMA = pa.schema(
    [
        ("message_id", pa.string()),
        ("campaign_id", pa.string()),
        ("user_id", pa.int64()),
        ("step", pa.string()),
        ("step_index", pa.int16()),
        ("variant", pa.string()),
        ("channel", pa.string()),
        ("send_at", TIMESTAMP),
        ("reason", pa.string()),
        ("holdout", pa.bool_()),
        ("expected_value", pa.float64()),
        ("to", pa.string()),
        ("template", pa.string()),
        ("subject", pa.string()),
        ("body", pa.string()),
        ("exit_on", pa.string()),
    ]
)

#: beside a partitioned plan's parts: the whole plan's summary and ``winback.plan`` metadata
PLAN_SUMMARY_FILE = "_winback_plan.json"

#: Why a plan row is not sent (the plan's ``reason``); index 0 = planned.
SKIP_REASONS: tuple[str, ...] = ("", "not_in_audience", "holdout", "no_consent", "no_address", "suppressed", "channel_cap",
           "fatigue_budget", "min_gap", "capacity", "broadcast_guard", "cap_other_campaigns", "complaint",
           "not_in_step", "campaign_end", "min_gap_other_campaigns")
