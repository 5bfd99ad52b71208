"""Ad-platform audiences: the platforms' documented normalisation and hash examples and the
file limits (the ads adapter's durable, rerunnable parts: tests/adapters/test_ads.py)."""

from __future__ import annotations

import json

import pytest

from engine.sending.audience import LIMITS, audience_row, normalise, sha256, split_rows


# -- Meta: the examples of Meta's customer information parameters ----------------------------

@pytest.mark.parametrize("kind, raw, normalised, digest", [
    ("email", "John_Smith@gmail.com", "john_smith@gmail.com",
     "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"),
    ("phone", "+1 (650) 555-1212", "16505551212",
     "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"),
    ("first_name", "Mary", "mary", "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"),
    ("first_name", "Valéry", "valéry", "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c"),
])
def test_meta_normalisation_and_hash_match_the_documented_examples(kind, raw, normalised, digest):
    assert normalise(kind, raw, "meta") == normalised
    assert sha256(normalised) == digest


def test_meta_phone_is_digits_with_country_code_and_refuses_a_national_number():
    assert normalise("phone", "0044 20 7183 8750", "meta") == "442071838750"
    assert normalise("phone", "650 555 1212", "meta") is None          # no country code: unusable
    assert normalise("country", "DE", "meta") == "de"


# -- Google: the examples of the Data Manager API's formatting rules ---------------------------

@pytest.mark.parametrize("kind, raw, normalised", [
    ("email", "cloudy.sanfrancisco+shopping@gmail.com", "cloudysanfrancisco@gmail.com"),
    ("email", "user.name+NYC@Example.com", "user.name+nyc@example.com"),
    ("email", " Ann.Lee@GoogleMail.com ", "annlee@googlemail.com"),
    ("phone", "+1 (800) 555-0100", "+18005550100"),
    ("country", "us", "US"),
])
def test_google_normalisation_matches_the_documented_examples(kind, raw, normalised):
    assert normalise(kind, raw, "google") == normalised


def test_one_row_per_user_with_every_identifier_hashed_as_each_platform_wants():
    ids = {"email": "Ann@Example.com", "phone": "+1 650 555 1212", "first_name": "Ann", "last_name": "Lee",
           "country": "US", "zip": "94043-1351"}
    meta = audience_row(json.dumps(ids), "meta")
    assert meta == (sha256("ann@example.com"), sha256("16505551212"), sha256("ann"), sha256("lee"),
                    sha256("94043"), sha256("us"))
    google = audience_row(ids, "google")
    assert google == (sha256("ann@example.com"), sha256("+16505551212"), sha256("ann"), sha256("lee"), "US",
                      "94043-1351")
    # without a last name Google cannot match the address: it is left blank, not half filled
    assert audience_row({"email": "a@b.co", "first_name": "Ann", "country": "US"}, "google")[2:] == ("",) * 4
    assert audience_row({"phone": "555 1212"}, "meta") is None        # nothing usable


def test_files_split_at_the_platform_limits():
    rows = [("e" * 64, "p" * 64, "", "", "", "")] * 25_001
    meta = split_rows(rows, "meta")
    assert [len(p) for p in meta] == [10_000, 10_000, 5_001] and LIMITS["meta"][0] == 10_000
    assert [len(p) for p in split_rows(rows, "google")] == [25_001]   # 50,002 identifiers: under 100,000
    many = [("e", "p", "f", "l", "US", "1")] * 40_000  # 3 identifiers a row
    assert [len(p) for p in split_rows(many, "google")] == [33_333, 6_667]
    assert [len(p) for p in split_rows(rows[:5], "meta", start_rows=9_998)] == [2, 3]
