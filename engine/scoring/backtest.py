"""Backtest the scores on the user's own history: would they have ranked who came back?

``backtest(users, events, as_of=T, horizon_days=H)`` scores every user as of the cut
``T - H`` days from the events up to the cut only (the same :func:`score` a real run
uses, so the same model, fit and columns), then looks at what happened in (cut, T]:

* **lapse**: a user "lapsed" when they had no activity event (``activity``, as in
  ``score``) in (cut, T].  Users never active before the cut are left out (their
  score is a convention, not a prediction).  For ``lapse_risk`` and the baselines
  ``days_inactive`` (recency only), ``-frequency`` (frequency only), ``1 - p_alive``
  and ``-expected_active_days_30d`` it reports the AUC (Mann-Whitney: the chance a
  random lapser is ranked riskier than a random returner, ties half) and the
  top-decile lift (lapse rate among the 10 % ranked riskiest / overall lapse rate).
* **calibration**: users in 10 bins of ``lapse_risk`` (equal counts): mean predicted
  vs actual lapse rate.
* **fatigue**: users messaged in (cut, T]: their opens against the learned fatigue model's
  prediction (total, and the AUC for "opened at least one" beside the response rate).
* **best hour**: for users with an open or click in (cut, T], the share whose
  engagements include ``best_hour_local`` (within one hour, circular), beside the same
  share for their timezone population's best hour; split by the user's number of
  engagements before the cut (0, 1-4, 5+).  Since an open's hour follows the message's,
  also the **send hour** check: the open rate of the window's messages delivered within
  one hour of ``best_hour_local`` against the others, beside the same for the
  population's best hour (:func:`_delivery`).

Times are UTC; ``horizon_days`` is in days.  The events are read once into memory
(Arrow, zero copy for ``.arrow``) to split them at the cut and at T; events after T
are ignored.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import ConfigError, InputError
from engine.io import coerce
from engine.io.badrows import QUARANTINE_ADVICE
from engine.io.readers import column_type_error
from engine.io.source import read_table
from engine.schema import EVENTS, SECONDS_PER_DAY
from engine.scoring.lapse_learned import weighted_auc
from engine.scoring.pipeline import score, summary_of
from engine.scoring.settings import DEFAULTS
from engine.tz import iso_utc, parse_as_of

__all__ = ["backtest", "auc", "top_decile_lift", "calibration", "terminal_table", "RANKINGS", "last_backtest",
           "headline"]

#: ranking name -> (scores column, sign): higher sign*value = riskier
RANKINGS = {
    "lapse_risk": ("lapse_risk", 1.0),
    "recency only": ("days_inactive", 1.0),
    "frequency only": ("frequency", -1.0),
    "1 - p_alive": ("p_alive", -1.0),
    "-expected_active_days_30d": ("expected_active_days_30d", -1.0),
}


def auc(score: np.ndarray, positive: np.ndarray) -> float | None:
    """Mann-Whitney AUC of ``score`` for the ``positive`` class (ties count half); None if one class is empty.
    One row per user of :func:`engine.scoring.lapse_learned.weighted_auc`."""
    positive = np.asarray(positive, bool)
    n1 = int(positive.sum())
    if n1 == 0 or n1 == positive.size:
        return None
    return weighted_auc(np.asarray(score, np.float64), positive.astype(np.float64), (~positive).astype(np.float64))


def top_decile_lift(score: np.ndarray, positive: np.ndarray) -> float | None:
    """Positive rate among the 10 % highest scores (ties broken by order) / overall positive rate."""
    positive = np.asarray(positive, bool)
    if positive.size == 0 or not positive.any():
        return None
    k = max(1, positive.size // 10)
    top = np.argsort(-np.asarray(score, np.float64), kind="stable")[:k]
    return float(positive[top].mean() / positive.mean())


def calibration(predicted: np.ndarray, positive: np.ndarray, bins: int = 10) -> list[dict]:
    """Equal-count bins of ``predicted`` (low to high): users, mean predicted, actual positive rate."""
    order = np.argsort(np.asarray(predicted, np.float64), kind="stable")
    out = []
    for i, idx in enumerate(np.array_split(order, bins)):
        if idx.size:
            out.append({"bin": i + 1, "users": int(idx.size), "predicted": float(predicted[idx].mean()),
                        "actual": float(np.asarray(positive, bool)[idx].mean())})
    return out


def _gains(score: np.ndarray, positive: np.ndarray, points: int = 50) -> list[float]:
    """Cumulative share of positives captured in the top q of users, q = 1/points .. 1."""
    order = np.argsort(-np.asarray(score, np.float64), kind="stable")
    cum = np.cumsum(np.asarray(positive, bool)[order])
    total = max(int(cum[-1]) if cum.size else 0, 1)
    idx = np.maximum((np.linspace(1, points, points) / points * len(order)).astype(int) - 1, 0)
    return [float(v) for v in cum[idx] / total] if cum.size else []


#: what to do about bad rows: the backtest has no quarantine, 'winback validate' lists and sets them aside
BACKTEST_ADVICE = ("Fix the file ('winback validate USERS EVENTS --as-of T --on-bad-rows quarantine' writes every "
                   "bad row with its reason) and rerun the backtest.")


def backtest(users, events, *, as_of, horizon_days: float = DEFAULTS.horizon_days, activity=DEFAULTS.activity,
             default_timezone: str = DEFAULTS.default_timezone, penalizer: float = DEFAULTS.penalizer,
             **score_options) -> dict:
    """Score as of ``as_of - horizon_days`` and compare with (cut, as_of]; returns a JSON-ready dict.

    ``users``/``events``: paths or ``pyarrow.Table`` s, as for :func:`score`;
    ``score_options`` go to :func:`score` unchanged (e.g. ``model_window_days``).
    Keys: as_of, cut, horizon_days, users (evaluated), lapsed_share, auc and
    top_decile_lift (per ranking in :data:`RANKINGS`), calibration (10 bins of
    lapse_risk), gains (per ranking, 50 points), best_hour, model, lapse_model (which
    ``lapse_risk`` the score at the cut used: :mod:`engine.scoring.lapse_learned`), inputs (the
    resolved users/events paths, None for tables: :func:`last_backtest` matches on them),
    warnings, seconds.
    """
    t0 = time.perf_counter()
    if not 0 < horizon_days <= 3650:
        raise ConfigError(f"--horizon must be more than 0 and at most 3650 days (e.g. 30), got {horizon_days}")
    T = parse_as_of(as_of)
    cut = int(T - round(horizon_days * SECONDS_PER_DAY))
    ev = read_table(events, "events")
    missing = [c for c in ("user_id", "ts", "event") if c not in ev.column_names]
    if missing:
        raise InputError(f"{events if not isinstance(events, pa.Table) else 'events'}: required column(s) "
                         f"{', '.join(missing)} missing from the events (columns found: {', '.join(ev.column_names)}); "
                         "see docs/data-contract.md")
    where = events if not isinstance(events, pa.Table) else "the events table"
    try:
        ts, null_ts, bad_ts = coerce.to_epoch_seconds(ev["ts"])
    except coerce.ColumnTypeError as exc:
        raise column_type_error(where, "ts", exc) from None
    unreadable = null_ts | bad_ts
    # rows with bad timestamps are no events after the cut: score() reports them as it would
    before = (ts <= cut) | unreadable
    upto = (ts <= T) & ~unreadable
    if not before.any():
        raise ConfigError(f"no event is at or before the cut {iso_utc(cut)} (as_of {iso_utc(T)} minus "
                          f"{horizon_days:g} days): pass a later --as-of or a shorter --horizon")
    # the whole file, its events after the cut skipped: a bad row is named by its file and row
    try:
        scores = score(users, events, as_of=cut, activity=activity, default_timezone=default_timezone,
                       horizon_days=horizon_days, penalizer=penalizer, later_events="ignore", **score_options)
    except InputError as exc:
        text = str(exc)
        if not text.endswith(QUARANTINE_ADVICE):
            raise
        raise InputError(text[:-len(QUARANTINE_ADVICE)] + BACKTEST_ADVICE) from None
    meta = summary_of(scores)
    code, _, _ = coerce.to_codes(ev["event"], EVENTS)  # score() above read both columns already
    uid, _, _ = coerce.to_int64(ev["user_id"])
    window = upto & (ts > cut)
    names = [a.strip() for a in activity.split(",")] if isinstance(activity, str) else list(activity)
    is_act = np.isin(code, [EVENTS.index(a) for a in meta["activity"] if a in EVENTS]) if names else code < 0
    ids = scores["user_id"].to_numpy()
    came_back = np.isin(ids, np.unique(uid[window & is_act]))
    seen = scores["last_active_at"].is_valid().to_numpy(zero_copy_only=False)
    lapsed = ~came_back[seen]
    out = {"as_of": iso_utc(T), "cut": iso_utc(cut), "horizon_days": float(horizon_days), "users": int(seen.sum()),
           "users_scored": int(len(ids)), "lapsed_share": float(lapsed.mean()) if seen.any() else None,
           "auc": {}, "top_decile_lift": {}, "gains": {}}
    for name, (col, sign) in RANKINGS.items():
        v = scores[col].to_numpy(zero_copy_only=False).astype(np.float64)[seen] * sign
        v = np.where(np.isnan(v), np.inf, v)
        out["auc"][name] = auc(v, lapsed)
        out["top_decile_lift"][name] = top_decile_lift(v, lapsed)
        out["gains"][name] = _gains(v, lapsed)
    out["calibration"] = calibration(scores["lapse_risk"].to_numpy()[seen], lapsed)
    out["best_hour"] = _best_hour(scores, meta, ids, uid, ts, code, window, default_timezone)
    out["fatigue"] = _fatigue_check(scores, ids, uid, code, window, float(horizon_days))
    out["model"] = meta.get("model", {})
    out["lapse_model"] = meta.get("lapse_model", {})
    out["inputs"] = {"users": _input_name(users), "events": _input_name(events)}
    out["warnings"] = meta.get("warnings", [])
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def _positions(ids: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row of each queried user id in ``ids`` (any order) and whether it is there."""
    order = np.argsort(ids, kind="stable")
    at = np.minimum(np.searchsorted(ids, query, sorter=order), len(ids) - 1)
    pos = order[at]
    return pos, ids[pos] == query


def _fatigue_check(scores, ids, uid, code, window, horizon_days) -> dict:
    """Opens in the window of the users messaged in it, against the learned fatigue model's prediction.

    Per user with ``s`` messages in the window, predicted opens = ``q_u s exp(-beta_u L)`` with
    ``L = (s - 1) min(7, H) / H`` (the messages of the 7 days before each, evenly spread);
    the AUC ranks users by it for "opened at least one" beside the ``{c}_response_rate``
    (best channel) ranking.
    """
    if "fatigue_sensitivity" not in scores.column_names:
        return {"messaged_users": 0}
    counts = {}
    for name in ("send", "open"):
        pos, ok = _positions(ids, uid[window & (code == EVENTS.index(name))])
        counts[name] = np.bincount(pos[ok], minlength=len(ids)).astype(np.float64)
    s, o = counts["send"], np.minimum(counts["open"], counts["send"])
    sent = s > 0
    if not sent.any():
        return {"messaged_users": 0}
    beta = scores["fatigue_sensitivity"].to_numpy()
    q = scores["fatigue_response"].to_numpy()
    load = np.maximum(s - 1.0, 0.0) * min(7.0, horizon_days) / horizon_days
    pred = q * s * np.exp(-beta * load)
    rate = np.max([scores[f"{c}_response_rate"].to_numpy() for c in ("email", "sms", "push")
                   if f"{c}_response_rate" in scores.column_names], axis=0)
    opened = o[sent] > 0
    return {"messaged_users": int(sent.sum()), "messages": int(s.sum()), "opens": int(o.sum()),
            "predicted_opens": float(pred[sent].sum()), "auc_opened": auc(pred[sent], opened),
            "auc_opened_response_rate": auc(rate[sent], opened)}


def _zones(scores, default_timezone):
    """(zone names, each user's zone index) from the scores' ``timezone`` column."""
    tz = (scores["timezone"].fill_null(default_timezone) if "timezone" in scores.column_names
          else pa.array([default_timezone] * scores.num_rows))
    tz_codes = pc.dictionary_encode(tz).combine_chunks() if isinstance(tz, pa.ChunkedArray) else pc.dictionary_encode(tz)
    return tz_codes.dictionary.to_pylist(), tz_codes.indices.to_numpy(zero_copy_only=False)


def _local_hours(ets, ez, zones) -> np.ndarray:
    """Local hour (0-23) of each epoch second ``ets`` in zone ``zones[ez]``."""
    hour = np.empty(len(ets), np.int64)
    for z_i, z in enumerate(zones):
        sel = ez == z_i
        if sel.any():
            hour[sel] = pc.hour(pa.array(ets[sel], pa.timestamp("s", tz=z))).to_numpy(zero_copy_only=False)
    return hour


def _near(h, target):
    """Within one hour of ``target`` on the 24-hour circle."""
    d = np.abs(h - target) % 24
    return np.minimum(d, 24 - d) <= 1


_CLASSES = (("0", 0, 0), ("1-4", 1, 4), ("5+", 5, np.inf))


def _best_hour(scores, meta, ids, uid, ts, code, window, default_timezone) -> dict:
    """Hit rates of best_hour_local vs the population's best hour for users who engaged in the window,
    and the open rates of the window's messages by whether they were delivered near either hour."""
    eng = window & np.isin(code, [EVENTS.index("open"), EVENTS.index("click")])
    pos, ok = _positions(ids, uid[eng])
    pos, ets = pos[ok], ts[eng][ok]
    zones, user_zone = _zones(scores, default_timezone)
    hour = _local_hours(ets, user_zone[pos], zones)
    best = scores["best_hour_local"].to_numpy(zero_copy_only=False).astype(np.int64)
    pop_hours = meta.get("send_time", {}).get("population_best_hour", {})
    pop = np.array([pop_hours.get(z, 0) for z in zones], np.int64)[user_zone]
    n_eng = scores["engagements"].to_numpy(zero_copy_only=False) if "engagements" in scores.column_names \
        else np.zeros(len(ids))
    hit = np.zeros(len(ids), bool)
    hit_pop = np.zeros(len(ids), bool)
    engaged = np.zeros(len(ids), bool)
    engaged[pos] = True
    hit[pos[_near(hour, best[pos])]] = True
    hit_pop[pos[_near(hour, pop[pos])]] = True
    res = {"engaged_users": int(engaged.sum()), "rule": "an open/click within 1 hour of the hour, local time",
           "hit_rate": float(hit[engaged].mean()) if engaged.any() else None,
           "population_hit_rate": float(hit_pop[engaged].mean()) if engaged.any() else None, "by_engagements": []}
    for label, lo, hi in _CLASSES:
        sel = engaged & (n_eng >= lo) & (n_eng <= hi)
        res["by_engagements"].append({"engagements": label, "users": int(sel.sum()),
                                      "hit_rate": float(hit[sel].mean()) if sel.any() else None,
                                      "population_hit_rate": float(hit_pop[sel].mean()) if sel.any() else None})
    res["delivery"] = _delivery(ids, uid, ts, code, window, zones, user_zone, best, pop, n_eng)
    return res


def _delivery(ids, uid, ts, code, window, zones, user_zone, best, pop, n_eng) -> dict:
    """Open rate of the window's messages delivered within 1 h of the user's ``best_hour_local`` against
    the others, and the same split by the timezone population's best hour.

    When an open happens depends on when the message arrived, so the hit rate above mostly
    measures the sender's schedule; this compares like with like: the same users' messages,
    delivered near the hour or not.  Each open (any channel) answers the user's latest message
    at or before it, and a message counts as opened at most once.  Messages delivered near
    the hour by chance, not by design, so the ratio is an observational estimate of what
    sending at that hour gains."""
    sent = window & (code == EVENTS.index("send"))
    spos, sok = _positions(ids, uid[sent])
    spos, sts = spos[sok], ts[sent][sok]
    if not len(spos):
        return {"messages": 0}
    order = np.lexsort((sts, spos))
    spos, sts = spos[order], sts[order]
    opened_ev = window & (code == EVENTS.index("open"))
    opos, ook = _positions(ids, uid[opened_ev])
    opos, ots = opos[ook], ts[opened_ev][ook]
    # (user, ts) as one sortable key: users are < 2^31 rows, seconds shifted into 32 bits of the window
    base = int(min(sts.min(), ots.min() if len(ots) else sts.min()))
    skey = spos.astype(np.int64) * (1 << 32) + (sts - base)
    okey = opos.astype(np.int64) * (1 << 32) + (ots - base)
    at = np.searchsorted(skey, okey, side="right") - 1
    mine = (at >= 0) & (spos[np.maximum(at, 0)] == opos)
    opened = np.zeros(len(spos), bool)
    opened[at[mine]] = True
    hour = _local_hours(sts, user_zone[spos], zones)
    near_best, near_pop = _near(hour, best[spos]), _near(hour, pop[spos])

    def split(sel):
        out = {"messages": int(sel.sum())}
        for name, near in (("best", near_best), ("population", near_pop)):
            a, b = sel & near, sel & ~near
            out[name] = {"near_messages": int(a.sum()), "near_open_rate": float(opened[a].mean()) if a.any() else None,
                         "other_messages": int(b.sum()), "other_open_rate": float(opened[b].mean()) if b.any() else None}
        return out

    res = split(np.ones(len(spos), bool))
    res["by_engagements"] = [dict(split((n_eng[spos] >= lo) & (n_eng[spos] <= hi)), engagements=label)
                             for label, lo, hi in _CLASSES]
    return res


def _ratio_text(d: dict) -> str:
    """'3.9% near vs 2.8% (1.39x)' for one split, '-' parts where a side has no message."""
    a, b = d["near_open_rate"], d["other_open_rate"]
    if a is None or b is None:
        return "-"
    return f"{100 * a:.1f}% near vs {100 * b:.1f}% ({a / b:.2f}x)" if b > 0 else f"{100 * a:.1f}% near vs 0%"


def _input_name(source) -> str | None:
    """The resolved path of a file or directory input (None for a table)."""
    import os

    return None if isinstance(source, (pa.Table, pa.RecordBatch)) else os.path.realpath(os.fspath(source))


def last_backtest(users, events, output) -> dict | None:
    """The most recent ``backtest.json`` for these inputs beside ``output``, as :func:`headline`'s dict.

    Looks in ``output``'s directory and its direct subdirectories (``winback backtest -o DIR``
    next to the scores, e.g. ``backtest/``) for a backtest whose recorded users and events
    paths resolve to the same files; the newest file wins.  None when there is none.
    """
    import json
    import os
    from pathlib import Path

    want = {"users": _input_name(users), "events": _input_name(events)}
    if None in want.values():
        return None
    here = Path(output).resolve().parent
    found = []
    for path in [here / "backtest.json", *here.glob("*/backtest.json")]:
        try:
            if path.is_file() and path.stat().st_size < 16 << 20:
                result = json.loads(path.read_text())
                if isinstance(result, dict) and result.get("inputs") == want:
                    found.append((path.stat().st_mtime, path, result))
        except (OSError, ValueError):
            continue  # an unreadable or foreign file is not a backtest
    if not found:
        return None
    mtime, path, result = max(found, key=lambda t: t[0])
    return {**headline(result), "path": os.path.relpath(path), "written_at": iso_utc(int(mtime))}


def headline(result: dict) -> dict:
    """The backtest in a few numbers: window, AUC and top-decile lift of lapse_risk and recency."""
    auc_, lift = result.get("auc", {}), result.get("top_decile_lift", {})
    return {"as_of": result.get("as_of"), "cut": result.get("cut"), "horizon_days": result.get("horizon_days"),
            "users": result.get("users"), "auc_lapse_risk": auc_.get("lapse_risk"),
            "auc_recency": auc_.get("recency only"), "lift_lapse_risk": lift.get("lapse_risk"),
            "lapse_model": (result.get("lapse_model") or {}).get("used")}


def terminal_table(result: dict) -> str:
    """The backtest as lines of text: rankings, calibration, best hour."""
    lines = [f"backtest: scored as of {result['cut']} on the history before it, compared with "
             f"({result['cut']}, {result['as_of']}] ({result['horizon_days']:g} days); {result['users']:,} users "
             f"active before the cut, {100 * (result['lapsed_share'] or 0):.1f}% did not come back",
             f"{'ranking':<28}{'AUC':>8}{'top-decile lift':>18}"]
    for name in result["auc"]:
        a, lift = result["auc"][name], result["top_decile_lift"][name]
        lines.append(f"{name:<28}{'-' if a is None else f'{a:.4f}':>8}{'-' if lift is None else f'{lift:.2f}x':>18}")
    lm = result.get("lapse_model") or {}
    if lm:
        lines.append(f"lapse_risk at the cut: {lm.get('name') or lm['used'].replace('_', ' ')} ({lm['reason']})")
    lines.append("calibration (lapse_risk, 10 equal-count bins): predicted -> actual")
    lines.append("  " + "  ".join(f"{c['predicted']:.2f}->{c['actual']:.2f}" for c in result["calibration"]))
    b = result["best_hour"]
    if b["engaged_users"]:
        lines.append(f"best hour: {b['engaged_users']:,} users engaged in the window; best_hour_local hit "
                     f"{100 * b['hit_rate']:.1f}% vs population best hour {100 * b['population_hit_rate']:.1f}% "
                     "(within 1 h)")
        for g in b["by_engagements"]:
            if g["users"]:
                lines.append(f"  {g['engagements']:>4} engagements before the cut: {g['users']:,} users, hit "
                             f"{100 * g['hit_rate']:.1f}% vs {100 * g['population_hit_rate']:.1f}%")
    d = b.get("delivery") or {}
    if d.get("messages"):
        lines.append(f"send hour: {d['messages']:,} messages in the window, open rate when delivered within 1 h of "
                     f"best_hour_local {_ratio_text(d['best'])}; of the population best hour {_ratio_text(d['population'])}")
        for g in d["by_engagements"]:
            if g["messages"]:
                lines.append(f"  {g['engagements']:>4} engagements before the cut: {g['messages']:,} messages, best_hour_local "
                             f"{_ratio_text(g['best'])}; population {_ratio_text(g['population'])}")
    f = result.get("fatigue", {})
    if f.get("messaged_users"):
        lines.append(f"fatigue model: {f['messaged_users']:,} users got {f['messages']:,} messages in the window and "
                     f"opened {f['opens']:,} (predicted {f['predicted_opens']:,.0f}); AUC for 'opened one' "
                     f"{f['auc_opened']:.3f} vs {f['auc_opened_response_rate']:.3f} by response rate alone")
    for w in result.get("warnings", []):
        lines.append(f"warning: {w}")
    return "\n".join(lines)
