"""A synthetic world of users and events with a known truth, for demos, tests and benchmarks.

The world follows the data contract (``users``, ``events``) and adds ``truth``: what
each user really is, so scoring accuracy and campaign lift can be measured.

Model (all rates per day, times UTC unless "local"):

* **Users** spread over ~20 IANA timezones (with DST zones and the +05:30 / +05:45
  offsets); emails for ~90 %, phones for ~50 %, push tokens for ~40 %; consents per
  channel, some null (= no consent); custom attributes ``first_name``, ``plan``,
  ``country``.
* **Activity** in the spirit of BG/NBD (Fader, Hardie & Lee 2005): each user has an
  activity rate ``lambda ~ Gamma(r, 1/alpha)`` (active days per day) and a chance
  ``p ~ Beta(a, b)`` to drop out after each active day.  Active days are a Poisson
  process from the user's start (signup, or the window's first day for older users:
  what came before the window is not simulated); the user stops after a Geometric(p) number of active
  days, so at ``as_of`` some users are truly gone (``truth.alive``).  Each active day
  has 1 + Poisson(0.6) sessions, a purchase with probability ``purchase_p`` (value
  lognormal around the user's ``value_mean``); sessions fall at the user's preferred
  local hour with noise (70 %) or at any hour (30 %), and a share of active days moves
  to the preferred weekday.
* **Campaign history**: past sends per channel (only with consent and an address;
  Poisson, about every 10 days by email, 14 by push, 30 by SMS) at a sender-chosen
  hour (UTC for 40 % of sends, the user's local hour for 60 %); each send is opened
  with :func:`engine.world.response_probability` (alive at send time, channel
  responsiveness, delivery hour vs preferred hour, messages on any channel in the 7
  days before), a click follows an open with ``CLICK_GIVEN_OPEN``; unsubscribes
  (:func:`engine.world.unsubscribe_probability`), hard bounces and complaints end sends
  on that channel.  Clicks are activity to the scorer; a gone user's rare click (the
  ``DEAD_RESPONSE_SCALE`` of world.py) does not revive them here - reviving is what the
  outcome simulator models with ``REVIVE_GIVEN_CLICK``.
* **Items** (``n_items``; 0 = none): ``items.arrow``, an ``item_id`` on sessions and
  purchases from drifting tastes, ``truth.theme`` and ``truth.taste_drift``; see
  :mod:`engine.generate_items` (own random streams: every other column is unchanged).
* **Bad rows** (``bad_rows`` = F): about F of the event rows and F of the user rows
  are bad, split evenly over every kind of the data contract except wrong column
  types (one file cannot hold two types for a column); ``world.json`` counts them.

Local times are converted with each timezone's offsets and DST transitions, found
with ``zoneinfo`` once per timezone and day when the generator starts (:class:`engine.tz.Offsets`,
the same local time as scoring and planning), never per event.

Everything is vectorised numpy over chunks of users, so 1M users with ~60M events
stream to disk in bounded memory (about 25 s and 0.85 GB peak RSS, 1.7 GB of Arrow or 0.65
GB of Parquet; with the default catalogue ~31 s, 0.86 GB, 2.2 GB or 0.7 GB).  Same seed, same files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from engine.synth import catalogue as generate_items
from engine.synth import world
from engine.io.atomic import atomic_path
from engine.errors import ConfigError, InputError
from engine.synth.bad import bad_events, bad_users
from engine.progress import bar
from engine.schema import CHANNELS, EVENT_CODE, EVENTS, SECONDS_PER_DAY, TIMESTAMP
from engine.tz import Offsets, parse_as_of

__all__ = ["generate", "TIMEZONES", "DEFAULT_AS_OF", "FORMATS"]

from engine.synth import DEFAULT_AS_OF, FORMATS  # noqa: E402,F401 (the generator's defaults)

#: (zone, weight): DST zones both hemispheres, half- and quarter-hour offsets.
TIMEZONES: tuple[tuple[str, float], ...] = (
    ("America/New_York", 0.16), ("America/Chicago", 0.08), ("America/Denver", 0.03),
    ("America/Los_Angeles", 0.09), ("America/Sao_Paulo", 0.05), ("America/Mexico_City", 0.03),
    ("Europe/London", 0.08), ("Europe/Berlin", 0.08), ("Europe/Paris", 0.06), ("Europe/Madrid", 0.03),
    ("Europe/Warsaw", 0.02), ("Africa/Lagos", 0.02), ("Asia/Kolkata", 0.06), ("Asia/Kathmandu", 0.01),
    ("Asia/Singapore", 0.03), ("Asia/Tokyo", 0.04), ("Asia/Shanghai", 0.02), ("Australia/Sydney", 0.04),
    ("Australia/Adelaide", 0.01), ("Pacific/Auckland", 0.01), ("UTC", 0.01),
)
_FIRST = np.array(["Alex", "Sam", "Maria", "Wei", "Priya", "Lena", "Omar", "Yuki", "Noah", "Ada",
                   "Jonas", "Chloe", "Mateo", "Aisha", "Ken", "Ines", "Leo", "Sara", "Ravi", "Emma"])
_PLANS = np.array(["free", "pro", "enterprise"])
_COUNTRY = {"America": "US", "Europe": "DE", "Asia": "IN", "Australia": "AU", "Africa": "NG",
            "Pacific": "NZ", "UTC": "GB"}
#: Latent population parameters (days).
PARAMS = {
    "r": 0.9, "alpha": 6.0,          # lambda ~ Gamma(r, scale=1/alpha): mean 0.15 active days/day
    "a": 0.7, "b": 6.0,              # p ~ Beta(a, b): mean dropout 0.10 per active day
    "sessions_extra": 0.6, "purchase_p": 0.12, "hour_sd": 1.6, "on_hour_share": 0.7,
    "weekday_share": 0.35, "local_send_share": 0.6,
    "send_rate": {"email": 1 / 10, "sms": 1 / 30, "push": 1 / 14},
    "resp_mean": {"email": 0.22, "sms": 0.30, "push": 0.12},
    "hard_bounce": {"email": 0.002, "sms": 0.001, "push": 0.003},
    "complaint": {"email": 0.0004, "sms": 0.0008, "push": 0.0},
}
_EVENT_TYPE = pa.dictionary(pa.int8(), pa.string())
_EVENTS_SCHEMA = pa.schema([
    ("user_id", pa.int64()), ("ts", TIMESTAMP), ("event", _EVENT_TYPE),
    ("channel", _EVENT_TYPE), ("value", pa.float64()),
])
#: Dictionaries of the event and channel columns; the unknown "pageview" and "fax" are
#: appended only to a world with bad rows (an Arrow IPC file has one dictionary per column).
_DICTS = {False: (pa.array(EVENTS, pa.string()), pa.array(CHANNELS, pa.string())),
          True: (pa.array(list(EVENTS) + ["pageview"], pa.string()), pa.array(list(CHANNELS) + ["fax"], pa.string()))}


def _users_chunk(rng, ids, n_zones, as_of, days):
    n = len(ids)
    zone_w = np.array([w for _, w in TIMEZONES])
    zone = rng.choice(n_zones, size=n, p=zone_w / zone_w.sum())
    has = {"email": rng.random(n) < 0.9, "sms": rng.random(n) < 0.5, "push": rng.random(n) < 0.4}
    consent = {}
    for c, p_yes in (("email", 0.8), ("sms", 0.45), ("push", 0.6)):
        u = rng.random(n)
        consent[c] = np.where(u < p_yes, 1, np.where(u < p_yes + 0.1, -1, 0))  # -1: null
    signup = as_of - (rng.uniform(20, days + 700, n) * SECONDS_PER_DAY).astype(np.int64)
    lam = rng.gamma(PARAMS["r"], 1.0 / PARAMS["alpha"], n)
    p_drop = rng.beta(PARAMS["a"], PARAMS["b"], n)
    pref_hour = np.clip(np.round(rng.normal(19, 3.5, n)), 0, 23).astype(np.int64) % 24
    pref_hour = np.where(rng.random(n) < 0.25, rng.integers(6, 23, n), pref_hour)
    pref_wd = rng.integers(0, 7, n)
    resp = {c: rng.beta(2.0, 2.0 / m - 2.0, n) for c, m in PARAMS["resp_mean"].items()}
    return {
        "n": n, "ids": ids, "zone": zone, "has": has, "consent": consent, "signup": signup,
        "lam": lam, "p_drop": p_drop, "pref_hour": pref_hour, "pref_wd": pref_wd, "resp": resp,
        "fatigue": rng.gamma(2.0, 0.08, n), "unsub": rng.beta(1.0, 400.0, n),
        "value_mean": np.exp(rng.normal(3.4, 0.6, n)), "purchase_p": rng.beta(1.2, 1.2 / PARAMS["purchase_p"] - 1.2, n),
    }


def _activity(rng, u, as_of, days, offsets):
    """Active days (Poisson process, Geometric dropout) -> session/purchase rows and truth."""
    n = u["n"]
    start = np.maximum(u["signup"], as_of - days * SECONDS_PER_DAY)
    span_days = (as_of - start) / SECONDS_PER_DAY
    n_arr = rng.poisson(u["lam"] * span_days)
    k_drop = rng.geometric(u["p_drop"])                      # active days until dropout (incl. last)
    n_act = np.minimum(n_arr, k_drop)
    alive = k_drop > n_arr
    owner = np.repeat(np.arange(n), n_act)
    # uniform arrival positions, sorted within user: the first n_act of n_arr order statistics
    # are approximated by sorted uniforms scaled to the fraction n_act/n_arr of the span.
    frac = np.where(n_arr > 0, n_act / np.maximum(n_arr, 1), 0.0)
    pos = rng.beta(1.0, 1.0, len(owner))
    t = start[owner] + (pos * frac[owner] * span_days[owner] * SECONDS_PER_DAY).astype(np.int64)
    # dropout instant: the last active day of a gone user
    last_t = np.full(n, np.iinfo(np.int64).min)
    np.maximum.at(last_t, owner, t)
    dropout_at = np.where(alive | (n_act == 0), np.iinfo(np.int64).min, last_t)
    # place each active day at a local hour near the preferred one, move some to the preferred weekday
    zone = u["zone"][owner]
    off = offsets.at(zone, t)
    local_day = (t + off) // SECONDS_PER_DAY
    wd = (local_day + 3) % 7                                 # 1970-01-01 was a Thursday (3)
    shift = (u["pref_wd"][owner] - wd) % 7
    shift = np.where(shift > 3, shift - 7, shift)
    move = rng.random(len(owner)) < PARAMS["weekday_share"]
    local_day = local_day + np.where(move, shift, 0)
    n_sess = 1 + rng.poisson(PARAMS["sessions_extra"], len(owner))
    s_owner = np.repeat(owner, n_sess)
    s_day = np.repeat(local_day, n_sess)
    on_hour = rng.random(len(s_owner)) < PARAMS["on_hour_share"]
    hour = np.where(on_hour, u["pref_hour"][s_owner] + rng.normal(0, PARAMS["hour_sd"], len(s_owner)),
                    rng.uniform(0, 24, len(s_owner)))
    local_s = (s_day * SECONDS_PER_DAY + (np.mod(hour, 24.0) * 3600).astype(np.int64)
               + rng.integers(0, 3600, len(s_owner)))
    s_ts = offsets.to_utc(u["zone"][s_owner], local_s)
    s_ts = np.clip(s_ts, start[s_owner], as_of - 1)           # the weekday move stays in the window
    buy = rng.random(len(owner)) < u["purchase_p"][owner]
    p_owner = owner[buy]
    first_sess = np.cumsum(n_sess) - n_sess
    p_ts = np.minimum(s_ts[first_sess[buy]] + rng.integers(60, 1800, buy.sum()), as_of - 1)
    p_val = np.round(u["value_mean"][p_owner] * np.exp(rng.normal(0, 0.4, len(p_owner))), 2)
    return {
        "alive": alive, "dropout_at": dropout_at,
        "sess": (s_owner, s_ts), "purchase": (p_owner, p_ts, p_val),
    }


def _recent_7d(owner: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Messages to the same user in the 7 days before each one; rows sorted by (owner, ts)."""
    key = owner.astype(np.int64) * (4 * 10**9) + ts
    return np.arange(len(key)) - np.searchsorted(key, key - 7 * SECONDS_PER_DAY, side="left")


def _history(rng, u, act, as_of, days, offsets):
    """Past sends on every channel and the opens/clicks/unsubscribes/bounces/complaints they caused.

    Returns rows ``(owner, ts, event code, channel codes)``.  Fatigue counts the messages
    on all channels in the 7 days before each send, as in :mod:`engine.world`.
    """
    n = u["n"]
    window0 = as_of - days * SECONDS_PER_DAY
    owners, chans = [], []
    for c_code, c in enumerate(CHANNELS):
        ok = u["has"][c] & (u["consent"][c] == 1)
        k = rng.poisson(PARAMS["send_rate"][c] * days * ok)
        owners.append(np.repeat(np.arange(n), k))
        chans.append(np.full(k.sum(), c_code, np.int8))
    owner, ch = np.concatenate(owners), np.concatenate(chans)
    if not len(owner):
        return []
    sender_hour = rng.choice([9, 10, 12, 14, 17, 19], size=len(owner))
    day = rng.integers(window0 // SECONDS_PER_DAY, as_of // SECONDS_PER_DAY, len(owner))
    ts = day * SECONDS_PER_DAY + sender_hour * 3600 + rng.integers(0, 900, len(owner))
    # some campaigns went out at that hour UTC, the others at that hour in the user's timezone
    local = rng.random(len(owner)) < PARAMS["local_send_share"]
    ts = np.where(local, offsets.to_utc(u["zone"][owner], ts), ts)
    ts = np.clip(ts, window0, as_of - 7200)
    order = np.lexsort((ts, owner))
    owner, ts, ch = owner[order], ts[order], ch[order]
    # unsubscribes, hard bounces and complaints: the first one ends sends on that channel
    n7 = _recent_7d(owner, ts)
    unsub = rng.random(len(owner)) < world.unsubscribe_probability(u["unsub"][owner], n7)
    bounce = rng.random(len(owner)) < np.array([PARAMS["hard_bounce"][c] for c in CHANNELS])[ch]
    complaint = rng.random(len(owner)) < np.array([PARAMS["complaint"][c] for c in CHANNELS])[ch]
    stop = unsub | bounce | complaint
    slot = owner * len(CHANNELS) + ch
    first_stop = np.full(n * len(CHANNELS), np.iinfo(np.int64).max)
    np.minimum.at(first_stop, slot[stop], ts[stop])
    keep = ts <= first_stop[slot]
    owner, ts, ch = owner[keep], ts[keep], ch[keep]
    unsub, bounce, complaint = unsub[keep], bounce[keep] & ~unsub[keep], complaint[keep] & ~unsub[keep]
    # opens of the sends that went out, with the fatigue of what really went out
    n7 = _recent_7d(owner, ts)
    alive_then = (act["dropout_at"][owner] == np.iinfo(np.int64).min) | (ts < act["dropout_at"][owner])
    local_hour = ((ts + offsets.at(u["zone"][owner], ts)) % SECONDS_PER_DAY) / 3600.0
    resp = np.stack([u["resp"][c] for c in CHANNELS], axis=1)[owner, ch]
    p_open = world.response_probability(alive_then, resp, local_hour, u["pref_hour"][owner], n7, u["fatigue"][owner])
    opened = rng.random(len(owner)) < p_open
    clicked = opened & (rng.random(len(owner)) < world.CLICK_GIVEN_OPEN)
    open_ts = np.minimum(ts + rng.exponential(2 * 3600, len(ts)).astype(np.int64) + 30, as_of - 1)
    click_ts = np.minimum(open_ts + rng.exponential(600, len(ts)).astype(np.int64) + 5, as_of - 1)
    return [
        (owner, ts, EVENT_CODE["send"], ch),
        (owner[opened], open_ts[opened], EVENT_CODE["open"], ch[opened]),
        (owner[clicked], click_ts[clicked], EVENT_CODE["click"], ch[clicked]),
        (owner[unsub], open_ts[unsub], EVENT_CODE["unsubscribe"], ch[unsub]),
        (owner[bounce], ts[bounce] + 60, EVENT_CODE["bounce"], ch[bounce]),
        (owner[complaint], open_ts[complaint], EVENT_CODE["complaint"], ch[complaint]),
    ]


def _events_batch(ids, owner, ts, ev, ch, val, dicts) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([
        pa.array(ids[owner], pa.int64()),
        pa.array(ts * 1_000_000, TIMESTAMP),
        pa.DictionaryArray.from_arrays(pa.array(ev, pa.int8()), dicts[0]),
        # null channels keep a valid index under the mask: some readers look at masked slots
        pa.DictionaryArray.from_arrays(pa.array(np.maximum(ch, 0), pa.int8(), mask=ch < 0), dicts[1]),
        pa.array(val, pa.float64(), mask=np.isnan(val)),
    ], schema=_EVENTS_SCHEMA)


def _users_table(u, zones, rng) -> pa.Table:
    import pyarrow.compute as pc

    n = u["n"]
    zone_arr = pa.array(zones, pa.string())
    tz_null = rng.random(n) < 0.025                          # ~2.5 % without a timezone
    ids = u["ids"]
    sid = pa.array(ids, pa.int64()).cast(pa.string())

    def join(*parts, mask):
        arr = pc.binary_join_element_wise(*parts, "")
        return pc.if_else(pa.array(mask), pa.nulls(n, pa.string()), arr)

    def cons(c):
        v = u["consent"][c]
        return pa.array(v == 1, pa.bool_(), mask=v == -1)

    countries = np.array([_COUNTRY[z.split("/")[0]] for z in zones], dtype=object)
    phone_tail = pa.array(ids % 10_000_000 + 10_000_000, pa.int64()).cast(pa.string())
    return pa.table({
        "user_id": pa.array(ids, pa.int64()),
        "timezone": pc.if_else(pa.array(tz_null), pa.nulls(n, pa.string()), zone_arr.take(pa.array(u["zone"]))),
        "email": join("user", sid, "@example.com", mask=~u["has"]["email"]),
        "phone": join("+1555", pc.utf8_slice_codeunits(phone_tail, 1), mask=~u["has"]["sms"]),
        "push_token": join("tok_", sid, mask=~u["has"]["push"]),
        "consent_email": cons("email"), "consent_sms": cons("sms"), "consent_push": cons("push"),
        "consent_ads": pa.array((ids * 2654435761) % 100 < 60, pa.bool_()),  # no draw: the world is unchanged
        "signup_at": pa.array(u["signup"] * 1_000_000, TIMESTAMP),
        "first_name": pa.array(_FIRST[ids % len(_FIRST)], pa.string()),
        "plan": pa.array(_PLANS[np.searchsorted([70, 95], ids % 100, side="right")], pa.string()),
        "country": pa.array(countries[u["zone"]], pa.string()),
    })


def _truth_table(u, act) -> pa.Table:
    null_drop = act["dropout_at"] == np.iinfo(np.int64).min
    return pa.table({
        "user_id": pa.array(u["ids"], pa.int64()),
        "alive": pa.array(act["alive"], pa.bool_()),
        "activity_rate": pa.array(u["lam"]),
        "p_drop": pa.array(u["p_drop"]),
        "dropout_at": pa.array(np.where(null_drop, 0, act["dropout_at"]) * 1_000_000, TIMESTAMP, mask=null_drop),
        "preferred_hour_local": pa.array(u["pref_hour"], pa.int8()),
        "preferred_weekday": pa.array(u["pref_wd"], pa.int8()),
        "resp_email": pa.array(u["resp"]["email"]),
        "resp_sms": pa.array(u["resp"]["sms"]),
        "resp_push": pa.array(u["resp"]["push"]),
        "fatigue_sensitivity": pa.array(u["fatigue"]),
        "unsub_risk": pa.array(u["unsub"]),
        "value_mean": pa.array(u["value_mean"]),
        "purchase_p": pa.array(u["purchase_p"]),
    })


def generate(
    n_users: int,
    *,
    seed: int = 0,
    out_dir: str | os.PathLike,
    as_of: str | int | dt.datetime | None = DEFAULT_AS_OF,
    days: int = 365,
    bad_rows: float = 0.0,
    format: str = "arrow",
    chunk_users: int = 50_000,
    progress: bool = False,
    n_items: int | None = None,
) -> dict:
    """Generate a world of ``n_users`` users into ``out_dir``; return a summary dict.

    Writes ``users.arrow``, ``events.arrow``, ``truth.arrow`` (Arrow IPC, uncompressed;
    ``.parquet`` with zstd when ``format="parquet"``) and ``world.json`` (the summary).
    Events span the ``days`` days before ``as_of`` (UTC); ``n_users``/``n_events`` count
    the good rows only.  Users are made ``chunk_users`` at a time (fewer if ``days`` >
    365), so memory stays bounded; the files depend on ``seed`` and ``chunk_users``.  With
    ``bad_rows`` = F > 0, about F of the event rows and F of the user rows are bad rows
    of every kind in the data contract; ``summary["bad_rows"]`` (also in ``world.json``)
    counts them per table and kind, with the reason names ``winback validate`` reports:
    ``{"users": {"null_user_id": .., "duplicate_user_id": .., "unknown_timezone": ..},
    "events": {"unknown_event": .., "unknown_channel": .., "missing_channel": ..,
    "future_ts": .., "unknown_user": .., "null_user_id": ..}}``.  ``n_items`` (default users // 20
    in [200, 100_000]; 0 = none): the catalogue and item events of :mod:`engine.generate_items`.
    """
    if n_users < 1:
        raise ConfigError(f"--users must be at least 1, got {n_users}")
    if not 0 <= seed < 2**63:  # numpy's seeds are whole numbers >= 0
        raise ConfigError(f"--seed must be a whole number from 0 to 2**63 - 1, got {seed}")
    if not 0.0 <= bad_rows < 0.5:
        raise ConfigError(f"--bad-rows must be a fraction in [0, 0.5), got {bad_rows}")
    if days < 1:
        raise ConfigError(f"--days must be at least 1, got {days}")
    if format not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    if chunk_users < 1:
        raise ConfigError(f"chunk_users must be at least 1, got {chunk_users}")
    n_items = generate_items.resolve_n_items(n_items, n_users)
    t0 = time.perf_counter()
    as_of_s = parse_as_of(as_of)
    out = Path(out_dir)
    try:
        return _write_world(n_users, seed, out, as_of_s, days, bad_rows, format, chunk_users, progress, t0, n_items)
    except OSError as exc:
        raise InputError(f"cannot write the world to {out} ({exc.strerror or exc}); pass -o a directory this "
                         "user can write, on a disk with room (1M users take about 1.8 GB as arrow, "
                         "about 0.7 GB as parquet)") from None


def _write_world(n_users, seed, out, as_of_s, days, bad_rows, format, chunk_users, progress, t0, n_items) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    zones = [z for z, _ in TIMEZONES]
    day0 = (as_of_s - (days + 800) * SECONDS_PER_DAY) // SECONDS_PER_DAY
    offsets = Offsets(zones, day0 * SECONDS_PER_DAY, (day0 + days + 810) * SECONDS_PER_DAY)
    root = np.random.default_rng(seed)
    perm = root.permutation(n_users).astype(np.int64)
    all_ids = 1_000_000 + perm * 37 + 11                     # unique, not sequential
    counts = np.zeros(len(EVENTS), np.int64)
    users_parts, truth_parts = [], []
    chunk_users = max(1, chunk_users * 365 // max(days, 365))   # a longer history: fewer users per chunk
    n_chunks = (n_users + chunk_users - 1) // chunk_users
    bad_counts: dict[str, dict[str, int]] = {}
    n_events = 0
    pbar = bar(progress, total=n_users, desc="generate", unit="users")
    cat, schema = generate_items.catalogue(seed, n_items, as_of_s, days, _EVENTS_SCHEMA)   # None without items
    files = {k: out / f"{k}.{format}" for k in ("users", "events", "truth") + (("items",) if cat else ())}
    dicts = _DICTS[bad_rows > 0]
    # every file is renamed into place only once all are written; world.json goes last (exit order)
    with contextlib.ExitStack() as stack:
        tmp_json = stack.enter_context(atomic_path(out / "world.json"))
        tmp = {k: stack.enter_context(atomic_path(v)) for k, v in files.items()}
        with _writer(tmp["events"], format, schema) as writer:
            for ci in range(n_chunks):
                rng = np.random.default_rng([seed, ci])
                ids = all_ids[ci * chunk_users:(ci + 1) * chunk_users]
                u = _users_chunk(rng, ids, len(zones), as_of_s, days)
                act = _activity(rng, u, as_of_s, days, offsets)
                owner, ts, ev, ch, val = _chunk_rows(act, _history(rng, u, act, as_of_s, days, offsets))
                chi = generate_items.chunk_items(seed, ci, cat, u, act, len(ts))    # None without items
                # rows leave in a random order (the contract does not promise sorted events)
                shuffle = rng.permutation(len(ts))
                for lo in range(0, len(ts), 1 << 20):
                    sel = shuffle[lo:lo + (1 << 20)]
                    batch = _events_batch(ids, owner[sel], ts[sel], ev[sel], ch[sel], val[sel], dicts)
                    writer.write_batch(generate_items.with_items(batch, chi, sel, schema))
                counts += np.bincount(ev, minlength=len(EVENTS))
                n_events += len(ts)
                users_parts.append(_users_table(u, zones, rng))
                truth_parts.append(generate_items.truth_with_theme(_truth_table(u, act), chi))
                pbar.update(len(ids))
            if bad_rows > 0:
                n_bad = max(1, int(round(bad_rows * n_events / 6)))
                batch, bad_counts["events"] = bad_events(np.random.default_rng([seed, 10**6]), all_ids, n_bad,
                                                         as_of_s, dicts, _EVENTS_SCHEMA)
                writer.write_batch(generate_items.with_items(batch, None, None, schema))
        pbar.close()
        users = pa.concat_tables(users_parts)
        if bad_rows > 0:
            users, bad_counts["users"] = bad_users(np.random.default_rng([seed, 10**6 + 1]), users, bad_rows)
        truth = pa.concat_tables(truth_parts)
        for name, table in (("users", users), ("truth", truth)) + ((("items", cat.table()),) if cat else ()):
            if format == "parquet":
                pq.write_table(table, tmp[name], compression="zstd")
            else:
                feather.write_feather(table, tmp[name], compression="uncompressed")
        summary = {
            "as_of": dt.datetime.fromtimestamp(as_of_s, dt.timezone.utc).isoformat().replace("+00:00", "Z"),
            "seed": seed, "days": days, "n_users": n_users, "n_items": int(n_items), "n_events": int(n_events),
            "events_by_type": {name: int(c) for name, c in zip(EVENTS, counts)},
            "alive_share": float(np.mean(truth["alive"].to_numpy(zero_copy_only=False))),
            "bad_rows": bad_counts, "parameters": PARAMS,
            "seconds": round(time.perf_counter() - t0, 2),
            "format": format, "files": {k: str(v) for k, v in files.items()},
        }
        tmp_json.write_text(json.dumps(summary, indent=2, default=float))
    return summary


def _chunk_rows(act, hist):
    """Concatenate sessions, purchases and campaign rows: (owner, ts, event code, channel code, value)."""
    s_owner, s_ts = act["sess"]
    p_owner, p_ts, p_val = act["purchase"]
    n_s, n_p = len(s_owner), len(p_owner)
    owner = np.concatenate([s_owner, p_owner] + [h[0] for h in hist])
    ts = np.concatenate([s_ts, p_ts] + [h[1] for h in hist])
    ev = np.concatenate([np.full(n_s, EVENT_CODE["session"], np.int8), np.full(n_p, EVENT_CODE["purchase"], np.int8)]
                        + [np.full(len(h[0]), h[2], np.int8) for h in hist])
    ch = np.concatenate([np.full(n_s + n_p, -1, np.int8)] + [h[3] for h in hist])
    val = np.concatenate([np.full(n_s, np.nan), p_val, np.full(len(ts) - n_s - n_p, np.nan)])
    return owner, ts, ev, ch, val


def _writer(path: Path, fmt: str, schema: pa.Schema):
    """A record-batch writer for the events file: Arrow IPC file or Parquet (zstd)."""
    return pq.ParquetWriter(str(path), schema, compression="zstd") if fmt == "parquet" else ipc.new_file(str(path), schema)
