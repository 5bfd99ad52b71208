"""Time: ``--as-of`` parsing, epoch seconds <-> Arrow timestamps, and local time.

Inside the numeric core every instant is ``int64`` seconds since the Unix epoch, UTC.

Local time has one implementation, used by the generator, scoring, planning, simulate,
report and explain.  :class:`Offsets` holds each zone's exact UTC-offset transitions
(found with ``zoneinfo`` and bisected to the second); :meth:`Offsets.at` looks offsets up
exactly.  The numba kernels take :meth:`Offsets.table`, the offsets at every
:data:`OFFSET_STEP` (15 minutes) derived from the same transitions: exact for every
transition on a 15-minute UTC boundary, which holds for every IANA zone since 2012
except three one-minute-off changes in Antarctica/Casey (2020-2022).  Half-hour zones
and half-hour DST changes (Australia/Lord_Howe) are exact.

Where a user's timezone is missing or invalid, :func:`infer_timezones` is the one rule
score and plan share (the phone number's country, then the engagement hours at scoring,
else the default).

Converting a local wall time to UTC (:func:`local_to_utc`) picks the first occurrence of
a repeated local time and shifts a skipped one forward by the size of the gap, the
convention of ``zoneinfo`` with ``fold=0``.
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

__all__ = ["parse_as_of", "to_epoch_seconds", "from_epoch_seconds", "iso_utc", "is_timezone", "check_timezone", "zone_index",
           "Offsets", "OffsetLookup", "OFFSET_STEP", "offset_table", "local_instants", "local_to_utc",
           "next_local_time", "next_local_hour", "infer_timezones", "TZ_SOURCES"]

#: seconds per slot of :meth:`Offsets.table` (15 minutes)
OFFSET_STEP = 900
_DAY = 86_400


def parse_as_of(value: str | dt.datetime | int | float | None) -> int:
    """Return ``value`` as epoch seconds (UTC). ``None`` means now; naive means UTC.

    Accepts ISO 8601 strings (``2026-11-01``, ``2026-11-01T12:00:00Z``,
    ``2026-11-01T12:00:00+01:00``), datetimes and epoch seconds; a date or datetime
    outside the years 1900-2199 is a :class:`ConfigError`.
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
    if not 1900 <= value.year < 2200:  # later ones overflow the calendars downstream
        raise ConfigError(f"as-of {value.isoformat()} is not between 1900 and 2199; use e.g. 2026-11-01 or "
                          "2026-11-01T12:00:00Z")
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


def iso_utc(seconds: int) -> str:
    """Epoch seconds as ISO 8601 UTC to the second, e.g. ``2026-11-01T00:00:00Z`` (for messages)."""
    return from_epoch_seconds(np.array([seconds])).to_pylist()[0].strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- timezones
#: every zone loaded in this process, kept: ``zoneinfo`` keeps only the last 8 it made alive
#: (its other instances go as soon as nobody holds them), and a step meets the same 20-odd
#: zones in several places (checks, offsets at the events, at the score, at the plan), each
#: reload reading and parsing the zone's file again
_ZONES: dict[str, zoneinfo.ZoneInfo] = {}


def _zone(name: str) -> zoneinfo.ZoneInfo:
    tz = _ZONES.get(name)
    if tz is None:
        tz = _ZONES[name] = zoneinfo.ZoneInfo(name)
    return tz


@functools.lru_cache(maxsize=4096)
def is_timezone(name: object) -> bool:
    """True when ``name`` is an IANA timezone name this machine's tz database knows."""
    if not isinstance(name, str) or not name or name != name.strip():
        return False
    try:
        _zone(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


@functools.lru_cache(maxsize=1)
def _zones_by_folded_name() -> dict[str, str]:
    import zoneinfo as zi

    return {z.casefold(): z for z in zi.available_timezones()}


@functools.lru_cache(maxsize=4096)
def canonical_timezone(name: object) -> str | None:
    """The IANA name ``name`` spells with other letter case or surrounding blanks
    (``america/new_york`` -> ``America/New_York``), or None when it names no zone."""
    if not isinstance(name, str):
        return None
    if is_timezone(name):
        return name
    return _zones_by_folded_name().get(name.strip().casefold())


def check_timezone(name: object, where: str) -> str:
    """``name`` if it is an IANA timezone, else a :class:`ConfigError` naming ``where``."""
    if not is_timezone(name):
        raise ConfigError(f"{where}: {name!r} is not an IANA timezone name; use e.g. 'America/New_York', "
                          "'Europe/Berlin' or 'UTC'")
    return str(name)


def zone_index(table, default: str, column: str = "timezone") -> tuple[list[str], np.ndarray]:
    """Distinct timezone names of ``table[column]`` (null -> ``default``) and each row's index (int64).

    A table without the column puts every row in ``default``.
    """
    import pyarrow.compute as pc

    if column not in table.column_names:
        return [default], np.zeros(table.num_rows, np.int64)
    col = pc.cast(table[column], pa.string()).fill_null(default)
    enc = (col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col).dictionary_encode()
    return enc.dictionary.to_pylist(), enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)


class Offsets:
    """Exact UTC offsets (seconds) of ``zones`` for instants in [``start``, ``end``] (epoch s).

    The offset is sampled with ``zoneinfo`` at noon UTC of each day; where it changes,
    the transition instant is found to the second by bisection.  Lookups are one
    ``searchsorted`` over (zone, instant) keys, never a per-instant ``zoneinfo`` call.
    Instants outside the range take the offset at its nearest end.
    """

    _BIG = 1 << 40  # > any epoch second we meet; zone * _BIG + ts orders by zone, then time
    #: days sampled only at their last noon when it shows the offset unchanged: two changes that
    #: cancel within 5 days would be missed, and no zone of the tz database has any closer than
    #: 7 days apart (1995-2031: Brazil, October 2000); a block with a change is sampled daily
    _BLOCK = 5

    def __init__(self, zones: list[str], start: int, end: int):
        self.zones = list(zones)
        day0 = int(start) // _DAY - 1
        n_days = max(1, (int(end) - int(start)) // _DAY + 3)
        keys, offs = [], []
        at = dt.datetime.fromtimestamp
        ends = [(day0 + min(d0 + self._BLOCK, n_days) - 1) * _DAY + 43_200 for d0 in range(0, n_days, self._BLOCK)]
        for z, name in enumerate(self.zones):
            tz = _zone(name)

            def off(t: int, tz=tz) -> dt.timedelta:  # whole seconds (TZif offsets are), compared as is
                return at(t, tz).utcoffset()

            prev = off(day0 * _DAY)
            keys.append(z * self._BIG)
            offs.append(prev)
            # each block's last noon first; a block whose last noon shows the offset unchanged is
            # skipped (see _BLOCK), and after a block is sampled prev is its last noon's offset
            for d0, last in zip(range(0, n_days, self._BLOCK), [at(t, tz).utcoffset() for t in ends]):
                if last == prev:
                    continue
                for d in range(d0, min(d0 + self._BLOCK, n_days)):
                    t = (day0 + d) * _DAY + 43_200
                    o = off(t)
                    if o != prev:
                        lo, hi = t - _DAY, t          # the change happens in (lo, hi]
                        while hi - lo > 1:
                            mid = (lo + hi) // 2
                            lo, hi = (mid, hi) if off(mid) == prev else (lo, mid)
                        keys.append(z * self._BIG + hi)
                        offs.append(o)
                        prev = o
        self.keys = np.array(keys, dtype=np.int64)
        self.offs = np.array([int(o.total_seconds()) for o in offs], dtype=np.int64)

    def at(self, zone: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Offset (s) in ``zone`` (index into the zones) at UTC instants ``ts`` (epoch s)."""
        k = np.asarray(zone, np.int64) * self._BIG + np.clip(ts, 0, self._BIG - 1)
        return self.offs[np.searchsorted(self.keys, k, side="right") - 1]

    def to_utc(self, zone: np.ndarray, local: np.ndarray) -> np.ndarray:
        """UTC instants (epoch s) of local wall-clock times written as epoch seconds.

        A wall-clock time that a DST change skips moves by the size of the change; one it
        repeats takes one of its two instants (see :func:`local_to_utc` for fold=0).
        """
        return local - self.at(zone, local - self.at(zone, local))

    def table(self, start: int, end: int) -> tuple[np.ndarray, int]:
        """``(table, t0)``: int32 offsets [zone, slot] at ``t0 + OFFSET_STEP * slot`` for
        slots covering [start, end], for numba kernels (index ``(t - t0) // OFFSET_STEP``)."""
        t0 = (int(start) // OFFSET_STEP) * OFFSET_STEP
        n = max(1, (int(end) - t0) // OFFSET_STEP + 2)
        out = np.empty((len(self.zones), n), np.int32)
        zone_of = self.keys // self._BIG
        # slot s shows the offset of the last change at or before t0 + OFFSET_STEP * s: each change
        # fills its slots from ceil((t - t0) / OFFSET_STEP) on (what at() gives, without a search per slot)
        first = np.clip(-((t0 - (self.keys - zone_of * self._BIG)) // OFFSET_STEP), 0, n)
        for k in range(len(self.keys)):
            out[zone_of[k], first[k]:] = self.offs[k]
        return out, t0


def offset_table(zones: list[str], start: int, end: int) -> tuple[np.ndarray, int]:
    """UTC offsets (int32 s) per zone and :data:`OFFSET_STEP` slot in [start, end]; ``(table, t0)``."""
    return Offsets(zones, start, end).table(start, end)


class OffsetLookup:
    """UTC offset (seconds) of zone ``z`` at instant ``t``, vectorised over an offset table."""

    def __init__(self, table: np.ndarray, t0: int):
        self.table = np.ascontiguousarray(table)
        self.t0 = int(t0)

    def __call__(self, zone: np.ndarray, t: np.ndarray) -> np.ndarray:
        h = np.clip((np.asarray(t, np.int64) - self.t0) // OFFSET_STEP, 0, self.table.shape[1] - 1)
        return self.table[zone, h].astype(np.int64)

    def local(self, zone, t):
        """Local wall time (naive epoch seconds) of UTC instants ``t``."""
        return np.asarray(t, np.int64) + self(zone, t)


def local_instants(table, at: np.ndarray, default: str = "UTC") -> np.ndarray:
    """Local wall time (naive epoch seconds) of each row's UTC instant ``at`` in its ``timezone``."""
    at = np.asarray(at, np.int64)
    if not len(at):
        return at.copy()
    zones, zone = zone_index(table, default)
    return at + Offsets(zones, int(at.min()) - _DAY, int(at.max()) + _DAY).at(zone, at)


def local_to_utc(off: OffsetLookup, zone: np.ndarray, local: np.ndarray) -> np.ndarray:
    """UTC instants whose local wall time in ``zone`` is ``local`` (seconds, naive)."""
    local = np.asarray(local, np.int64)
    o_before = off(zone, local - 14 * 3600)
    o_after = off(zone, local + 14 * 3600)
    u_b = local - o_before
    u_a = local - o_after
    ok_b = off(zone, u_b) == o_before
    ok_a = off(zone, u_a) == o_after
    both = ok_b & ok_a
    out = np.where(ok_b, u_b, np.where(ok_a, u_a, u_b))  # neither: a gap -> shift forward (u_b)
    return np.where(both, np.minimum(u_a, u_b), out)


def next_local_time(off: OffsetLookup, zone: np.ndarray, after: np.ndarray, minute_of_day: np.ndarray) -> np.ndarray:
    """First instant >= ``after`` at local ``minute_of_day`` (0..1439) in each user's zone."""
    after = np.asarray(after, np.int64)
    loc = off.local(zone, after)
    day = loc // _DAY
    cand = day * _DAY + np.asarray(minute_of_day, np.int64) * 60
    t = local_to_utc(off, zone, cand)
    later = t < after
    if later.any():
        t = np.where(later, local_to_utc(off, zone, cand + _DAY), t)
    later = t < after
    if later.any():  # a DST day can need one more day
        t = np.where(later, local_to_utc(off, zone, cand + 2 * _DAY), t)
    return t


def next_local_hour(zones: list[str], after: int) -> np.ndarray:
    """[n_zones, 24] int64: the first UTC instant > ``after`` at local ``h``:00 in each zone."""
    after = int(after)
    table, t0 = offset_table(zones, after - 2 * _DAY, after + 4 * _DAY)
    off = OffsetLookup(table, t0)
    z = np.repeat(np.arange(len(zones), dtype=np.int64), 24)
    h = np.tile(np.arange(24, dtype=np.int64), len(zones))
    return next_local_time(off, z, np.full(len(z), after + 1), h * 60).reshape(len(zones), 24)


# --------------------------------------------------------------------------- inference
#: where a user's timezone came from (``timezone_source`` in users and scores)
TZ_SOURCES = ("given", "phone", "hours", "default")


def infer_timezones(timezone: pa.Array | None, phone: pa.Array | None, n: int | None = None
                    ) -> tuple[pa.Array, pa.Array]:
    """The timezone rule every step uses: ``(zones, sources)``, one per user (``n`` users: needed
    only when both columns are absent).

    A valid IANA ``timezone`` is kept (``given``).  A missing or invalid one is inferred
    from the phone number's country and prefix (``phone``, via the ``phonenumbers``
    library: only when the number maps to exactly one zone; +34 mobiles, Canary or
    Madrid, do not; answers remembered between runs, :mod:`engine.phonezones`).  Else the
    zone is null (``default``).  Scoring then infers it from the user's engagement hours
    where the evidence is strong (``hours``, :mod:`engine.scoring.tzhours`); a user still
    without one has their hours learned in its ``--default-timezone`` and planning sends in
    the campaign's timezone at the same UTC instant (see ``engine.planning.steps``).
    """
    import pyarrow.compute as pc

    if timezone is not None or phone is not None:
        n = len(timezone) if timezone is not None else len(phone)
    elif n is None:
        raise ValueError("infer_timezones needs n, the number of users, when neither column is given")
    if timezone is None:
        zones = pa.nulls(n, pa.string())
    else:  # each distinct name is checked once, not each user's
        col = pc.utf8_trim_whitespace(pa.array(timezone).cast(pa.string()))
        enc = col.dictionary_encode()
        names = enc.dictionary.to_pylist()
        valid = pa.array([is_timezone(z) for z in names], pa.bool_())
        zones = pc.if_else(pc.fill_null(valid.take(enc.indices), False), col, pa.scalar(None, pa.string()))
    missing = zones.is_null().to_numpy(zero_copy_only=False)
    source = np.where(missing, TZ_SOURCES.index("default"), 0).astype(np.int8)
    if phone is not None and missing.any():  # only the users still without a zone ask their phone
        need = np.nonzero(missing)[0]
        phones = pa.array(phone).cast(pa.string()).take(pa.array(need)).to_pylist()
        from engine import phonezones

        found = [_one_zone(phonezones.zones_for(p.strip())) if p else None for p in phones]
        phonezones.save()
        hit = np.array([f is not None for f in found], bool)
        if hit.any():
            by_phone = np.full(n, None, object)
            by_phone[need] = found
            zones = pc.coalesce(zones, pa.array(by_phone, pa.string()))
            source[need[hit]] = 1
    labels = pa.DictionaryArray.from_arrays(pa.array(source, pa.int8()), pa.array(list(TZ_SOURCES)))
    return zones, labels.cast(pa.string())


def _one_zone(zones: list[str]) -> str | None:
    """The phone's zone when exactly one valid zone is left, else None."""
    valid = [z for z in zones if is_timezone(z)]
    return valid[0] if len(valid) == 1 else None
