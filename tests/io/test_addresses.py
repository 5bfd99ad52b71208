"""Canonical addresses: the vectorised rewrite agrees with a plain-Python reading of the rules,
the users reader applies it and counts it, and a suppression matches every spelling."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.feather as feather
from hypothesis import given
from hypothesis import strategies as st

from engine.io.addresses import canonical, canonical_addresses, describe
from engine.io.readers import load_users
from engine.ledger.store import Ledger, read_suppressions


def _naive(kind: str, v: str | None) -> str | None:
    """The rules of the module docstring, one value at a time."""
    if v is None:
        return None
    v = v.strip(" \t\n\r\f\v")
    if kind == "email":
        v = v.lower()
        local, at, domain = v.partition("@")
        ok = (at and local and "@" not in domain and not re.search(r"\s", v)
              and all(domain.split(".")) and "." in domain)
        return v if ok else None
    if kind == "phone":
        v = re.sub(r"[\s\-().]", "", v)
        return v if re.fullmatch(r"\+[1-9][0-9]{6,14}", v) else None
    return v if v and not re.search(r"\s", v) else None


_chars = st.sampled_from(list("abcXYZ09@.+-() \t") + ["\u00e9", "\uff20"])
_values = st.one_of(st.none(), st.text(_chars, max_size=20),
                    st.from_regex(r"\A ?[A-Za-z0-9.]{1,6}@[a-zA-Z]{1,5}\.[a-z]{2,3} ?\Z"),
                    st.from_regex(r"\A\+?[1-9][0-9 ()\-]{6,16}\Z"))


@given(st.sampled_from(["email", "phone", "push_token"]), st.lists(_values, max_size=30))
def test_the_vectorised_rewrite_matches_the_rules_one_value_at_a_time(kind, values):
    out, fixed, bad, examples = canonical(kind, pa.array(values, pa.string()))
    want = [_naive(kind, v) for v in values]
    assert out.to_pylist() == want
    stripped = [v for v in values if v is not None and v.strip(" \t\n\r\f\v")]
    assert bad == sum(1 for v in stripped if _naive(kind, v) is None)
    assert fixed == sum(1 for v in stripped if _naive(kind, v) is not None and _naive(kind, v) != v)
    assert len(examples) == min(3, bad)


def test_the_users_reader_writes_canonical_addresses_and_counts_what_it_changed(tmp_path):
    users = pa.table({"user_id": pa.array([1, 2, 3, 4, 5], pa.int64()),
                      "email": [" Ann@Example.COM ", "bob@example.com", "", "carl\uff20example.com", None],
                      "phone": ["+1 (415) 555-0100", "4155550101", "+14155550102", None, "  "]})
    feather.write_feather(users, tmp_path / "users.arrow")
    u = load_users(tmp_path / "users.arrow")
    assert u.table["email"].to_pylist() == ["ann@example.com", "bob@example.com", None, None, None]
    assert u.table["phone"].to_pylist() == ["+14155550100", None, "+14155550102", None, None]
    assert u.addresses["email"]["normalised"] == 1 and u.addresses["email"]["not_an_address"] == 1
    assert u.addresses["phone"] == {"normalised": 1, "not_an_address": 1, "examples": ["4155550101"]}
    lines = describe(u.addresses)
    assert any("+<country code>" in line and "'4155550101'" in line for line in lines)


def test_a_suppression_written_in_another_spelling_still_stops_the_message(tmp_path):
    from tests.helpers import make_plan

    with Ledger(tmp_path / "l.db") as led:
        plan = make_plan(2, channel="email", to=["ann@example.com", "bob@example.com"])
        led.load_plan(plan)
        led.add_suppressions([{"channel": "email", "address": " ANN@Example.com", "reason": "unsubscribe"}])
        assert led.skip_suppressed() == 1
    assert read_suppressions(tmp_path / "l.db")["address"].to_pylist() == ["ann@example.com"]
    assert canonical_addresses(["sms", "email"], ["+44 20 7946 0958", " Bob@X.org"]) == ["+442079460958", "bob@x.org"]
    assert canonical("email", pa.array(["no address"]))[0].to_pylist() == [None]


def test_a_timezone_in_other_letter_case_is_respelt_and_an_unknown_one_is_said(tmp_path):
    """'america/new_york' is America/New_York (quiet hours then hold in New York); a typo
    such as 'America/New_Yrok' is a bad row for validate and, when scoring, a line naming
    it (the user then gets the phone's zone or the default), never a silent default."""
    from engine.scoring.pipeline import score

    users = pa.table({"user_id": pa.array([1, 2, 3, 4], pa.int64()),
                      "timezone": ["america/new_york", " Europe/Paris ", "America/New_Yrok", "Asia/Tokyo"]})
    feather.write_feather(users, tmp_path / "users.arrow")
    checked = load_users(tmp_path / "users.arrow", on_bad_rows="quarantine", quarantine=tmp_path / "q.arrow")
    assert checked.table["timezone"].to_pylist() == ["America/New_York", "Europe/Paris", "Asia/Tokyo"]
    assert checked.rejected == 1 and checked.addresses["timezone"]["normalised"] == 2
    inferred = load_users(tmp_path / "users.arrow", infer_timezones=True)
    assert inferred.table["timezone"].to_pylist() == ["America/New_York", "Europe/Paris", None, "Asia/Tokyo"]
    assert inferred.addresses["timezone"] == {"normalised": 2, "not_an_address": 1, "examples": ["America/New_Yrok"]}
    many = pa.table({"user_id": pa.array(range(1, 41), pa.int64()),
                     "timezone": users["timezone"].to_pylist() + ["Asia/Tokyo"] * 36})
    feather.write_feather(many, tmp_path / "many.arrow")
    ids = [u for u in range(1, 41) for _ in range(1 + u % 4)]
    events = pa.table({"user_id": pa.array(ids, pa.int64()),
                       "ts": pa.array([1_790_000_000 + 86_400 * (k % 9) * (u % 5) for k, u in enumerate(ids)],
                                      pa.timestamp("s", tz="UTC")),
                       "event": ["session"] * len(ids)})
    scores = score(tmp_path / "many.arrow", events, as_of=1_794_000_000)
    assert scores["timezone"].to_pylist()[:2] == ["America/New_York", "Europe/Paris"]
    meta = scores.schema.metadata[b"winback.score"].decode()
    assert "America/New_Yrok" in meta
    line = [x for x in describe(inferred.addresses) if x.startswith("timezone")][0]
    assert "not an IANA timezone name" in line and "'America/New_Yrok'" in line
