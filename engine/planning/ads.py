"""The ``ads`` channel in the planner: an ad-platform audience instead of a message.

A step with ``channels = ["ads"]`` puts the user in a custom audience (Meta Custom
Audiences, Google Customer Match; the files are written by ``adapters/ads.py``).
Reach: consent in ``consent_ads`` (a missing column or a null is no), at least one
identifier (``email`` or ``phone``) and no ledger suppression on channel ``ads``.
The plan row's ``to`` holds every identifier the platforms take, as JSON
(``{"email": ..., "phone": ..., "first_name": ..., "last_name": ..., "country": ...,
"zip": ...}``, nulls left out); the adapter normalises and hashes them.  The holdout
never enters an audience (it is held out like on any channel), so the report measures
an ads step against its holdout like any other step.  An ads step counts as a message
for the frequency caps (it is a contact all the same).
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["ADS", "IDENTIFIERS", "ads_reach", "ads_identifiers", "ledger_suppressions"]

ADS = "ads"
#: scores / users columns an audience row may carry, in this order
IDENTIFIERS = ("email", "phone", "first_name", "last_name", "country", "zip")


def _valid(scores: pa.Table, name: str) -> np.ndarray:
    if name not in scores.column_names or pa.types.is_null(scores[name].type):
        return np.zeros(scores.num_rows, bool)
    return pc.and_(pc.is_valid(scores[name]), pc.not_equal(pc.utf8_trim_whitespace(pc.cast(scores[name], pa.string())),
                                                           "")).fill_null(False).to_numpy(zero_copy_only=False)


def ads_reach(scores: pa.Table, suppressions: list[pa.Table]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(consent, has an identifier, suppressed) per user for the ``ads`` channel;
    ``suppressions``: tables shaped like the ledger's (``channel``, ``user_id``)."""
    n = scores.num_rows
    if "consent_ads" in scores.column_names and not pa.types.is_null(scores["consent_ads"].type):
        consent = scores["consent_ads"].fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
    else:
        consent = np.zeros(n, bool)
    address = _valid(scores, "email") | _valid(scores, "phone")
    suppressed = np.zeros(n, bool)
    for sup in suppressions:
        if sup is None or sup.num_rows == 0 or "channel" not in sup.column_names or "user_id" not in sup.column_names:
            continue
        rows = sup.filter(pc.equal(sup["channel"], ADS))
        if rows.num_rows:
            suppressed |= pc.is_in(scores["user_id"], value_set=rows["user_id"].drop_null().cast(pa.int64())) \
                .to_numpy(zero_copy_only=False)
    return consent, address, suppressed


def ads_identifiers(scores: pa.Table) -> pa.Array:
    """Per user, the JSON object of their identifiers (string array, one per scores row)."""
    cols = {name: scores[name].cast(pa.string()).to_pylist() for name in IDENTIFIERS
            if name in scores.column_names and not pa.types.is_null(scores[name].type)}
    out = []
    for i in range(scores.num_rows):
        doc = {k: v[i] for k, v in cols.items() if v[i] is not None and v[i].strip()}
        out.append(json.dumps(doc, separators=(",", ":")) if doc else None)
    return pa.array(out, pa.string())


def ledger_suppressions(ledger) -> list[pa.Table]:
    """The ledger's suppressions table in a list ([] without a ledger)."""
    import os

    if ledger is None or not os.path.exists(ledger):
        return []
    from engine.ledger.store import read_suppressions

    return [read_suppressions(ledger)]
