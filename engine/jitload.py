"""Lighter loads of cached numba kernels: fewer LLVM parses per process start.

A kernel numba reads from its on-disk cache (``cache=True``) arrives as machine code
(an ELF object) plus the LLVM bitcode of the same functions.  numba parses that bitcode
on every load (``ll.parse_bitcode``) for two things: the names the object defines
(``JitEngine._load_defined_symbols``), and a module to link into a kernel compiled later
that calls this one.  A run whose kernels all come from the cache never links anything,
so here the names are read from the object's own ELF symbol table and the bitcode is
parsed only when a compile first asks for it (:func:`_lazy_shared_module`).  numba's
runtime (NRT, a few atomic helpers every kernel calls) is compiled from LLVM IR in every
process; its machine code is cached beside the kernels' caches the same way numba caches
a kernel's (:func:`_cached_nrt`), keyed by numba's and llvmlite's versions and the CPU.

A cached kernel's environments are rebuilt without importing numba's array-function
module (:func:`_light_environments`).  On a 1,000-user ``winback score`` (19 kernel
loads) this saves most of the 25 ms of bitcode parsing, the 15 ms NRT compile and 20 ms
of imports; numba's announcement of each LLVM call to its event listeners reusing two
event objects (:func:`_light_llvm_lock_events`) saves 5 ms more.  All fall back to
numba's own path on any surprise (another numba layout, an object that is not ELF64, an
unreadable cache), and :func:`install` leaves a numba without these internals alone.
Installed by :mod:`engine.jit` for every kernel of the process: the symbols and the
runtime are the same whoever's kernel loads.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
from pathlib import Path

import numpy as np

from engine import cachefile

__all__ = ["install", "elf_defined_symbols", "NRT_CACHE_DIR"]

#: where the runtime's machine code is cached when ``NUMBA_CACHE_DIR`` is unset: the same
#: in-tree ``__pycache__`` numba uses for the project's kernels
NRT_CACHE_DIR = Path(__file__).resolve().parent / "__pycache__"

_SHDR = np.dtype([("name", "<u4"), ("type", "<u4"), ("flags", "<u8"), ("addr", "<u8"), ("offset", "<u8"),
                  ("size", "<u8"), ("link", "<u4"), ("info", "<u4"), ("addralign", "<u8"), ("entsize", "<u8")])
_SYM = np.dtype([("name", "<u4"), ("info", "u1"), ("other", "u1"), ("shndx", "<u2"), ("value", "<u8"),
                 ("size", "<u8")])
_SHT_SYMTAB = 2
_STT_SECTION, _STT_FILE = 3, 4


def elf_defined_symbols(obj: bytes) -> set[str] | None:
    """The names an ELF64 little-endian object defines (functions, data; not sections or
    files), from its symbol table; None when ``obj`` is not such an object.

    Layout from the System V ABI (``Elf64_Ehdr``, ``Elf64_Shdr``, ``Elf64_Sym``): section
    headers at ``e_shoff`` (byte 0x28), ``e_shnum`` of them (0x3C); the ``SHT_SYMTAB``
    section's ``sh_link`` is its string table; a symbol is defined when ``st_shndx`` is
    not ``SHN_UNDEF`` (0).
    """
    if len(obj) < 64 or obj[:4] != b"\x7fELF" or obj[4] != 2 or obj[5] != 1:
        return None
    shoff = int.from_bytes(obj[0x28:0x30], "little")
    shentsize = int.from_bytes(obj[0x3A:0x3C], "little")
    shnum = int.from_bytes(obj[0x3C:0x3E], "little")
    if shentsize != _SHDR.itemsize or shoff + shnum * shentsize > len(obj):
        return None
    sections = np.frombuffer(obj, _SHDR, shnum, shoff)
    tables = np.nonzero(sections["type"] == _SHT_SYMTAB)[0]
    if len(tables) != 1:
        return None
    sym = sections[tables[0]]
    strtab = sections[int(sym["link"])]
    s_off, s_size = int(strtab["offset"]), int(strtab["size"])
    off, size = int(sym["offset"]), int(sym["size"])
    if sym["entsize"] != _SYM.itemsize or off + size > len(obj) or s_off + s_size > len(obj):
        return None
    symbols = np.frombuffer(obj, _SYM, size // _SYM.itemsize, off)
    kind = symbols["info"] & 0xF
    keep = (symbols["shndx"] != 0) & (symbols["name"] != 0) & (kind != _STT_SECTION) & (kind != _STT_FILE)
    strings = obj[s_off:s_off + s_size]
    names = set()
    for start in symbols["name"][keep].tolist():
        end = strings.find(b"\0", start)
        names.add(strings[start:end if end >= 0 else len(strings)].decode("utf-8", "replace"))
    return names


def _lazy_shared_module(library_class, ll) -> None:
    """Make ``library._shared_module`` parse a stored bitcode on first read (numba reads it
    only to link the library into a new compile)."""
    if isinstance(library_class.__dict__.get("_shared_module"), property):
        return

    def get(self):
        d = self.__dict__
        if "_winback_bitcode" in d:
            d["_winback_shared"] = ll.parse_bitcode(d.pop("_winback_bitcode"))
        return d.get("_winback_shared")

    def put(self, value):
        self.__dict__.pop("_winback_bitcode", None)
        self.__dict__["_winback_shared"] = value

    library_class._shared_module = property(get, put)


def _light_unserialize(library_class) -> None:
    """Load a cached ``'object'`` library without parsing its bitcode (see the module doc)."""
    full = library_class._unserialize
    if getattr(full, "_winback_light", False):
        return

    def _unserialize(cls, codegen, state):
        try:
            name, kind, data = state
            object_code, shared_bitcode = data if kind == "object" else (None, None)
            symbols = elf_defined_symbols(object_code) if kind == "object" else None
            engine = getattr(codegen, "_engine", None)
            if symbols is None or not isinstance(getattr(engine, "_defined_symbols", None), set):
                return full.__func__(cls, codegen, state)
        except Exception:  # noqa: BLE001 - numba's own path
            return full.__func__(cls, codegen, state)
        self = codegen.create_library(name)
        assert isinstance(self, cls)
        self.enable_object_caching()
        self._set_compiled_object(object_code)
        self.__dict__["_winback_bitcode"] = shared_bitcode
        self._finalize_final_module()
        engine._defined_symbols |= symbols
        return self

    _unserialize._winback_light = True
    library_class._unserialize = classmethod(_unserialize)


def _cache_file(codegen) -> Path:
    import llvmlite
    import numba

    key = repr((numba.__version__, llvmlite.__version__, sys.version_info[:2], codegen.magic_tuple()))
    base = os.environ.get("NUMBA_CACHE_DIR")
    folder = Path(base) if base else NRT_CACHE_DIR
    return folder / f"numba-nrt-{hashlib.sha256(key.encode()).hexdigest()[:16]}.bin"


def _cached_nrt(nrtdynmod) -> None:
    """Cache the compiled NRT library's machine code (``nrtdynmod.compile_nrt_functions``)."""
    full = nrtdynmod.compile_nrt_functions
    if getattr(full, "_winback_cached", False):
        return

    def compile_nrt_functions(ctx):
        try:
            codegen = ctx.codegen()
            path = _cache_file(codegen)
        except Exception:  # noqa: BLE001 - numba's own path
            return full(ctx)
        try:
            return codegen.unserialize_library(pickle.loads(path.read_bytes()))
        except Exception:  # noqa: BLE001 - absent, stale or unreadable: compile and store
            pass
        try:
            ir_mod, library = nrtdynmod.create_nrt_module(ctx)
            library.enable_object_caching()
            library.add_ir_module(ir_mod)
            library.finalize()
            state = library.serialize_using_object_code()
        except Exception:  # noqa: BLE001
            return full(ctx)
        # a read-only install simply compiles it in every process
        cachefile.write_quietly(path, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
        return library

    compile_nrt_functions._winback_cached = True
    nrtdynmod.compile_nrt_functions = compile_nrt_functions


def _light_environments(environment) -> None:
    """Rebuild a cached kernel's environments without importing numba modules for them.

    A cached library pickles one environment (``numba.core.environment.Environment``) per
    function it holds, with the name of the module whose globals the function saw; numba
    imports that module to rebuild it.  Nearly all of them are numba's own array functions
    (``numba.np.arrayobj``, 20 ms to import with what it pulls in), compiled in nopython
    mode, which never read their environment's globals (only object mode does:
    ``numba.core.pylowering``).  Such a numba module not imported yet gets an environment
    whose globals are only its ``__name__`` (so it still pickles as numba's would); every
    other environment is rebuilt by numba as before.
    """
    full = environment._rebuild_env
    if getattr(full, "_winback_light", False):
        return
    env_class = environment.Environment

    def _rebuild_env(modname, consts, env_name):
        if not isinstance(modname, str) or not modname.startswith("numba.") or modname in sys.modules:
            return full(modname, consts, env_name)
        env = environment.lookup_environment(env_name)
        if env is not None:
            return env
        env = env_class({"__name__": modname})
        env.consts[:] = consts
        env.env_name = env_name
        env_class._memo[env_name] = env
        return env

    _rebuild_env._winback_light = True
    environment._rebuild_env = _rebuild_env


def _light_llvm_lock_events(ffi, event) -> None:
    """numba's announcements of llvmlite calls, without two new event objects per call.

    numba announces every call into LLVM (each takes llvmlite's lock) to its event listeners,
    the compile timers, as a start and an end event of kind ``numba:llvm_lock``; a cached
    kernel's load makes about 40 such calls, and numba built a new ``Event`` for each start
    and each end (4 us a call, 5 ms a run).  Events are read-only, so here the same two,
    built once, are broadcast to the same listeners in the same order.  Left alone when
    numba's own callbacks are not where numba puts them.
    """
    cbs = getattr(getattr(getattr(ffi, "lib", None), "_lock", None), "_cblist", None)
    if not isinstance(cbs, list) or not all(hasattr(event, n) for n in ("Event", "EventStatus", "broadcast")):
        return  # pragma: no cover
    kind = "numba:llvm_lock"
    for i, pair in enumerate(cbs):
        enter = pair[0] if isinstance(pair, tuple) and len(pair) == 2 else None
        if (getattr(enter, "__module__", "") != "numba.core.base"
                or getattr(enter, "__qualname__", "") != "_initialize_llvm_lock_event.<locals>.enter_fn"):
            continue
        started = event.Event(kind=kind, status=event.EventStatus.START)
        ended = event.Event(kind=kind, status=event.EventStatus.END)

        def enter_fn():
            event.broadcast(started)

        def exit_fn():
            event.broadcast(ended)

        cbs[i] = (enter_fn, exit_fn)
        return


def _host_cpu_name_once(codegen, config, ll) -> None:
    """Ask LLVM for the host CPU's name once per process, not at every cache load.

    numba keys each cached kernel by its codegen's ``magic_tuple()``, whose CPU name
    (``llvmlite.binding.get_host_cpu_name``, 50 us: LLVM reads the CPU's identification)
    it asks again at every load; the machine does not change while a process runs.
    ``NUMBA_CPU_NAME`` still wins, read at each call as numba reads it.
    """
    cls = getattr(codegen, "CPUCodegen", None)
    full = getattr(cls, "_get_host_cpu_name", None)
    if full is None or getattr(full, "_winback_once", False):
        return  # pragma: no cover
    host: list[str] = []

    def _get_host_cpu_name(self):
        if config.CPU_NAME is not None:
            return config.CPU_NAME
        if not host:
            host.append(ll.get_host_cpu_name())
        return host[0]

    _get_host_cpu_name._winback_once = True
    cls._get_host_cpu_name = _get_host_cpu_name


def install() -> None:
    """Install all five; idempotent; a numba without these internals is left alone."""
    try:
        import llvmlite.binding as ll
        from llvmlite.binding import ffi
        from numba.core import base, codegen, config, environment, event  # noqa: F401 (base registers the callbacks)
        from numba.core.runtime import nrtdynmod
    except ImportError:  # pragma: no cover - another numba layout
        return
    _light_llvm_lock_events(ffi, event)
    _host_cpu_name_once(codegen, config, ll)
    library_class = getattr(codegen, "JITCodeLibrary", None)
    unserialize = getattr(library_class, "_unserialize", None)
    if library_class is None or unserialize is None or not hasattr(codegen, "JitEngine"):
        return  # pragma: no cover
    if not hasattr(codegen.JitEngine, "_load_defined_symbols"):
        return  # pragma: no cover
    _lazy_shared_module(library_class, ll)
    _light_unserialize(library_class)
    if all(hasattr(nrtdynmod, n) for n in ("compile_nrt_functions", "create_nrt_module")):
        _cached_nrt(nrtdynmod)
    if all(hasattr(environment, n) for n in ("_rebuild_env", "lookup_environment", "Environment")):
        _light_environments(environment)
