"""The one place numba options are set: every kernel uses :data:`njit` (or :data:`pjit`).

``cache=True`` keeps compiled kernels on disk between runs; ``nogil=True`` lets a
caller run kernels on threads; :data:`pjit` adds ``parallel=True`` for kernels that
share work out with ``numba.prange`` (numba's threads: ``NUMBA_NUM_THREADS``, default
every core).  No ``fastmath``: results must match the naive references in
``tests/naive.py`` exactly enough to compare.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import threading


def _import_numba_lightly():
    """``import numba`` without PyYAML when there is no numba config file to read, and without
    SciPy, which numba imports at start only to check that it is not older than 1.0.

    numba imports ``yaml`` (20-30 ms) at start only to read ``.numba_config.yaml`` from
    the working directory; when that file is absent (and yaml not loaded yet) numba is
    imported as on a machine without PyYAML, which reads the ``NUMBA_*`` environment
    variables as usual.  ``scipy`` (10 ms; winback's kernels never call it) is hidden the
    same way for that version check only.  Both stay importable for everyone afterwards.
    """
    if "numba" in sys.modules:
        return  # numba as it is (the import below)
    hidden = [name for name in ("yaml", "scipy") if name not in sys.modules]
    if "yaml" in hidden and os.path.exists(".numba_config.yaml"):
        hidden.remove("yaml")
    for name in hidden:
        sys.modules[name] = None  # makes `import NAME` raise ImportError
    try:
        importlib.import_module("numba")
    finally:
        for name in hidden:
            del sys.modules[name]


_import_numba_lightly()
import numba  # noqa: E402

from numba.core.registry import CPUDispatcher  # noqa: E402

from engine import jitcache, jitload  # noqa: E402


def _skip_blas_probe() -> None:
    """Load numba's array functions without their probe for scipy's BLAS.

    Before it compiles (or loads a kernel by its own path) numba imports
    ``numba.np.arraymath`` (40-60 ms), which imports ``scipy.linalg`` (0.2 s) only to
    learn whether ``np.correlate``/``np.convolve`` may call BLAS; no winback kernel uses
    linear algebra, so the probe is answered "no" (those two then use numba's own loop).
    Called only on the way to such a compile or load (:func:`_light_cache_loads`): a run
    whose kernels all come from the cache never imports the module.  Nothing changes when
    scipy.linalg or the module is already imported.
    """
    if "numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules:
        return
    key = "scipy.linalg.cython_blas"
    sys.modules[key] = None  # makes `import scipy.linalg.cython_blas` raise ImportError
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        del sys.modules[key]


def _skip_cffi() -> None:
    """Load numba's cffi typing support without cffi itself.

    numba's typing context imports ``numba.core.typing.cffi_utils`` on its first
    compile or cache load, and that imports cffi and pycparser (0.15 s, most of it
    compiling pycparser's lexer regexes) whenever cffi is installed (cryptography pulls
    it in).  No winback kernel calls a cffi function, so the module is loaded as if cffi
    were absent, numba's own case for machines without it.  Nothing changes when cffi is
    already imported.  Only under the ``winback`` command (``engine.cli.COMMAND_LINE``):
    a program that embeds winback may compile its own numba code against cffi.
    """
    if "numba.core.typing.cffi_utils" in sys.modules or "cffi" in sys.modules:
        return
    sys.modules["cffi"] = None  # makes `import cffi` raise ImportError
    try:
        import numba.core.typing.cffi_utils  # noqa: F401
    finally:
        del sys.modules["cffi"]


def _light_cache_loads() -> None:
    """Load cached kernels without first building numba's whole compiler context.

    Before it reads a kernel from the on-disk cache, numba refreshes its target context:
    it imports and registers every typing and lowering module it has (0.1-0.15 s on the
    first kernel of a process), which only compiling needs; compiling refreshes the
    contexts itself (``numba.core.compiler``).  A cached kernel needs the runtime (NRT)
    its code links against, so that is initialised and the refresh skipped, for winback's
    own kernels only (anyone else's take numba's path); a load that fails still falls back
    to numba's own path.  Left alone on a numba without these internals.  Before numba's
    own path, and before a compile (a kernel not in the cache), :func:`_skip_blas_probe`.
    """
    try:
        from numba.core import caching
        from numba.core.runtime import rtsys
    except ImportError:  # pragma: no cover - another numba layout
        return
    cache = getattr(caching, "Cache", None)
    if cache is None or not all(hasattr(cache, a) for a in
                                ("load_overload", "_load_overload", "_guard_against_spurious_io_errors")):
        return  # pragma: no cover
    full = cache.load_overload

    def load_overload(self, sig, target_context):
        module = getattr(getattr(self, "_py_func", None), "__module__", "") or ""
        if not module.startswith(("engine.", "adapters.")):  # other code's kernels: numba's own path
            _skip_blas_probe()
            return full(self, sig, target_context)
        try:
            rtsys.initialize(target_context)
            with self._guard_against_spurious_io_errors():
                loaded = self._load_overload(sig, target_context)
        except Exception:  # noqa: BLE001 - numba's own path (full refresh, then load)
            _skip_blas_probe()
            return full(self, sig, target_context)
        if loaded is None:  # not cached: numba compiles it next
            _skip_blas_probe()
        return loaded

    cache.load_overload = load_overload


if getattr(sys.modules.get("engine.cli"), "COMMAND_LINE", False):
    _skip_cffi()
_light_cache_loads()
jitload.install()  # cached kernels load without parsing their bitcode; numba's runtime is cached too
jitcache.install()  # a kernel's cache is stale when any module it imports changed, not only its own file

njit = functools.partial(numba.njit, cache=True, nogil=True)

_layer_lock = threading.Lock()
_layer_known = False
_workqueue_lock: threading.Lock | None = None


def _one_launch_at_a_time() -> threading.Lock | None:
    """The lock every parallel kernel launch holds, or None when launches may overlap.

    winback runs kernels on more than one Python thread at once (the lapse model's choice
    beside the send-time columns, decoding beside folding).  numba's TBB and OpenMP layers
    allow that; its ``workqueue`` layer, the one numba falls back to when neither TBB nor
    libgomp/libomp loads (or when ``NUMBA_THREADING_LAYER=workqueue``), aborts the whole
    process on a second concurrent launch.  The layer is chosen at the first launch, so it
    is started here first (what the kernel's own launch would do) and, on ``workqueue``
    only, parallel launches take turns; each still uses every core.
    """
    global _layer_known, _workqueue_lock
    if not _layer_known:
        with _layer_lock:
            if not _layer_known:
                from numba.np.ufunc import parallel

                parallel._launch_threads()
                if numba.threading_layer() == "workqueue":
                    _workqueue_lock = threading.Lock()
                _layer_known = True
    return _workqueue_lock


class ParallelKernel(CPUDispatcher):
    """A ``parallel=True`` kernel whose launches from Python take turns on numba's
    ``workqueue`` threading layer (:func:`_one_launch_at_a_time`) and run as numba's
    own dispatcher everywhere else; called from other kernels it is numba's dispatcher."""

    def __call__(self, *args, **kwargs):
        lock = _one_launch_at_a_time()
        if lock is None:
            return super().__call__(*args, **kwargs)
        with lock:
            return super().__call__(*args, **kwargs)


def pjit(func=None, **options):
    """:data:`njit` plus ``parallel=True``, for kernels that use ``numba.prange``;
    safe to call from several Python threads on every threading layer (:class:`ParallelKernel`)."""
    if func is None:
        return functools.partial(pjit, **options)
    kernel = numba.njit(cache=True, nogil=True, parallel=True, **options)(func)
    kernel.__class__ = ParallelKernel
    return kernel


__all__ = ["njit", "pjit"]
