"""Time helpers: parse ``--as-of``, convert between epoch seconds and Arrow timestamps, and
the one timezone rule of score and plan (:func:`infer_timezones`).

Inside the numeric core every instant is ``int64`` seconds since the Unix epoch, UTC.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
import zoneinfo

import numpy as np
import pyarrow as pa

from engine.errors import ConfigError
from engine.schema import TIMESTAMP

__all__ = ["parse_as_of", "to_epoch_seconds", "from_epoch_seconds", "infer_timezones", "is_timezone", "TZ_SOURCES"]


def parse_as_of(value: str | dt.datetime | int | float | None) -> int:
    """Return ``value`` as epoch seconds (UTC). ``None`` means now; naive means UTC.

    Accepts ISO 8601 strings (``2026-11-01``, ``2026-11-01T12:00:00Z``,
    ``2026-11-01T12:00:00+01:00``), datetimes and epoch seconds.
    """
    if value is None:
        return int(time.time())
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ConfigError(
                f"as-of {value!r} is not an ISO 8601 date or time; "
                "use e.g. 2026-11-01 or 2026-11-01T12:00:00Z"
            ) from None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return int(value.timestamp())


def to_epoch_seconds(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Arrow timestamps (any unit; naive read as UTC) to int64 epoch seconds; nulls become INT64_MIN."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    unit = arr.type.unit
    ints = arr.cast(pa.int64())
    out = ints.fill_null(np.iinfo(np.int64).min).to_numpy(zero_copy_only=False)
    div = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[unit]
    if div != 1:
        null = out == np.iinfo(np.int64).min
        out = np.floor_divide(out, div)
        out[null] = np.iinfo(np.int64).min
    return out


def from_epoch_seconds(seconds: np.ndarray, null_mask: np.ndarray | None = None) -> pa.Array:
    """int64 epoch seconds to ``timestamp[us, UTC]``; ``null_mask`` True marks nulls."""
    us = np.asarray(seconds, dtype=np.int64) * 1_000_000
    return pa.array(us, type=TIMESTAMP, mask=null_mask)


# -- the one timezone rule of score and plan ------------------------------------------------------
#: where a user's timezone came from (``timezone_source`` in users and scores)
TZ_SOURCES = ("given", "phone", "default")


def is_timezone(name: str) -> bool:
    """True for an IANA timezone name zoneinfo knows (``Europe/Paris``)."""
    return _zone_ok(name)


def infer_timezones(timezone: pa.Array | None, phone: pa.Array | None) -> tuple[pa.Array, pa.Array]:
    """The timezone rule every step uses: ``(zones, sources)``, one per user.

    A valid IANA ``timezone`` is kept (``given``).  A missing or invalid one is inferred
    from the phone number's country and prefix (``phone``, via the ``phonenumbers``
    library: only when the number maps to exactly one zone; +34 mobiles, Canary or
    Madrid, do not).  Else the zone is null (``default``): scoring then learns the
    user's hours in its ``--default-timezone`` and planning sends in the campaign's
    timezone at the same UTC instant (see ``engine.planning.steps``).
    """
    n = len(timezone) if timezone is not None else (len(phone) if phone is not None else 0)
    given = [None] * n if timezone is None else pa.array(timezone).cast(pa.string()).to_pylist()
    zones = [z if z is not None and _zone_ok(z.strip()) else None for z in given]
    zones = [z.strip() if z else None for z in zones]
    source = [0 if z is not None else 2 for z in zones]
    if phone is not None and any(s == 2 for s in source):
        phones = pa.array(phone).cast(pa.string()).to_pylist()
        for i, (z, p) in enumerate(zip(zones, phones)):
            if z is None and p:
                found = _phone_zone(p.strip())
                if found is not None:
                    zones[i], source[i] = found, 1
    labels = pa.DictionaryArray.from_arrays(pa.array(source, pa.int8()), pa.array(list(TZ_SOURCES)))
    return pa.array(zones, pa.string()), labels.cast(pa.string())


@functools.lru_cache(maxsize=65536)
def _zone_ok(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _phone_zone(number: str) -> str | None:
    """The one zone ``phonenumbers`` maps an E.164 number to, else None (unknown, several
    zones, not E.164).  Numbers sharing their first 9 characters share the answer (the
    library maps zones by prefix), so each prefix is parsed once."""
    if not number.startswith("+"):
        return None
    digits = "+" + "".join(ch for ch in number if ch.isdigit())
    if len(digits) < 8:
        return None
    key = digits[:9]
    if key in _PREFIX_ZONES:
        return _PREFIX_ZONES[key]
    try:
        import phonenumbers
        from phonenumbers import timezone as pn_tz
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    try:
        zones = [z for z in pn_tz.time_zones_for_number(phonenumbers.parse(digits, None))
                 if z != "Etc/Unknown" and _zone_ok(z)]
    except phonenumbers.NumberParseException:
        zones = []
    if len(_PREFIX_ZONES) < 1 << 16:
        _PREFIX_ZONES[key] = zones[0] if len(zones) == 1 else None
    return zones[0] if len(zones) == 1 else None


_PREFIX_ZONES: dict[str, str | None] = {}
