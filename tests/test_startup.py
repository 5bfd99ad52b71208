"""What the command leaves undone at start, and that each shortcut changes nothing it feeds:
numba's compile-only modules run at the first compile, its extension entry points looked for
only where one can be, pyarrow.compute's wrappers made when read, kernels' caches opened at
their first call, an idle BLAS thread asleep at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from engine import jitstart


def _python(code: str, *args: str, env: dict | None = None, cwd=None) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                         env={**os.environ, **(env or {})}, cwd=cwd)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.splitlines()


_SCORE = """
import sys
from importlib.util import _LazyModule
from engine.cli import main
code = main(["score", sys.argv[1] + "/users.arrow", sys.argv[1] + "/events.arrow", "--as-of", "2026-11-01",
             "--no-progress", "-o", sys.argv[1] + "/s.arrow"])
import os
import pyarrow.compute as pc
from engine import jitstart
made = [n for n, v in vars(pc).items() if hasattr(v, "__arrow_compute_function__")]
print(code, [n for n in ("scipy", "importlib.metadata", "pandas") if n in sys.modules])
print(sum(type(sys.modules.get(n)) is _LazyModule for n in jitstart.COMPILE_ONLY), len(jitstart.COMPILE_ONLY))
print(len(made), len(dir(pc)) - len(vars(pc)) > 100, os.environ.get("OPENBLAS_THREAD_TIMEOUT"))
"""


def test_a_cached_score_under_the_command_leaves_the_deferred_work_undone(tmp_path):
    gen = subprocess.run([sys.executable, "-m", "engine", "generate", "--users", "300", "--seed", "3", "-o",
                          str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert gen.returncode == 0, gen.stderr
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    first = subprocess.run([sys.executable, "-c", _SCORE, str(tmp_path)], capture_output=True, text=True,
                           timeout=300, env=env)  # may compile: the compile-only modules then run
    assert first.returncode == 0, first.stderr[-3000:]
    second = subprocess.run([sys.executable, "-c", _SCORE, str(tmp_path)], capture_output=True, text=True,
                            timeout=300, env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    code, lazy, made = second.stdout.splitlines()[-3:]
    # every kernel from the cache: no compile-only numba module ran, and neither SciPy nor
    # importlib.metadata (unless a numba extension is installed) nor pandas was imported
    from importlib.metadata import entry_points

    clean = "0 []" if not list(entry_points(group="numba_extensions")) else "0 ['importlib.metadata']"
    assert code == clean
    assert lazy.split() == [str(len(jitstart.COMPILE_ONLY))] * 2
    # a few dozen of pyarrow.compute's 290 wrappers were made; OpenBLAS was told to sleep at once
    n_made, many_left, timeout = made.split()
    assert 0 < int(n_made) < 100 and many_left == "True" and timeout == "4"
    assert first.stdout.splitlines()[-3] == clean


# --------------------------------------------------------------------------- pyarrow.compute
_WRAPPERS = """
import inspect, json, sys
if sys.argv[1] != "plain":
    from engine.cli import compute_on_use
    if sys.argv[1] == "fallback":
        compute_on_use.EAGER = frozenset()  # the module's own utf8_zfill alias then finds no wrapper
    compute_on_use.install()
import pyarrow.compute as pc
lazy = "__getattr__" in vars(pc)
out = {}
for name in dir(pc):
    v = getattr(pc, name)
    if hasattr(v, "__arrow_compute_function__"):
        out[name] = [v.__name__, v.__qualname__, v.__module__, v.__doc__, str(inspect.signature(v)),
                     repr(v.__arrow_compute_function__)]
missing = []
for name in ("hash_sum", "no_such_function", "__all__"):
    try:
        getattr(pc, name)
    except AttributeError:
        missing.append(name)
same = [getattr(pc, "and") is pc.and_, pc.utf8_zfill is pc.utf8_zero_fill, pc.take.__module__]
print(json.dumps({"lazy": lazy, "dir": sorted(set(dir(pc)) - {"__getattr__", "__dir__"}), "wrappers": out,
                  "missing": missing, "same": same}))
"""


def test_compute_wrappers_made_when_read_are_the_ones_a_plain_import_makes():
    plain, lazy = (json.loads(_python(_WRAPPERS, how)[-1]) for how in ("plain", "lazy"))
    assert lazy["lazy"] and not plain["lazy"]
    assert len(plain["wrappers"]) > 200
    assert lazy["wrappers"] == plain["wrappers"]  # names, docstrings, signatures, metadata
    assert lazy["dir"] == plain["dir"]
    assert lazy["missing"] == plain["missing"] == ["hash_sum", "no_such_function", "__all__"]
    assert lazy["same"] == plain["same"] == [True, True, "pyarrow.compute"]


def test_compute_runs_as_usual_when_its_module_reads_a_wrapper_not_made():
    plain, fallback = (json.loads(_python(_WRAPPERS, how)[-1]) for how in ("plain", "fallback"))
    assert not fallback["lazy"]
    assert fallback["wrappers"] == plain["wrappers"] and fallback["dir"] == plain["dir"]


# --------------------------------------------------------------------------- numba
_COMPILE = """
import sys
from importlib.util import _LazyModule
import numpy as np
if sys.argv[1] == "command":
    import engine.cli; engine.cli.COMMAND_LINE = True
import engine.jit  # numba through engine.jit first, as the command imports it
from engine import jitstart
from engine.scoring.kernels import frequency_from_bits
from engine.scoring.partition import block_counts
def waiting():
    return sum(type(sys.modules.get(n)) is _LazyModule for n in jitstart.COMPILE_ONLY)
before = waiting()
bits = np.array([[5, 0], [2**63, 7]], np.uint64)
uidx = np.array([0, 1, 2, 5, 9, 9, 3], np.int64)
print(before, frequency_from_bits(bits).tolist(), block_counts(uidx, np.int64(1), 6, np.int64(2)).tolist(), waiting())
"""


def test_kernels_compiled_under_the_command_are_the_same(tmp_path):
    """With an empty cache the command compiles (its compile-only modules run first) and the
    kernels compute what they compute in a plain import."""
    runs = {}
    for how in ("command", "plain"):
        cache = tmp_path / how
        runs[how] = _python(_COMPILE, how, env={"NUMBA_CACHE_DIR": str(cache)}, cwd=tmp_path)[-1].split(" ", 1)
    assert runs["command"][0] == str(len(jitstart.COMPILE_ONLY)) and runs["plain"][0] == "0"
    assert runs["command"][1] == runs["plain"][1]
    assert runs["command"][1].endswith(" 0")  # all ran by the end of the compile


def test_a_fresh_process_looks_for_numba_extensions_without_importlib_metadata():
    code = ("import sys, numpy as np\n"
            "import engine.jit\n"  # numba through engine.jit first, as every step imports it
            "from engine.scoring.kernels import frequency_from_bits\n"
            "frequency_from_bits(np.zeros((2, 1), np.uint64))\n"
            "import numba.core.entrypoints as ep\n"
            "print('importlib.metadata' in sys.modules, ep._already_initialized)\n")
    from importlib.metadata import entry_points

    if list(entry_points(group="numba_extensions")):
        pytest.skip("a numba extension is installed: numba's own scan runs")
    assert _python(code)[-1] == "False True"


def test_numba_extensions_are_found_where_a_distribution_declares_them(tmp_path, monkeypatch):
    from importlib.machinery import PathFinder

    monkeypatch.setattr(sys, "meta_path", [PathFinder])
    site = tmp_path / "site"
    (site / "plain-1.0.dist-info").mkdir(parents=True)
    (site / "plain-1.0.dist-info" / "entry_points.txt").write_text("[console_scripts]\nplain = plain:main\n")
    (site / "bare-2.0.dist-info").mkdir()  # no entry points at all
    (site / "note.egg-info").write_text("Name: note\n")  # a one-file egg-info
    monkeypatch.setattr(sys, "path", [str(site), str(tmp_path / "absent")])
    assert not jitstart._may_have_numba_extensions()
    (site / "ext-1.0.dist-info").mkdir()
    (site / "ext-1.0.dist-info" / "entry_points.txt").write_text("[numba_extensions]\ninit = ext:init\n")
    assert jitstart._may_have_numba_extensions()
    found = _python("import sys\n"  # what numba would find there, in a fresh process
                    "from importlib.metadata import entry_points\n"
                    "sys.path[:] = [sys.argv[1]]\n"
                    "print([ep.value for ep in entry_points(group='numba_extensions')])", str(site))
    assert found[-1] == "['ext:init']"
    zipped = tmp_path / "lib.zip"
    zipped.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    monkeypatch.setattr(sys, "path", [str(zipped)])
    assert jitstart._may_have_numba_extensions()  # a zip on the path: numba's own scan


def test_no_extension_found_means_importlib_metadata_finds_none():
    from importlib.metadata import entry_points

    if not jitstart._may_have_numba_extensions():
        assert not list(entry_points(group="numba_extensions"))


_LAZY_CACHE = """
import sys
sys.path.insert(0, sys.argv[1])
import engine.jit
from engine import jitcache
from numba.core import caching
jitcache.watch(sys.argv[1], ("pkgc",))
checked = []
full = caching._CacheLocator.ensure_cache_path
caching._CacheLocator.ensure_cache_path = lambda self: (checked.append(self.get_cache_path()), full(self))
from pkgc import k
kinds = lambda: [type(vars(f)["_cache"]).__name__ for f in (k.twice, k.thrice, k.once)]
print(kinds(), k.twice(2), k.thrice(2), k.once(2), kinds(), len(checked))
"""


def test_a_kernels_cache_is_opened_at_its_first_call(tmp_path):
    pkg = tmp_path / "pkgc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "k.py").write_text("from engine.jit import njit\n\n@njit\ndef twice(a):\n    return 2 * a\n\n"
                              "@njit\ndef thrice(a):\n    return 3 * a\n\n"
                              "@njit(cache=False)\ndef once(a):\n    return a\n")
    out = _python(_LAZY_CACHE, str(tmp_path), cwd=tmp_path)[-1]
    # no cache opened at definition; numba's FunctionCache at the first call (not for cache=False),
    # its folder checked once for both kernels
    assert out == ("['NullCache', 'NullCache', 'NullCache'] 4 6 2 ['FunctionCache', 'FunctionCache', 'NullCache'] 1")
    assert list((pkg / "__pycache__").glob("k.twice-*.nbi")) and list((pkg / "__pycache__").glob("k.thrice-*.nbi"))


def test_llvm_calls_are_still_announced_to_numbas_listeners():
    import llvmlite.binding as ll
    from llvmlite.binding import ffi
    from numba.core import event
    from numba.core.registry import cpu_target

    rec = event.RecordingListener()
    with event.install_listener("numba:llvm_lock", rec):
        ll.get_process_triple()
        ll.get_process_triple()
    statuses = [e.status for _, e in rec.buffer]
    assert len(statuses) >= 4 and statuses == [event.EventStatus.START, event.EventStatus.END] * (len(statuses) // 2)
    assert all(e.kind == "numba:llvm_lock" for _, e in rec.buffer)
    assert len(ffi.lib._lock._cblist) == 1  # numba's pair of callbacks, replaced in place
    codegen = cpu_target.target_context.codegen()
    assert codegen.magic_tuple()[:2] == (codegen._llvm_module.triple, ll.get_host_cpu_name())


def test_the_command_lets_an_idle_blas_thread_sleep_only_before_numpy_loads():
    code = ("import os, sys\n"
            "if sys.argv[1] == 'numpy first': import numpy\n"
            "from engine.cli import main\n"
            "main([])\n"
            "print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    outs = {}
    for how in ("command", "numpy first"):
        out = subprocess.run([sys.executable, "-c", code, how], capture_output=True, text=True, timeout=120, env=env)
        assert out.returncode == 0, out.stderr
        outs[how] = out.stdout.splitlines()[-1]
    assert outs == {"command": "4", "numpy first": "None"}


def test_fit_stats_sums_are_the_full_grid_sums():
    """The fatigue fit's exposure, expectation and message count, taken on grids broadcast
    against the pair counts, are the sums over full grids (the formula before), bit for bit."""
    from engine.scoring import fatigue_model as fm

    rng = np.random.default_rng(5)
    for _ in range(3):
        n = 200
        sends = rng.integers(0, 4, (n, fm.WEEKS)).astype(np.uint8)
        opens = np.minimum(sends, rng.integers(0, 3, (n, fm.WEEKS))).astype(np.uint8)
        pairs = rng.integers(0, 40, (fm.WEEKS, fm._PAIR, fm._PAIR)).astype(np.int64)
        got = fm.fit_stats([{"sends": sends, "opens": opens, "pairs": pairs, "stopped": 7}])
        beta, drift, _, _ = fm._population(sends, opens)
        wk, sw, sp = np.meshgrid(np.arange(fm.WEEKS), np.arange(fm._PAIR), np.arange(fm._PAIR), indexing="ij")
        load = 0.5 * np.maximum(sw - 1.0, 0.0) + 0.5 * sp
        exposure = float((pairs * sw * (1.0 + load)).sum())
        expected = float((pairs * sw * np.exp(-beta * load - drift * wk)).sum())
        assert got["unsubscribe_per_message"] == 7 / exposure
        assert got["response"] == float(opens.sum(dtype=np.int64)) / expected
        assert got["messages"] == int((pairs * sw).sum())
