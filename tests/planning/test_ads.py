"""The ads channel in the planner: who is reachable and the identifiers a plan row carries."""

from __future__ import annotations

import json

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st


_values = st.one_of(st.none(), st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)),
                                       max_size=8))


@given(rows=st.lists(st.tuples(_values, _values, _values), max_size=12))
def test_ads_identifiers_json_equals_the_per_row_json(rows):
    """Property: the Arrow-built identifiers JSON of every row parses to the dict a plain
    per-row loop builds (trimmed values, empties left out, control characters as spaces)."""
    import re

    from engine.planning.ads import ads_identifiers

    t = pa.table({"email": pa.array([r[0] for r in rows], pa.string()),
                  "phone": pa.array([r[1] for r in rows], pa.string()),
                  "first_name": pa.array([r[2] for r in rows], pa.string())})
    got = ads_identifiers(t).to_pylist()
    for r, g in zip(rows, got):
        want = {}
        for k, v in zip(("email", "phone", "first_name"), r):
            if v is not None and v.strip():
                want[k] = re.sub(r"[\x00-\x1f]", " ", v.strip())
        assert (json.loads(g) if g is not None else {}) == want


def test_ads_reach_needs_consent_an_identifier_and_no_ads_suppression():
    from engine.planning.ads import ads_reach

    scores = pa.table({"user_id": pa.array([1, 2, 3, 4], pa.int64()),
                       "consent_ads": pa.array([True, None, True, True]),
                       "email": pa.array(["a@x.org", "b@x.org", "  ", None]),
                       "phone": pa.array([None, None, None, "+15550100"])})
    sup = pa.table({"channel": ["ads", "email"], "user_id": pa.array([4, 1], pa.int64())})
    consent, address, suppressed = ads_reach(scores, [sup, None])
    assert consent.tolist() == [True, False, True, True]
    assert address.tolist() == [True, True, False, True]
    assert suppressed.tolist() == [False, False, False, True]
    consent, address, suppressed = ads_reach(scores.drop_columns(["consent_ads", "phone"]), [])
    assert not consent.any() and address.tolist() == [True, True, False, False] and not suppressed.any()


def test_ads_identifiers_is_null_without_any_identifier_and_escapes_json():
    from engine.planning.ads import ads_identifiers

    t = pa.table({"email": pa.array(['a"b\\c@x.org', None, ""]), "country": pa.array(["FR", None, " "])})
    got = ads_identifiers(t).to_pylist()
    assert json.loads(got[0]) == {"email": 'a"b\\c@x.org', "country": "FR"}
    assert got[1:] == [None, None]
    assert ads_identifiers(pa.table({"user_id": [1, 2]})).to_pylist() == [None, None]
