"""Campaign files: TOML parsed with ``tomllib`` and validated into a :class:`Campaign`.

The format is one declarative table per TOML table, :data:`SCHEMA`: key -> :class:`Key`
(kind, default, range, one-line doc).  Adding a key to a table is one line there (and a
field where the value is used).  Validation is strict: an unknown key is an error that
names the key, its table and the nearest valid key (``difflib``); a wrong type or a
value out of range is an error naming the key and what is allowed.  Every error is one
line, a :class:`~engine.errors.ConfigError` (exit code 2).  The format is documented
with examples in ``docs/campaigns.md``; ``examples/`` holds campaigns a marketer would run.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from engine.errors import ConfigError, RuleError
from engine.planning.rules import Rule
from engine.schema import CHANNELS, THEME_CODE, THEMES
from engine.tz import is_timezone

__all__ = ["Campaign", "Step", "Policy", "Variant", "Template", "Content", "load_campaign", "SCHEMA", "Key",
           "EXIT_RULES"]

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


_CH = ", ".join(CHANNELS)

#: table name -> {key: Key}.  ``steps`` and ``variants`` describe each ``[[steps]]`` /
#: ``[[variants]]`` entry, ``templates.*`` each ``[templates.NAME]``.
SCHEMA: dict[str, dict[str, Key]] = {
    "campaign": {
        "id": Key("id", required=True, doc="seeds the holdout and variant hashes; keep it stable across reruns"),
        "name": Key("str", None, "shown in reports (default: the id)"),
        "timezone": Key("tz", "UTC", "IANA timezone for users whose timezone is unknown"),
        "holdout": Key("float", 0.10, "share of the audience never messaged, to measure lift", 0.0, 0.5),
        "approved": Key("bool", False, "allows a whole-base audience (the broadcast guard)"),
        "as_of": Key("instant", None, "campaign start (UTC); --as-of overrides"),
    },
    "audience": {
        "where": Key("str", "", "the audience rule over the scores' columns"),
        "presets": Key("strs", [], "preset names and-ed with where"),
        "preset": Key("strs", [], "one preset name (same as presets)"),
    },
    "policy": {
        "max_messages": Key("int", 3, "cross-channel cap per window, over every campaign in the ledger", 1, 1000),
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
    },
    "steps": {
        "name": Key("str", required=True, doc="unique step name"),
        "delay_days": Key("float", 0.0, "days after the previous step's message", 0, 365),
        "channels": Key("channels", required=True, doc=f"allowed channels in preference order ({_CH})"),
        "template": Key("str", None, "a [templates.NAME] (default: the step's name)"),
        "exit_on": Key("str", "activity", "what ends the user's drip before this step", choices=EXIT_RULES),
        "items": Key("int", 3, "items per message (with a catalogue)", 0, 20),
        "theme": Key("str", None, "a pinned content theme", choices=THEMES, noun="theme"),
        "themes": Key("thememap", {}, "weight per content theme (0 = never)"),
    },
    "variants": {
        "name": Key("str", required=True, doc="variant name"),
        "weight": Key("float", 1.0, "relative share of the treated audience", 0, None, lo_open=True),
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
            "templates": False, "content": False}


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
    elif kind == "strs":
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise _err(src, path, "must be a list of preset names like [\"inactive_30d\"]")
    elif kind == "channels":
        if not isinstance(v, list):
            raise _err(src, path, f"must be a list of channels like [\"email\"], got {v!r}")
        if not v:
            raise _err(src, path, "needs at least one channel")
        for j, ch in enumerate(v):
            if ch not in CHANNELS:
                raise _err(src, f"{path}[{j}]", f"unknown channel {ch!r}; use {_CH}")
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


# -- the validated campaign --------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """One message of the drip: ``delay_days`` after the previous step (days, >= 0)."""

    name: str
    delay_days: float
    channels: tuple[str, ...]
    template: str
    exit_on: str = "activity"
    #: content (with a catalogue, engine.themes): ``items`` picks, a pinned ``theme`` or
    #: None, and a weight per theme (THEMES order; 0 = never)
    items: int = 3
    theme: str | None = None
    theme_weights: tuple[float, ...] = (1.0,) * len(THEMES)

    @property
    def pin(self) -> int:
        """The pinned theme's code, -1 when none."""
        return THEME_CODE[self.theme] if self.theme else -1

    @property
    def k(self) -> int:
        return self.items

    @property
    def weights(self) -> tuple[float, ...]:
        return self.theme_weights


@dataclass(frozen=True)
class Content:
    """What to say (engine.themes): windows in days, shares 0..1 (see ``SCHEMA['content']``)."""

    new_days: float = 90.0
    leaving_days: float = 14.0
    min_confidence: float = 1.0
    broaden_share: float = 0.05
    pool: int = 2000
    repeat_penalty: float = 0.5
    explore: float = 0.0


@dataclass(frozen=True)
class Policy:
    """Frequency caps and delivery windows. Hours are local to the user (see ``SCHEMA['policy']``)."""

    max_messages: int = 3
    window_days: int = 7
    min_gap_hours: float = 16.0
    quiet_hours: tuple[int, int] | None = (21 * 60, 8 * 60)   # minutes after local midnight [start, end)
    channel_caps: dict[str, int] = field(default_factory=dict)
    capacity_per_hour: dict[str, int] = field(default_factory=dict)
    sunset_after_steps: bool = True
    #: unanswered messages of this campaign after which a user is sunset (0 = every step)
    sunset_after: int = 0
    broadcast_share: float = 0.80
    complaint_suppresses: str = "all"


@dataclass(frozen=True)
class Variant:
    name: str
    weight: float


@dataclass(frozen=True)
class Template:
    subject: str
    body: str


@dataclass(frozen=True)
class Campaign:
    id: str
    name: str
    timezone: str
    holdout: float
    approved: bool
    as_of: str | None
    audience: Rule
    steps: tuple[Step, ...]
    policy: Policy
    variants: tuple[Variant, ...]
    templates: dict[str, Template]
    source: str = "<dict>"
    content: Content = field(default_factory=Content)

    def to_meta(self) -> dict:
        """A JSON-able description for the plan's metadata."""
        return {
            "id": self.id, "name": self.name, "timezone": self.timezone, "holdout": self.holdout,
            "approved": self.approved, "audience": self.audience.text,
            "steps": [s.__dict__ | {"channels": list(s.channels)} for s in self.steps],
            "policy": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.policy.__dict__.items()},
            "variants": [v.__dict__ for v in self.variants],
            "content": self.content.__dict__,
        }


def _read(source) -> tuple[dict, str]:
    if isinstance(source, dict):
        return source, "campaign"
    path = Path(source)
    src = str(path)
    if not path.exists():
        raise ConfigError(f"campaign file {path} does not exist; see examples/ for campaigns to start from")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")), src
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{src}: not valid TOML ({str(exc).splitlines()[0]})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{src}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def load_campaign(source: str | os.PathLike | dict) -> Campaign:
    """Read and validate a campaign from a TOML path or an already-parsed dict."""
    doc, src = _read(source)
    for key in doc:
        if key not in SECTIONS:
            close = difflib.get_close_matches(key, list(SECTIONS), n=1, cutoff=0.5)
            raise _err(src, key, "unknown section; " + (f"did you mean [{close[0]}]? " if close else "")
                       + f"allowed: {', '.join(SECTIONS)}")
    if not isinstance(doc.get("campaign"), dict):
        raise _err(src, "campaign", "section is required, with at least id = \"...\"")
    c = _table(doc["campaign"], "campaign", src, "campaign")
    a = _table(doc.get("audience", {}), "audience", src, "audience")
    p = _table(doc.get("policy", {}), "policy", src, "policy")
    raw_t = doc.get("templates") or {}
    if not isinstance(raw_t, dict):
        raise _err(src, "templates", "must hold [templates.NAME] tables with subject and body")
    templates = {}
    for name, t in raw_t.items():
        if not isinstance(t, dict):
            raise _err(src, f"templates.{name}", "must be a table with subject and body")
        t = _table(t, "templates.*", src, f"templates.{name}")
        templates[name] = Template(subject=t["subject"], body=t["body"])
    audience = _audience(a, src)
    policy = Policy(max_messages=p["max_messages"], window_days=p["window_days"],
                    min_gap_hours=p["min_gap_hours"], quiet_hours=p["quiet_hours"],
                    channel_caps=p["channel_caps"], capacity_per_hour=p["capacity_per_hour"],
                    sunset_after_steps=p["sunset"], sunset_after=p["sunset_after"],
                    broadcast_share=p["broadcast_share"], complaint_suppresses=p["complaint_suppresses"])
    raw_steps = doc.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise _err(src, "steps", "at least one [[steps]] table is required")
    steps, names = [], set()
    for i, raw in enumerate(raw_steps):
        s = _table(raw, "steps", src, f"steps[{i}]")
        if s["name"] in names:
            raise _err(src, f"steps[{i}].name", f"duplicate step name {s['name']!r}")
        names.add(s["name"])
        template = s["template"] or s["name"]
        if templates and template not in templates:
            raise _err(src, f"steps[{i}].template", f"no [templates.{template}]; defined: {', '.join(templates)}")
        weights = [1.0] * len(THEMES)
        for name, w in s["themes"].items():
            weights[THEME_CODE[name]] = float(w)
        steps.append(Step(s["name"], s["delay_days"], s["channels"], template, s["exit_on"], s["items"],
                          s["theme"], tuple(weights)))
    raw_v = doc.get("variants") or [{"name": "control", "weight": 1.0}]
    if not isinstance(raw_v, list):
        raise _err(src, "variants", "must be [[variants]] tables with name and weight")
    variants = [Variant(v["name"], v["weight"])
                for v in (_table(x, "variants", src, f"variants[{i}]") for i, x in enumerate(raw_v))]
    content = Content(**_table(doc.get("content", {}), "content", src, "content"))
    return Campaign(id=c["id"], name=c["name"] or c["id"], timezone=c["timezone"], holdout=c["holdout"],
                    approved=c["approved"], as_of=c["as_of"], audience=audience, steps=tuple(steps),
                    policy=policy, variants=tuple(variants), templates=templates, source=src, content=content)


def _audience(a: dict, src: str) -> Rule:
    where = a["where"]
    presets = list(a["presets"]) + list(a["preset"])
    # parse each part alone first, so error positions point into the text the user wrote
    for key, text in [("audience.where", where)] + [(f"audience.presets[{i}]", x) for i, x in enumerate(presets)]:
        try:
            Rule(text)
        except RuleError as exc:
            raise RuleError(f"{src}: [{key}] {exc}") from None
    parts = [f"({where})"] if where.strip() else []
    return Rule(" and ".join(parts + [f"({x})" for x in presets]))


def schema_keys() -> list[tuple[str, str, Key]]:
    """Every (table, key, Key) of :data:`SCHEMA`, for documentation and tests."""
    return [(t, k, spec) for t, keys in SCHEMA.items() for k, spec in keys.items()]


_ = Callable  # keep the typing import for readers of SCHEMA kinds
