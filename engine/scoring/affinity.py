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
Such events naming an item the catalogue lacks (a deleted item) are counted and skipped.
Each (user, item) pair is also collected, so the planner never recommends what a user
already consumed.

Memory: ``4 * categories`` bytes per user for the affinity, plus 12 bytes per
distinct consumed (user, item) pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.jit import njit
from engine.schema import CLICK, EVENTS, PURCHASE, SESSION
from engine.io.readers import NO_ITEM
from engine.io.userindex import lookup_one

__all__ = ["ItemAccumulators", "accumulate_items", "consumed_csr", "with_items", "EVENT_WEIGHT",
           "DEFAULT_HALF_LIFE_DAYS"]

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
def _accumulate(uidx, ts, event, item, is_table, lut, base, slots, bits, cat_ptr, cat_idx, as_of,
                half_life_days, weights, n_items, aff, mass, popularity, recent, prior, pairs):
    n_pairs = 0
    unknown = 0
    for e in range(len(uidx)):
        if item[e] == NO_ITEM:
            continue
        ew = weights[event[e]]
        if ew == 0.0:
            continue
        i = lookup_one(item[e], is_table, lut, base, slots, bits)
        if i < 0:
            unknown += 1
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
    return n_pairs, unknown


def accumulate_items(acc: ItemAccumulators, batch, items, *, as_of: int, half_life_days: float) -> None:
    """Add one :class:`engine.io.EventBatch` (its ``item`` ids; ``NO_ITEM`` = none).

    Ids are looked up in the catalogue's index inside the kernel, only for the events
    that count; events naming an item the catalogue lacks are counted in
    ``acc.unknown_item_events`` and skipped.  Releases the GIL: scoring runs it on a
    second thread beside the main pass.
    """
    if batch.item is None or not len(batch.item):
        return
    pairs = np.empty(len(batch.item), np.int64)
    is_table, lut, base, slots, bits = items.index.arrays()
    k, unknown = _accumulate(batch.uidx, batch.ts, batch.event, batch.item, is_table, lut, base, slots, bits,
                             items.cat_ptr, items.cat_idx, np.int64(as_of), float(half_life_days), EVENT_WEIGHT,
                             np.int64(len(items)), acc.aff, acc.mass, acc.popularity, acc.recent, acc.prior, pairs)
    if k:
        acc.pairs.append(pairs[:k].copy())
    acc.item_events += k
    acc.unknown_item_events += unknown


@njit
def _count(keys, counts, n_items):
    for k in keys:
        counts[k // n_items + 1] += 1


@njit
def _fill(keys, fill, out, n_items):
    for k in keys:
        u = k // n_items
        out[fill[u]] = k - u * n_items
        fill[u] += 1


@njit
def _dedup(out, counts, ids):
    """Sort each user's segment in place (insertion sort: segments are short), drop
    repeats, and compact in place, writing ``ids[row]`` (item ids, or rows when ``ids``
    is the identity); returns (ptr, length)."""
    n_users = len(counts) - 1
    ptr = np.zeros(n_users + 1, np.int64)
    w = 0
    for u in range(n_users):
        lo, hi = counts[u], counts[u + 1]
        if hi - lo > 64:
            out[lo:hi] = np.sort(out[lo:hi])
        else:
            for a in range(lo + 1, hi):
                v = out[a]
                b = a - 1
                while b >= lo and out[b] > v:
                    out[b + 1] = out[b]
                    b -= 1
                out[b + 1] = v
        prev = -1
        for a in range(lo, hi):
            v = out[a]
            if v != prev:
                out[w] = ids[v]
                w += 1
                prev = v
        ptr[u + 1] = w
    return ptr, w


def _csr_chunks(pairs: list, n_users: int, n_items: int, ids: np.ndarray):
    """Counting sort by user over the collected chunks (no concatenation; each chunk is
    dropped from ``pairs`` once placed), then per-user dedup in place."""
    m = np.int64(max(n_items, 1))
    counts = np.zeros(n_users + 1, np.int64)
    for keys in pairs:
        _count(keys, counts, m)
    np.cumsum(counts, out=counts)
    out = np.empty(int(counts[-1]), np.int64)
    fill = counts[:-1].copy()
    while pairs:
        _fill(pairs.pop(), fill, out, m)
    ptr, w = _dedup(out, counts, ids)
    return ptr, out[:w]


def consumed_csr(pairs: list, n_users: int, n_items: int, ids: np.ndarray | None = None):
    """(ptr [n+1], values) of the distinct items each user consumed: item rows sorted
    per user, or with ``ids`` (the catalogue's item ids) those rows' ids in the same
    order.  Consumes ``pairs`` (its chunks are freed as they are placed)."""
    if ids is None:
        ids = np.arange(max(n_items, 1), dtype=np.int64)
    return _csr_chunks(pairs, n_users, n_items, np.asarray(ids, np.int64))


def with_items(out, part, pop, meta: dict, consumed):
    """Scores table ``out`` of one partition (:class:`engine.score.Partial`) plus the
    affinity columns, with the catalogue's item statistics (summed over partitions in
    :class:`engine.score.Population`) in the schema metadata; ``meta`` gets ``items``."""
    import pyarrow as pa  # noqa: PLC0415 (the kernels above need no Arrow)

    from engine.io.items import encode_table, item_stats_table

    cat, acc = part.items, part.item_acc
    n_cat = len(cat.categories)
    mass = acc.mass
    top = np.where(mass > 0, np.argmax(acc.aff, axis=1), -1)
    shares = acc.aff  # divided in place: the accumulator is not needed any more
    np.divide(shares, mass.astype(np.float32)[:, None], out=shares, where=mass[:, None] > 0)
    ptr, consumed_ids = consumed
    acc.pairs.clear()
    cols = {
        "category_affinity": pa.FixedSizeListArray.from_arrays(pa.array(shares.reshape(-1)), max(n_cat, 1)),
        "affinity_confidence": pa.array(mass),
        "top_category": pa.DictionaryArray.from_arrays(pa.array(top.astype(np.int32), mask=top < 0),
                                                       pa.array(cat.categories or ("",), pa.string())).cast(pa.string()),
        "consumed_items": pa.ListArray.from_arrays(pa.array(ptr.astype(np.int32)), pa.array(consumed_ids)),
    }
    for name, arr in cols.items():
        if name in out.column_names:
            out = out.drop_columns([name])
        out = out.append_column(name, arr)
    popularity, recent, prior, n_item_events, n_unknown = pop.item_stats
    meta["items"] = {"source": cat.source, "items": len(cat), "categories": list(cat.categories),
                     "affinity_half_life_days": part.cfg.affinity_half_life_days,
                     "item_events": int(n_item_events), "unknown_item_events": int(n_unknown)}
    stats = item_stats_table(cat, popularity, recent, prior)
    return out.replace_schema_metadata({**(out.schema.metadata or {}), b"winback.item_stats": encode_table(stats)})
