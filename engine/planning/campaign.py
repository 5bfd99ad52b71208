"""Campaign files: TOML parsed with ``tomllib`` and validated into a :class:`Campaign`.

The format is one declarative table per TOML table, :data:`SCHEMA`
(:mod:`engine.planning.campaign_schema`: key -> :class:`Key`, kind, default, range,
one-line doc).  Validation is strict: an unknown key is an error that names the key, its
table and the nearest valid key; a wrong type or a value out of range is an error naming
the key and what is allowed.  The checks across keys (a variant's offer exists, a survey
step has a link channel and a page, ...) are here.  Every error is one line, a
:class:`~engine.errors.ConfigError` (exit code 2).  The format is documented with
examples in ``docs/campaigns.md``; ``examples/`` holds campaigns a marketer would run.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import ConfigError, RuleError
from engine.planning.campaign_schema import EXIT_RULES, SCHEMA, SECTIONS, Key, schema_keys
from engine.planning.campaign_schema import error as _err
from engine.planning.campaign_schema import table as _table
from engine.planning.rules import Rule
from engine.schema import THEME_CODE, THEMES

__all__ = ["Campaign", "Step", "Policy", "Variant", "Template", "Content", "Offer", "load_campaign", "SCHEMA",
           "Key", "EXIT_RULES", "schema_keys", "DEFAULT_REASONS"]

#: the reasons a survey step offers when it names none
DEFAULT_REASONS = ("too_many_messages", "not_relevant", "too_expensive", "found_an_alternative", "other")
_REASON = re.compile(r"[a-z][a-z0-9_]{0,39}")


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
    ends_at: str | None = None

    def to_meta(self) -> dict:
        """A JSON-able description for the plan's metadata."""
        return {
            "id": self.id, "name": self.name, "timezone": self.timezone, "holdout": self.holdout,
            "approved": self.approved, "audience": self.audience.text, "ends_at": self.ends_at,
            "steps": [s.__dict__ | {"channels": list(s.channels), "reasons": list(s.reasons),
                                    "where": s.where.text if s.where is not None else None} for s in self.steps],
            "policy": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.policy.__dict__.items()},
            "variants": [v.__dict__ | {"steps": list(v.steps)} for v in self.variants],
            "content": self.content.__dict__,
            "offers": [{"name": o.name, "where": o.where.text, "text": o.text, "codes": o.codes,
                        "cost_fixed": o.cost_fixed, "cost_share": o.cost_share} for o in self.offers],
        }


def _read(source) -> tuple[dict, str]:
    if isinstance(source, dict):
        return source, "campaign"
    path = Path(source)
    src = str(path)
    if not path.exists():
        raise ConfigError(f"campaign file {path} does not exist; see examples/ for campaigns to start from")
    try:
        # a byte-order mark (Windows editors write one) is not TOML, but it is no mistake in the campaign
        return tomllib.loads(path.read_text(encoding="utf-8").removeprefix("\ufeff")), src
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
                    broadcast_share=p["broadcast_share"], complaint_suppresses=p["complaint_suppresses"],
                    survey_actions=_beside(p["survey_actions"], src), survey_cap=p["survey_cap"])
    raw_steps = doc.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise _err(src, "steps", "at least one [[steps]] table is required")
    steps, names = [], set()
    for path, s in _named_tables(raw_steps, "steps", "step", src, "name"):
        names.add(s["name"])
        template = s["template"] or s["name"]
        if templates and template not in templates:
            raise _err(src, f"{path}.template", f"no [templates.{template}]; defined: {', '.join(templates)}")
        weights = [1.0] * len(THEMES)
        for name, w in s["themes"].items():
            weights[THEME_CODE[name]] = float(w)
        steps.append(Step(s["name"], s["delay_days"], s["channels"], template, s["exit_on"], s["items"],
                          s["theme"], tuple(weights), *_survey(s, src, path),
                          where=_rule(s["where"], src, f"{path}.where")))
    offers = _offers(doc.get("offers") or [], src)
    variants = _variants(doc.get("variants") or [{"name": "control", "weight": 1.0}], src, templates, offers,
                         names)
    content = Content(**_table(doc.get("content", {}), "content", src, "content"))
    cmp = Campaign(id=c["id"], name=c["name"] or c["id"], timezone=c["timezone"], holdout=c["holdout"],
                   approved=c["approved"], as_of=c["as_of"], audience=audience, steps=tuple(steps),
                   policy=policy, variants=tuple(variants), templates=templates, source=src, content=content,
                   offers=offers, ends_at=c["ends_at"])
    _check_texts(cmp, src)
    return cmp


def _check_texts(cmp: Campaign, src: str) -> None:
    """Every template text parses (before any scores are read), the error naming its key."""
    from engine.planning.templates import template_fields
    from engine.planning.variants import all_texts

    for where, text in all_texts(cmp):
        try:
            template_fields(text)
        except ConfigError as exc:
            raise _err(src, where, str(exc)) from None


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


# -- variants, offers and survey steps: the checks across keys ----------------------------------
def _rule(text: str | None, src: str, key: str) -> Rule | None:
    """A step's or offer's ``where`` (None or blank: no rule); errors name the key."""
    if text is None or not text.strip():
        return None
    try:
        return Rule(text)
    except RuleError as exc:
        raise RuleError(f"{src}: [{key}] {exc}") from None


def _beside(path: str | None, src: str) -> str | None:
    """A file path of the campaign, relative to the campaign file (as given for a dict)."""
    if path is None or Path(path).is_absolute() or src in ("campaign", "<dict>"):
        return path
    return str(Path(src).parent / path)


def _survey(s: dict, src: str, path: str) -> tuple[str, tuple[str, ...], str | None]:
    """(kind, reasons, survey_url) of a validated step table."""
    if s["kind"] == "message":
        for key in ("reasons", "survey_url"):
            if s[key] is not None:
                raise _err(src, f"{path}.{key}", "only a kind = \"survey\" step takes it")
        return "message", (), None
    if "ads" in s["channels"]:
        raise _err(src, f"{path}.channels", "a survey needs a channel that carries a link: email, sms or push")
    reasons = s["reasons"] if s["reasons"] is not None else list(DEFAULT_REASONS)
    if not reasons or not all(_REASON.fullmatch(r) for r in reasons) or len(set(reasons)) != len(reasons):
        raise _err(src, f"{path}.reasons", "must be distinct names of lower-case letters, digits and '_', "
                                          "like [\"too_many_messages\", \"not_relevant\"]")
    url = s["survey_url"]
    if url is None:
        raise _err(src, f"{path}.survey_url", "is required for a kind = \"survey\" step (the survey page's address)")
    if not url.startswith(("https://", "http://")):
        raise _err(src, f"{path}.survey_url", f"must be the http(s) address of the survey page, got {url!r}")
    return "survey", tuple(reasons), url


def _named_tables(raw, key: str, what: str, src: str, shape: str):
    """``(path, table)`` of each ``[[key]]`` table of ``raw`` in order, each checked against the
    schema, raising on a second table with a name already seen (``what``: "step", "variant",
    ...; ``shape`` ends the message when ``raw`` is not a list of tables)."""
    if not isinstance(raw, list):
        raise _err(src, key, f"must be [[{key}]] tables with {shape}")
    seen = set()
    for i, x in enumerate(raw):
        path = f"{key}[{i}]"
        t = _table(x, key, src, path)
        if t["name"] in seen:
            raise _err(src, f"{path}.name", f"duplicate {what} name {t['name']!r}")
        seen.add(t["name"])
        yield path, t


def _variants(raw, src: str, templates: dict, offers: tuple, step_names: set) -> tuple[Variant, ...]:
    out = []
    for path, v in _named_tables(raw, "variants", "variant", src, "name and weight"):
        template = v["template"]
        if template is not None and template not in templates:
            raise _err(src, f"{path}.template", f"no [templates.{template}]; defined: {', '.join(templates) or 'none'}")
        if template is not None and (v["subject"] is not None or v["body"] is not None):
            raise _err(src, f"{path}.template", "set either template or subject/body, not both")
        offer = v["offer"]
        if offer is not None and offer != "none" and offer not in {o.name for o in offers}:
            close = difflib.get_close_matches(offer, [o.name for o in offers], n=1, cutoff=0.5)
            raise _err(src, f"{path}.offer", f"no [[offers]] named {offer!r}; "
                       + (f"did you mean {close[0]!r}? " if close else "")
                       + f"use one of {', '.join([o.name for o in offers] + ['none'])}")
        for j, st in enumerate(v["steps"]):
            if st not in step_names:
                raise _err(src, f"{path}.steps[{j}]", f"no step named {st!r}; steps: {', '.join(sorted(step_names))}")
        out.append(Variant(v["name"], v["weight"], v["subject"], v["body"], template, offer, tuple(v["steps"])))
    return tuple(out)


def _offers(raw, src: str) -> tuple[Offer, ...]:
    out = []
    for path, o in _named_tables(raw, "offers", "offer", src, "name, where, text and cost"):
        name = o["name"]
        if name == "none" or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,59}", name):
            raise _err(src, f"{path}.name", "must be 1-60 letters, digits, '-', '_' or '.' (and not 'none')")
        rule = _rule(o["where"], src, f"{path}.where")
        rule = Rule("") if rule is None else rule
        out.append(Offer(name, rule, o["text"] if o["text"] is not None else name, _beside(o["codes"], src),
                         o["cost"]["fixed"], o["cost"]["share"]))
    return tuple(out)
