"""A learned lapse model, trained by time split on the user's own history, used only when it wins.

BG/NBD's ``lapse_risk`` (:mod:`engine.scoring.lapse`) is one closed form for every
population.  This module learns, from the history being scored, how the chance of no
activity in the next ``H`` days depends on four quantities (all in days), and uses the
result only when a backtest on that same history says it ranks better:

============================  ====================================================
feature                       meaning at a cut ``c``
============================  ====================================================
``log_p_active``              ``log(1 - lapse_risk)`` of a BG/NBD fitted at ``c``
``log_days_inactive``         ``log1p`` of days from the middle of the last active day to ``c``
``log_frequency``             ``log1p(x)``, x = active days before ``c`` minus one
``log_tenure``                ``log1p`` of days from the first active day to ``c``
============================  ====================================================

The model is a logistic regression (Newton steps with a small ridge on the
standardised coefficients) of "no activity in (c, c + H]" on those features.

Everything comes from the active-day bitset the fused pass already fills
(:mod:`engine.scoring.kernels`): features as of any earlier cut and the label after it
are read off the bits (:func:`cut_summary`), so no event is read twice.  Each partition
keeps only the unique (active days, first, last active day) rows of each cut with two
class counts (:func:`part_stats`); they merge exactly (:func:`merge_stats`), and the fits
run on the merged rows, so partitioned scoring learns the same model as one pass.  Days are UTC
days; the bits of days that begin before ``as_of`` count as "before as_of", so a cut
``k`` days earlier keeps the bits of days beginning before ``as_of - k`` days.

The time split, with ``T`` = as_of:

0. **closed form** (``mode="auto_pareto"``; ``"auto"`` keeps BG/NBD, since on CDNOW and the
   generated worlds the check never changed the final choice and costs about 0.4 s): fit BG/NBD and Pareto/NBD (:mod:`engine.scoring.pareto_nbd`)
   on the history before ``T - H`` and keep Pareto/NBD when its ``lapse_risk`` has an AUC for
   "no activity in ``(T - H, T]``" higher than BG/NBD's by :data:`PARETO_MARGIN`, else BG/NBD
   (also without that split).  Pareto/NBD is then fitted
   as of ``T`` only when it was chosen (its failure there falls back to BG/NBD with a warning,
   :mod:`engine.scoring.lapse_models`).  ``mode="pareto"`` takes Pareto/NBD without the check.
1. **validate**: fit BG/NBD and the regression on features as of ``T - 2H`` with labels
   from ``(T - 2H, T - H]``; on features as of ``T - H`` compare its AUC for "no activity
   in ``(T - H, T]``" with the closed form's chosen in step 0 (refitted as of ``T - H``).
2. if the regression's AUC is higher (``mode="auto"`` or ``"auto_pareto"``; ``"learned"`` skips the check),
   **train** it again on features as of ``T - H`` with labels from ``(T - H, T]`` and
   **apply** it to the features as of ``T``; otherwise keep the closed form.

No label comes from after ``T``.  When ``2H`` does not fit in the model window, or a cut
has fewer than :data:`MIN_CLASS` users in either class, or a fit at a cut fails, the
closed form is kept and the reason recorded.  When no check could run at ``H`` at all, steps
0-2 run at the longest rung ``h = H/2, H/4, ...`` whose cut ``2h`` holds at least half the users of
cut ``h`` (CDNOW at 39 weeks: ``T - H`` is before any first purchase; at 68 days the model
wins its check and ranks the 39-week outcome above recency and every closed form).  Users
with no activity in the model window keep the closed-form convention.  The decision goes
into the scores' metadata as ``lapse_model``.
"""

from __future__ import annotations

import time

import numpy as np
from numba import prange

from engine.errors import ModelError
from engine.jit import njit, pjit
from engine.schema import SECONDS_PER_DAY
from engine.scoring import lapse
from engine.scoring import lapse_models
from engine.scoring.bgnbd import BGNBD
from engine.scoring.bgnbd_rows import compress
from engine.scoring.logistic import fit_logistic, newton_terms, predict_logistic, weighted_auc

__all__ = ["cut_summary", "class_runs", "part_stats", "merge_stats", "Cut", "fit_logistic", "newton_terms", "predict_logistic", "weighted_auc",
           "choose", "apply", "FEATURES", "MIN_CLASS", "MODES", "CHECK_ROWS", "PARETO_MARGIN", "LEARNED_MARGIN",
           "CHANCE_MARGIN"]

FEATURES = ("log_p_active", "log_days_inactive", "log_frequency", "log_tenure")
#: fewest users in each class ("came back", "did not") at a cut to train or validate on
MIN_CLASS = 30
MODES = ("auto", "auto_pareto", "closed_form", "pareto", "learned")
#: most compressed rows the Pareto/NBD fit of the closed-form check uses (:func:`_pareto_auc`)
CHECK_ROWS = 5_000
#: AUC by which Pareto/NBD must beat BG/NBD at the check to replace it: closer is a tie (generated worlds
#: differ by 1e-4 between the two and between a full and a sampled fit), and ties keep BG/NBD
PARETO_MARGIN = 0.001
#: AUC by which the learned model must beat the best closed form at its check: closer is a tie, kept by
#: the closed form (fewer moving parts, no extrapolation)
LEARNED_MARGIN = PARETO_MARGIN
#: a check AUC within this of 0.5 is "no better than chance" (a warning in the scores' metadata)
CHANCE_MARGIN = 0.02
#: shortest surrogate horizon in days (:func:`choose`): horizons up to twice this have no rungs
SURROGATE_MIN = 30


@njit
def _popcount(x):
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@njit
def _high_bit(x):
    """Index of the highest set bit of a non-zero uint64 (binary search)."""
    n = 0
    for s in (32, 16, 8, 4, 2, 1):
        if x >> np.uint64(s):
            x >>= np.uint64(s)
            n += s
    return n


@njit
def _mask_below(k):
    """uint64 with bits 0 .. k-1 set (k clipped to 0 .. 64)."""
    if k <= 0:
        return np.uint64(0)
    if k >= 64:
        return np.uint64(0xFFFFFFFFFFFFFFFF)
    return (np.uint64(1) << np.uint64(k)) - np.uint64(1)


@pjit
def cut_summary(day_bits, end, horizon):
    """Per user, over bits ``0 .. end-1`` of the active-day bitset ([n, W] uint64, bit ``d`` of
    word ``d >> 6`` = day ``d``): the number of set bits, the first and last set index (-1 when
    none), and whether any bit in ``end .. end+horizon-1`` is set.  Returns int32[n] x 3, bool[n].

    Word at a time: masks split each word at the cut and the window's end.
    """
    n, w = day_bits.shape
    count = np.zeros(n, np.int32)
    first = np.full(n, -1, np.int32)
    last = np.full(n, -1, np.int32)
    later = np.zeros(n, np.bool_)
    stop = end + horizon
    for u in prange(n):  # users are independent: the same result on any number of threads
        for j in range(w):
            word = day_bits[u, j]
            if word == 0:
                continue
            lo = j * 64
            before = word & _mask_below(end - lo)
            if before != 0:
                count[u] += _popcount(before)
                if first[u] < 0:
                    first[u] = lo + _popcount((before & (~before + np.uint64(1))) - np.uint64(1))
                last[u] = lo + _high_bit(before)
            if word & _mask_below(stop - lo) & ~_mask_below(end - lo):
                later[u] = True
    return count, first, last, later


def _key(count, first, last):
    return (count.astype(np.int64) << 42) | (first.astype(np.int64) << 21) | last.astype(np.int64)


def part_stats(day_bits, *, as_of: int, day0: int, window_days: int, horizon_days: float,
               mode: str) -> dict | None:
    """One partition's training rows: per cut (``H`` and ``2H`` days before as_of) the unique
    (active days, first, last bit) of the users active before it, with how many of them had no
    activity in the ``H`` days after (``lapsed``) and how many had (``back``).

    The bits hold the model window, ``window_days`` before as_of (:mod:`engine.scoring.kernels`):
    a cut needs days of that window before it, so a cut at or before the window's first day
    is left out (``days``: the days kept, for the reason :func:`choose` gives).

    Keys are int64 ``count << 42 | first << 21 | last``; rows of several partitions merge by
    :func:`merge_stats` exactly, so the learned model is the same however the users are
    partitioned.  None for ``mode="closed_form"``.
    """
    if mode in ("closed_form", "pareto"):
        return None
    H = int(np.ceil(horizon_days))
    e0 = int(-(-as_of // SECONDS_PER_DAY) - day0)
    start = max(int((as_of - int(window_days) * SECONDS_PER_DAY) // SECONDS_PER_DAY - day0), 0)  # first bit
    # rungs: the cuts of shorter horizons H/2, H/4, ... (>= SURROGATE_MIN days), for when H admits no split
    rungs, h = {}, H // 2
    while H > 2 * SURROGATE_MIN and h >= SURROGATE_MIN:
        rungs[h], h = _cuts(day_bits, e0, start, h), h // 2
    return {"e0": e0, "day0": int(day0), "H": H, "days": e0 - start, "cuts": _cuts(day_bits, e0, start, H),
            "rungs": rungs}


def _cuts(day_bits, e0: int, start: int, H: int) -> dict:
    """The unique rows of the cuts ``H`` and ``2H`` days before as_of, labelled by the ``H`` days after."""
    cuts = {}
    for back in (H, 2 * H):
        if e0 - back > start:
            count, first, last, later = cut_summary(day_bits, np.int64(e0 - back), np.int64(H))
            seen = count > 0
            cuts[back] = _unique_rows(_key(count[seen], first[seen], last[seen]), ~later[seen])
    return cuts


@njit
def class_runs(marked):
    """Sorted ``key << 1 | lapsed`` values -> the unique keys and per key how many were lapsed
    (low bit 1) and how many came back (low bit 0), as float64."""
    n = marked.shape[0]
    uk = np.empty(n, np.int64)
    lap = np.zeros(n)
    bak = np.zeros(n)
    g = -1
    for i in range(n):
        k = marked[i] >> 1
        if g < 0 or k != uk[g]:
            g += 1
            uk[g] = k
        if marked[i] & 1:
            lap[g] += 1.0
        else:
            bak[g] += 1.0
    return uk[:g + 1].copy(), lap[:g + 1].copy(), bak[:g + 1].copy()


def _unique_rows(keys, lapsed, n_lapsed=None, n_back=None):
    """Sorted unique keys and the summed class counts (one user per row when counts are None).

    One user per row: a sort of ``key << 1 | lapsed`` and one walk (:func:`class_runs`), a third
    of ``np.unique(return_inverse=True)`` and two bincounts (1M users: 0.18 s)."""
    if n_lapsed is None and (keys.size == 0 or (keys.min() >= 0 and keys.max() < (1 << 62))):
        marked = (keys << 1) | lapsed.astype(np.int64)
        marked.sort()
        return class_runs(marked)
    uk, inv = np.unique(keys, return_inverse=True)
    lap = lapsed.astype(np.float64) if n_lapsed is None else n_lapsed
    bak = (~lapsed).astype(np.float64) if n_back is None else n_back
    return uk, np.bincount(inv, lap, len(uk)).astype(np.float64), np.bincount(inv, bak, len(uk)).astype(np.float64)


def merge_stats(stats: list) -> dict | None:
    """The :func:`part_stats` of every partition as one (None when there are none)."""
    stats = [s for s in stats if s is not None]
    if not stats:
        return None
    if len(stats) == 1:  # already unique sorted keys with their counts: merging would give the same arrays
        return {**stats[0], "cuts": dict(stats[0]["cuts"])}
    out = {k: stats[0][k] for k in ("e0", "day0", "H", "days")}
    out["cuts"] = _merge_cuts([s["cuts"] for s in stats])
    out["rungs"] = {h: _merge_cuts([s["rungs"][h] for s in stats]) for h in stats[0].get("rungs", {})}
    return out


def _merge_cuts(cuts: list) -> dict:
    out = {}
    for back in cuts[0]:
        parts = [c[back] for c in cuts]
        keys = np.concatenate([p[0] for p in parts])
        out[back] = _unique_rows(keys, None, np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts]))
    return out


class Cut:
    """The training rows of one cut, ``back`` days before as_of: features and class counts."""

    __slots__ = ("x", "t_x", "T", "inactive", "lapsed", "back", "risk", "params")

    def __init__(self, x, t_x, T, inactive, lapsed, back, risk, params):
        self.x, self.t_x, self.T, self.inactive = x, t_x, T, inactive
        self.lapsed, self.back, self.risk, self.params = lapsed, back, risk, params

    def matrix(self) -> np.ndarray:
        """[rows, 4] float64 in the order of :data:`FEATURES`."""
        return _matrix(self.risk, self.inactive, self.x, self.T)


def _matrix(risk, inactive, x, T):
    return np.column_stack([np.log(np.maximum(1.0 - risk, 1e-12)), np.log1p(inactive), np.log1p(x), np.log1p(T)])


def _summary(count, first, last, c_days, day0):
    """(x, t_x, T, days inactive) in days at a cut ``c_days`` (epoch days) from bit indexes."""
    x = np.maximum(count - 1, 0).astype(np.float64)
    t_x = (last - first).astype(np.float64)
    T = c_days - (day0 + first)
    inactive = np.maximum(c_days - (day0 + last + 0.5), 0.0)
    return x, t_x, T, inactive


def _cut(stats: dict, back: int, as_of: int, horizon_days: float, penalizer: float) -> Cut:
    """The :class:`Cut` ``back`` days before as_of, BG/NBD refitted there on its users."""
    keys, lapsed, came = stats["cuts"][back]
    if not len(keys):
        raise ModelError(f"no user was active more than {back} days before as_of")
    count, first, last = keys >> 42, (keys >> 21) & ((1 << 21) - 1), keys & ((1 << 21) - 1)
    x, t_x, T, inactive = _summary(count, first, last, (as_of - back * SECONDS_PER_DAY) / SECONDS_PER_DAY,
                                   stats["day0"])
    cx, ct, cT, cw = compress(x, t_x, T, weights=lapsed + came)[:4]
    params = dict(BGNBD(penalizer=penalizer).fit(cx, ct, cT, weights=cw).params_)
    risk = lapse.lapse_risk(params, x, t_x, T, x > 0, inactive, horizon_days)
    return Cut(x, t_x, T, inactive, lapsed, came, risk, params)


def _fit_cut(cut: Cut) -> dict:
    """The regression on a cut's rows: each row once as "lapsed" and once as "came back", by their counts."""
    X = cut.matrix()
    w = np.r_[cut.lapsed, cut.back]
    keep = w > 0
    return fit_logistic(np.vstack([X, X])[keep], np.r_[np.ones(len(X), bool), np.zeros(len(X), bool)][keep],
                        w[keep])


def choose(stats: dict | None, *, as_of: int, horizon_days: float, penalizer: float = 0.0,
           mode: str = "auto") -> dict:
    """:func:`_choose` at the horizon; when it has no time split there, at the longest shorter rung
    whose check cut holds at least half its training cut's users (:func:`_surrogate`); a learned
    model asked for (``mode="learned"``) is trained at the longest rung that has a training cut."""
    out = _choose(stats, as_of=as_of, horizon_days=horizon_days, penalizer=penalizer, mode=mode)
    no_split = out.get("validation") is None if mode in ("auto", "auto_pareto") else \
        mode == "learned" and out["used"] != "learned"
    if no_split and stats and stats.get("rungs"):
        alt = _surrogate(stats, out, as_of=as_of, penalizer=penalizer, mode=mode)
        if alt is not None:
            return alt
    return out


def _surrogate(stats: dict, first: dict, **kw) -> dict | None:
    """The choice trained on a shorter horizon ``h`` (CDNOW at 39 weeks: the split fits at 68 days, and that
    model ranks the 39-week outcome above recency and every closed form); None when no rung serves."""
    forced = kw["mode"] == "learned"  # a learned model asked for needs no check cut
    for h in sorted(stats["rungs"], reverse=True):
        cuts = stats["rungs"][h]
        users = {b: float(c[1].sum() + c[2].sum()) for b, c in cuts.items()}
        if users.get(h, 0) > 0 and (forced or users.get(2 * h, 0) >= 0.5 * users[h]):
            out = _choose({**stats, "H": h, "cuts": cuts, "rungs": {}}, horizon_days=h, **kw)
            if (out["used"] != "learned") if forced else out.get("validation") is None:
                continue
            out["reason"] = f"no time split at {stats['H']} days ({first['reason']}); trained at {h} days: {out['reason']}"
            out["surrogate_horizon_days"] = h
            if "model" in out:
                out["model"]["horizon_days"] = h
            return out
    return None


def _choose(stats: dict | None, *, as_of: int, horizon_days: float, penalizer: float = 0.0,
            mode: str = "auto") -> dict:
    """Validate and train on :func:`merge_stats` (module docstring); returns the ``lapse_model`` metadata.

    Keys: ``used`` ("learned", "closed_form" (BG/NBD) or "pareto"), ``reason``, ``mode``, ``seconds``
    and, when a check ran, ``validation`` (the cuts in days before as_of, users, AUC of each); with
    ``used == "learned"``, ``model`` (:func:`fit_logistic`'s dict, the training cut, class counts).
    """
    t0 = time.perf_counter()
    out = {"mode": mode, "used": "closed_form", "features": list(FEATURES)}

    def done(reason: str) -> dict:
        out["reason"] = reason
        out["seconds"] = round(time.perf_counter() - t0, 3)
        warning = _weak_check(out)
        if warning:
            out["warning"] = warning
        return out

    if mode == "pareto":
        out["used"] = "pareto"
        return done("the Pareto/NBD closed form was asked for")
    if mode == "closed_form" or stats is None:
        return done("the BG/NBD closed form was asked for")
    H, kept = stats["H"], stats["days"]
    if H not in stats["cuts"]:
        return done(f"the history kept ({kept} days) is shorter than the {H} days a time split needs")
    try:
        train = _cut(stats, H, as_of, horizon_days, penalizer)
    except ModelError as exc:
        return done(f"no time split: {exc}")
    lapsed, came = int(train.lapsed.sum()), int(train.back.sum())
    few = _too_few(train, H)
    if few:
        return done(few)
    if mode in ("auto", "auto_pareto"):
        # 1. the closed form: BG/NBD or Pareto/NBD, both fitted on the history before the cut, checked after it
        a_closed = weighted_auc(train.risk, train.lapsed, train.back)
        v = out["validation"] = {"checked_cut_days_before": H, "users": lapsed + came, "auc_closed_form": a_closed,
                                 "auc_recency": weighted_auc(train.inactive, train.lapsed, train.back)}
        closed, best = "closed_form", a_closed
        a_pareto = v["auc_pareto"] = _pareto_auc(train, penalizer, horizon_days) if mode == "auto_pareto" else None
        if a_pareto is not None and a_pareto > a_closed + PARETO_MARGIN:
            closed, best = "pareto", a_pareto
            why = f"Pareto/NBD ranked better than BG/NBD on the last {_days(H)} (AUC {a_pareto:.4f} vs {a_closed:.4f})"
        elif a_pareto is not None:
            why = f"Pareto/NBD did not rank the last {_days(H)} better than BG/NBD by {PARETO_MARGIN} (AUC " \
                  f"{a_pareto:.4f} vs {a_closed:.4f})"
        elif mode == "auto_pareto":
            why = "BG/NBD (Pareto/NBD could not be fitted at the cut)"
        else:
            why = "BG/NBD (auto_pareto would also check Pareto/NBD)"
        out["used"] = closed
        # 2. the learned model, trained at 2H and checked at H, only when it beats that closed form
        label = "Pareto/NBD" if closed == "pareto" else "the closed form"
        if 2 * H not in stats["cuts"]:
            return done(f"{why}; the history kept ({kept} days) is shorter than the {2 * H} days the learned model's "
                        "check needs")
        try:
            check = _cut(stats, 2 * H, as_of, horizon_days, penalizer)
        except ModelError as exc:
            return done(f"{why}; no check of the learned model: {exc}")
        few = _too_few(check, 2 * H)
        if few:
            return done(f"{why}; {few}")
        a_learned = weighted_auc(predict_logistic(_fit_cut(check), train.matrix()), train.lapsed, train.back)
        v.update(trained_cut_days_before=2 * H, auc_learned=a_learned)
        if not a_learned > best + LEARNED_MARGIN:
            return done(f"the learned model did not rank the last {_days(H)} better than {label} by {LEARNED_MARGIN} "
                        f"(AUC {a_learned:.4f} vs {best:.4f}); {why}")
        v["auc_best_closed_form"] = best
    out["model"] = {**_fit_cut(train), "trained_cut_days_before": H, "lapsed": lapsed, "came_back": came}
    out["used"] = "learned"
    v = out.get("validation")
    return done(f"the learned model ranked better on the last {_days(H)} (AUC {v['auc_learned']:.4f} vs "
                f"{v['auc_best_closed_form']:.4f})" if v else "the learned model was asked for")


def _days(n: int) -> str:
    """ "1 day", "30 days": the check's cuts are whole days (a horizon of 0.5 days checks 1 day)."""
    return "1 day" if n == 1 else f"{n} days"


def _weak_check(out: dict) -> str | None:
    """A warning when the check says the chosen lapse_risk ranks the last ``H`` days no better than
    chance, or worse than days since the last activity alone (the baseline a marketer already has)."""
    auc = lapse_models.checked_auc(out)
    if auc is None:
        return None
    v = out["validation"]
    H, recency = v["checked_cut_days_before"], v.get("auc_recency")
    if auc <= 0.5 + CHANCE_MARGIN:
        return (f"lapse_risk ranked who came back in the last {_days(H)} no better than chance on this history "
                f"(AUC {auc:.3f}); do not target by it alone: check the activity events (--activity) and run "
                "'winback backtest' on this data")
    if recency is not None and auc < recency - PARETO_MARGIN:
        return (f"lapse_risk ranked who came back in the last {_days(H)} worse than days since the last activity "
                f"(AUC {auc:.3f} vs {recency:.3f}); on this history sorting by days_inactive targets better; "
                "'winback backtest' shows both")
    return None


def _too_few(cut: Cut, back: int) -> str | None:
    """Why a cut ``back`` days before as_of cannot train or check a model, or None."""
    lapsed, came = int(cut.lapsed.sum()), int(cut.back.sum())
    if min(lapsed, came) < MIN_CLASS:
        return (f"at the cut {back} days before as_of only {came:,} users came back and {lapsed:,} did not "
                f"(at least {MIN_CLASS} of each are needed)")
    return None


def _pareto_auc(cut: Cut, penalizer: float, horizon_days: float) -> float | None:
    """AUC on a cut's rows of Pareto/NBD's lapse_risk, fitted on the cut's own history (None if it cannot be).

    Over :data:`CHECK_ROWS` compressed rows the fit takes every k-th row with its weight (the sample
    the fits' warm starts use), so the check costs about one pass over the rows, not a whole fit;
    the AUC is over every row."""
    cx, ct, cT, cw = compress(cut.x, cut.t_x, cut.T, weights=cut.lapsed + cut.back)[:4]
    if len(cx) > CHECK_ROWS:
        k = -(-len(cx) // CHECK_ROWS)
        cx, ct, cT, cw = cx[::k], ct[::k], cT[::k], cw[::k]
    fit = lapse_models.fit_pareto(cx, ct, cT, cw, penalizer)
    if "failed" in fit:
        return None
    risk = lapse.pareto_scores(fit, cut.x, cut.t_x, cut.T, cut.x > 0, cut.inactive, horizon_days, risk_only=True)[2]
    return weighted_auc(risk, cut.lapsed, cut.back)


def apply(choice: dict, seen: np.ndarray, x: np.ndarray, first_day: np.ndarray, last_day: np.ndarray, *,
          as_of: int, horizon_days: float, params: dict, risk: np.ndarray) -> np.ndarray:
    """``lapse_risk`` with the learned model for the ``seen`` users (active in the model window),
    ``risk`` (the closed form) for the others.

    ``x``: repeat active days; ``first_day``/``last_day``: UTC days (epoch days) of the first
    and last active day in the window, the same quantities :func:`cut_summary` reads off the
    bitset at a cut (the fused pass keeps them, so the bits are not needed here).
    """
    if choice.get("used") != "learned":
        return risk
    seen = np.asarray(seen, bool)
    count = np.asarray(x, np.float64)[seen] + 1
    xs, t_x, T, inactive = _summary(count, np.asarray(first_day)[seen], np.asarray(last_day)[seen],
                                    as_of / SECONDS_PER_DAY, 0)
    h = choice["model"].get("horizon_days", horizon_days)  # a surrogate horizon's model reads its own closed form
    now = lapse.lapse_risk(params, xs, t_x, T, xs > 0, inactive, h)
    out = np.array(risk, np.float64, copy=True)
    out[seen] = predict_logistic(choice["model"], _matrix(now, inactive, xs, T))
    return out
