"""The scoring settings: every option of ``score``, its default and unit, in one place.

The Python API (``engine.score(..., policy_cap=5)``), partitioned scoring and the
``winback score`` options all take their defaults from :class:`Settings`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from engine.errors import ConfigError
from engine.schema import DEFAULT_ACTIVITY, EVENT_CODE, EVENTS, MAX_CAP
from engine.tz import is_timezone, parse_as_of

__all__ = ["Settings", "DEFAULTS", "settings", "activity_mask"]


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the scoring phases need besides the data; one value shared by all partitions."""

    as_of: int = 0                                  # epoch seconds, UTC (fixed by :func:`settings`)
    activity: tuple[str, ...] = DEFAULT_ACTIVITY    # events that make a user active
    default_timezone: str = "UTC"                   # for users without a valid timezone
    policy_cap: int = 3                             # messages per policy window (fatigue budget)
    policy_window_days: int = 7                     # 7 or 30 days
    model_window_days: int = 730                    # days of activity the models read (older: last_active_at only)
    half_life_days: float = 60.0                    # decay of the send-time histogram, days
    prior_weight: float = 4.0                       # Dirichlet prior of the send time, pseudo-events
    affinity_half_life_days: float = 90.0           # decay of content affinity, days
    horizon_days: float = 30.0                      # lapse_risk = P(no activity in the next horizon_days days)
    penalizer: float = 0.0                          # BG/NBD L2 coefficient (lifetimes' penalizer_coef)
    fatigue: str = "learned"                        # fatigue_budget: "learned" (scoring.fatigue_model) or "rule"
    lapse_model: str = "auto"                       # lapse_risk: "auto", "auto_pareto", "closed_form" (BG/NBD), "pareto" or "learned"
    tz_min_engagements: int = 10                    # timezone from engagement hours: at least this many engagements
    tz_min_posterior: float = 0.6                   # ... and at least this posterior of the zone (scoring.tzhours)
    tz_within_hours: int = 2                        # ... counting the zones this many hours from it
    send_time_cohort: str = ""                      # users column whose cohorts tilt the send-time prior ("": none)


#: the defaults, for the CLI's options and the docs
DEFAULTS = Settings()
_NAMES = tuple(f.name for f in dataclasses.fields(Settings) if f.name != "as_of")


def activity_mask(activity) -> np.ndarray:
    """bool [n_events + 1]: True for the event codes named in ``activity`` (names or "a,b")."""
    names = [a.strip() for a in (activity.split(",") if isinstance(activity, str) else activity) if a.strip()]
    unknown = [a for a in names if a not in EVENT_CODE]
    if unknown or not names:
        raise ConfigError(f"--activity {','.join(names) or '(empty)'}: unknown event name(s) {unknown}; "
                          f"choose from {', '.join(EVENTS)}")
    mask = np.zeros(len(EVENTS) + 1, np.bool_)
    for a in names:
        mask[EVENT_CODE[a]] = True
    return mask


def settings(*, as_of=None, **options) -> Settings:
    """Checked :class:`Settings`; ``as_of`` is fixed here (default now), once for every partition.

    Unknown option names are a :class:`ConfigError` naming the nearest valid one.
    """
    for name in options:
        if name not in _NAMES:
            import difflib  # only for the error

            near = difflib.get_close_matches(name, _NAMES, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; valid options: {', '.join(_NAMES)}"
            raise ConfigError(f"unknown scoring option {name!r}{hint}")
    cfg = dataclasses.replace(DEFAULTS, **options)
    mask = activity_mask(cfg.activity)
    if isinstance(cfg.policy_cap, bool) or not (isinstance(cfg.policy_cap, (int, np.integer))
                                                and 1 <= cfg.policy_cap <= MAX_CAP):
        raise ConfigError(f"--cap must be a whole number of messages from 1 to {MAX_CAP} per window "
                          f"(e.g. 3, as a campaign's max_messages), got {cfg.policy_cap!r}")
    if cfg.policy_window_days not in (7, 30):
        raise ConfigError("policy_window_days must be 7 or 30 (the windows scored)")
    if not is_timezone(cfg.default_timezone):
        raise ConfigError(f"--default-timezone {cfg.default_timezone!r} is not an IANA timezone "
                          "such as Europe/Paris")
    if not 1 <= cfg.model_window_days <= 36500:
        raise ConfigError(f"model_window_days must be a whole number of days from 1 to 36500 (e.g. 730), "
                          f"got {cfg.model_window_days}")
    if not cfg.affinity_half_life_days > 0:
        raise ConfigError(f"--affinity-half-life must be > 0 days, got {cfg.affinity_half_life_days}")
    if not 0 < cfg.horizon_days <= 3650:
        raise ConfigError(f"--horizon must be more than 0 and at most 3650 days (e.g. 30), got {cfg.horizon_days}")
    if not 0 <= cfg.penalizer < float("inf"):
        raise ConfigError(f"--penalizer must be a number >= 0 (e.g. 0.001), got {cfg.penalizer}")
    if cfg.fatigue not in ("learned", "rule"):
        raise ConfigError(f"--fatigue must be 'learned' or 'rule', got {cfg.fatigue!r}")
    if cfg.lapse_model not in ("auto", "auto_pareto", "closed_form", "pareto", "learned"):
        raise ConfigError(f"--lapse-model must be 'auto', 'auto_pareto', 'closed_form', 'pareto' or 'learned', "
                          f"got {cfg.lapse_model!r}")
    if not 0 <= cfg.tz_min_engagements < 2 ** 31:
        raise ConfigError(f"--tz-min-engagements must be a whole number >= 0 (0: never infer), got {cfg.tz_min_engagements}")
    if not 0.5 <= cfg.tz_min_posterior <= 1.0:
        raise ConfigError(f"--tz-min-posterior must be between 0.5 and 1 (e.g. 0.9), got {cfg.tz_min_posterior}")
    if cfg.tz_within_hours not in (0, 1, 2):
        raise ConfigError(f"--tz-within-hours must be 0, 1 or 2, got {cfg.tz_within_hours}")
    if not isinstance(cfg.send_time_cohort, str):
        raise ConfigError(f"--send-time-cohort must name a users column (e.g. segment or signup_at), "
                          f"got {cfg.send_time_cohort!r}")
    return Settings(as_of=int(parse_as_of(as_of)), activity=tuple(EVENTS[i] for i in np.nonzero(mask[:len(EVENTS)])[0]),
                    default_timezone=cfg.default_timezone, policy_cap=int(cfg.policy_cap),
                    policy_window_days=int(cfg.policy_window_days), model_window_days=int(cfg.model_window_days),
                    half_life_days=float(cfg.half_life_days), prior_weight=float(cfg.prior_weight),
                    affinity_half_life_days=float(cfg.affinity_half_life_days),
                    horizon_days=float(cfg.horizon_days), penalizer=float(cfg.penalizer), fatigue=cfg.fatigue,
                    lapse_model=cfg.lapse_model,
                    tz_min_engagements=int(cfg.tz_min_engagements), tz_min_posterior=float(cfg.tz_min_posterior),
                    tz_within_hours=int(cfg.tz_within_hours), send_time_cohort=cfg.send_time_cohort.strip())
