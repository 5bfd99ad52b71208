"""The one place numba options are set: every kernel uses :data:`njit`.

``cache=True`` keeps compiled kernels on disk between runs; ``nogil=True`` lets a
caller run kernels on threads.  No ``fastmath``: results must match the naive
references in ``tests/naive.py`` exactly enough to compare.
"""

from __future__ import annotations

import functools

import numba

njit = functools.partial(numba.njit, cache=True, nogil=True)

__all__ = ["njit"]
