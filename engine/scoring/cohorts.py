"""Send-time priors by cohort: a sparse user borrows the hours of the users like them.

With ``send_time_cohort`` (``winback score --send-time-cohort COLUMN``: a users column such
as a segment, a plan or a country; a timestamp column such as ``signup_at`` is read as its
UTC month, the signup cohort), the send-time prior of a user is their timezone population's
shares tilted by their cohort's habit.  Zone and cohort are pooled log-linearly (their
effects taken as independent, as in naive Bayes; Genest & Zidek 1986 on log-linear
pooling)::

    prior_{z,c}[h]  ∝  pop_z[h] * s_c[h] / s[h]
    s_c[h] = (n_c[h] + K s[h]) / (N_c + K)

``pop_z`` is the timezone's share (:mod:`engine.scoring.sendtime`), ``n_c[h]`` the cohort's
decayed engagements at local hour ``h`` pooled over every timezone, ``N_c`` their total,
``s`` the share of every user and ``K`` = :data:`COHORT_WEIGHT` pseudo-engagements.  So a
cohort's habit counts in proportion to its evidence: a small cohort stays near its zone,
and a cohort that engages like everyone (``s_c = s``) leaves the zone's prior as it was.
The weekday prior (7 bins) is made the same way.  The user's own engagements then update
this prior exactly as they updated the zone's (``sendtime``'s module docstring), so the
cohort matters most for users with few engagements and hardly at all for rich ones.
Users whose cohort is null keep their timezone's prior.

Sums are in ``sendtime.POP_UNIT`` fixed point, so partitions summed apart give the sums of
one pass.  Units: hours 0-23 local, weekdays 0 = Monday.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import InputError
from engine.scoring import sendtime
from engine.tz import to_epoch_seconds

__all__ = ["COHORT_WEIGHT", "MAX_COHORTS", "codes", "part_sums", "fit", "group_priors", "summary"]

#: pseudo-engagements of the everyone-prior in a cohort's share (K above)
COHORT_WEIGHT = 50.0
#: distinct non-null values a cohort column may hold (a segment, a plan, a country, a month)
MAX_COHORTS = 256


def codes(table: pa.Table, column: str, source: str = "users") -> tuple[np.ndarray, list[str]]:
    """``(code per user, -1 for null; cohort names)`` of ``column``; a timestamp or date is its
    UTC month (``2026-03``), any other value its text.  A missing column or one with more than
    :data:`MAX_COHORTS` values is an :class:`engine.errors.InputError` naming both."""
    if column not in table.column_names:
        others = ", ".join(c for c in table.column_names if c not in ("user_id", "timezone_source"))
        raise InputError(f"{source}: no column {column!r} for --send-time-cohort; the users columns are: {others}. "
                         f"Name one that groups users who keep similar hours (a segment, plan or country), "
                         f"or signup_at for the signup month")
    col = table[column]
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if pa.types.is_date(col.type):
        col = col.cast(pa.timestamp("s"))
    if pa.types.is_timestamp(col.type):
        secs = to_epoch_seconds(col)
        null = secs == np.iinfo(np.int64).min
        months = np.where(null, 0, secs).astype("datetime64[s]").astype("datetime64[M]").astype(str)
        col = pa.array(months, pa.string(), mask=null)
    elif pa.types.is_floating(col.type):  # a NaN is no cohort, as a null is
        col = pc.if_else(pc.is_nan(col), pa.scalar(None, col.type), col).cast(pa.string())
    elif not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        try:
            col = col.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise InputError(f"{source}: column {column!r} (--send-time-cohort) is of type {col.type}, which has no "
                             f"cohort values; name a text, whole-number, boolean or timestamp column") from None
    enc = pc.dictionary_encode(col)
    names = enc.dictionary.to_pylist()
    if len(names) > MAX_COHORTS:
        raise InputError(f"{source}: column {column!r} (--send-time-cohort) has {len(names):,} distinct values, "
                         f"e.g. {', '.join(repr(v) for v in names[:5])}; a cohort column needs at most "
                         f"{MAX_COHORTS} (a segment, plan or country; a timestamp column is read as months)")
    idx = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return idx, [str(v) for v in names]


def part_sums(hour_hist: np.ndarray, wd_hist: np.ndarray, code: np.ndarray, names: list[str]) -> dict:
    """One partition's cohort sums: ``{"hours": {name: int64[24]}, "wd": {name: int64[7]},
    "users": {name: count}}`` in ``sendtime.POP_UNIT``; users with a null cohort are left out."""
    n = len(names)
    slot = np.where(code >= 0, code, n)  # the nulls' slot is dropped
    hours = sendtime.population_sums(hour_hist, slot, n + 1)[:n]
    wd = sendtime.population_sums(wd_hist, slot, n + 1)[:n]
    users = np.bincount(slot, minlength=n + 1)[:n]
    return {"hours": {c: hours[i] for i, c in enumerate(names)}, "wd": {c: wd[i] for i, c in enumerate(names)},
            "users": {c: int(users[i]) for i, c in enumerate(names)}}


def _merge(parts: list[dict], key: str) -> dict:
    out: dict = {}
    for p in parts:
        for c, v in p[key].items():
            out[c] = out[c] + v if c in out else v
    return out


def fit(parts: list, everyone_hours: np.ndarray, everyone_wd: np.ndarray, column: str,
        weight: float = COHORT_WEIGHT) -> dict | None:
    """The cohorts' tilts from the partitions' :func:`part_sums` and every user's summed hour and
    weekday histograms (int64 in ``POP_UNIT``): ``{"column", "weight", "tilt_hours": {name: float[24]},
    "tilt_wd": {name: float[7]}, "users": {name: n}, "engagements": {name: N_c}, "everyone_hours": s}``
    with tilt = s_c / s (1 where nobody engaged); None without partitions' sums."""
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    users = _merge(parts, "users")
    if len(users) > MAX_COHORTS:
        raise InputError(f"users: column {column!r} (--send-time-cohort) has {len(users):,} distinct values over "
                         f"all partitions; a cohort column needs at most {MAX_COHORTS}")
    out = {"column": column, "weight": float(weight), "tilt_hours": {}, "tilt_wd": {}, "users": users,
           "engagements": {}}
    for key, everyone in (("hours", everyone_hours), ("wd", everyone_wd)):
        sums = _merge(parts, key)
        tot = np.asarray(everyone, np.float64) * sendtime.POP_UNIT
        s = tot / tot.sum() if tot.sum() > 0 else np.full(len(tot), 1.0 / len(tot))
        for c, v in sums.items():
            n_c = np.asarray(v, np.float64) * sendtime.POP_UNIT
            s_c = (n_c + weight * s) / (n_c.sum() + weight)
            with np.errstate(invalid="ignore", divide="ignore"):
                out["tilt_" + key][c] = np.where(s > 0, s_c / np.where(s > 0, s, 1.0), 1.0)
            if key == "hours":
                out["engagements"][c] = float(n_c.sum())
        if key == "hours":
            out["everyone_hours"] = s
    return out


def group_priors(pop_h: np.ndarray, pop_w: np.ndarray, user_tz: np.ndarray, code: np.ndarray, names: list[str],
                 cohorts: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(group per user, prior hours [groups, 24], prior weekdays [groups, 7])``: a group per
    (timezone, cohort) pair present; users with a null cohort (or one the fit has not seen)
    get their zone's prior as it is."""
    tilt_h = np.ones((len(names) + 1, 24))
    tilt_w = np.ones((len(names) + 1, 7))
    for i, c in enumerate(names):
        if c in cohorts["tilt_hours"]:
            tilt_h[i + 1] = cohorts["tilt_hours"][c]
            tilt_w[i + 1] = cohorts["tilt_wd"][c]
    key = np.asarray(user_tz, np.int64) * (len(names) + 1) + (np.asarray(code, np.int64) + 1)
    uniq, group = np.unique(key, return_inverse=True)
    z, c = uniq // (len(names) + 1), uniq % (len(names) + 1)
    return group.astype(np.int64), _normalise(pop_h[z] * tilt_h[c]), _normalise(pop_w[z] * tilt_w[c])


def _normalise(rows: np.ndarray) -> np.ndarray:
    tot = rows.sum(axis=1, keepdims=True)
    return np.where(tot > 0, rows / np.where(tot > 0, tot, 1.0), 1.0 / rows.shape[1])


def summary(cohorts: dict | None, top: int = 20) -> dict | None:
    """The scores' metadata about the cohorts: column, weight, count, and per cohort (the ``top``
    largest) its users, engagements and the local hour its tilt favours most."""
    if not cohorts:
        return None
    largest = sorted(cohorts["users"], key=lambda c: -cohorts["users"][c])[:top]
    return {"column": cohorts["column"], "weight": cohorts["weight"], "cohorts": len(cohorts["users"]),
            "largest": [{"cohort": c, "users": cohorts["users"][c],
                         "engagements": round(cohorts["engagements"].get(c, 0.0), 1),
                         "best_hour": int(np.argmax(cohorts["everyone_hours"] * cohorts["tilt_hours"][c]))}
                        for c in largest]}
