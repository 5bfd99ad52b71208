"""The campaign file's schema: one declarative table per TOML table, :data:`SCHEMA`.

Each key -> :class:`Key` (kind, default, range, one-line doc).  Adding a key to a table
is one line here (and a field where the value is used, :mod:`engine.planning.campaign`).
Validation is strict: an unknown key is an error that names the key, its table and the
nearest valid key (``difflib``); a wrong type or a value out of range is an error naming
the key and what is allowed.  Every error is one line, a
:class:`~engine.errors.ConfigError` (exit code 2).
"""

from __future__ import annotations

import datetime as _dt
import difflib
import re
from dataclasses import dataclass
from typing import Any

from engine.errors import ConfigError
from engine.schema import CHANNELS, MAX_CAP, PROVIDER_CHANNELS, THEME_CODE, THEMES
from engine.tz import is_timezone, parse_as_of

__all__ = ["SCHEMA", "SECTIONS", "Key", "EXIT_RULES", "schema_keys", "table", "error", "unknown", "instant_in_range"]

#: what ends a user's drip (``[[steps]] exit_on``): any activity (session, purchase,
#: click), a purchase, a click on a message, or nothing
EXIT_RULES = ("activity", "click", "purchase", "none")


# -- the schema ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Key:
    """One key of a TOML table: ``kind`` (see :data:`_KINDS`), default, range, doc.

    ``lo``/``hi``: inclusive bounds for numbers (``lo_open``: ``lo`` excluded);
    ``choices``: allowed values; ``required``: no default.
    """

    kind: str
    default: Any = None
    doc: str = ""
    lo: float | None = None
    hi: float | None = None
    choices: tuple | None = None
    required: bool = False
    lo_open: bool = False
    #: what a value names (``theme``): the error then says "unknown theme 'x'"
    noun: str | None = None
    #: kind ``table``: the :data:`SCHEMA` table its value is checked against (``offers.cost``)
    table: str | None = None


_CH = ", ".join(CHANNELS)
_PCH = ", ".join(PROVIDER_CHANNELS)

#: table name -> {key: Key}.  ``steps``, ``variants`` and ``offers`` describe each ``[[steps]]`` /
#: ``[[variants]]`` / ``[[offers]]`` entry, ``templates.*`` each ``[templates.NAME]``,
#: ``offers.cost`` the ``cost`` table of an offer.
SCHEMA: dict[str, dict[str, Key]] = {
    "campaign": {
        "id": Key("id", required=True, doc="seeds the holdout and variant hashes; keep it stable across reruns"),
        "name": Key("str", None, "shown in reports (default: the id)"),
        "timezone": Key("tz", "UTC", "IANA timezone for users whose timezone is unknown"),
        "holdout": Key("float", 0.10, "share of the audience never messaged, to measure lift", 0.0, 0.5),
        "approved": Key("bool", False, "allows a whole-base audience (the broadcast guard)"),
        "as_of": Key("instant", None, "campaign start (UTC); --as-of overrides"),
        "ends_at": Key("instant", None, "no message goes after this instant (UTC), however late the sender "
                                        "runs; default: the start + every step's delay + 10 days"),
    },
    "audience": {
        "where": Key("str", "", "the audience rule over the scores' columns"),
        "presets": Key("strs", [], "preset names and-ed with where"),
        "preset": Key("strs", [], "one preset name (same as presets)"),
    },
    "policy": {
        "max_messages": Key("int", 3, "cross-channel cap per window, over every campaign in the ledger", 1, MAX_CAP),
        "window_days": Key("int", 7, "the cap's window in days (7 or 30: the windows scores count sends in)",
                           choices=(7, 30)),
        "min_gap_hours": Key("float", 16.0, "minimum hours between two messages to one user", 0, 24 * 30),
        "quiet_hours": Key("quiet", ["21:00", "08:00"], "local [start, end) with no sends; [] for none"),
        "channel_caps": Key("chanmap", {}, "per-channel cap in the same window, e.g. { sms = 1 }"),
        "capacity_per_hour": Key("chanmap", {}, "per-channel sends per UTC hour; excess is load-levelled"),
        "sunset": Key("bool", True, "users who get the whole sequence and do not come back are sunset"),
        "sunset_after": Key("int", 0, "sunset after this many unanswered messages of the campaign "
                            "(0 = the whole sequence)", 0, 100),
        "broadcast_share": Key("float", 0.80, "share of the reachable base that makes an audience a broadcast",
                               0.0, 1.0, lo_open=True),
        "complaint_suppresses": Key("str", "all", "a spam complaint suppresses every marketing channel "
                                    "('all') or only its own ('channel')", choices=("all", "channel")),
        "survey_actions": Key("str", None, "a report's survey_actions.csv to act on (relative to the campaign "
                              "file): lower_cap users get at most survey_cap messages, sunset users none"),
        "survey_cap": Key("int", 1, "the cap of survey_actions' lower_cap users in the first window", 0, 1000),
    },
    "steps": {
        "name": Key("str", required=True, doc="unique step name"),
        "delay_days": Key("float", 0.0, "days after the previous step's message", 0, 365),
        "channels": Key("channels", required=True, doc=f"allowed channels in preference order ({_PCH})"),
        "template": Key("str", None, "a [templates.NAME] (default: the step's name)"),
        "exit_on": Key("str", "activity", "what ends the user's drip before this step", choices=EXIT_RULES),
        "items": Key("int", 3, "items per message (with a catalogue)", 0, 20),
        "theme": Key("str", None, "a pinned content theme", choices=THEMES, noun="theme"),
        "themes": Key("thememap", {}, "weight per content theme (0 = never)"),
        "where": Key("str", None, "the step's own rule over the scores; other users get reason not_in_step"),
        "kind": Key("str", "message", "message, or survey (a one-click 'why did you leave?' message)",
                    choices=("message", "survey")),
        "reasons": Key("names", None, "a survey step's answers, lower-case names (default: the five standard ones)"),
        "survey_url": Key("str", None, "a survey step's landing page (http or https) that posts the signed reason"),
    },
    "variants": {
        "name": Key("str", required=True, doc="variant name"),
        "weight": Key("float", 1.0, "relative share of the treated audience", 0, None, lo_open=True),
        "subject": Key("str", None, "the variant's subject for its steps; {{ field }} placeholders"),
        "body": Key("str", None, "the variant's message text for its steps"),
        "template": Key("str", None, "a [templates.NAME] the variant uses instead (not with subject/body)"),
        "offer": Key("str", None, "an [[offers]] name every user of the variant may get, or \"none\""),
        "steps": Key("names", [], "the steps the variant changes (default: every step)"),
    },
    "offers": {
        "name": Key("str", required=True, doc="offer name: 1-60 letters, digits, '-', '_' or '.'"),
        "where": Key("str", "", "who may get it (a rule over the scores; the first matching offer wins)"),
        "text": Key("str", None, "the {{ offer }} text in templates (default: the name)"),
        "codes": Key("str", None, "a file of unique codes, one a line ({{ offer_code }}), relative to the campaign"),
        "cost": Key("table", required=True, doc="cost per redeemed order: { fixed = 5.0, share = 0.1 }",
                    table="offers.cost"),
    },
    "offers.cost": {
        "fixed": Key("float", 0.0, "currency per redeemed order", 0, None),
        "share": Key("float", 0.0, "share of the order value", 0, 1),
    },
    "templates.*": {
        "subject": Key("str", "", "email subject; {{ field }} placeholders"),
        "body": Key("str", required=True, doc="message text; {{ field }} placeholders"),
    },
    "content": {
        "new_days": Key("float", 90.0, "'new' = added after the user's last activity and within this many days",
                        0, None),
        "leaving_days": Key("float", 14.0, "'leaving soon' = expiring within this many days", 0, None),
        "min_confidence": Key("float", 1.0, "decayed item interactions below which tastes are not trusted",
                              0, None),
        "broaden_share": Key("float", 0.05, "'broaden' takes categories with a smaller share", 0, 1),
        "pool": Key("int", 2000, "candidates considered per theme list", 1, None),
        "repeat_penalty": Key("float", 0.5, "value factor of a theme already sent at an earlier step", 0, 1),
        "explore": Key("float", 0.0, "share of users whose theme is drawn at random", 0, 1),
    },
}
#: top-level tables, and whether each is an array of tables
SECTIONS = {"campaign": False, "audience": False, "policy": False, "steps": True, "variants": True,
            "templates": False, "content": False, "offers": True}


#: the instants a campaign may name (epoch s): 1970-01-01 to 2200-01-01 (later ones overflow
#: the calendars and timestamps every plan is computed in)
INSTANT_MIN, INSTANT_MAX = 0, 7_258_118_400


def instant_in_range(value) -> int | None:
    """``value`` (ISO 8601 text) in epoch seconds when it parses and lies from 1970 to 2199
    (:data:`INSTANT_MIN` .. :data:`INSTANT_MAX`), else None."""
    if not isinstance(value, str):
        return None
    try:
        at = parse_as_of(value)
    except (ConfigError, ValueError, OverflowError):
        return None
    return at if INSTANT_MIN <= at < INSTANT_MAX else None


def _err(src: str, key: str, msg: str) -> ConfigError:
    return ConfigError(f"{src}: [{key}] {msg}")


def _unknown(src: str, table: str, key: str, known) -> ConfigError:
    """One line: the unknown key, its table, the nearest valid key."""
    known = list(known)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return _err(src, f"{table}.{key}" if table else key,
                f"unknown key in [{table or 'top level'}]; {hint}valid keys: {', '.join(known)}")


def _number(v, kind: str, src: str, path: str, spec: Key):
    if kind == "int":
        if not isinstance(v, int) or isinstance(v, bool):
            raise _err(src, path, f"must be a whole number (int), got {v!r}")
    else:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _err(src, path, f"must be a float (a number), got {v!r}")
        v = float(v)
        if v != v or v in (float("inf"), float("-inf")):
            raise _err(src, path, f"must be a finite number, got {v!r}")
    lo, hi = spec.lo, spec.hi
    if lo is not None and (v <= lo if spec.lo_open else v < lo):
        raise _err(src, path, (f"must be > {lo:g}" if spec.lo_open else
                               (f"must be at least {lo:g}" if kind == "int" and lo >= 1 else f"must be >= {lo:g}"))
                   + (f" and <= {hi:g}" if hi is not None else "") + f", got {v!r}")
    if hi is not None and v > hi and kind == "int" and lo is not None:
        raise _err(src, path, f"must be a whole number from {lo:g} to {hi:g}, got {v!r}")
    if hi is not None and v > hi:
        if lo is not None and lo == 0 and hi == 1 or (lo == 0.0 and hi == 0.5):
            raise _err(src, path, f"must be a fraction between {lo:g} and {hi:g}, got {v!r}")
        raise _err(src, path, f"must be <= {hi:g}, got {v!r}")
    return v


def _hhmm(value, src, path) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", value):
        raise _err(src, path, f"must be a local time like \"21:00\", got {value!r}")
    h, m = value.split(":")
    return int(h) * 60 + int(m)


def _chanmap(d, src, path) -> dict[str, int]:
    if not isinstance(d, dict):
        raise _err(src, path, "must be a table like { email = 1000, sms = 10 }")
    out = {}
    for c, v in d.items():
        if c not in CHANNELS:
            close = difflib.get_close_matches(c, CHANNELS, n=1, cutoff=0.5)
            raise _err(src, f"{path}.{c}", "unknown channel; " + (f"did you mean {close[0]!r}? " if close else "")
                       + f"use one of {_CH}")
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise _err(src, f"{path}.{c}", f"must be a whole number >= 0, got {v!r}")
        out[c] = v
    return out


def _value(spec: Key, v, src: str, path: str):
    """Check one value against its :class:`Key`; returns it converted."""
    kind = spec.kind
    if kind in ("int", "float"):
        v = _number(v, kind, src, path, spec)
    elif kind in ("str", "id", "tz"):
        if not isinstance(v, str):
            raise _err(src, path, f"must be a string (str), got {v!r}")
        if kind == "id" and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", v):
            raise _err(src, path, "must be 1-100 letters, digits, '-', '_' or '.'")
        if kind == "tz" and not is_timezone(v):
            raise _err(src, path, f"{v!r} is not an IANA timezone such as Europe/Paris")
    elif kind == "bool":
        if not isinstance(v, bool):
            raise _err(src, path, f"must be a bool (true or false), got {v!r}")
    elif kind == "instant":
        if isinstance(v, (_dt.datetime, _dt.date)):
            v = v.isoformat()
        elif not isinstance(v, str):
            raise _err(src, path, f"must be a date or an ISO 8601 instant like 2026-11-01T00:00:00Z, got {v!r}")
        if instant_in_range(v) is None:
            raise _err(src, path, "must be a date or an ISO 8601 instant like 2026-11-01T00:00:00Z between 1970 and "
                       f"2199, got {v!r}")
    elif kind == "strs":
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise _err(src, path, "must be a list of preset names like [\"inactive_30d\"]")
    elif kind == "names":
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise _err(src, path, f"must be a list of names (strings) like [\"first\", \"second\"], got {v!r}")
    elif kind == "table":
        v = _table(v, spec.table, src, path)
    elif kind == "channels":
        if not isinstance(v, list):
            raise _err(src, path, f"must be a list of channels like [\"email\"], got {v!r}")
        if not v:
            raise _err(src, path, "needs at least one channel")
        for j, ch in enumerate(v):
            if ch not in PROVIDER_CHANNELS:
                raise _err(src, f"{path}[{j}]", f"unknown channel {ch!r}; use {_PCH}")
        v = tuple(v)
    elif kind == "chanmap":
        v = _chanmap(v, src, path)
    elif kind == "thememap":
        if not isinstance(v, dict):
            raise _err(src, path, "must be a table like { leaving_soon = 2, broaden = 0 }")
        for name, w in v.items():
            if name not in THEME_CODE:
                raise _err(src, f"{path}.{name}", f"unknown theme; use one of {', '.join(THEMES)}")
            if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0:
                raise _err(src, f"{path}.{name}", f"must be a weight >= 0 (0 = never), got {w!r}")
    elif kind == "quiet":
        if v in ([], False):
            v = None
        elif isinstance(v, list) and len(v) == 2:
            v = (_hhmm(v[0], src, f"{path}[0]"), _hhmm(v[1], src, f"{path}[1]"))
        else:
            raise _err(src, path, "must be two local times [\"21:00\", \"08:00\"] or [] for none")
    else:  # pragma: no cover - a kind missing from this function is a bug in SCHEMA
        raise AssertionError(kind)
    if spec.choices is not None and v not in spec.choices:
        if not all(isinstance(c, str) for c in spec.choices):
            *head, last = map(str, spec.choices)
            raise _err(src, path, f"must be {', '.join(head)} or {last}, got {v!r}")
        close = difflib.get_close_matches(str(v), spec.choices, n=1, cutoff=0.5)
        if spec.noun:
            raise _err(src, path, f"unknown {spec.noun} {v!r}; use one of {', '.join(spec.choices)}"
                       + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise _err(src, path, f"must be one of {', '.join(spec.choices)}"
                   + (f" (did you mean {close[0]!r}?)" if close else "") + f", got {v!r}")
    return v


def _table(d, table: str, src: str, path: str) -> dict[str, Any]:
    """Validate the TOML table ``d`` against ``SCHEMA[table]``: every key known, typed
    and in range, the defaults filled in.  ``path`` names it in errors (``steps[1]``)."""
    spec = SCHEMA[table]
    if not isinstance(d, dict):
        raise _err(src, path, "must be a table of keys, e.g. [" + path + "] with " + ", ".join(spec))
    for key in d:
        if key not in spec:
            raise _unknown(src, path, key, spec)
    out = {}
    for key, k in spec.items():
        if key in d:
            out[key] = _value(k, d[key], src, f"{path}.{key}")
        elif k.required:
            raise _err(src, f"{path}.{key}", f"is required ({k.doc})")
        else:
            out[key] = _value(k, k.default, src, f"{path}.{key}") if k.default is not None else None
    return out



def schema_keys() -> list[tuple[str, str, Key]]:
    """Every (table, key, Key) of :data:`SCHEMA`, for documentation and tests."""
    return [(t, k, spec) for t, keys in SCHEMA.items() for k, spec in keys.items()]


#: the checks :mod:`engine.planning.campaign` builds on
error, table, unknown = _err, _table, _unknown
