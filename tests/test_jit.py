"""The one place numba options are set: every kernel is cached on disk, releases the GIL, and uses no fastmath."""

from __future__ import annotations

import importlib
import pkgutil

import numba
import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

import engine
from engine.jit import ParallelKernel, njit, pjit


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
        if k.targetoptions.get("parallel"):  # through pjit, so launches from threads are safe on any layer
            assert isinstance(k, ParallelKernel), name
    assert any(isinstance(k, ParallelKernel) for _, k in kernels)


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


def test_cached_kernels_load_light_in_a_fresh_process():
    """A fresh process loads winback's cached kernels (serial and parallel) without numba's cffi
    typing pulling in cffi, and gets the same results as in this process."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "import engine.cli; engine.cli.COMMAND_LINE = True\n"  # as under the winback command
        "from engine.scoring.bgnbd_rows import compress\n"
        "from engine.scoring.bgnbd import BGNBD\n"
        "x = np.array([0., 1, 2, 2, 5, 1, 0, 3] * 10); t = np.minimum(x * 3, 20); T = np.full(80, 30.)\n"
        "print(compress(x, t, T)[3].tolist())\n"
        "m = BGNBD(min_users=5).fit(x, t, T)\n"
        "print(round(m.diagnostics_['log_likelihood'], 9), 'cffi' in sys.modules)\n"
        "print('numba.np.arraymath' in sys.modules, 'yaml' in sys.modules)\n"
    )
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
            for _ in range(2)]  # the second one loads everything from the cache
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr
    assert runs[0].stdout.splitlines()[:2] == runs[1].stdout.splitlines()[:2]
    assert runs[1].stdout.splitlines()[1].endswith("False")
    # every kernel from the cache: neither numba's array-function module nor PyYAML was imported
    assert runs[1].stdout.splitlines()[2] == "False False"


def test_a_kernel_not_in_the_cache_still_compiles(tmp_path):
    """With an empty cache directory a winback kernel compiles (numba's array functions are
    then loaded, with the BLAS probe answered "no") and gives the same result."""
    import os
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from engine.scoring.kernels import frequency_from_bits\n"
            "bits = np.array([[5, 0], [2**63, 7]], np.uint64)\n"
            "print(frequency_from_bits(bits).tolist())\n"
            "import numba.np.arraymath as am\n"
            "print('numba.np.arraymath' in sys.modules, am._HAVE_BLAS, 'scipy.linalg' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["[2, 4]", "True False False"]


def test_a_program_embedding_winback_keeps_numba_cffi_support():
    """Outside the command, importing winback's kernels leaves numba's cffi support as numba has it."""
    import subprocess
    import sys

    pytest.importorskip("cffi")
    code = ("import engine.scoring.kernels, numba.core.typing.cffi_utils as c\n"
            "print(c.SUPPORTED)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


_CALLER = "from engine.jit import njit\nfrom pkgx.b import inner\n\n@njit\ndef outer():\n    return inner() * 10\n"
_CALLEE = "from engine.jit import njit\n\nSCALE = {scale}\n\n@njit\ndef inner():\n    return SCALE\n"


@pytest.mark.parametrize("watched", [True, False])
def test_a_cached_kernel_recompiles_when_a_module_it_calls_changes(tmp_path, watched):
    """numba checks a cached kernel against its own file only; winback's kernels are checked
    against every project module they import (engine.jitcache), so a kernel whose callee
    changed in another file computes with the new code in the next process.  ``watched=False``
    is numba's own check, shown for contrast: the caller keeps the stale code."""
    import subprocess
    import sys

    pkg = tmp_path / "pkgx"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(_CALLER)
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "import engine.jit\nfrom engine import jitcache\n"
            + ("jitcache.watch(sys.argv[1], ('pkgx',))\n" if watched else "")
            + "from pkgx.a import outer\nprint(outer())\n")

    def run(scale):
        (pkg / "b.py").write_text(_CALLEE.format(scale=scale))
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                             timeout=300, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        return int(out.stdout.strip())

    first, again, changed = run(1), run(1), run(2)  # the callee's file changes before the third run
    assert first == again == 10
    if watched:
        assert changed == 20
    else:
        assert changed in (10, 20)  # 10 on numba versions that check the defining file alone


def test_the_import_closure_follows_project_imports_only():
    from pathlib import Path

    from engine import jitcache

    kernels = Path(engine.__file__).parent / "scoring" / "kernels.py"
    files = {Path(f).relative_to(Path(engine.__file__).parent.parent).as_posix()
             for f in jitcache.closure(str(kernels))}
    assert {"engine/scoring/kernels.py", "engine/jit.py", "engine/schema.py"} <= files
    assert not any(f.startswith(("numpy", "numba")) for f in files)
    assert jitcache.closure("/nonexistent/elsewhere.py") == ["/nonexistent/elsewhere.py"]


_HAMMER = """
import sys, threading
import numba, numpy as np
from numba.core.registry import CPUDispatcher
from engine.scoring.partition import block_counts
raw = sys.argv[1] == "raw"  # numba's own dispatcher call, past winback's turn-taking
call = (lambda *a: CPUDispatcher.__call__(block_counts, *a)) if raw else block_counts
uidx = (np.arange(20_000, dtype=np.int64) * 7919) % 4096
args = (uidx, np.int64(6), np.int64(64), np.int64(4))
want = block_counts(*args)
bad = []
def work():
    for _ in range(300):
        bad.append(not np.array_equal(call(*args), want))
threads = [threading.Thread(target=work) for _ in range(3)]
[t.start() for t in threads]
[t.join() for t in threads]
print(numba.threading_layer(), sum(bad), len(bad))
"""


@pytest.mark.parametrize("how", ["pjit", "raw"])
def test_parallel_kernels_called_from_several_threads_take_turns_on_the_workqueue_layer(how):
    """numba's workqueue layer (its fallback when neither TBB nor OpenMP loads) aborts the
    process when two Python threads launch parallel kernels at once; winback's parallel
    kernels take turns there.  ``raw`` calls numba's dispatcher directly, shown for contrast:
    the same three threads abort the process, so the check above is not vacuous."""
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _HAMMER, how], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "NUMBA_THREADING_LAYER": "workqueue"})
    if how == "pjit":
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["workqueue", "0", "900"]
    else:
        assert out.returncode != 0 and "Concurrent access" in out.stderr, (out.returncode, out.stderr[-500:])


def test_winback_score_runs_on_the_workqueue_layer_and_scores_the_same(tmp_path):
    """The whole command on numba's workqueue layer gives the same scores, bit for bit."""
    import os
    import subprocess
    import sys

    import pyarrow as pa

    from engine.synth.generator import generate

    generate(3_000, seed=5, out_dir=tmp_path)
    tables = []
    for layer in ("workqueue", "default"):
        dest = tmp_path / f"scores-{layer}.arrow"
        out = subprocess.run([sys.executable, "-m", "engine", "score", str(tmp_path / "users.arrow"),
                              str(tmp_path / "events.arrow"), "--as-of", "2026-11-01", "-o", str(dest)],
                             capture_output=True, text=True, timeout=300,
                             env={**os.environ, "NUMBA_THREADING_LAYER": layer})
        assert out.returncode == 0, out.stderr[-2000:]
        with pa.memory_map(str(dest)) as f:
            tables.append(pa.ipc.open_file(f).read_all())
    assert tables[0].num_rows > 0 and tables[0].equals(tables[1])
