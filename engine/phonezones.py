"""A phone number's timezones, by its prefix, remembered between runs.

``phonenumbers`` maps a number to its zones by prefix (``phonenumbers.timezone``).  Its
import compiles a few dozen regular expressions and each new country loads its metadata
(20 ms for the first answer of a process; about 50 us per new prefix after that, so a
million users with phones but no timezone ask for seconds).  The answers depend only on
the prefix and the library's data, so they are kept in a small JSON file
(:func:`cache_path`) stamped with the installed library's file, and a later run answers
known prefixes without importing the library at all.  A missing, stale or unreadable file
is simply rebuilt; ``WINBACK_CACHE_DIR=""`` turns the file off.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

from engine import cachefile

__all__ = ["zones_for", "cache_path", "save", "PREFIX"]

#: numbers sharing their first PREFIX characters ("+" and 8 digits) share the answer
PREFIX = 9
_MAX = 1 << 16  # prefixes kept (a few MiB of JSON at most)

_answers: dict[str, list[str]] | None = None
_dirty = False
_stamp: str | None = None


def cache_path() -> Path | None:
    """``$WINBACK_CACHE_DIR`` (empty: no file), else ``$XDG_CACHE_HOME/winback``, else
    ``~/.cache/winback``; in it one file per installed library, ``phone-zones-<stamp>.json``
    (two environments on one machine, each with its own phonenumbers, do not take turns
    rewriting one file)."""
    base = os.environ.get("WINBACK_CACHE_DIR")
    if base == "":
        return None
    if base is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(base, "winback")
    return Path(base) / f"phone-zones-{hashlib.sha256(_library_stamp().encode()).hexdigest()[:12]}.json"


def _library_stamp() -> str:
    """The installed ``phonenumbers``: its package file's path, size and change time (a new
    version rewrites it), found without importing it."""
    global _stamp
    if _stamp is None:
        spec = importlib.util.find_spec("phonenumbers")
        origin = getattr(spec, "origin", None) or ""
        try:
            st = os.stat(origin)
            _stamp = f"{origin}:{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            _stamp = "unknown"
    return _stamp


def _load() -> dict[str, list[str]]:
    """The remembered answers, as the file holds them: each is checked when it is asked for
    (:func:`_known`), not all of them at every start (a few ms for the 7,000 prefixes of a
    million users)."""
    global _answers
    if _answers is None:
        _answers = {}
        path = cache_path()
        if path is not None:
            try:
                data = json.loads(path.read_text())
                if data.get("library") == _library_stamp() and isinstance(data.get("zones"), dict):
                    _answers = data["zones"]
            except (OSError, ValueError, AttributeError):
                pass
    return _answers


def _known(answers: dict, key: str) -> list[str] | None:
    """``answers[key]`` when it is a list of zone names (what :func:`save` writes), else None."""
    zones = answers.get(key)
    if isinstance(zones, list) and all(isinstance(z, str) for z in zones):
        return zones
    return None


def zones_for(number: str) -> list[str]:
    """The zones ``phonenumbers`` maps an E.164 number to (its ``Etc/Unknown`` left out;
    empty when it is unknown or not E.164).  Each prefix is asked once."""
    global _dirty
    if not number.startswith("+"):
        return []
    digits = "+" + "".join(ch for ch in number if ch.isdigit())
    if len(digits) < 8:
        return []
    key = digits[:PREFIX]
    answers = _load()
    known = _known(answers, key)
    if known is not None:
        return known
    try:
        import phonenumbers
        from phonenumbers import timezone as pn_tz
    except ImportError:  # pragma: no cover - a declared dependency
        return []
    try:
        zones = [z for z in pn_tz.time_zones_for_number(phonenumbers.parse(digits, None)) if z != "Etc/Unknown"]
    except phonenumbers.NumberParseException:
        zones = []
    if len(answers) < _MAX:
        answers[key] = zones
        _dirty = True
    return zones


def save() -> None:
    """Write the answers learnt in this process (whole or not at all); silent when the cache
    directory cannot be written."""
    global _dirty
    path = cache_path()
    if not _dirty or path is None or _answers is None:
        return
    _dirty = False
    data = json.dumps({"library": _library_stamp(), "zones": _answers}, separators=(",", ":"))
    cachefile.write_quietly(path, data.encode())
