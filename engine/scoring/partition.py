"""Counting sorts that group the fused pass's events by user before it folds them.

The fused pass (:mod:`engine.scoring.kernels`) keeps ~0.45 KB of state per user; an event
log in time order touches almost every user in every batch, so folding it in file order
jumps across all of that state once per event.  These kernels reorder events, stably
(every user's events keep their input order, so float sums do not change), so that the
pass works through one block of ``2 ** shift`` users at a time (:func:`block_counts`, then
:func:`scatter` of each batch at its :func:`group_offsets`) and, inside a
block, through its users in index order (:func:`sort_block`).

Units: ``uidx`` is the dense int64 user index; every other column is carried along
unchanged.
"""

from __future__ import annotations

import numpy as np

from numba import prange

from engine.jit import njit, pjit

__all__ = ["block_counts", "block_counts_serial", "scatter", "sort_block", "chunk_blocks", "group_offsets"]


@pjit
def block_counts(uidx, shift, n_blocks, n_parts):
    """Events per (slice, block): ``out[p, b]`` counts the events of slice ``p`` (of
    ``n_parts`` equal slices of the batch, in order) whose user is in block ``b``."""
    n = uidx.shape[0]
    counts = np.zeros((n_parts, n_blocks), np.int64)
    for p in prange(n_parts):
        _count_slice(uidx, n * p // n_parts, n * (p + 1) // n_parts, shift, counts[p])
    return counts


@njit
def block_counts_serial(uidx, shift, n_blocks, n_parts):
    """:func:`block_counts` on the calling thread only: for threads of the caller's own (the
    reader's decode threads), where a second parallel kernel would share numba's pool."""
    n = uidx.shape[0]
    counts = np.zeros((n_parts, n_blocks), np.int64)
    for p in range(n_parts):
        _count_slice(uidx, n * p // n_parts, n * (p + 1) // n_parts, shift, counts[p])
    return counts


@njit
def _count_slice(uidx, lo, hi, shift, row):
    for i in range(lo, hi):
        row[uidx[i] >> shift] += 1


@njit(inline="always")
def _move(i, j, uidx, ts, ev, ch, val, u2, t2, e2, c2, v2):
    """Event ``i`` of the five columns to position ``j`` of ``u2 .. v2``."""
    u2[j] = uidx[i]
    t2[j] = ts[i]
    e2[j] = ev[i]
    c2[j] = ch[i]
    v2[j] = val[i]


@pjit
def scatter(uidx, ts, ev, ch, val, shift, offs, u2, t2, e2, c2, v2):
    """Each event of slice ``p`` of the batch (the slices of :func:`block_counts`) to
    ``offs[p, block]`` onward in ``u2 .. v2``, in input order; ``offs`` is consumed."""
    n = uidx.shape[0]
    n_parts = offs.shape[0]
    for p in prange(n_parts):
        o = offs[p]
        for i in range(n * p // n_parts, n * (p + 1) // n_parts):
            b = uidx[i] >> shift
            j = o[b]
            o[b] = j + 1
            _move(i, j, uidx, ts, ev, ch, val, u2, t2, e2, c2, v2)


def group_offsets(counts: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Output offsets of every (batch, slice, block) for batches counted by :func:`block_counts`.

    Block-major, then batches in order, then slices in order: scattering every batch
    at its offsets is a stable counting sort of the batches' concatenation.  Returns the
    offsets per batch ([slices, blocks] int64 each) and the block starts ([blocks + 1]).
    """
    flat = np.concatenate(counts, axis=0)  # [all slices, blocks]
    order = np.ascontiguousarray(flat.T).ravel()  # block-major
    ends = np.cumsum(order)
    offs = (ends - order).reshape(flat.shape[1], flat.shape[0]).T
    starts = np.concatenate(([0], ends.reshape(flat.shape[1], flat.shape[0])[:, -1]))
    out, k = [], 0
    for c in counts:
        out.append(np.ascontiguousarray(offs[k:k + c.shape[0]]))
        k += c.shape[0]
    return out, starts.astype(np.int64)


@njit
def sort_block(uidx, ts, ev, ch, val, lo, hi, mask, cnt, bu, bt, be, bc, bv):
    """The events ``lo .. hi-1`` (one block's) copied to ``bu .. bv[0 : hi-lo]`` in order of
    user index, stable (a counting sort on ``uidx & mask``; ``cnt``: int64 scratch of ``mask + 2``).

    The events are read in order and written to a block-sized buffer (cache-resident), so
    the fold then reads them front to back: an index permutation read through instead
    missed the cache on almost every event of a large group (the fold 30-40 % slower on a
    time-ordered 1M-user log: ``benchmarks/README.md``)."""
    cnt[:] = 0
    for i in range(lo, hi):
        cnt[(uidx[i] & mask) + 1] += 1
    for j in range(mask + 1):
        cnt[j + 1] += cnt[j]
    for i in range(lo, hi):
        k = uidx[i] & mask
        j = cnt[k]
        cnt[k] = j + 1
        _move(i, j, uidx, ts, ev, ch, val, bu, bt, be, bc, bv)


def chunk_blocks(starts: np.ndarray, n_chunks: int) -> np.ndarray:
    """Block indices cutting a partitioned batch (block starts ``starts``) into about
    ``n_chunks`` runs of whole blocks with about equal numbers of events."""
    n = int(starts[-1])
    want = (np.arange(1, n_chunks, dtype=np.int64) * n) // n_chunks
    inner = np.searchsorted(starts, want, side="left")
    return np.unique(np.concatenate(([0], inner, [len(starts) - 1]))).astype(np.int64)
