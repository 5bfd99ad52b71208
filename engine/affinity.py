"""Per-user category affinity and per-item popularity from item-level events (numba).

Runs beside the fused scoring pass (:mod:`engine.kernels`), batch by batch, in any
order.  An event counts when it names a catalogue item and is a ``session`` (weight
1), ``click`` (1) or ``purchase`` (2); sends, opens and the rest say what *we* showed
the user, not what they chose.  With ``age`` = ``as_of - ts`` in days (UTC) and ``h``
the affinity half-life in days, the event's weight is

    w = event_weight * 2 ** (-age / h)

and it adds ``w / k`` to each of the item's ``k`` categories in the user's affinity,
``w`` to the user's affinity mass (the confidence: decayed interactions, so a user
whose last item was a year ago carries little), ``w`` to the item's popularity, and 1
to the item's ``recent_7d`` (age < 7 days) or ``prior_28d`` (7 <= age < 35) count.
Each (user, item) pair is also collected, so the planner never recommends what a user
already consumed.

Memory: ``4 * categories`` bytes per user for the affinity, plus 12 bytes per
distinct consumed (user, item) pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine._numba import njit
from engine.schema import CLICK, EVENTS, PURCHASE, SESSION

__all__ = ["ItemAccumulators", "accumulate_items", "consumed_csr", "EVENT_WEIGHT", "DEFAULT_HALF_LIFE_DAYS"]

DEFAULT_HALF_LIFE_DAYS = 90.0
#: weight of an item event by event code (0 = not a choice the user made)
EVENT_WEIGHT = np.zeros(len(EVENTS) + 1, np.float64)
EVENT_WEIGHT[SESSION] = 1.0
EVENT_WEIGHT[CLICK] = 1.0
EVENT_WEIGHT[PURCHASE] = 2.0


@dataclass
class ItemAccumulators:
    """Per-user (``aff`` [n, C] float32, ``mass`` [n] float64) and per-item state, plus
    the consumed (user, item row) pairs collected so far (``pairs``: list of int64 arrays
    of ``user * n_items + item``)."""

    aff: np.ndarray
    mass: np.ndarray
    popularity: np.ndarray
    recent: np.ndarray
    prior: np.ndarray
    pairs: list
    item_events: int = 0
    unknown_item_events: int = 0

    @classmethod
    def zeros(cls, n_users: int, n_items: int, n_categories: int) -> "ItemAccumulators":
        return cls(aff=np.zeros((n_users, max(n_categories, 1)), np.float32), mass=np.zeros(n_users, np.float64),
                   popularity=np.zeros(n_items, np.float64), recent=np.zeros(n_items, np.int64),
                   prior=np.zeros(n_items, np.int64), pairs=[])


@njit
def _accumulate(uidx, ts, event, row, cat_ptr, cat_idx, as_of, half_life_days, weights, n_items,
                aff, mass, popularity, recent, prior, pairs):
    n_pairs = 0
    for e in range(len(uidx)):
        i = row[e]
        if i < 0:
            continue
        ew = weights[event[e]]
        if ew == 0.0:
            continue
        u = uidx[e]
        age = (as_of - ts[e]) / 86400.0
        w = ew * 2.0 ** (-age / half_life_days)
        lo = cat_ptr[i]
        hi = cat_ptr[i + 1]
        share = w / (hi - lo)
        for j in range(lo, hi):
            aff[u, cat_idx[j]] += np.float32(share)
        mass[u] += w
        popularity[i] += w
        if age < 7.0:
            recent[i] += 1
        elif age < 35.0:
            prior[i] += 1
        pairs[n_pairs] = u * n_items + i
        n_pairs += 1
    return n_pairs


def accumulate_items(acc: ItemAccumulators, batch, rows: np.ndarray, items, *, as_of: int,
                     half_life_days: float) -> None:
    """Add one event batch; ``rows`` = the catalogue row of each event's item (-1 = none/unknown)."""
    pairs = np.empty(len(rows), np.int64)
    k = _accumulate(batch.uidx, batch.ts, batch.event, rows, items.cat_ptr, items.cat_idx, np.int64(as_of),
                    float(half_life_days), EVENT_WEIGHT, np.int64(len(items)), acc.aff, acc.mass, acc.popularity,
                    acc.recent, acc.prior, pairs)
    if k:
        acc.pairs.append(pairs[:k].copy())
    acc.item_events += k


@njit
def _csr(keys, n_users, n_items):
    counts = np.zeros(n_users + 1, np.int64)
    for k in keys:
        counts[k // n_items + 1] += 1
    for u in range(n_users):
        counts[u + 1] += counts[u]
    fill = counts[:-1].copy()
    out = np.empty(len(keys), np.int64)
    for k in keys:
        u = k // n_items
        out[fill[u]] = k - u * n_items
        fill[u] += 1
    # sort and de-duplicate each user's segment in place, then compact
    ptr = np.zeros(n_users + 1, np.int64)
    w = 0
    for u in range(n_users):
        seg = np.sort(out[counts[u]:counts[u + 1]])
        prev = -1
        for v in seg:
            if v != prev:
                out[w] = v
                w += 1
                prev = v
        ptr[u + 1] = w
    return ptr, out[:w].copy()


def consumed_csr(pairs: list, n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """(ptr [n+1], item rows) of the distinct items each user consumed, sorted per user."""
    keys = np.concatenate(pairs) if pairs else np.zeros(0, np.int64)
    return _csr(keys, np.int64(n_users), np.int64(max(n_items, 1)))
