"""The one place numba options are set: every kernel uses :func:`njit` (or :func:`pjit`).

``cache=True`` keeps compiled kernels on disk between runs; ``nogil=True`` lets a
caller run kernels on threads; :func:`pjit` adds ``parallel=True`` for kernels that
share work out with ``numba.prange`` (numba's threads: ``NUMBA_NUM_THREADS``, default
every core).  No ``fastmath``: results must match the naive references in
``tests/naive.py`` exactly enough to compare.
"""

from __future__ import annotations

import functools
import sys
import threading

from engine import jitstart

jitstart.import_numba()
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
jitstart.entry_points_on_demand()  # numba's extension entry points looked for only where one can be
_light_cache_loads()
jitload.install()  # cached kernels load without parsing their bitcode; numba's runtime is cached too
jitcache.install()  # a kernel's cache is stale when any module it imports changed, not only its own file

_cache_lock = threading.Lock()


class Kernel(CPUDispatcher):
    """numba's dispatcher (``cache=True``, ``nogil=True``) whose on-disk cache is opened at
    its first compile or cache load instead of when the module defines it.

    Opening it finds the cache folder, checks it can be written, stamps the source and
    names the files: 0.1 ms a kernel, for every kernel of every module imported, when a
    ``winback score`` of 1,000 users calls 22 of its 59.  The cache is the same
    ``FunctionCache`` numba's ``cache=True`` makes, looked up the same way.
    """

    @property
    def _cache(self):
        d = self.__dict__
        if d.get("_winback_cache_on_use"):
            with _cache_lock:
                if d.pop("_winback_cache_on_use", False):
                    CPUDispatcher.enable_caching(self)  # numba's cache=True, now
        return d["_cache"]

    @_cache.setter
    def _cache(self, value):
        self.__dict__["_cache"] = value


def _kernel(func, cls: type, options: dict):
    cache = options.pop("cache", True)
    kernel = numba.njit(nogil=True, **options)(func)
    if not isinstance(kernel, CPUDispatcher):  # NUMBA_DISABLE_JIT: the function itself
        return kernel
    kernel.__class__ = cls
    if cache:
        kernel.__dict__["_winback_cache_on_use"] = True
    return kernel


def njit(func=None, **options):
    """``numba.njit(cache=True, nogil=True, **options)``, as a :class:`Kernel`."""
    if func is None:
        return functools.partial(njit, **options)
    return _kernel(func, Kernel, options)


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


class ParallelKernel(Kernel):
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
    """:func:`njit` plus ``parallel=True``, for kernels that use ``numba.prange``;
    safe to call from several Python threads on every threading layer (:class:`ParallelKernel`)."""
    if func is None:
        return functools.partial(pjit, **options)
    return _kernel(func, ParallelKernel, {"parallel": True, **options})


__all__ = ["njit", "pjit"]
