"""Ad-platform audience rows: each platform's normalisation, hashing, columns and limits.

One row per user with every identifier the platform takes, SHA-256 hex of the
normalised value (lower-case hex, no salt).

**Meta Custom Audiences** (customer list; Meta's "customer information parameters"):
columns ``email, phone, fn, ln, zip, country``, all hashed.

- email: trim, lower-case (``" John_Smith@gmail.com"`` -> ``john_smith@gmail.com``);
- phone: digits only with the country code, no ``+``, no leading zeros
  (``+1 (650) 555-1212`` -> ``16505551212``); a number without an international
  prefix (``+`` or ``00``) is left out, as Meta needs the country code;
- fn, ln: lower-case letters only, no punctuation or spaces, UTF-8 (``Valéry`` ->
  ``valéry``);
- zip: lower-case, no spaces or dashes (US: the first 5 digits);
- country: ISO 3166-1 alpha-2, lower-case (``DE`` -> ``de``).

Limit: 10,000 rows per upload request, so a file holds at most 10,000 rows.

**Google Customer Match** (Google Ads customer data file; the Data Manager API's
formatting rules): columns ``Email, Phone, First Name, Last Name, Country, Zip``;
Email, Phone and the names hashed, Country and Zip in clear.

- email: lower-case, every space removed; for ``gmail.com`` / ``googlemail.com`` the
  dots and any ``+suffix`` of the local part removed
  (``cloudy.sanfrancisco+shopping@gmail.com`` -> ``cloudysanfrancisco@gmail.com``;
  ``user.name+NYC@Example.com`` -> ``user.name+nyc@example.com``);
- phone: E.164, ``+`` and digits (``+1 (800) 555-0100`` -> ``+18005550100``);
- first / last name: lower-case, trimmed; country: two upper-case letters; zip as given.
  The address (names, country, zip) is matched only when all four are present, so it is
  left blank otherwise.

Limit: 100,000 identifiers per upload request (each of email, phone and the address
counts one), so a file holds rows up to 100,000 identifiers.
"""

from __future__ import annotations

import hashlib
import json
import re

__all__ = ["PLATFORMS", "COLUMNS", "LIMITS", "normalise", "audience_row", "split_rows", "row_identifiers",
           "sha256"]

PLATFORMS = ("meta", "google")
COLUMNS = {"meta": ("email", "phone", "fn", "ln", "zip", "country"),
           "google": ("Email", "Phone", "First Name", "Last Name", "Country", "Zip")}
#: (rows per file, identifiers per file)
LIMITS = {"meta": (10_000, None), "google": (None, 100_000)}

_DIGITS = re.compile(r"\D")
_SPACE = re.compile(r"\s+")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _email(value: str, platform: str) -> str | None:
    e = _SPACE.sub("", value).lower() if platform == "google" else value.strip().lower()
    if not _EMAIL.match(e):
        return None
    if platform == "google":
        local, _, domain = e.partition("@")
        if domain in ("gmail.com", "googlemail.com"):
            local = local.split("+", 1)[0].replace(".", "")
            e = f"{local}@{domain}" if local else ""
    return e or None


def _phone(value: str, platform: str) -> str | None:
    v = value.strip()
    if v.startswith("+"):
        digits = _DIGITS.sub("", v)
    elif v.startswith("00"):
        digits = _DIGITS.sub("", v)[2:]
    else:
        return None                      # no international prefix: the country code is unknown
    digits = digits.lstrip("0")
    if not 7 <= len(digits) <= 15:
        return None
    return digits if platform == "meta" else "+" + digits


def _name(value: str, platform: str) -> str | None:
    if platform == "meta":
        n = "".join(ch for ch in value.lower() if ch.isalpha())
    else:
        n = value.strip().lower()
    return n or None


def _zip(value: str, platform: str) -> str | None:
    z = value.strip()
    if platform == "meta":
        z = re.sub(r"[\s-]", "", z).lower()
        if re.fullmatch(r"\d{9}", z):     # US ZIP+4: the first five digits
            z = z[:5]
    return z or None


def _country(value: str, platform: str) -> str | None:
    c = value.strip()
    if not re.fullmatch(r"[A-Za-z]{2}", c):
        return None
    return c.lower() if platform == "meta" else c.upper()


_NORMALISE = {"email": _email, "phone": _phone, "first_name": _name, "last_name": _name, "zip": _zip,
              "country": _country}


def normalise(kind: str, value: str, platform: str) -> str | None:
    """``value`` of identifier ``kind`` (email, phone, first_name, last_name, zip,
    country) normalised for ``platform``; None when it cannot be used."""
    if platform not in PLATFORMS:
        raise ValueError(f"unknown ad platform {platform!r}; use one of {', '.join(PLATFORMS)}")
    if value is None or not str(value).strip():
        return None
    return _NORMALISE[kind](str(value), platform)


def audience_row(identifiers: dict | str, platform: str) -> tuple[str, ...] | None:
    """The platform's row (``COLUMNS[platform]`` order, "" for a blank) for one user's
    identifiers (a dict or its JSON text); None when no identifier is usable."""
    ids = json.loads(identifiers) if isinstance(identifiers, str) else identifiers
    n = {k: normalise(k, ids.get(k), platform) for k in _NORMALISE}
    if platform == "meta":
        row = tuple("" if n[k] is None else sha256(n[k])
                    for k in ("email", "phone", "first_name", "last_name", "zip", "country"))
        return row if row[0] or row[1] else None
    address = all(n[k] for k in ("first_name", "last_name", "country", "zip"))
    row = ("" if n["email"] is None else sha256(n["email"]), "" if n["phone"] is None else sha256(n["phone"]),
           sha256(n["first_name"]) if address else "", sha256(n["last_name"]) if address else "",
           n["country"] if address else "", n["zip"] if address else "")
    return row if row[0] or row[1] or address else None


def row_identifiers(row: tuple[str, ...], platform: str) -> int:
    """How many identifiers a row counts toward the platform's limit."""
    if platform == "meta":
        return sum(1 for v in row if v)
    return int(bool(row[0])) + int(bool(row[1])) + int(bool(row[2]))


def split_rows(rows: list[tuple[str, ...]], platform: str, start_rows: int = 0,
               start_ids: int = 0) -> list[list[tuple[str, ...]]]:
    """``rows`` cut into files within the platform's limits; the first file already
    holds ``start_rows`` rows and ``start_ids`` identifiers (appending to a part)."""
    max_rows, max_ids = LIMITS[platform]
    parts: list[list] = [[]]
    n_rows, n_ids = start_rows, start_ids
    for r in rows:
        k = row_identifiers(r, platform)
        if (max_rows is not None and n_rows + 1 > max_rows) or (max_ids is not None and n_ids + k > max_ids):
            parts.append([])
            n_rows, n_ids = 0, 0
        parts[-1].append(r)
        n_rows += 1
        n_ids += k
    return parts
