"""Campaign files: TOML parsed with ``tomllib`` and validated into a :class:`Campaign`.

Every error names the key (``steps[1].channels[0]``) and says what is allowed.  The
format is documented with examples in ``docs/campaigns.md``; ``examples/`` holds
campaigns a marketer would run.
"""

from __future__ import annotations

import os
import re
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import ConfigError, RuleError
from engine.planning.rules import Rule
from engine.schema import CHANNELS, PROVIDER_CHANNELS, THEME_CODE, THEMES

__all__ = ["Campaign", "Step", "Policy", "Variant", "Template", "Content", "Offer", "load_campaign"]

EXIT_RULES = ("activity", "click", "purchase", "none")


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
    #: ``message`` or ``survey`` (a one-click "why did you leave?" message: ``reasons``
    #: and the landing page ``survey_url`` that posts the signed ``reason`` event)
    kind: str = "message"
    reasons: tuple[str, ...] = ()
    survey_url: str | None = None
    #: the step's own rule over the scores (None: every audience user); others get
    #: the reason ``not_in_step``
    where: Rule | None = None

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
    """What to say (engine.themes): windows in days, shares 0..1."""

    new_days: float = 90.0         # "new" = added after the user's last activity and within this many days
    leaving_days: float = 14.0     # "leaving soon" = expiring within this many days after the send
    min_confidence: float = 1.0    # decayed item interactions below which a user's tastes are not trusted
    broaden_share: float = 0.05    # "broaden" takes items whose categories all have a smaller share
    pool: int = 2000               # candidates considered per theme list
    repeat_penalty: float = 0.5    # value factor of a theme the user already got at an earlier step
    explore: float = 0.0           # share of users whose theme is drawn at random (a theme experiment)


@dataclass(frozen=True)
class Policy:
    """Frequency caps and delivery windows. Hours are local to the user."""

    max_messages: int = 3
    window_days: int = 7
    min_gap_hours: float = 16.0
    quiet_hours: tuple[int, int] | None = (21 * 60, 8 * 60)   # minutes after local midnight [start, end)
    channel_caps: dict[str, int] = field(default_factory=dict)
    capacity_per_hour: dict[str, int] = field(default_factory=dict)
    sunset_after_steps: bool = True
    #: a report's survey_actions.csv to act on (engine.planning.survey), and the cap of its lower_cap users
    survey_actions: str | None = None
    survey_cap: int = 1


@dataclass(frozen=True)
class Variant:
    """An arm of the treated audience: ``weight`` share, and what it changes: a
    ``subject`` / ``body`` text or a ``template`` name (for ``steps``, default every
    step) and an ``offer`` (a ``[[offers]]`` name, or ``"none"`` to withhold offers)."""

    name: str
    weight: float
    subject: str | None = None
    body: str | None = None
    template: str | None = None
    offer: str | None = None
    steps: tuple[str, ...] = ()

    def applies(self, step: str) -> bool:
        return not self.steps or step in self.steps


@dataclass(frozen=True)
class Offer:
    """An incentive: users for whom ``where`` holds may get it (the first matching offer
    in file order, at most one per user and campaign); ``text`` is ``{{ offer }}`` in
    templates, ``codes`` a file of unique codes (``{{ offer_code }}``); its cost per
    redeemed order is ``cost_fixed`` (currency) plus ``cost_share`` of the order value."""

    name: str
    where: Rule
    text: str
    codes: str | None = None
    cost_fixed: float = 0.0
    cost_share: float = 0.0


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
    offers: tuple[Offer, ...] = ()

    def to_meta(self) -> dict:
        """A JSON-able description for the plan's metadata."""
        return {
            "id": self.id, "name": self.name, "timezone": self.timezone, "holdout": self.holdout,
            "approved": self.approved, "audience": self.audience.text,
            "steps": [s.__dict__ | {"channels": list(s.channels), "reasons": list(s.reasons),
                                    "where": s.where.text if s.where is not None else None} for s in self.steps],
            "policy": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.policy.__dict__.items()},
            "variants": [v.__dict__ | {"steps": list(v.steps)} for v in self.variants],
            "content": self.content.__dict__,
            "offers": [{"name": o.name, "where": o.where.text, "text": o.text, "codes": o.codes,
                        "cost_fixed": o.cost_fixed, "cost_share": o.cost_share} for o in self.offers],
        }


def _err(src: str, key: str, msg: str) -> ConfigError:
    return ConfigError(f"{src}: [{key}] {msg}")


def _get(d: dict, key: str, typ, src: str, path: str, default=None, required=False):
    if key not in d:
        if required:
            raise _err(src, path, "is required")
        return default
    value = d[key]
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        name = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
        raise _err(src, path, f"must be a {name}, got {value!r}")
    return value


def _hhmm(value, src, path) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", value):
        raise _err(src, path, f"must be a local time like \"21:00\", got {value!r}")
    h, m = value.split(":")
    return int(h) * 60 + int(m)


def _channels_map(d, src, path) -> dict[str, int]:
    if not isinstance(d, dict):
        raise _err(src, path, "must be a table like { email = 1000, sms = 10 }")
    out = {}
    for c, v in d.items():
        if c not in CHANNELS:
            raise _err(src, f"{path}.{c}", f"unknown channel; use one of {', '.join(CHANNELS)}")
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise _err(src, f"{path}.{c}", f"must be a whole number >= 0, got {v!r}")
        out[c] = v
    return out


def load_campaign(source: str | os.PathLike | dict) -> Campaign:
    """Read and validate a campaign from a TOML path or an already-parsed dict."""
    if isinstance(source, dict):
        doc, src = source, "campaign"
    else:
        path = Path(source)
        src = str(path)
        if not path.exists():
            raise ConfigError(f"campaign file {path} does not exist; see examples/ for campaigns to start from")
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{src}: not valid TOML ({exc})") from None
    known = {"campaign", "audience", "policy", "steps", "variants", "templates", "content", "offers"}
    for key in doc:
        if key not in known:
            raise _err(src, key, f"unknown section; allowed: {', '.join(sorted(known))}")
    c = doc.get("campaign")
    if not isinstance(c, dict):
        raise _err(src, "campaign", "section is required, with at least id = \"...\"")
    cid = _get(c, "id", str, src, "campaign.id", required=True)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", cid):
        raise _err(src, "campaign.id", "must be 1-100 letters, digits, '-', '_' or '.'")
    tz = _get(c, "timezone", str, src, "campaign.timezone", "UTC")
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise _err(src, "campaign.timezone", f"{tz!r} is not an IANA timezone such as Europe/Paris") from None
    holdout = _get(c, "holdout", float, src, "campaign.holdout", 0.10)
    if not 0.0 <= holdout <= 0.5:
        raise _err(src, "campaign.holdout", f"must be a fraction between 0 and 0.5, got {holdout}")
    as_of = c.get("as_of")
    if as_of is not None and not isinstance(as_of, str):
        as_of = as_of.isoformat() if hasattr(as_of, "isoformat") else str(as_of)
    a = doc.get("audience", {})
    where = _get(a, "where", str, src, "audience.where", "")
    presets = a.get("presets", a.get("preset", []))
    if isinstance(presets, str):
        presets = [presets]
    if not isinstance(presets, list) or not all(isinstance(x, str) for x in presets):
        raise _err(src, "audience.presets", "must be a list of preset names like [\"inactive_30d\"]")
    # parse each part alone first, so error positions point into the text the user wrote
    for key, text in [("audience.where", where)] + [(f"audience.presets[{i}]", x) for i, x in enumerate(presets)]:
        try:
            Rule(text)
        except RuleError as exc:
            raise RuleError(f"{src}: [{key}] {exc}") from None
    parts = [f"({where})"] if where.strip() else []
    audience = Rule(" and ".join(parts + list(presets)))
    p = doc.get("policy", {})
    quiet = p.get("quiet_hours", ["21:00", "08:00"])
    if quiet in ([], None, False):
        quiet_t = None
    elif isinstance(quiet, list) and len(quiet) == 2:
        quiet_t = (_hhmm(quiet[0], src, "policy.quiet_hours[0]"), _hhmm(quiet[1], src, "policy.quiet_hours[1]"))
    else:
        raise _err(src, "policy.quiet_hours", "must be two local times [\"21:00\", \"08:00\"] or [] for none")
    policy = Policy(
        max_messages=_get(p, "max_messages", int, src, "policy.max_messages", 3),
        window_days=_get(p, "window_days", int, src, "policy.window_days", 7),
        min_gap_hours=_get(p, "min_gap_hours", float, src, "policy.min_gap_hours", 16.0),
        quiet_hours=quiet_t,
        channel_caps=_channels_map(p.get("channel_caps", {}), src, "policy.channel_caps"),
        capacity_per_hour=_channels_map(p.get("capacity_per_hour", {}), src, "policy.capacity_per_hour"),
        sunset_after_steps=_get(p, "sunset", bool, src, "policy.sunset", True),
        **_survey_policy(p, src),
    )
    if policy.max_messages < 1:
        raise _err(src, "policy.max_messages", "must be at least 1")
    if policy.window_days not in (7, 30):
        raise _err(src, "policy.window_days", "must be 7 or 30 (the windows the scores count sends in)")
    if policy.min_gap_hours < 0:
        raise _err(src, "policy.min_gap_hours", "must be >= 0")
    templates = {}
    for name, t in (doc.get("templates") or {}).items():
        if not isinstance(t, dict):
            raise _err(src, f"templates.{name}", "must be a table with subject and body")
        templates[name] = Template(subject=_get(t, "subject", str, src, f"templates.{name}.subject", ""),
                                   body=_get(t, "body", str, src, f"templates.{name}.body", required=True))
    raw_steps = doc.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise _err(src, "steps", "at least one [[steps]] table is required")
    steps, names = [], set()
    for i, s in enumerate(raw_steps):
        path = f"steps[{i}]"
        name = _get(s, "name", str, src, f"{path}.name", required=True)
        if name in names:
            raise _err(src, f"{path}.name", f"duplicate step name {name!r}")
        names.add(name)
        delay = _get(s, "delay_days", float, src, f"{path}.delay_days", 0.0)
        if delay < 0:
            raise _err(src, f"{path}.delay_days", "must be >= 0 (days after the previous step)")
        chans = _get(s, "channels", list, src, f"{path}.channels", required=True)
        if not chans:
            raise _err(src, f"{path}.channels", "needs at least one channel")
        for j, ch in enumerate(chans):
            if ch not in PROVIDER_CHANNELS:
                raise _err(src, f"{path}.channels[{j}]", f"unknown channel {ch!r}; use {', '.join(PROVIDER_CHANNELS)}")
        template = _get(s, "template", str, src, f"{path}.template", name)
        exit_on = _get(s, "exit_on", str, src, f"{path}.exit_on", "activity")
        if exit_on not in EXIT_RULES:
            raise _err(src, f"{path}.exit_on", f"must be one of {', '.join(EXIT_RULES)}")
        if templates and template not in templates:
            raise _err(src, f"{path}.template", f"no [templates.{template}]; defined: {', '.join(templates)}")
        steps.append(Step(name, delay, tuple(chans), template, exit_on, *_step_content(s, src, path),
                          *_step_survey(s, src, path, chans)))
    offers = _offers(doc.get("offers") or [], src)
    variants = _variants(doc.get("variants") or [], src, templates, offers, names)
    return Campaign(id=cid, name=_get(c, "name", str, src, "campaign.name", cid), timezone=tz, holdout=holdout,
                    approved=_get(c, "approved", bool, src, "campaign.approved", False), as_of=as_of,
                    audience=audience, steps=tuple(steps), policy=policy, variants=tuple(variants),
                    templates=templates, source=src, content=_content(doc.get("content", {}), src),
                    offers=offers)


def _step_content(s: dict, src: str, path: str) -> tuple[int, str | None, tuple[float, ...]]:
    k = _get(s, "items", int, src, f"{path}.items", 3)
    if not 0 <= k <= 20:
        raise _err(src, f"{path}.items", f"must be a whole number of items from 0 to 20, got {k}")
    theme = _get(s, "theme", str, src, f"{path}.theme", None)
    if theme is not None and theme not in THEME_CODE:
        raise _err(src, f"{path}.theme", f"unknown theme {theme!r}; use one of {', '.join(THEMES)}")
    raw = _get(s, "themes", dict, src, f"{path}.themes", {})
    weights = [1.0] * len(THEMES)
    for name, w in raw.items():
        if name not in THEME_CODE:
            raise _err(src, f"{path}.themes.{name}", f"unknown theme; use one of {', '.join(THEMES)}")
        if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0:
            raise _err(src, f"{path}.themes.{name}", f"must be a weight >= 0 (0 = never), got {w!r}")
        weights[THEME_CODE[name]] = float(w)
    return k, theme, tuple(weights)


def _content(d: dict, src: str) -> Content:
    if not isinstance(d, dict):
        raise _err(src, "content", "must be a table like { new_days = 90, leaving_days = 14 }")
    known = set(Content.__dataclass_fields__)
    for key in d:
        if key not in known:
            raise _err(src, f"content.{key}", f"unknown key; allowed: {', '.join(sorted(known))}")
    c = Content(
        new_days=_get(d, "new_days", float, src, "content.new_days", 90.0),
        leaving_days=_get(d, "leaving_days", float, src, "content.leaving_days", 14.0),
        min_confidence=_get(d, "min_confidence", float, src, "content.min_confidence", 1.0),
        broaden_share=_get(d, "broaden_share", float, src, "content.broaden_share", 0.05),
        pool=_get(d, "pool", int, src, "content.pool", 2000),
        repeat_penalty=_get(d, "repeat_penalty", float, src, "content.repeat_penalty", 0.5),
        explore=_get(d, "explore", float, src, "content.explore", 0.0))
    for key in ("new_days", "leaving_days", "min_confidence"):
        if getattr(c, key) < 0:
            raise _err(src, f"content.{key}", "must be >= 0")
    for key in ("broaden_share", "repeat_penalty", "explore"):
        if not 0 <= getattr(c, key) <= 1:
            raise _err(src, f"content.{key}", "must be a fraction between 0 and 1")
    if c.pool < 1:
        raise _err(src, "content.pool", "must be at least 1")
    return c


# -- variants, offers and survey steps (issue 18) ------------------------------------

#: the reasons a survey step offers when it names none
DEFAULT_REASONS = ("too_many_messages", "not_relevant", "too_expensive", "found_an_alternative", "other")
_REASON = re.compile(r"[a-z][a-z0-9_]{0,39}")


def _step_survey(s: dict, src: str, path: str, chans) -> tuple[str, tuple[str, ...], str | None, Rule | None]:
    where = _get(s, "where", str, src, f"{path}.where", None)
    rule = None
    if where is not None and where.strip():
        try:
            rule = Rule(where)
        except RuleError as exc:
            raise RuleError(f"{src}: [{path}.where] {exc}") from None
    return (*_survey(s, src, path, chans), rule)


def _survey(s: dict, src: str, path: str, chans) -> tuple[str, tuple[str, ...], str | None]:
    kind = _get(s, "kind", str, src, f"{path}.kind", "message")
    if kind not in ("message", "survey"):
        raise _err(src, f"{path}.kind", f"must be \"message\" or \"survey\", got {kind!r}")
    if kind == "message":
        for key in ("reasons", "survey_url"):
            if key in s:
                raise _err(src, f"{path}.{key}", "only a kind = \"survey\" step takes it")
        return kind, (), None
    if "ads" in chans:
        raise _err(src, f"{path}.channels", "a survey needs a channel that carries a link: email, sms or push")
    reasons = _get(s, "reasons", list, src, f"{path}.reasons", list(DEFAULT_REASONS))
    if not reasons or not all(isinstance(r, str) and _REASON.fullmatch(r) for r in reasons) \
            or len(set(reasons)) != len(reasons):
        raise _err(src, f"{path}.reasons", "must be distinct names of lower-case letters, digits and '_', "
                                          "like [\"too_many_messages\", \"not_relevant\"]")
    url = _get(s, "survey_url", str, src, f"{path}.survey_url", required=True)
    if not url.startswith(("https://", "http://")):
        raise _err(src, f"{path}.survey_url", f"must be the http(s) address of the survey page, got {url!r}")
    return kind, tuple(reasons), url


def _variants(raw: list, src: str, templates: dict, offers: tuple, step_names: set) -> tuple[Variant, ...]:
    if not isinstance(raw, list):
        raise _err(src, "variants", "must be [[variants]] tables")
    out = []
    for i, v in enumerate(raw or [{"name": "control", "weight": 1.0}]):
        path = f"variants[{i}]"
        if not isinstance(v, dict):
            raise _err(src, path, "must be a table with name and weight")
        for key in v:
            if key not in ("name", "weight", "subject", "body", "template", "offer", "steps"):
                raise _err(src, f"{path}.{key}", "unknown key; allowed: name, weight, subject, body, template, "
                                                 "offer, steps")
        name = _get(v, "name", str, src, f"{path}.name", required=True)
        if name in {x.name for x in out}:
            raise _err(src, f"{path}.name", f"duplicate variant name {name!r}")
        weight = _get(v, "weight", float, src, f"{path}.weight", 1.0)
        if weight <= 0:
            raise _err(src, f"{path}.weight", "must be > 0")
        template = _get(v, "template", str, src, f"{path}.template", None)
        if template is not None and template not in templates:
            raise _err(src, f"{path}.template", f"no [templates.{template}]; defined: {', '.join(templates) or 'none'}")
        if template is not None and ("subject" in v or "body" in v):
            raise _err(src, f"{path}.template", "set either template or subject/body, not both")
        offer = _get(v, "offer", str, src, f"{path}.offer", None)
        if offer is not None and offer != "none" and offer not in {o.name for o in offers}:
            raise _err(src, f"{path}.offer", f"no [[offers]] named {offer!r}; use one of "
                                             f"{', '.join([o.name for o in offers] + ['none'])}")
        steps = _get(v, "steps", list, src, f"{path}.steps", [])
        for j, st in enumerate(steps):
            if st not in step_names:
                raise _err(src, f"{path}.steps[{j}]", f"no step named {st!r}; steps: {', '.join(sorted(step_names))}")
        out.append(Variant(name, weight, _get(v, "subject", str, src, f"{path}.subject", None),
                           _get(v, "body", str, src, f"{path}.body", None), template, offer, tuple(steps)))
    return tuple(out)


def _offers(raw: list, src: str) -> tuple[Offer, ...]:
    if not isinstance(raw, list):
        raise _err(src, "offers", "must be [[offers]] tables")
    out = []
    for i, o in enumerate(raw):
        path = f"offers[{i}]"
        if not isinstance(o, dict):
            raise _err(src, path, "must be a table with name, where, text and cost")
        for key in o:
            if key not in ("name", "where", "text", "codes", "cost"):
                raise _err(src, f"{path}.{key}", "unknown key; allowed: name, where, text, codes, cost")
        name = _get(o, "name", str, src, f"{path}.name", required=True)
        if name == "none" or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,59}", name):
            raise _err(src, f"{path}.name", "must be 1-60 letters, digits, '-', '_' or '.' (and not 'none')")
        if name in {x.name for x in out}:
            raise _err(src, f"{path}.name", f"duplicate offer name {name!r}")
        where = _get(o, "where", str, src, f"{path}.where", "")
        try:
            rule = Rule(where)
        except RuleError as exc:
            raise RuleError(f"{src}: [{path}.where] {exc}") from None
        cost = _get(o, "cost", dict, src, f"{path}.cost", required=True)
        for key in cost:
            if key not in ("fixed", "share"):
                raise _err(src, f"{path}.cost.{key}", "unknown key; use fixed (currency per redeemed order) "
                                                      "and/or share (of the order value, 0..1)")
        fixed = _get(cost, "fixed", float, src, f"{path}.cost.fixed", 0.0)
        share = _get(cost, "share", float, src, f"{path}.cost.share", 0.0)
        if fixed < 0:
            raise _err(src, f"{path}.cost.fixed", "must be >= 0 (currency per redeemed order)")
        if not 0 <= share <= 1:
            raise _err(src, f"{path}.cost.share", "must be a fraction of the order value between 0 and 1")
        codes = _get(o, "codes", str, src, f"{path}.codes", None)
        if codes is not None and not Path(codes).is_absolute() and src not in ("campaign", "<dict>"):
            codes = str(Path(src).parent / codes)
        out.append(Offer(name, rule, _get(o, "text", str, src, f"{path}.text", name), codes, fixed, share))
    return tuple(out)


def _survey_policy(p: dict, src: str) -> dict:
    """``[policy] survey_actions`` (a path, relative to the campaign file) and ``survey_cap``."""
    path = _get(p, "survey_actions", str, src, "policy.survey_actions", None)
    if path is not None and not Path(path).is_absolute() and src not in ("campaign", "<dict>"):
        path = str(Path(src).parent / path)
    cap = _get(p, "survey_cap", int, src, "policy.survey_cap", 1)
    if cap < 0:
        raise _err(src, "policy.survey_cap", "must be a whole number >= 0 (messages in the first window)")
    return {"survey_actions": path, "survey_cap": cap}
