"""BG/NBD input rows: checked per-user (x, t_x, T) columns, and their compression to the unique
(x, t_x, T) of a population with how many users have each.

The fit's cost follows the number of distinct rows, not of users (:mod:`engine.scoring.bgnbd`).
For whole days (winback's case) a row is one int64 key ``x << 42 | t_x << 21 | T``.
"""

from __future__ import annotations

import math

import numpy as np

from engine.errors import ModelError
from engine.jit import njit

__all__ = ["compress", "compress_for_fit", "as_columns", "same_length", "fit_rows"]


def as_columns(frequency, recency, T, weights=None):
    """float64 copies of the inputs, checked: same length, finite, 0 <= recency <= T, frequency >= 0."""
    cols = [np.asarray(v, np.float64).reshape(-1) for v in (frequency, recency, T)]
    if weights is not None:
        cols.append(np.asarray(weights, np.float64).reshape(-1))
    n = cols[0].shape[0]
    if any(c.shape[0] != n for c in cols):
        raise ModelError("BG/NBD inputs frequency, recency, T" + (", weights" if weights is not None else "")
                         + f" must have the same length, got {[c.shape[0] for c in cols]}; pass one value per user")
    x, t_x, TT = cols[:3]
    bad = ~(np.isfinite(x) & np.isfinite(t_x) & np.isfinite(TT)) | (x < 0) | (t_x < 0) | (t_x > TT * (1 + 1e-12))
    if weights is not None:
        bad |= ~np.isfinite(cols[3]) | (cols[3] < 0)
    if bad.any():
        rows = np.flatnonzero(bad)
        examples = "; ".join(f"row {k}: frequency={x[k]:g}, recency={t_x[k]:g}, T={TT[k]:g}" for k in rows[:5])
        raise ModelError(f"BG/NBD inputs have {rows.size} row(s) with a NaN/infinite value, a negative value or "
                         f"recency > T (e.g. {examples}); recency is the time from the first to the last "
                         "activity and T from the first activity to as_of, in the same unit: fix the summary "
                         "or drop those users", {"bad_rows": int(rows.size), "users": int(n)})
    return cols if weights is not None else cols + [None]


def same_length(x, t_x, T):
    """Contiguous float64 copies of one value per user each (ModelError naming the lengths otherwise)."""
    cols = [np.ascontiguousarray(v, np.float64).reshape(-1) for v in (x, t_x, T)]
    if not cols[0].shape[0] == cols[1].shape[0] == cols[2].shape[0]:
        raise ModelError(f"BG/NBD x, t_x and T must have one value per user each, got lengths "
                         f"{[c.shape[0] for c in cols]}")
    return cols


def compress(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray | None = None):
    """Unique (x, t_x, T) rows and their summed weights (1 per user when ``weights`` is None).

    Returns ``(x, t_x, T, w, inverse)`` with float64 arrays of the unique rows in
    lexicographic order and ``inverse`` (int64, one per input row) such that
    ``x_unique[inverse] == x``.  O(n log n): when every value is a whole number below
    2^21 (whole days, winback's case) one argsort of an int64 key, else a 3-column lexsort;
    then one numba pass over the sorted order (:func:`_runs`).
    """
    x, t_x, T = (np.ascontiguousarray(v, np.float64).reshape(-1) for v in (x, t_x, T))
    n = x.shape[0]
    if n == 0:
        e = np.empty(0)
        return e, e.copy(), e.copy(), e.copy(), np.empty(0, np.int64)
    ok, key = _whole_key(x, t_x, T)
    order = np.argsort(key) if ok else np.lexsort((T, t_x, x))
    wts = np.ones(1) if weights is None else np.ascontiguousarray(weights, np.float64).reshape(-1)
    return _runs(order, x, t_x, T, wts, weights is not None)


@njit
def _whole_key(x, t_x, T):
    """(True, x << 42 | t_x << 21 | T) when all values are whole numbers in [0, 2^21), else (False, junk)."""
    n = x.shape[0]
    key = np.empty(n, np.int64)
    lim = float(1 << 21)
    for i in range(n):
        a, b, c = x[i], t_x[i], T[i]
        if not (0.0 <= a < lim and 0.0 <= b < lim and 0.0 <= c < lim) \
                or a != math.floor(a) or b != math.floor(b) or c != math.floor(c):
            return False, key
        key[i] = (np.int64(a) << 42) | (np.int64(b) << 21) | np.int64(c)
    return True, key


def compress_for_fit(x, t_x, T, weights):
    """compress() without the inverse index: for whole days and no weights, sort the int64 keys
    themselves (no argsort, no gathers) and decode the unique rows from them."""
    if weights is None and x.shape[0] > 0:
        ok, key = _whole_key(x, t_x, T)
        if ok:
            key.sort()
            return _key_runs(key)
    return compress(x, t_x, T, weights)[:4]


@njit
def _key_runs(ks):
    """Unique sorted int64 keys -> decoded (x, t_x, T) float64 rows and their counts."""
    n = ks.shape[0]
    ux = np.empty(n)
    ut = np.empty(n)
    uT = np.empty(n)
    w = np.zeros(n)
    mask = (np.int64(1) << 21) - 1
    g = -1
    prev = np.int64(-1)
    for k in range(n):
        v = ks[k]
        if v != prev:
            g += 1
            ux[g] = float(v >> 42)
            ut[g] = float((v >> 21) & mask)
            uT[g] = float(v & mask)
            prev = v
        w[g] += 1.0
    m = g + 1
    return ux[:m].copy(), ut[:m].copy(), uT[:m].copy(), w[:m].copy()


@njit
def _runs(order, x, t_x, T, wts, has_w):
    """Walk rows in sorted ``order``: unique (x, t_x, T), summed weights, inverse index."""
    n = order.shape[0]
    ux = np.empty(n)
    ut = np.empty(n)
    uT = np.empty(n)
    w = np.zeros(n)
    inverse = np.empty(n, np.int64)
    g = -1
    for k in range(n):
        i = order[k]
        if g < 0 or x[i] != ux[g] or t_x[i] != ut[g] or T[i] != uT[g]:
            g += 1
            ux[g] = x[i]
            ut[g] = t_x[i]
            uT[g] = T[i]
        w[g] += wts[i] if has_w else 1.0
        inverse[i] = g
    m = g + 1
    return ux[:m].copy(), ut[:m].copy(), uT[:m].copy(), w[:m].copy(), inverse


def fit_rows(name: str, frequency, recency, T, weights, min_users: int):
    """The compressed rows a model named ``name`` is fitted on: (x, t_x, T, w, users, diag),
    rows of weight 0 dropped; ``diag`` holds users and unique_rows.  Raises
    :class:`ModelError` (with ``diag``) on too few users, no repeat activity or no time observed."""
    x, t_x, TT, weights = as_columns(frequency, recency, T, weights)
    x, t_x, TT, w = compress_for_fit(x, t_x, TT, weights)
    keep = w > 0
    x, t_x, TT, w = x[keep], t_x[keep], TT[keep], w[keep]
    n_users = float(w.sum())
    diag = {"users": int(round(n_users)), "unique_rows": int(len(x))}
    if n_users < min_users:
        raise ModelError(f"{name} needs at least {min_users} users with activity to fit, got {int(n_users)}; "
                         "score more users or a longer history, or check --activity: only its event kinds "
                         "(default session, purchase, click) make a user active, e.g. --activity open,click "
                         "for events that hold only messages and their responses", diag)
    if not np.any(x > 0):
        raise ModelError(f"{name} cannot be fitted: no user has a repeat active day; "
                         "check --activity and that events cover more than one day", diag)
    if np.all(TT <= 0):
        raise ModelError(f"{name} cannot be fitted: every user has T = 0 (no time observed since the "
                         "first activity); score with an as_of after the events", diag)
    return x, t_x, TT, w, n_users, diag
