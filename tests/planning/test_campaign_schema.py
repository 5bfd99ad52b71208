"""The campaign file's schema: strict tables, defaults filled in, one-line errors naming the key."""

from __future__ import annotations

import pytest

from engine.errors import ConfigError
from engine.planning import campaign_schema as cs


def test_every_key_has_a_doc_and_every_section_a_table():
    keys = cs.schema_keys()
    assert keys and all(spec.doc for _, _, spec in keys)
    assert set(cs.SECTIONS) <= {t.split(".")[0] for t, _, _ in keys} | set(cs.SECTIONS)
    for section in cs.SECTIONS:
        assert section in cs.SCHEMA or any(t.startswith(section + ".") for t in cs.SCHEMA)


def test_an_empty_policy_gets_every_default():
    got = cs.table({}, "policy", "c.toml", "policy")
    assert set(got) == set(cs.SCHEMA["policy"])
    assert got["max_messages"] == cs.SCHEMA["policy"]["max_messages"].default
    assert got["quiet_hours"] == (21 * 60, 8 * 60)


@pytest.mark.parametrize("d, table, path, words", [
    ({"max_mesages": 3}, "policy", "policy", "[policy.max_mesages] unknown key in [policy]; did you mean 'max_messages'?"),
    ({"delay_days": 1}, "steps", "steps[0]", "[steps[0].name] is required"),
    ({"name": "a", "delay_days": -1}, "steps", "steps[0]", "[steps[0].delay_days] must be >= 0 and <= 365"),
    ({"max_messages": "3"}, "policy", "policy", "[policy.max_messages] must be a whole number (int), got '3'"),
    ("x", "policy", "policy", "[policy] must be a table of keys"),
])
def test_bad_tables_are_one_line_naming_the_file_and_key(d, table, path, words):
    with pytest.raises(ConfigError) as err:
        cs.table(d, table, "c.toml", path)
    msg = str(err.value)
    assert msg.startswith("c.toml: ") and words in msg and "\n" not in msg
