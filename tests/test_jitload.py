"""Lighter cached-kernel loads (engine.jitload) and the start-up collector hold of the command line."""

from __future__ import annotations

import gc
import importlib
import os
import subprocess
import sys

import llvmlite.binding as ll
import numpy as np
import pytest

import engine.jit  # noqa: F401 - installs engine.jitload
from engine import jitload


def _bitcode_symbols(bitcode: bytes) -> set[str]:
    """numba's own answer (``JitEngine._load_defined_symbols``): the module's definitions."""
    mod = ll.parse_bitcode(bitcode)
    return {gv.name for gs in (mod.functions, mod.global_variables) for gv in gs if not gv.is_declaration}


_KERNELS = '''
import numpy as np
from engine.jit import njit, pjit
import numba

@njit
def inner(a):
    return a * 2.0

@njit
def outer(n):
    out = np.empty(n)
    for i in range(n):
        out[i] = inner(float(i))
    return out

@pjit
def total(a):
    s = 0.0
    for i in numba.prange(a.shape[0]):
        s += a[i]
    return s
'''


def test_elf_symbols_cover_what_the_bitcode_defines(tmp_path, monkeypatch):
    """For kernels compiled here (one calling another, one allocating, a parallel one) and for
    numba's runtime, every name numba would learn from the bitcode is among the object's ELF
    symbols."""
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.runtime import nrtdynmod

    (tmp_path / "elfkernels.py").write_text(_KERNELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = importlib.import_module("elfkernels")
    assert mod.outer(3).tolist() == [0.0, 2.0, 4.0] and mod.total(np.ones(10)) == 10.0
    libraries = [cres.library for k in (mod.outer, mod.total) for cres in k.overloads.values()]
    with global_compiler_lock:  # as jitload caches it
        ir_mod, nrt = nrtdynmod.create_nrt_module(mod.outer.targetctx)
        nrt.enable_object_caching()
        nrt.add_ir_module(ir_mod)
        nrt.finalize()
    libraries.append(nrt)
    for library in libraries:
        name, kind, (obj, bitcode) = library.serialize_using_object_code()
        elf = jitload.elf_defined_symbols(obj)
        assert elf is not None, name
        assert _bitcode_symbols(bitcode) <= elf, name


def test_elf_reader_refuses_what_is_not_an_elf64_object():
    assert jitload.elf_defined_symbols(b"") is None
    assert jitload.elf_defined_symbols(b"\x7fELF" + b"\x01" * 60) is None  # 32-bit
    assert jitload.elf_defined_symbols(b"MZ" + b"\0" * 200) is None


_LINK = (
    "import numpy as np, numba\n"
    "import engine.jit\n"
    "from engine.scoring.kernels import frequency_from_bits\n"
    "bits = np.array([[5, 0], [2**63, 7]], np.uint64)\n"
    "print(frequency_from_bits(bits).tolist())\n"
    "@numba.njit\n"  # not cached: compiling it links the cached kernel's bitcode, parsed only now
    "def twice(b):\n"
    "    return frequency_from_bits(b) * 2\n"
    "print(twice(bits).tolist())\n"
    "from numba.core.runtime import nrtdynmod\n"
    "print(len(list(p for p in __import__('pathlib').Path(sys.argv[1]).rglob('numba-nrt-*.bin'))))\n"
)


def test_a_new_kernel_links_a_cached_one_and_the_runtime_comes_from_its_cache(tmp_path):
    """Three fresh processes on one cache directory: the first compiles and stores; the later
    ones load the kernel and numba's runtime from the cache, and a kernel compiled in the
    process can still call the cached one (its bitcode parsed on demand).  A corrupt runtime
    cache file is compiled again and rewritten."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    code = "import sys\n" + _LINK

    def run():
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                             timeout=300, env=env, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()

    expected = ["[2, 4]", "[4, 8]", "1"]
    assert run() == expected
    assert run() == expected
    (nrt,) = tmp_path.rglob("numba-nrt-*.bin")
    nrt.write_bytes(b"not a pickle")
    assert run() == expected
    assert nrt.read_bytes() != b"not a pickle"


def test_the_runtime_cache_is_what_numba_compiles():
    """The runtime library loaded from its cache defines the same names as numba's compile."""
    import pickle

    from numba.core.runtime import nrtdynmod, rtsys

    from engine.scoring.kernels import frequency_from_bits

    frequency_from_bits(np.array([[5, 0]], np.uint64))
    rtsys.initialize(frequency_from_bits.targetctx)
    ctx = frequency_from_bits.targetctx
    path = jitload._cache_file(ctx.codegen())
    if not path.exists():
        pytest.skip("numba's runtime cache was not written here (read-only install)")
    state = pickle.loads(path.read_bytes())
    from numba.core.compiler_lock import global_compiler_lock

    with global_compiler_lock:
        ir_mod, _ = nrtdynmod.create_nrt_module(ctx)
    defined = {f.name for f in ir_mod.functions if not f.is_declaration}
    assert defined and defined <= jitload.elf_defined_symbols(state[2][0])


def test_the_command_holds_the_collector_only_through_start_up(monkeypatch):
    import engine.cli as cli
    import engine.cli.score  # noqa: F401 - the step's module, as build_parser imports it

    assert gc.isenabled()
    monkeypatch.setattr(cli, "_GC_HELD", True)
    gc.disable()
    try:
        cli._import_step("score")
    finally:
        enabled = gc.isenabled()
        gc.enable()
        gc.unfreeze()
    assert enabled and not cli._GC_HELD
    assert "engine.scoring.pipeline" in sys.modules


@pytest.mark.parametrize("command", ["score", "backtest", "plan", "validate", "send", "simulate", "report",
                                     "explain"])
def test_what_each_step_imports_at_start_exists(command):
    module = importlib.import_module(f"engine.cli.{command}")
    assert module.IMPORTS
    for name in module.IMPORTS:
        importlib.import_module(name)



def test_cached_kernels_rebuild_their_environments_without_numbas_array_module():
    """winback's kernels loaded from the cache (one allocating its result) compute the same as
    here without numba.np.arrayobj imported for their environments (engine.jitload)."""
    from engine.scoring.kernels import frequency_from_bits

    code = ("import sys, numpy as np\n"
            "from engine.scoring.kernels import frequency_from_bits\n"
            "bits = np.array([[5, 0], [2**63, 7]], np.uint64)\n"
            "print(frequency_from_bits(bits).tolist(), 'numba.np.arrayobj' in sys.modules)\n")
    bits = np.array([[5, 0], [2**63, 7]], np.uint64)
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
            for _ in range(2)]  # the second one surely from the cache
    assert runs[1].returncode == 0, runs[1].stderr
    assert runs[1].stdout.strip() == f"{frequency_from_bits(bits).tolist()} False"
