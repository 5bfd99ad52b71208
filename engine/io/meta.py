"""The ``winback.*`` schema metadata of scores, plans and outcomes: one reader, one writer.

Scores carry ``winback.score`` (as_of, the fitted model, settings), plans carry
``winback.plan`` (campaign id, as_of, steps, policy), outcomes ``winback.simulate``;
each is one JSON object under its key.
"""

from __future__ import annotations

import json

import pyarrow as pa

__all__ = ["SCORE", "PLAN", "SIMULATE", "read_meta", "with_meta"]

SCORE = b"winback.score"
PLAN = b"winback.plan"
SIMULATE = b"winback.simulate"


def read_meta(table: pa.Table | pa.Schema, key: bytes) -> dict:
    """The JSON object stored under ``key`` in the schema metadata, ``{}`` when absent or unreadable."""
    schema = table if isinstance(table, pa.Schema) else table.schema
    raw = (schema.metadata or {}).get(key)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def with_meta(table: pa.Table, key: bytes, value: dict, *, keep: bool = True, default=str) -> pa.Table:
    """``table`` with ``value`` as JSON under ``key`` (``default`` converts what JSON cannot
    hold: ``str`` for dates, ``float`` for numpy numbers); other metadata kept unless ``keep`` is False."""
    base = dict(table.schema.metadata or {}) if keep else {}
    base[key] = json.dumps(value, default=default).encode()
    return table.replace_schema_metadata(base)
