"""The one place numba options are set: every kernel is cached on disk, releases the GIL, and uses no fastmath."""

from __future__ import annotations

import importlib
import pkgutil

import numba
import numpy as np
from numba.core.registry import CPUDispatcher

import engine
from engine.jit import njit, pjit


def _kernels() -> list[tuple[str, CPUDispatcher]]:
    out = []
    for info in pkgutil.walk_packages(engine.__path__, "engine."):
        if ".cli" in info.name or info.name.endswith("__main__"):
            continue
        mod = importlib.import_module(info.name)
        out += [(f"{info.name}.{name}", obj) for name, obj in vars(mod).items()
                if isinstance(obj, CPUDispatcher) and obj.__module__ == mod.__name__]
    return out


def test_every_kernel_is_cached_nogil_and_exact():
    kernels = _kernels()
    assert len(kernels) >= 10  # the scan finds the kernels (scores, planning, content, synth)
    for name, k in kernels:
        assert k.targetoptions.get("nogil") is True, name
        assert not k.targetoptions.get("fastmath"), name
        assert type(k._cache).__name__ == "FunctionCache", name  # cache=True: compiled once per machine


@njit
def _sum(a):
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i]
    return s


@pjit
def _psum(a):
    s = 0.0
    for i in numba.prange(a.shape[0]):
        s += a[i]
    return s


def test_njit_and_pjit_compile_and_pjit_runs_in_parallel_mode():
    a = np.arange(1000, dtype=np.float64)
    assert _sum(a) == a.sum() == _psum(a)
    assert _psum.targetoptions.get("parallel") is True and not _sum.targetoptions.get("parallel")
