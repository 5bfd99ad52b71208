"""The one place numba options are set: every kernel uses :data:`njit` (or :data:`pjit`).

``cache=True`` keeps compiled kernels on disk between runs; ``nogil=True`` lets a
caller run kernels on threads; :data:`pjit` adds ``parallel=True`` for kernels that
share work out with ``numba.prange`` (numba's threads: ``NUMBA_NUM_THREADS``, default
every core).  No ``fastmath``: results must match the naive references in
``tests/naive.py`` exactly enough to compare.
"""

from __future__ import annotations

import functools
import sys

import numba


def _skip_blas_probe() -> None:
    """Load numba's array functions without their probe for scipy's BLAS.

    On the first kernel call numba imports ``numba.np.arraymath``, which imports
    ``scipy.linalg`` (0.2 s) only to learn whether ``np.correlate``/``np.convolve``
    may call BLAS; no winback kernel uses linear algebra, so the probe is answered
    "no" (those two then use numba's own loop).  Nothing changes when scipy.linalg is
    already imported.
    """
    if "numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules:
        return
    key = "scipy.linalg.cython_blas"
    sys.modules[key] = None  # makes `import scipy.linalg.cython_blas` raise ImportError
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        del sys.modules[key]


_skip_blas_probe()

njit = functools.partial(numba.njit, cache=True, nogil=True)
#: kernels that use ``numba.prange``: the same options plus ``parallel=True``
pjit = functools.partial(numba.njit, cache=True, nogil=True, parallel=True)

__all__ = ["njit", "pjit"]
