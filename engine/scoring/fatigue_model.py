"""Learned fatigue: how each user's response falls with message volume, and the budget it implies.

**Data** (one pass, inside the fused scoring loop: :func:`accumulate` per event batch):
per user and week ``w`` (0 = the 7 days up to ``as_of``, ... ``WEEKS - 1``), the
messages received ``s_w`` (``send`` events, all channels) and the opens ``o_w``
(capped at ``s_w``), and the most recent week with an unsubscribe or complaint.
26 weeks of uint8 counts: 52 bytes per user.  The load a message of week ``w`` met,
"messages in the 7 days before it", is approximated from the weekly counts by
``L_w = (s_w - 1)/2 + s_(w+1)/2`` (the other messages of its week and of the week
before, each half in the 7 days before on average).

**Response decay** ``P(open) = q_u exp(-beta_u L)``.  The user's own level ``q_u`` is
removed by conditioning on their total opens ``O_u``: the weeks' opens are then
multinomial with shares ``s_w exp(-beta L_w) / sum_v s_v exp(-beta L_v)`` (the
conditional Poisson likelihood), whose score and information in ``beta`` are::

    S_u = O_u Lbar_u - sum_w o_w L_w,   I_u = O_u Var_u(L)

(``Lbar_u``, ``Var_u`` the mean and variance of ``L_w`` under those shares).  The
population ``beta`` solves ``sum_u S_u = 0`` (Fisher scoring); the spread of the true
``beta_u`` around it by the method of moments, ``sigma^2 = (sum S_u^2 - sum I_u) /
sum I_u^2`` (``E[S_u^2] = I_u + I_u^2 sigma^2``); each user's ``beta_u`` is the one-step
empirical-Bayes (normal prior, Laplace) posterior mode ``beta + S_u / (I_u + 1/sigma^2)``:
a user with little history stays at the population's value.

The user's response level at no load is the gamma-Poisson posterior mean
``q_u = (O_u + q b0) / (sum_w s_w exp(-beta_u L_w) + b0)`` with ``q`` the population's
level and ``b0 = 20`` messages of prior weight.

**Harm**: an unsubscribe per message with probability ``u0 (1 + L)`` (pooled:
unsubscribes / sum of ``s_w (1 + L_w)``), which loses the subscriber's future responses,
``q_u M`` with ``M = cap * value_days / window_days`` messages (the rest of a quarter
at the cap by default), plus a fixed ``unsubscribe_cost`` (default 10 responses) for the
list's health.

**Budget**: the ``j``-th further message in the window (``n`` already received) is
worth sending while its expected response exceeds its expected harm,
``q_u exp(-beta_u (n + j)) > u0 (1 + n + j) (q_u M + unsubscribe_cost)``;
``fatigue_budget`` = the number of leading ``j = 0, 1, ...`` that pass, at most
``cap - n``, and 0 for a user who ever complained.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from numba import prange

from engine.io.meta import SCORE, read_meta
from engine.jit import njit, pjit
from engine.schema import COMPLAINT, OPEN, SECONDS_PER_DAY, SEND, UNSUBSCRIBE

__all__ = ["WEEKS", "FatigueAccumulators", "accumulate", "accumulate_arrays", "FatigueModel", "fit", "budget", "effective", "MIN_USERS_WITH_OPENS", "weekly_load",
           "part_stats", "fit_stats", "user_params", "campaign_budget", "user_sums", "answered", "pair_counts"]

WEEKS = 26
_WEEK = 7 * SECONDS_PER_DAY
VALUE_DAYS = 90.0  # horizon of the responses an unsubscribe loses
UNSUBSCRIBE_COST = 10.0  # fixed harm of an unsubscribe, in responses (opens)
PRIOR_MESSAGES = 20.0  # weight of the population's response level in each user's q_u


@dataclasses.dataclass
class FatigueAccumulators:
    """Per user: ``sends``/``opens`` [n, WEEKS] uint8 (saturating at 255) and ``stop_week``
    [n] int8, the most recent week with an unsubscribe or complaint (-1: none)."""

    sends: np.ndarray
    opens: np.ndarray
    stop_week: np.ndarray

    @classmethod
    def zeros(cls, n_users: int) -> "FatigueAccumulators":
        return cls(np.zeros((n_users, WEEKS), np.uint8), np.zeros((n_users, WEEKS), np.uint8),
                   np.full(n_users, -1, np.int8))


def accumulate(acc: FatigueAccumulators, batch, as_of: int) -> None:
    """Add one :class:`engine.io.readers.EventBatch` (any order, any split) to ``acc``."""
    accumulate_arrays(acc, batch.uidx, batch.ts, batch.event, as_of)


def accumulate_arrays(acc: FatigueAccumulators, uidx: np.ndarray, ts: np.ndarray, event: np.ndarray,
                      as_of: int) -> None:
    """Add events (user index, epoch s, event code) to ``acc``.  The counts saturate and the
    stop week is a minimum, so the result is the same in any order and split: the fused pass
    hands its events over in user-block order (``kernels.Folder(also=...)``), where the
    per-user rows it updates are close in memory (20M events over 1M users: 0.28-0.39 s in
    time order, 0.12 s in block order)."""
    _accumulate(uidx, ts, event, np.int64(as_of), acc.sends, acc.opens, acc.stop_week)


@njit
def _accumulate(uidx, ts, ev, as_of, sends, opens, stop_week):
    for i in range(uidx.shape[0]):
        e = ev[i]
        if e != SEND and e != OPEN and e != UNSUBSCRIBE and e != COMPLAINT:
            continue
        age = as_of - ts[i]
        if age < 0:
            continue
        w = age // _WEEK
        if w >= WEEKS:
            continue
        u = uidx[i]
        if e == SEND:
            if sends[u, w] < 255:
                sends[u, w] += 1
        elif e == OPEN:
            if opens[u, w] < 255:
                opens[u, w] += 1
        elif stop_week[u] < 0 or w < stop_week[u]:
            stop_week[u] = w


def weekly_load(sends: np.ndarray) -> np.ndarray:
    """``L_w = (s_w - 1)/2 + s_(w+1)/2`` per user and week (float64 [n, WEEKS]); see the module docstring."""
    s = sends.astype(np.float64)
    prev = np.zeros_like(s)
    prev[:, :-1] = s[:, 1:]
    return 0.5 * np.maximum(s - 1.0, 0.0) + 0.5 * prev


@dataclasses.dataclass
class FatigueModel:
    """Fitted fatigue: population ``beta`` (per message of load), its spread ``sigma``, the pooled
    unsubscribe chance per message at no load ``u0``, per-user ``beta_u`` and the data sizes."""

    beta: float
    sigma: float
    u0: float
    q: float
    beta_u: np.ndarray
    q_u: np.ndarray
    users_with_opens: int
    messages: int

    def meta(self) -> dict:
        return {"beta": self.beta, "sigma": self.sigma, "unsubscribe_per_message": self.u0, "response": self.q,
                "users_with_opens": self.users_with_opens, "messages": self.messages,
                "value_days": VALUE_DAYS, "unsubscribe_cost": UNSUBSCRIBE_COST}


@njit
def _user_one(sends, opens, u, b):
    """User ``u`` at ``b``: (S_u, I_u, E_u, O_u) of the module docstring, one pass over its weeks."""
    weeks = sends.shape[1]
    e_sum = el = ell = ol = o_sum = 0.0
    for w in range(weeks):
        sw = np.float64(sends[u, w])
        if sw <= 0.0:
            continue
        prev = np.float64(sends[u, w + 1]) if w + 1 < weeks else 0.0
        load = 0.5 * (sw - 1.0) + 0.5 * prev
        e = sw * math.exp(-b * load)
        ow = min(np.float64(opens[u, w]), sw)
        e_sum += e
        el += e * load
        ell += e * load * load
        o_sum += ow
        ol += ow * load
    if e_sum > 0.0:
        mean = el / e_sum
        return o_sum * mean - ol, o_sum * max(ell / e_sum - mean * mean, 0.0), e_sum, o_sum
    return 0.0, 0.0, e_sum, o_sum


@njit
def _user_sums(sends, opens, beta):
    """Per user at its ``beta[u]``: conditional score S_u, information I_u, E_u = sum_w s_w exp(-beta L_w)
    and O_u = sum_w min(o_w, s_w) (module docstring); no [users, weeks] temporaries; this thread."""
    n = sends.shape[0]
    S, I, E, O = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    for u in range(n):
        S[u], I[u], E[u], O[u] = _user_one(sends, opens, u, beta[u])
    return S, I, E, O


@pjit
def _user_sums_parallel(sends, opens, beta):
    """:func:`_user_sums` on every core (users are independent: the same numbers)."""
    n = sends.shape[0]
    S, I, E, O = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    for u in prange(n):
        S[u], I[u], E[u], O[u] = _user_one(sends, opens, u, beta[u])
    return S, I, E, O


#: fewer users than this are summed on one thread: numba's worker threads cost more than the work
SERIAL_BELOW = 1 << 15


def user_sums(sends: np.ndarray, opens: np.ndarray, beta) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(S_u, I_u, E_u, O_u) float64 per user at ``beta`` (a number or one per user)."""
    # a writable copy (a broadcast view is read-only: a second kernel signature to load, 4 ms a process)
    beta = np.array(np.broadcast_to(np.asarray(beta, np.float64), (sends.shape[0],)))
    kernel = _user_sums if sends.shape[0] < SERIAL_BELOW else _user_sums_parallel
    return kernel(np.ascontiguousarray(sends), np.ascontiguousarray(opens), beta)


def _population(sends: np.ndarray, opens: np.ndarray, max_iter: int = 50):
    """The population's ``beta`` (Newton on the conditional score), ``sigma2`` (moment estimate of
    the spread) and the per-user sums (S, I, E, O) at that ``beta`` (module docstring)."""
    beta = 0.0
    for _ in range(max_iter):
        S, I, _, _ = user_sums(sends, opens, beta)
        tot = float(I.sum())
        if tot <= 0:
            break
        step = float(S.sum()) / tot
        beta = float(np.clip(beta + step, -2.0, 5.0))
        if abs(step) < 1e-10:
            break
    S, I, E, O = user_sums(sends, opens, beta)
    info = I > 0
    sum_i2 = float((I[info] ** 2).sum())
    var = (float((S[info] ** 2).sum()) - float(I[info].sum())) / sum_i2 if sum_i2 > 0 else 0.0
    return beta, max(var, 1e-6), S, I, E, O


def fit(acc: FatigueAccumulators, max_iter: int = 50) -> FatigueModel:
    """Population and per-user fatigue from the weekly counts (module docstring)."""
    beta, sigma2, S, I, E, O = _population(acc.sends, acc.opens, max_iter)
    beta_u = beta + S / (I + 1.0 / sigma2)
    q = float(O.sum()) / max(float(E.sum()), 1e-300)
    q_u = (O + q * PRIOR_MESSAGES) / (user_sums(acc.sends, acc.opens, beta_u)[2] + PRIOR_MESSAGES)
    # unsubscribes: users who stopped, over every message's (1 + load)
    exposure, messages = _exposure(acc.sends)
    u0 = float((acc.stop_week >= 0).sum()) / exposure if exposure > 0 else 0.0
    return FatigueModel(beta=beta, sigma=float(np.sqrt(sigma2)), u0=u0, q=q, beta_u=beta_u, q_u=q_u,
                        users_with_opens=int((O > 0).sum()), messages=messages)


def _exposure(sends: np.ndarray, chunk: int = 1 << 16) -> tuple[float, int]:
    """(sum over user-weeks of ``s_w (1 + L_w)``, messages), in blocks of ``chunk`` users so
    that no float64 [users, weeks] copy of the counts is ever whole (at 10M users that is 2 GiB)."""
    exposure, messages = 0.0, 0
    for i in range(0, len(sends), chunk):
        s = sends[i:i + chunk]
        exposure += float((s.astype(np.float64) * (1.0 + weekly_load(s))).sum())
        messages += int(s.sum(dtype=np.int64))
    return exposure, messages


def budget(beta_u: np.ndarray, q_u: np.ndarray, sends_window: np.ndarray, complained: np.ndarray, *, cap: int,
           window_days: float, u0: float, value_days: float = VALUE_DAYS,
           unsubscribe_cost: float = UNSUBSCRIBE_COST) -> np.ndarray:
    """Further messages worth sending in the window (int8, 0..cap): module docstring's rule.

    ``beta_u`` per-user sensitivity (per message of load), ``q_u`` response chance at no
    load, ``sends_window`` messages already received in the window, ``cap`` the policy's
    messages per ``window_days`` days, ``u0`` the unsubscribe chance per message at no load.
    """
    n = np.asarray(sends_window, np.float64)
    beta_u = np.asarray(beta_u, np.float64)
    q_u = np.asarray(q_u, np.float64)
    M = cap * value_days / max(float(window_days), 1e-9)
    room = np.maximum(cap - n, 0.0)
    out = np.zeros(len(n), np.int64)
    going = np.ones(len(n), bool)
    for j in range(int(cap)):
        load = n + j
        ok = going & (j < room) & (q_u * np.exp(-beta_u * load) > u0 * (1.0 + load) * (q_u * M + unsubscribe_cost))
        out += ok
        going = ok
    out[np.asarray(complained, bool)] = 0
    return out.astype(np.int8)


_PAIR = 64  # weekly counts above this share the last bin of the exposure histogram


def answered(acc: FatigueAccumulators, chunk: int = 1 << 16) -> np.ndarray:
    """Per user: whether any message was answered (an open within the week's sends, O_u > 0),
    in blocks of ``chunk`` users so that no [users, weeks] copy is ever whole."""
    n = len(acc.sends)
    has = np.zeros(n, bool)
    for i in range(0, n, chunk):
        has[i:i + chunk] = (np.minimum(acc.opens[i:i + chunk], acc.sends[i:i + chunk]) > 0).any(axis=1)
    return has


@njit
def pair_counts(sends, P):
    """Histogram [P, P] int64 of every user-week's (s_w, s_(w+1)) with s_w > 0, both clipped
    to ``P - 1`` (the week after the last one counts 0); ``sends``: [users, weeks] uint8."""
    pairs = np.zeros((P, P), np.int64)
    n, w = sends.shape
    for u in range(n):
        for j in range(w):
            s = min(np.int64(sends[u, j]), P - 1)
            if s > 0:
                nxt = min(np.int64(sends[u, j + 1]), P - 1) if j + 1 < w else 0
                pairs[s, nxt] += 1
    return pairs


def part_stats(acc: FatigueAccumulators) -> dict:
    """What the population fit needs from one partition, mergeable by :func:`fit_stats`: the weekly
    counts of users with an open (they alone inform beta), a histogram of every user-week's
    (s_w, s_(w+1)) for the exposure sums, and the number of users who unsubscribed or complained."""
    has = answered(acc)
    sends, opens = acc.sends[has], acc.opens[has]
    np.minimum(opens, sends, out=opens)
    return {"sends": sends, "opens": opens, "pairs": pair_counts(acc.sends, np.int64(_PAIR)),
            "stopped": int((acc.stop_week >= 0).sum())}


def fit_stats(stats: list[dict]) -> dict:
    """Population fatigue parameters (beta, sigma, u0, q) from the partitions' :func:`part_stats`."""
    sends = np.concatenate([st["sends"] for st in stats]) if stats else np.zeros((0, WEEKS), np.uint8)
    opens = np.concatenate([st["opens"] for st in stats]) if stats else np.zeros((0, WEEKS), np.uint8)
    beta, sigma2, _, _, _, O = _population(sends, opens)  # u0 and the response come from every user below
    pairs = np.sum([st["pairs"] for st in stats], axis=0) if stats else np.zeros((_PAIR, _PAIR), np.int64)
    sw, sp = np.meshgrid(np.arange(_PAIR), np.arange(_PAIR), indexing="ij")
    load = 0.5 * np.maximum(sw - 1.0, 0.0) + 0.5 * sp
    exposure = float((pairs * sw * (1.0 + load)).sum())
    expected = float((pairs * sw * np.exp(-beta * load)).sum())
    opened = float(opens.sum(dtype=np.int64))  # (a float64 copy of [users, weeks] cost 0.3 s at 1M users)
    stopped = sum(st["stopped"] for st in stats)
    return {"beta": beta, "sigma": float(np.sqrt(sigma2)), "unsubscribe_per_message": stopped / exposure if exposure else 0.0,
            "response": opened / expected if expected else 0.0, "users_with_opens": int((O > 0).sum()),
            "messages": int((pairs * sw).sum()), "value_days": VALUE_DAYS, "unsubscribe_cost": UNSUBSCRIBE_COST}


#: fewer users than this with an answered message and the learned budget has nothing to learn from
MIN_USERS_WITH_OPENS = 20


def effective(requested: str, pop: dict) -> tuple[str, str | None]:
    """The budget actually used (``"learned"`` or ``"rule"``) and a warning when the learned one
    was asked for but the history cannot support it: with fewer than
    :data:`MIN_USERS_WITH_OPENS` users who ever opened or clicked a message (no campaign
    history in the events, or one without opens) the response rate is unknown, and the
    learned rule would hold everyone at 0 messages; the fixed rule applies instead."""
    if requested != "learned" or pop.get("users_with_opens", 0) >= MIN_USERS_WITH_OPENS:
        return requested, None
    return "rule", (f"fatigue: only {pop.get('users_with_opens', 0):,} users ever opened or clicked a message "
                    f"({pop.get('messages', 0):,} messages in the history), too few to learn how volume tires "
                    "them; fatigue_budget follows the fixed rule (--fatigue rule)")


def user_params(acc: FatigueAccumulators, pop: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per-user (beta_u, q_u) given the population's :func:`fit_stats` (module docstring).

    Only users with an answered message have a score or information (S_u = I_u = O_u = 0
    for the others, whose beta_u is the population's), so those sums are taken over them
    alone: the same numbers, on the 30 % of a 1M-user history that answered, a third of a
    second less."""
    n = len(acc.sends)
    has = answered(acc)
    S, I, O = np.zeros(n), np.zeros(n), np.zeros(n)
    S[has], I[has], _, O[has] = user_sums(acc.sends[has], acc.opens[has], pop["beta"])
    beta_u = pop["beta"] + S / (I + 1.0 / pop["sigma"] ** 2)
    q_u = (O + pop["response"] * PRIOR_MESSAGES) / (user_sums(acc.sends, acc.opens, beta_u)[2] + PRIOR_MESSAGES)
    return beta_u, q_u


def campaign_budget(scores, cap: int, window_days: int, scored_budget: np.ndarray) -> np.ndarray:
    """The learned budget recomputed for a campaign's ``cap`` messages per ``window_days`` (7 or 30).

    ``scores``: a scores table (``pyarrow.Table``) from ``score(fatigue="learned")``; its
    ``fatigue_sensitivity``, ``fatigue_response``, ``sends_7d``/``sends_30d`` columns and the
    pooled unsubscribe rate in its ``winback.score`` metadata give :func:`budget` for the
    campaign's policy instead of the score-time cap.  A user the score held at 0 (a
    complaint, or not worth one message) stays at 0.  Scores without them (the "rule",
    older files) keep ``scored_budget``.  int64 per user.
    """
    meta = read_meta(scores, SCORE).get("fatigue") or {}
    recent = "sends_7d" if window_days == 7 else "sends_30d"
    need = ("fatigue_sensitivity", "fatigue_response", recent)
    if meta.get("model") != "learned" or any(c not in scores.column_names for c in need):
        return np.asarray(scored_budget, np.int64)
    beta_u, q_u, sent = (scores[c].fill_null(0).to_numpy(zero_copy_only=False).astype(np.float64) for c in need)
    held = np.asarray(scored_budget) <= 0
    out = budget(beta_u, q_u, sent, held, cap=cap, window_days=window_days, u0=meta["unsubscribe_per_message"],
                 value_days=meta.get("value_days", VALUE_DAYS),
                 unsubscribe_cost=meta.get("unsubscribe_cost", UNSUBSCRIBE_COST))
    return out.astype(np.int64)
