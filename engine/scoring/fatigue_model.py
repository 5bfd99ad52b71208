"""Learned fatigue: how each user's response falls with message volume, and the budget it implies.

**Data** (one pass, inside the fused scoring loop: :func:`accumulate` per event batch):
per user and week ``w`` (0 = the 7 days up to ``as_of``, ... ``WEEKS - 1``), the
messages received ``s_w`` (``send`` events, all channels) and the opens ``o_w``
(capped at ``s_w``), and the most recent week with an unsubscribe or complaint.
26 weeks of uint8 counts: 52 bytes per user.  The load a message of week ``w`` met,
"messages in the 7 days before it", is approximated from the weekly counts by
``L_w = (s_w - 1)/2 + s_(w+1)/2`` (the other messages of its week and of the week
before, each half in the 7 days before on average).

**Response decay** ``P(open in week w) = q_u exp(-beta_u L_w - drift w)``.  ``drift`` is
the population's change of log response per week as time goes forward (negative: a list
that answers less and less, as the users a win-back campaign is for do), so ``q_u`` is
the user's level *at as_of*, not an average over 26 weeks: without it a declining list's
opens are over-predicted (16 % on a generated 200k-user world's next 30 days, 2 % with
it; ``winback backtest`` prints the check).  The user's own level ``q_u`` is
removed by conditioning on their total opens ``O_u``: the weeks' opens are then
multinomial with shares ``s_w exp(-beta L_w - drift w) / sum_v s_v exp(-beta L_v - drift v)``
(the conditional Poisson likelihood), whose score and information in ``beta`` are::

    S_u = O_u Lbar_u - sum_w o_w L_w,   I_u = O_u Var_u(L)

(``Lbar_u``, ``Var_u`` the mean and variance of ``L_w`` under those shares), and in
``drift`` the same with the week ``w`` in place of ``L_w`` (and ``O_u Cov_u(L, w)``
between the two).  The population ``(beta, drift)`` solves ``sum_u S_u = 0`` for both at
once (Fisher scoring; drift held at 0 when the weeks cannot tell it from the load, and
within +-0.5 per week); the spread of the true
``beta_u`` around it by the method of moments, ``sigma^2 = (sum S_u^2 - sum I_u) /
sum I_u^2`` (``E[S_u^2] = I_u + I_u^2 sigma^2``); each user's ``beta_u`` is the one-step
empirical-Bayes (normal prior, Laplace) posterior mode ``beta + S_u / (I_u + 1/sigma^2)``:
a user with little history stays at the population's value.

The user's response level at no load, at as_of, is the gamma-Poisson posterior mean
``q_u = (O_u + q b0) / (sum_w s_w exp(-beta_u L_w - drift w) + b0)`` with ``q`` the
population's level at as_of and ``b0 = 20`` messages of prior weight (a marginal-likelihood
fit of ``b0`` gave 22 on the generated world, and the same predictions).  The level is
not extrapolated past as_of.

**Harm**: an unsubscribe per message with probability ``u0 (1 + L)`` (pooled:
unsubscribes / sum of ``s_w (1 + L_w)``), which loses the subscriber's future responses,
``q_u M`` with ``M = REFERENCE_CAP * value_days / window_days`` messages (the rest of a
quarter at 3 messages per window), plus a fixed ``unsubscribe_cost`` (default 10 responses)
for the list's health.  ``M`` does not grow with the policy's cap: a subscriber's worth is
not what this window's cap would let us send (50 a week, unfatigued, is 640 responses a
quarter, which held everyone at 0 as the cap rose), so a higher cap never lowers a budget.

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
REFERENCE_CAP = 3  # messages per window the lost future responses are counted at, whatever the cap
UNSUBSCRIBE_COST = 10.0  # fixed harm of an unsubscribe, in responses (opens)
PRIOR_MESSAGES = 20.0  # weight of the population's response level in each user's q_u


@dataclasses.dataclass
class FatigueAccumulators:
    """Per user: ``sends``/``opens`` [n, WEEKS] uint8 (saturating at 255) and ``stop_week``
    [n] int8, the most recent week with an unsubscribe or complaint (-1: none)."""

    sends: np.ndarray
    opens: np.ndarray
    stop_week: np.ndarray
    #: :func:`answered`, kept by :func:`part_stats` for :func:`user_params` (None: not yet made)
    has_answered: np.ndarray | None = None

    @classmethod
    def zeros(cls, n_users: int) -> "FatigueAccumulators":
        return cls(np.zeros((n_users, WEEKS), np.uint8), np.zeros((n_users, WEEKS), np.uint8),
                   np.full(n_users, -1, np.int8))


def accumulate(acc: FatigueAccumulators, batch, as_of: int) -> None:
    """Add one :class:`engine.io.readers.EventBatch` (any order, any split) to ``acc``."""
    accumulate_arrays(acc, batch.uidx, batch.ts, batch.event, as_of)


def accumulate_arrays(acc: FatigueAccumulators, uidx: np.ndarray, ts: np.ndarray, event: np.ndarray,
                      as_of: int, bounds: np.ndarray | None = None) -> None:
    """Add events (user index, epoch s, event code) to ``acc``.  The counts saturate and the
    stop week is a minimum, so the result is the same in any order and split: the fused pass
    hands its events over in user-block order (``kernels.Folder(also=...)``), where the
    per-user rows it updates are close in memory (20M events over 1M users: 0.28-0.39 s in
    time order, 0.12 s in block order).

    ``bounds`` (int64, ascending, first 0 and last ``len(uidx)``): the events cut into runs
    that share no user (the Folder's chunks of whole blocks), added on every core
    (:func:`_accumulate_runs`); at 1M users this took 0.34 s of the pass on one thread.
    """
    if bounds is None or len(bounds) <= 2:
        _accumulate(uidx, ts, event, np.int64(as_of), acc.sends, acc.opens, acc.stop_week)
    else:
        _accumulate_runs(np.ascontiguousarray(bounds, np.int64), uidx, ts, event, np.int64(as_of), acc.sends,
                         acc.opens, acc.stop_week)


@pjit
def _accumulate_runs(bounds, uidx, ts, ev, as_of, sends, opens, stop_week):
    """:func:`_accumulate` of the runs ``bounds[r] .. bounds[r+1]-1`` in parallel; no two runs
    may hold events of one user (then no two threads write one user's row)."""
    for r in prange(bounds.shape[0] - 1):
        _accumulate_range(bounds[r], bounds[r + 1], uidx, ts, ev, as_of, sends, opens, stop_week)


@njit
def _accumulate(uidx, ts, ev, as_of, sends, opens, stop_week):
    _accumulate_range(0, uidx.shape[0], uidx, ts, ev, as_of, sends, opens, stop_week)


@njit
def _accumulate_range(lo, hi, uidx, ts, ev, as_of, sends, opens, stop_week):
    """Events ``lo .. hi-1`` into the weekly counts and the stop week (see :class:`FatigueAccumulators`)."""
    for i in range(lo, hi):
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
    drift: float = 0.0

    def meta(self) -> dict:
        return {"beta": self.beta, "drift_per_week": self.drift, "sigma": self.sigma,
                "unsubscribe_per_message": self.u0, "response": self.q,
                "users_with_opens": self.users_with_opens, "messages": self.messages,
                "value_days": VALUE_DAYS, "unsubscribe_cost": UNSUBSCRIBE_COST}


@njit
def _user_one(sends, opens, u, b, d):
    """User ``u`` at ``(b, d)``: (S_u, I_u, E_u, O_u) of the module docstring and the drift's
    score and information (S_d, I_bd, I_dd), one pass over its weeks."""
    weeks = sends.shape[1]
    e_sum = el = ell = ol = o_sum = ew = eww = elw = ow_sum = 0.0
    for w in range(weeks):
        sw = np.float64(sends[u, w])
        if sw <= 0.0:
            continue
        prev = np.float64(sends[u, w + 1]) if w + 1 < weeks else 0.0
        load = 0.5 * (sw - 1.0) + 0.5 * prev
        e = sw * math.exp(-b * load - d * w)
        ow = min(np.float64(opens[u, w]), sw)
        e_sum += e
        el += e * load
        ell += e * load * load
        ew += e * w
        eww += e * w * w
        elw += e * load * w
        o_sum += ow
        ol += ow * load
        ow_sum += ow * w
    if e_sum > 0.0:
        ml, mw = el / e_sum, ew / e_sum
        return (o_sum * ml - ol, o_sum * max(ell / e_sum - ml * ml, 0.0), e_sum, o_sum,
                o_sum * mw - ow_sum, o_sum * (elw / e_sum - ml * mw), o_sum * max(eww / e_sum - mw * mw, 0.0))
    return 0.0, 0.0, e_sum, o_sum, 0.0, 0.0, 0.0


@njit
def _user_sums(sends, opens, beta, drift):
    """Per user at its ``beta[u]`` and the population ``drift``: conditional score S_u, information
    I_u, E_u = sum_w s_w exp(-beta L_w - drift w), O_u = sum_w min(o_w, s_w), and the drift's
    S_d, I_bd, I_dd (module docstring); no [users, weeks] temporaries; this thread."""
    n = sends.shape[0]
    out = np.zeros((7, n))
    for u in range(n):
        r = _user_one(sends, opens, u, beta[u], drift)
        for k in range(7):
            out[k, u] = r[k]
    return out


@pjit
def _user_sums_parallel(sends, opens, beta, drift):
    """:func:`_user_sums` on every core (users are independent: the same numbers)."""
    n = sends.shape[0]
    out = np.zeros((7, n))
    for u in prange(n):
        r = _user_one(sends, opens, u, beta[u], drift)
        for k in range(7):
            out[k, u] = r[k]
    return out


#: fewer users than this are summed on one thread: numba's worker threads cost more than the work
SERIAL_BELOW = 1 << 15


def user_sums(sends: np.ndarray, opens: np.ndarray, beta, drift: float = 0.0) -> np.ndarray:
    """[7, users] float64: rows (S_u, I_u, E_u, O_u, S_d, I_bd, I_dd) at ``beta`` (a number or
    one per user) and the population ``drift`` per week (module docstring)."""
    # a writable copy (a broadcast view is read-only: a second kernel signature to load, 4 ms a process)
    beta = np.array(np.broadcast_to(np.asarray(beta, np.float64), (sends.shape[0],)))
    kernel = _user_sums if sends.shape[0] < SERIAL_BELOW else _user_sums_parallel
    return kernel(np.ascontiguousarray(sends), np.ascontiguousarray(opens), beta, np.float64(drift))


#: bounds of the population fit: beta per message of load, drift per week
BETA_RANGE = (-2.0, 5.0)
DRIFT_RANGE = (-0.5, 0.5)


def _population(sends: np.ndarray, opens: np.ndarray, max_iter: int = 50):
    """The population's ``beta`` and ``drift`` (Fisher scoring on the conditional score, both at
    once; the drift alone is held at 0 when the weeks cannot tell it from the load), ``sigma2``
    (moment estimate of beta's spread) and the per-user sums at the solution (module docstring)."""
    beta = drift = 0.0
    for _ in range(max_iter):
        r = user_sums(sends, opens, beta, drift)
        sb, ib, sd, ibd, idd = (float(r[k].sum()) for k in (0, 1, 4, 5, 6))
        det = ib * idd - ibd * ibd
        if ib <= 0:
            break
        if idd > 0 and det > 1e-9 * ib * idd:
            step_b, step_d = (idd * sb - ibd * sd) / det, (ib * sd - ibd * sb) / det
        else:
            step_b, step_d = sb / ib, 0.0
        beta = float(np.clip(beta + step_b, *BETA_RANGE))
        drift = float(np.clip(drift + step_d, *DRIFT_RANGE))
        if abs(step_b) < 1e-10 and abs(step_d) < 1e-10:
            break
    r = user_sums(sends, opens, beta, drift)
    S, I = r[0], r[1]
    info = I > 0
    sum_i2 = float((I[info] ** 2).sum())
    var = (float((S[info] ** 2).sum()) - float(I[info].sum())) / sum_i2 if sum_i2 > 0 else 0.0
    return beta, drift, max(var, 1e-6), r


def fit(acc: FatigueAccumulators, max_iter: int = 50) -> FatigueModel:
    """Population and per-user fatigue from the weekly counts (module docstring)."""
    beta, drift, sigma2, r = _population(acc.sends, acc.opens, max_iter)
    S, I, E, O = r[0], r[1], r[2], r[3]
    beta_u = beta + S / (I + 1.0 / sigma2)
    q = float(O.sum()) / max(float(E.sum()), 1e-300)
    q_u = (O + q * PRIOR_MESSAGES) / (user_sums(acc.sends, acc.opens, beta_u, drift)[2] + PRIOR_MESSAGES)
    # unsubscribes: users who stopped, over every message's (1 + load)
    exposure, messages = _exposure(acc.sends)
    u0 = float((acc.stop_week >= 0).sum()) / exposure if exposure > 0 else 0.0
    return FatigueModel(beta=beta, sigma=float(np.sqrt(sigma2)), u0=u0, q=q, beta_u=beta_u, q_u=q_u,
                        users_with_opens=int((O > 0).sum()), messages=messages, drift=drift)


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
    """Further messages worth sending in the window (int16, 0..cap): module docstring's rule.

    ``beta_u`` per-user sensitivity (per message of load), ``q_u`` response chance at no
    load, ``sends_window`` messages already received in the window, ``cap`` the policy's
    messages per ``window_days`` days, ``u0`` the unsubscribe chance per message at no load.
    """
    n = np.asarray(sends_window, np.float64)
    beta_u = np.asarray(beta_u, np.float64)
    q_u = np.asarray(q_u, np.float64)
    M = REFERENCE_CAP * value_days / max(float(window_days), 1e-9)
    room = np.maximum(cap - n, 0.0)
    out = np.zeros(len(n), np.int64)
    going = np.ones(len(n), bool)
    for j in range(int(cap)):
        load = n + j
        ok = going & (j < room) & (q_u * np.exp(-beta_u * load) > u0 * (1.0 + load) * (q_u * M + unsubscribe_cost))
        out += ok
        going = ok
        if not going.any():  # the test passes for a leading run of j only: nobody is left
            break
    out[np.asarray(complained, bool)] = 0
    return out.astype(np.int16)


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
    """Histogram [weeks, P, P] int64 of every user-week's (w, s_w, s_(w+1)) with s_w > 0, the
    counts clipped to ``P - 1`` (the week after the last one counts 0); ``sends``: [users, weeks] uint8."""
    n, w = sends.shape
    pairs = np.zeros((w, P, P), np.int64)
    for u in range(n):
        for j in range(w):
            s = min(np.int64(sends[u, j]), P - 1)
            if s > 0:
                nxt = min(np.int64(sends[u, j + 1]), P - 1) if j + 1 < w else 0
                pairs[j, s, nxt] += 1
    return pairs


def part_stats(acc: FatigueAccumulators) -> dict:
    """What the population fit needs from one partition, mergeable by :func:`fit_stats`: the weekly
    counts of users with an open (they alone inform beta), a histogram of every user-week's
    (s_w, s_(w+1)) for the exposure sums, and the number of users who unsubscribed or complained."""
    has = acc.has_answered = answered(acc)
    sends, opens = acc.sends[has], acc.opens[has]
    np.minimum(opens, sends, out=opens)
    return {"sends": sends, "opens": opens, "pairs": pair_counts(acc.sends, np.int64(_PAIR)),
            "stopped": int((acc.stop_week >= 0).sum())}


def fit_stats(stats: list[dict]) -> dict:
    """Population fatigue parameters (beta, drift, sigma, u0, q) from the partitions' :func:`part_stats`."""
    sends = np.concatenate([st["sends"] for st in stats]) if stats else np.zeros((0, WEEKS), np.uint8)
    opens = np.concatenate([st["opens"] for st in stats]) if stats else np.zeros((0, WEEKS), np.uint8)
    beta, drift, sigma2, r = _population(sends, opens)  # u0 and the response come from every user below
    O = r[3]
    pairs = np.sum([st["pairs"] for st in stats], axis=0) if stats else np.zeros((WEEKS, _PAIR, _PAIR), np.int64)
    # week, sends and previous sends broadcast against pairs [week, sends, previous] (the same
    # values, element for element, as full grids of each; a third of the time)
    wk = np.arange(pairs.shape[0]).reshape(-1, 1, 1)
    sw = np.arange(_PAIR).reshape(1, -1, 1)
    sp = np.arange(_PAIR).reshape(1, 1, -1)
    load = 0.5 * np.maximum(sw - 1.0, 0.0) + 0.5 * sp
    sent = pairs * sw
    exposure = float((sent * (1.0 + load)).sum())
    expected = float((sent * np.exp(-beta * load - drift * wk)).sum())
    opened = float(opens.sum(dtype=np.int64))  # (a float64 copy of [users, weeks] cost 0.3 s at 1M users)
    stopped = sum(st["stopped"] for st in stats)
    return {"beta": beta, "drift_per_week": drift, "sigma": float(np.sqrt(sigma2)),
            "unsubscribe_per_message": stopped / exposure if exposure else 0.0,
            "response": opened / expected if expected else 0.0, "users_with_opens": int((O > 0).sum()),
            "messages": int(sent.sum()), "value_days": VALUE_DAYS, "unsubscribe_cost": UNSUBSCRIBE_COST}


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
    has = acc.has_answered if acc.has_answered is not None else answered(acc)
    drift = float(pop.get("drift_per_week", 0.0))  # scores' metadata from before the drift: 0
    S, I, O = np.zeros(n), np.zeros(n), np.zeros(n)
    r = user_sums(acc.sends[has], acc.opens[has], pop["beta"], drift)
    S[has], I[has], O[has] = r[0], r[1], r[3]
    beta_u = pop["beta"] + S / (I + 1.0 / pop["sigma"] ** 2)
    # E_u sums over the weeks' sends: exactly 0 for a user sent nothing (a history without
    # campaigns: every user), so it is summed over the users sent something alone
    sent = acc.sends.max(axis=1) > 0
    E = np.zeros(n)
    E[sent] = user_sums(acc.sends[sent], acc.opens[sent], beta_u[sent], drift)[2]
    q_u = (O + pop["response"] * PRIOR_MESSAGES) / (E + PRIOR_MESSAGES)
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
