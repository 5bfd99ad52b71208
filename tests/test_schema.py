"""The data contract's constants agree with one another."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine import schema


def test_codes_are_positions_and_names_are_unique():
    for names, codes in ((schema.EVENTS, schema.EVENT_CODE), (schema.CHANNELS, schema.CHANNEL_CODE),
                         (schema.THEMES, schema.THEME_CODE)):
        assert len(set(names)) == len(names)
        assert codes == {name: i for i, name in enumerate(names)}
        assert max(codes.values()) < 127  # carried as int8 through the core
    assert (schema.SESSION, schema.PURCHASE, schema.COMPLAINT) == (
        schema.EVENT_CODE["session"], schema.EVENT_CODE["purchase"], schema.EVENT_CODE["complaint"])


def test_skip_reasons_are_unique_and_planned_is_index_zero():
    assert len(set(schema.SKIP_REASONS)) == len(schema.SKIP_REASONS)
    assert schema.SKIP_REASONS[0] == ""
    assert all(r == r.strip().lower() and " " not in r for r in schema.SKIP_REASONS)


def test_channels_are_a_prefix_of_provider_channels_and_have_address_and_consent_columns():
    assert set(schema.CHANNELS) <= set(schema.PROVIDER_CHANNELS)
    assert schema.PROVIDER_CHANNELS[: len(schema.CHANNELS)] == schema.CHANNELS
    assert set(schema.ADDRESS_COLUMN) == set(schema.CHANNELS) == set(schema.CONSENT_COLUMN)
    users = set(schema.USERS_REQUIRED) | set(schema.USERS_OPTIONAL)
    for ch in schema.CHANNELS:
        assert schema.ADDRESS_COLUMN[ch] in users
        assert schema.CONSENT_COLUMN[ch] in users


def test_event_subsets_name_known_events():
    assert schema.CHANNEL_EVENTS <= set(schema.EVENTS)
    assert set(schema.DEFAULT_ACTIVITY) <= set(schema.EVENTS)
    assert set(schema.ENGAGEMENT_EVENTS) <= set(schema.EVENTS)
    assert "session" not in schema.CHANNEL_EVENTS and "purchase" not in schema.CHANNEL_EVENTS


def test_timestamps_are_utc_microseconds_and_never_is_the_smallest_int64():
    assert schema.TIMESTAMP == pa.timestamp("us", tz="UTC")
    for fields in (schema.EVENTS_REQUIRED, schema.USERS_OPTIONAL, schema.ITEMS_REQUIRED):
        assert all(t == schema.TIMESTAMP for n, t in fields.items() if n in ("ts", "signup_at", "added_at"))
    assert schema.PLAN_SCHEMA.field("send_at").type == schema.TIMESTAMP
    assert schema.NEVER == np.iinfo(np.int64).min
    assert schema.SECONDS_PER_DAY == 24 * 60 * 60


def test_plan_schema_has_unique_names_and_the_columns_sending_relies_on():
    names = schema.PLAN_SCHEMA.names
    assert len(set(names)) == len(names)
    for col in ("message_id", "user_id", "channel", "send_at", "reason", "holdout", "to"):
        assert col in names
    assert schema.PLAN_SCHEMA.field("user_id").type == pa.int64()
