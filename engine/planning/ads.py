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


def _json_text(col) -> pa.Array:
    """A string column escaped as the inside of a JSON string (backslash, quote, controls)."""
    out = pc.replace_substring(col, "\\", "\\\\")
    out = pc.replace_substring(out, '"', '\\"')
    return pc.replace_substring_regex(out, "[\\x00-\\x1f]", " ")


def ads_identifiers(scores: pa.Table) -> pa.Array:
    """Per user, the JSON object of their identifiers (string array, one per scores row;
    null when they have none), built with Arrow string kernels: no Python per user."""
    n = scores.num_rows
    parts = []
    for name in IDENTIFIERS:
        if name not in scores.column_names or pa.types.is_null(scores[name].type):
            continue
        c = pc.utf8_trim_whitespace(pc.cast(scores[name], pa.string()))
        c = pc.if_else(pc.equal(c, ""), pa.scalar(None, pa.string()), c)
        # '"name":"value",' where present, '' where null
        parts.append(pc.fill_null(pc.binary_join_element_wise(f'"{name}":"', _json_text(c), '",', ""), ""))
    if not parts or not n:
        return pa.nulls(n, pa.string())
    body = pc.binary_join_element_wise(*parts, "") if len(parts) > 1 else parts[0]
    body = pc.utf8_slice_codeunits(body, 0, -1)                 # drop the last comma
    doc = pc.binary_join_element_wise("{", body, "}", "")
    out = pc.if_else(pc.equal(body, ""), pa.scalar(None, pa.string()), doc)
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def ledger_suppressions(ledger) -> list[pa.Table]:
    """The ledger's suppressions table in a list ([] without a ledger)."""
    import os

    if ledger is None or not os.path.exists(ledger):
        return []
    from engine.ledger.store import read_suppressions

    return [read_suppressions(ledger)]
