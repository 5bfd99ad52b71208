"""``pyarrow.compute`` under the command: each function's wrapper made when it is first read.

At import ``pyarrow.compute`` makes a Python wrapper, with a signature and a docstring
built from Arrow's documentation, for every function of Arrow's registry (about 290:
17 ms of the module's 27 ms; its docstrings parse each options class's docstring again
for every function sharing the class).  A ``winback score`` reads 12 of them.
:func:`install` (called by :func:`engine.cli.main`, for the command's own process) has
the module run with the registry listing only the wrappers its own code reads while it
runs; every other one is made on its first read by the module's ``__getattr__``, by
pyarrow's own ``_wrap_function`` with the same arguments the import would have used, and
kept in the module (so the second read is an ordinary attribute).  The wrappers, their
names, signatures, docstrings and behaviour are the ones a plain import makes, and
``dir()`` lists them all.  Any surprise (another pyarrow, whose module reads other
wrappers while it runs or lacks these helpers) and the module is run again as usual.
"""

from __future__ import annotations

import sys
import threading

__all__ = ["install", "ComputeOnUse"]

#: wrappers pyarrow.compute's module code reads while it runs (``utf8_zfill`` is an alias)
EAGER = frozenset({"utf8_zero_fill"})
#: pyarrow.compute's names for the registry functions named like Python keywords
_REWRITES = {"and": "and_", "or": "or_"}


def install() -> None:
    """Make the first import of ``pyarrow.compute`` in this process lazy (see the module doc)."""
    if "pyarrow.compute" in sys.modules or any(isinstance(f, ComputeOnUse) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, ComputeOnUse())


class ComputeOnUse:
    """A one-shot import hook that runs ``pyarrow.compute`` as described in the module doc."""

    def find_spec(self, name, path=None, target=None):
        if name != "pyarrow.compute":
            return None
        sys.meta_path.remove(self)
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name, path)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return None  # the usual search
        loader.exec_module = lambda module: _exec(loader, module)
        return spec


class _Listing:
    """Arrow's function registry, listing only :data:`EAGER` (what the module binds at import)."""

    def __init__(self, registry):
        self._registry = registry

    def list_functions(self):
        return [name for name in self._registry.list_functions() if name in EAGER]

    def get_function(self, name):
        return self._registry.get_function(name)


def _exec(loader, module) -> None:
    del loader.exec_module  # the loader's own method again
    import pyarrow._compute as arrow

    registry = arrow.function_registry
    reg = registry()
    listing = _Listing(reg)
    kept = dict(vars(module))  # what the import system set (name, spec, loader, file)
    arrow.function_registry = lambda: listing
    try:
        loader.exec_module(module)
        lazy = _Lazy(module, reg)
    except Exception:  # noqa: BLE001 - another pyarrow: run the module as usual
        lazy = None
    finally:
        arrow.function_registry = registry
    if lazy is None:
        vars(module).clear()
        vars(module).update(kept)
        loader.exec_module(module)
        return
    module.function_registry = registry
    module.__getattr__ = lazy.getattr
    module.__dir__ = lazy.dir


class _Lazy:
    """The wrappers not made at import, each made on its first read (see the module doc)."""

    def __init__(self, module, reg):
        g = vars(module)
        for helper in ("_wrap_function", "_scrape_options_class_doc", "dedent"):
            if helper not in g:
                raise LookupError(helper)
        if any(name not in g for name in EAGER):
            raise LookupError("eager wrappers")
        self._g = g
        self._reg = reg
        self._names = set(reg.list_functions())
        self._lock = threading.Lock()
        # each options class's docstring parsed once and each text dedented once, for every
        # wrapper made from now on (pyarrow only reads them: the docstrings come out the same)
        g["_scrape_options_class_doc"] = _once(g["_scrape_options_class_doc"])
        g["dedent"] = _once(g["dedent"])

    def _function(self, name: str):
        """``(exposed name, registry function)`` of a wrapper the import would make, or None."""
        cpp = next((c for c, r in _REWRITES.items() if r == name), name)
        if cpp not in self._names:
            return None
        func = self._reg.get_function(cpp)
        if func.kind == "hash_aggregate" or (func.kind == "scalar_aggregate" and func.arity == 0):
            return None  # not exposed at module level (pyarrow's _make_global_functions)
        return _REWRITES.get(cpp, cpp), cpp, func

    def getattr(self, name: str):
        found = self._function(name) if not name.startswith("__") else None
        if found is None:
            raise AttributeError(f"module 'pyarrow.compute' has no attribute {name!r}")
        exposed, cpp, func = found
        with self._lock:
            g = self._g
            if exposed not in g:
                g[cpp] = g[exposed] = g["_wrap_function"](exposed, func)
            return g[name] if name in g else g[exposed]

    def dir(self) -> list[str]:
        names = set(self._g)
        for cpp in self._names:
            found = self._function(cpp)
            if found is not None:
                names.update((found[0], cpp))
        return sorted(names)


def _once(func):
    """``func`` of one hashable argument, computed once per distinct argument."""
    done: dict = {}

    def once(arg, *args, **kwargs):
        if args or kwargs:
            return func(arg, *args, **kwargs)
        try:
            return done[arg]
        except KeyError:
            pass
        except TypeError:  # unhashable
            return func(arg)
        done[arg] = value = func(arg)
        return value

    once.__wrapped__ = func
    return once
