"""Cached kernels that notice a change in any module they use, not only in their own file.

numba's ``cache=True`` checks a cached kernel against a hash of the file that defines it
(``numba.core.caching``).  A kernel that calls a kernel of another module, or reads one
of its constants (numba freezes globals when it compiles), keeps the cached machine code
when only that other module changed, and so computes with the old code: after a
``git pull``, a branch switch or an edit in a development checkout the results are
silently wrong.  A reinstall rewrites every file and was never affected.

Here the stamp of a kernel of ``engine`` or ``adapters`` is its file's hash together with
the hash of every module of the project that file imports, followed transitively
(``from engine.x import y`` and ``import engine.x`` lines: kernels cannot import
dynamically).  A change anywhere in that closure stamps the cache stale, and numba
compiles the kernel again, once.  Reading and hashing the closure (at most a few dozen
small files) happens once per file and process, on the first kernel load.  Kernels of
other packages keep numba's own locators.  Installed by :mod:`engine.jit`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from pathlib import Path

__all__ = ["install", "watch", "closure", "ROOTS"]

#: project roots whose kernels are stamped by their import closure (the folder that holds
#: ``engine/`` and ``adapters/``), and the top-level packages of that folder which count
ROOTS: dict[str, tuple[str, ...]] = {str(Path(__file__).resolve().parent.parent): ("engine", "adapters")}

_IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+([\w.]+)[ \t]+import[ \t]+(\([^)]*\)|[^\n#]+)|import[ \t]+([\w.]+))")


def watch(root: str | os.PathLike, packages: tuple[str, ...]) -> None:
    """Stamp the kernels of ``root/<package>/...`` by their import closure too (tests, plugins)."""
    ROOTS[str(Path(root).resolve())] = tuple(packages)
    for memo in (_closure_hash, _read, _module_file, _owner):
        memo.cache_clear()


@functools.lru_cache(maxsize=None)
def _resolved(py_file: str) -> str:
    return str(Path(py_file).resolve())


@functools.lru_cache(maxsize=None)
def _owner(py_file: str) -> tuple[str, tuple[str, ...]] | None:
    """The project root and packages ``py_file`` belongs to (memoised: asked for every kernel)."""
    path = _resolved(py_file)
    for root, packages in ROOTS.items():
        rel = os.path.relpath(path, root)
        if rel.split(os.sep, 1)[0] in packages:
            return root, packages
    return None


@functools.lru_cache(maxsize=None)
def _module_file(root: str, module: str) -> str | None:
    base = os.path.join(root, *module.split("."))
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(candidate):
            return candidate
    return None


@functools.lru_cache(maxsize=None)
def _read(path: str, root: str, packages: tuple[str, ...]) -> tuple[bytes, tuple[str, ...]]:
    """A project file's SHA-256 and the project modules' files it imports (memoised per process)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return b"<unreadable>", ()
    text = data.decode("utf-8", errors="replace")
    found = []
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if "import" in line]  # the regex only where it can match
    for frm, names, plain in (m.groups() for i in starts
                              if (m := _IMPORT.match("\n".join(lines[i:i + 40]) if "(" in lines[i] else lines[i]))):
        module = frm or plain
        if module.split(".", 1)[0] not in packages:
            continue
        found.append(_module_file(root, module))
        if frm:  # `from engine.scoring import lapse` imports a module too
            found += [_module_file(root, f"{module}.{n}") for n in re.findall(r"\w+", names) if n != "as"]
    return hashlib.sha256(data).digest(), tuple(f for f in found if f)


def closure(py_file: str) -> list[str]:
    """``py_file`` and every project module it imports, transitively, sorted (absolute paths)."""
    start = _resolved(py_file)
    owner = _owner(start)
    if owner is None:
        return [start]
    seen, todo = {start}, [start]
    while todo:
        for f in _read(todo.pop(), *owner)[1]:
            if f not in seen:
                seen.add(f)
                todo.append(f)
    return sorted(seen)


@functools.lru_cache(maxsize=None)
def _closure_hash(py_file: str) -> str:
    owner = _owner(py_file)
    h = hashlib.sha256()
    for f in closure(py_file):
        h.update(f.encode() + (_read(f, *owner)[0] if owner else b""))
    return h.hexdigest()


def install() -> None:
    """Put the closure-stamped locators ahead of numba's own; idempotent.  Left alone on a
    numba without these internals (its own per-file check then applies)."""
    try:
        from numba.core import caching
    except ImportError:  # pragma: no cover
        return
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)  # numba >= 0.61 / older
    bases = [getattr(caching, n, None) for n in ("UserProvidedCacheLocator", "InTreeCacheLocator",
                                                 "UserWideCacheLocator")]
    if impl is None or None in bases or not isinstance(getattr(impl, "_locator_classes", None), list):
        return  # pragma: no cover
    if any(getattr(c, "_winback_closure", False) for c in impl._locator_classes):
        return
    ours = [_stamped(base) for base in bases]
    impl._locator_classes[:0] = ours


#: cache folders found writable in this process (numba checks each kernel's by writing a file)
_writable: set[str] = set()


def _stamped(base):
    class Stamped(base):
        _winback_closure = True

        @classmethod
        def from_function(cls, py_func, py_file):
            if _owner(py_file) is None:
                return None
            return super().from_function(py_func, py_file)

        def ensure_cache_path(self):
            """numba's check (create the folder, write and remove a file in it) once per folder and
            process, not once per kernel (a ``winback score`` makes 59 kernels in two)."""
            path = self.get_cache_path()
            if path not in _writable:
                super().ensure_cache_path()
                _writable.add(path)

        def get_source_stamp(self):
            return (super().get_source_stamp(), _closure_hash(_resolved(self._py_file)))

    Stamped.__name__ = Stamped.__qualname__ = "Closure" + base.__name__
    return Stamped
