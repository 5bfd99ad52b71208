"""numba imported for a quick start: what :mod:`engine.jit` does before, during and right
after ``import numba`` (0.1 s of a 0.35 s ``winback score`` on 1,000 users is that import).

:func:`import_numba` imports numba without PyYAML and SciPy where they would only be
probed, with ``importlib.metadata`` imported only if numba reads it, and, under the
command, with the modules only a compile reads run at the first compile
(:data:`COMPILE_ONLY`).  :func:`entry_points_on_demand` has numba look for its extension
entry points only where a distribution can declare one.  Each leaves numba as a plain
import would for everything that reads it; none imports numba itself except
:func:`import_numba`.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading

__all__ = ["import_numba", "entry_points_on_demand", "COMPILE_ONLY"]


def import_numba() -> None:
    """``import numba`` without PyYAML when there is no numba config file to read, without
    SciPy, which numba imports at start only to check that it is not older than 1.0, and
    without ``importlib.metadata`` until numba reads it.

    numba imports ``yaml`` (20-30 ms) at start only to read ``.numba_config.yaml`` from
    the working directory; when that file is absent (and yaml not loaded yet) numba is
    imported as on a machine without PyYAML, which reads the ``NUMBA_*`` environment
    variables as usual.  ``scipy`` (10 ms; winback's kernels never call it) is hidden the
    same way for that version check only.  Both stay importable for everyone afterwards.
    numba's entry-point module binds ``importlib.metadata`` (10 ms with the email package
    it imports) at start and reads it only to look for extensions
    (:func:`entry_points_on_demand`): it gets a stand-in that imports the module on first
    use.  Under the command (``engine.cli.COMMAND_LINE``) the modules of
    :data:`COMPILE_ONLY` run at numba's first compile instead of at start.
    """
    if "numba" in sys.modules:
        return  # numba as it is (the import below)
    hidden = [name for name in ("yaml", "scipy") if name not in sys.modules]
    if "yaml" in hidden and os.path.exists(".numba_config.yaml"):
        hidden.remove("yaml")
    for name in hidden:
        sys.modules[name] = None  # makes `import NAME` raise ImportError
    # numba.core.entrypoints' `from importlib import metadata` takes this stand-in (see
    # entry_points_on_demand); anyone's `import importlib.metadata` still imports the module
    stand_in = None
    if "importlib.metadata" not in sys.modules and "metadata" not in vars(importlib):
        stand_in = importlib.metadata = _ImportedOnUse("importlib.metadata")
    # under the command, numba's compile-only modules run at the first compile, not at start
    finder = _CompileOnlyLater() if getattr(sys.modules.get("engine.cli"), "COMMAND_LINE", False) else None
    if finder is not None:
        sys.meta_path.insert(0, finder)
    try:
        importlib.import_module("numba")
    finally:
        for name in hidden:
            del sys.modules[name]
        if stand_in is not None and vars(importlib).get("metadata") is stand_in:
            del importlib.metadata
        if finder is not None:
            sys.meta_path.remove(finder)
    if finder is not None and finder.deferred:
        _run_deferred_before_a_compile(finder.deferred)


#: numba modules that only compiling reads (the type annotations, bytecode interpreter, calling
#: convention, object-mode lowering, IR rewrites, jitclass typing and boxing): numba imports them
#: at start, a run whose kernels all come from the cache never runs them (about 9 ms)
COMPILE_ONLY = (
    "numba.core.annotations.type_annotations", "numba.core.callconv", "numba.core.consts",
    "numba.core.fastmathpass", "numba.core.interpreter", "numba.core.pylowering",
    "numba.core.rewrites.ir_print", "numba.core.rewrites.static_binop", "numba.core.rewrites.static_getitem",
    "numba.core.rewrites.static_raise", "numba.experimental.jitclass.boxing",
    "numba.experimental.jitclass.overloads", "numba.np.ufunc.array_exprs",
)


class _CompileOnlyLater:
    """While numba is imported under the command: the modules of :data:`COMPILE_ONLY` are
    imported lazily (``importlib.util.LazyLoader``: each runs at the first read of one of its
    attributes), and :func:`_run_deferred_before_a_compile` runs any still waiting before
    numba's first compile, so every compile sees numba exactly as a plain import leaves it."""

    def __init__(self):
        self.deferred: list[str] = []

    def find_spec(self, name, path=None, target=None):
        if name not in COMPILE_ONLY:
            return None
        from importlib.machinery import PathFinder, SourceFileLoader
        from importlib.util import LazyLoader

        spec = PathFinder.find_spec(name, path)
        if spec is None or not isinstance(spec.loader, SourceFileLoader) or spec.submodule_search_locations:
            return None  # the usual search
        spec.loader = LazyLoader(spec.loader)
        self.deferred.append(name)
        return spec


def _run_deferred_before_a_compile(names: list[str]) -> None:
    """Run the deferred modules ``names`` (those not run yet) when numba sets up its first
    compile (``CompilerBase.__init__``, before it refreshes its typing and target contexts, so
    their rewrites, overloads and boxing are registered as after a plain import)."""
    from numba.core import compiler

    base = getattr(compiler, "CompilerBase", None)
    full = getattr(base, "__init__", None)
    if full is None:  # pragma: no cover - another numba layout: run them now
        _run_modules(names)
        return
    lock = threading.Lock()

    def __init__(self, *args, **kwargs):
        if base.__init__ is not full:
            with lock:
                if base.__init__ is not full:
                    _run_modules(names)
                    base.__init__ = full
        full(self, *args, **kwargs)

    base.__init__ = __init__


def _run_modules(names: list[str]) -> None:
    from importlib.util import _LazyModule

    for name in names:
        module = sys.modules.get(name)
        if type(module) is _LazyModule:  # (type(): reading an attribute would run it)
            getattr(module, "__name__")  # runs it (LazyLoader)


class _ImportedOnUse:
    """Stands in for the module ``name`` and imports it when one of its attributes is read."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr):
        return getattr(importlib.import_module(self._name), attr)


def _may_have_numba_extensions() -> bool:
    """False when no distribution on ``sys.path`` can declare a ``numba_extensions`` entry point.

    What ``importlib.metadata`` finds: ``*.dist-info`` and ``*.egg-info`` folders directly in
    each ``sys.path`` folder, with their ``entry_points.txt``.  Anything else it could find
    (a zip or an egg on the path, a distribution finder other than the standard one) says
    True, as does any ``entry_points.txt`` that mentions the group.
    """
    from importlib.machinery import PathFinder

    if any(f is not PathFinder and hasattr(f, "find_distributions") for f in sys.meta_path):
        return True
    for entry in sys.path:
        if not isinstance(entry, str) or entry.lower().endswith(".egg"):
            return True
        folder = entry or "."
        try:
            with os.scandir(folder) as it:
                names = [e.name for e in it]
        except NotADirectoryError:  # a zip file
            return True
        except OSError:  # absent or unreadable: importlib.metadata finds nothing there either
            continue
        for name in names:
            low = name.lower()
            if low.endswith(".egg"):
                return True
            if not low.endswith((".dist-info", ".egg-info")):
                continue
            try:
                with open(os.path.join(folder, name, "entry_points.txt"), "rb") as f:
                    if b"numba_extensions" in f.read():
                        return True
            except OSError:  # none (or a one-file egg-info): no entry points
                continue
    return False


def entry_points_on_demand() -> None:
    """Run numba's extension entry points only where a distribution can declare one.

    Before its first compile or cache load numba imports every ``numba_extensions`` entry
    point, and finding them imports ``importlib.metadata`` (10 ms) and reads the metadata of
    every installed distribution (8 ms).  With no distribution that can declare one
    (:func:`_may_have_numba_extensions`, a few hundred microseconds) there is nothing to
    run: numba is marked initialised as its own scan would leave it.  Otherwise, and on a
    numba without these internals, numba's own scan.
    """
    ep = sys.modules.get("numba.core.entrypoints")
    full = getattr(ep, "init_all", None)
    if full is None or getattr(full, "_winback_light", False) or not hasattr(ep, "_already_initialized"):
        return

    def init_all():
        if not ep._already_initialized and not _may_have_numba_extensions():
            ep._already_initialized = True
            return
        full()

    init_all._winback_light = True
    ep.init_all = init_all
