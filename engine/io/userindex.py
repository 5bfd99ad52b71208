"""User id -> dense index (0..n-1) lookup, vectorised over numpy arrays.

Two layouts, chosen at build time from the ids alone:

* **direct table** when the ids fill their range densely (``max - min + 1 <=
  4 n + 65536``): ``lut[id - min]`` holds the index, ``-1`` for a gap;
* **hash map** otherwise: open addressing with linear probing over a power-of-two
  table at most half full, slot ``= (id * 0x9E3779B97F4A7C15 mod 2**64) >> (64 -
  bits)`` (Fibonacci hashing, Knuth TAOCP vol. 3, 6.4).

Measured for 1M users and 50M lookups (10 % unknown, in random order) on a shared
2-core machine: sorted ids + ``np.searchsorted`` 12.5 s; numba hash map 1.4 s (build
0.03 s), 9x faster; dense ids: numba table 0.29 s, 40x faster than searchsorted and
5x faster than the same table gathered with numpy fancy indexing (1.6 s).
``python benchmarks/bench_io.py`` re-measures them.
"""

from __future__ import annotations

import numpy as np

from engine.jit import njit

__all__ = ["UserIndex"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@njit
def _hash_build(ids, bits):
    """Table of 2**bits slots: keys and the first row position of each id (-1 = empty)."""
    cap = 1 << bits
    mask = cap - 1
    shift = np.uint64(64 - bits)
    keys = np.zeros(cap, np.int64)
    vals = np.full(cap, -1, np.int64)
    for i in range(ids.size):
        k = ids[i]
        j = np.int64((np.uint64(k) * _GOLDEN) >> shift)
        while vals[j] >= 0 and keys[j] != k:
            j = (j + 1) & mask
        if vals[j] < 0:  # a repeated id keeps its first position
            keys[j] = k
            vals[j] = i
    return keys, vals


@njit
def _hash_lookup(keys, vals, bits, q):
    mask = keys.size - 1
    shift = np.uint64(64 - bits)
    out = np.empty(q.size, np.int64)
    for i in range(q.size):
        k = q[i]
        j = np.int64((np.uint64(k) * _GOLDEN) >> shift)
        r = -1
        while vals[j] >= 0:
            if keys[j] == k:
                r = vals[j]
                break
            j = (j + 1) & mask
        out[i] = r
    return out


@njit
def lookup_one(k, is_table, lut, base, keys, vals, bits):
    """One id's position (-1 = unknown), with the arrays of :meth:`UserIndex.arrays`."""
    if is_table:
        off = np.uint64(k - base)
        return lut[off] if off < np.uint64(lut.size) else -1
    mask = keys.size - 1
    j = np.int64((np.uint64(k) * _GOLDEN) >> np.uint64(64 - bits))
    while vals[j] >= 0:
        if keys[j] == k:
            return vals[j]
        j = (j + 1) & mask
    return -1


@njit
def _table_lookup(lut, base, q):
    n = np.uint64(lut.size)
    out = np.empty(q.size, np.int64)
    for i in range(q.size):
        off = np.uint64(q[i] - base)  # wraps for ids below base: then off >= n
        out[i] = lut[off] if off < n else -1
    return out


class UserIndex:
    """Maps user ids (``int64``) to their row position in ``ids`` (``Users.table`` rows).

    Build once from unique ids (a repeated id maps to its first position); then
    :meth:`lookup` many times.
    """

    __slots__ = ("ids", "_base", "_lut", "_keys", "_vals", "_bits")

    def __init__(self, user_ids: np.ndarray):
        ids = np.ascontiguousarray(user_ids, dtype=np.int64)
        self.ids = ids
        self._lut = self._keys = self._vals = None
        self._base = 0
        self._bits = 0
        n = len(ids)
        if n == 0:
            self._lut = np.full(1, -1, dtype=np.int64)
            return
        lo, hi = int(ids.min()), int(ids.max())
        if hi - lo + 1 <= 4 * n + 65536:
            self._base = lo
            lut = np.full(hi - lo + 1, -1, dtype=np.int64)
            lut[ids[::-1] - lo] = np.arange(n - 1, -1, -1, dtype=np.int64)  # first position wins
            self._lut = lut
        else:
            self._bits = max(4, int(np.ceil(np.log2(2 * n))))
            self._keys, self._vals = _hash_build(ids, self._bits)

    @property
    def kind(self) -> str:
        """``"table"`` or ``"hash"``: the layout chosen for these ids."""
        return "table" if self._lut is not None else "hash"

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"UserIndex(n={len(self.ids)}, kind={self.kind})"

    def arrays(self) -> tuple:
        """``(is_table, lut, base, keys, vals, bits)`` for kernels that look ids up inline
        with :func:`lookup_one` (the unused layout's arrays are 1-element dummies)."""
        dummy = np.zeros(1, np.int64)
        if self._lut is not None:
            return True, self._lut, np.int64(self._base), dummy, np.full(1, -1, np.int64), np.int64(1)
        return False, dummy, np.int64(0), self._keys, self._vals, np.int64(self._bits)

    def lookup(self, user_ids: np.ndarray) -> np.ndarray:
        """Dense index (``int64``, same shape) of each id; ``-1`` where the id is unknown."""
        q = np.asarray(user_ids, dtype=np.int64)
        flat = np.ascontiguousarray(q.reshape(-1))
        if self._lut is not None:
            out = _table_lookup(self._lut, np.int64(self._base), flat)
        else:
            out = _hash_lookup(self._keys, self._vals, self._bits, flat)
        return out.reshape(q.shape)
