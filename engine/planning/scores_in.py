"""Scores as the planner reads them: every column in the type ``winback score`` writes.

A scores file that went through another tool (a spreadsheet, pandas, a SQL export) may
hold numbers as text, booleans as ``yes``/``1`` or text as ``large_string``.  Each score
column is converted back to its type with the data contract's rules
(:mod:`engine.io.coerce`); a value that cannot be is one :class:`InputError` naming
the file, the column and example rows, never a traceback in the middle of planning.
Pass-through text columns (template fields) become ``string``.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa

from engine.errors import InputError
from engine.io import coerce as co
from engine.schema import CHANNELS, TIMESTAMP

__all__ = ["normalised_scores", "SCORE_KINDS"]

_BOOL = ("consent_email", "consent_sms", "consent_push", "consent_ads", "complained",
         *(f"{c}_suppressed" for c in CHANNELS), "reachable_email", "reachable_sms", "reachable_push")
_INT = ("frequency", "purchases", "best_hour_local", "best_weekday", "engagements", "sends_7d", "sends_30d",
        "fatigue_budget", "contact_rating", "rfm_r", "rfm_f", "rfm_m",
        *(f"{c}_{k}" for c in CHANNELS for k in ("sends_90d", "opens_90d", "clicks_90d", "unengaged_streak")))
_FLOAT = ("days_inactive", "recency_days", "tenure_days", "monetary", "days_since_purchase", "p_alive",
          "lapse_risk", "send_time_confidence", "fatigue_sensitivity", "fatigue_response", "affinity_confidence",
          *(f"{c}_response_rate" for c in CHANNELS))
_TIME = ("signup_at", "last_active_at", "last_purchase_at", "next_send_at",
         *(f"{c}_last_engaged_at" for c in CHANNELS))
#: the kind of each score column: "bool", "int", "float" or "time" (epoch instants, UTC)
SCORE_KINDS: dict[str, str] = {**{c: "bool" for c in _BOOL}, **{c: "int" for c in _INT},
                               **{c: "float" for c in _FLOAT}, **{c: "time" for c in _TIME}}
_EXPECTED = {"bool": "true/false (or yes/no, 1/0)", "int": "a whole number", "float": "a number",
             "time": "an instant (a timestamp or ISO 8601 text)"}
#: the Arrow type a converted column gets, and the types that need no conversion, per kind
_KIND_TYPE = {"bool": pa.bool_(), "int": pa.int64(), "float": pa.float64(), "time": TIMESTAMP}
_KIND_OK = {"bool": pa.types.is_boolean, "int": pa.types.is_integer,
            "float": lambda t: pa.types.is_floating(t) or pa.types.is_integer(t), "time": pa.types.is_timestamp}
_LARGE = re.compile(r"^(large_string|large_utf8|string_view)$")


def normalised_scores(scores: pa.Table, src: str) -> pa.Table:
    """``scores`` with every known score column in its kind's Arrow type and text as
    ``string``; an :class:`InputError` for values of the wrong kind."""
    for i, name in enumerate(scores.column_names):
        col = scores.column(i)
        t = col.type
        if pa.types.is_null(t):
            continue
        kind = SCORE_KINDS.get(name)
        fixed = None
        if kind is None:
            if pa.types.is_dictionary(t) or _LARGE.match(str(t)):
                if co.is_stringlike(t.value_type if pa.types.is_dictionary(t) else t):
                    fixed = co.to_string(col)
        elif not _KIND_OK[kind](t):
            try:
                fixed, bad = co.to_type(col, _KIND_TYPE[kind])
            except co.ColumnTypeError:
                raise InputError(f"{src}: column {name!r} has type {t}, expected {_EXPECTED[kind]}; pass the scores "
                                 "'winback score' wrote, or convert the column back") from None
            if bad.any():
                _refuse(scores, name, bad, kind, src)
        if fixed is not None:
            scores = scores.set_column(i, name, fixed)
    return scores


def _refuse(scores, name, bad, kind, src):
    rows = np.flatnonzero(bad)
    ids = scores["user_id"] if "user_id" in scores.column_names else None
    ex = ", ".join(f"row {int(r)} (user_id {ids[int(r)].as_py() if ids is not None else '?'}: "
                   f"{scores[name][int(r)].as_py()!r})" for r in rows[:3])
    raise InputError(f"{src}: column {name!r} has {len(rows):,} value{'s' if len(rows) > 1 else ''} that "
                     f"{'are' if len(rows) > 1 else 'is'} not {_EXPECTED[kind]}, e.g. {ex}; pass the scores "
                     "'winback score' wrote, or fix those values")
