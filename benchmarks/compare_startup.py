"""Start-up: ``winback score`` on a small world against a bare ``python -c "import numpy, pyarrow"``.

Both run as fresh processes, interleaved, ``--rounds`` times each; the median of each is
compared: ``ratio = bare seconds / winback seconds`` (higher is better; 1/3 means winback
takes three times as long as importing numpy and pyarrow).  ``winback --help`` is timed
beside them.  The world (``winback generate --users 1000 --seed 7``) is made once and
kept in ``--dir``; the numba cache and the project's bytecode are warmed by one untimed run
(which writes the bytecode even under ``PYTHONDONTWRITEBYTECODE``, as an install has it).

    python benchmarks/compare_startup.py                  # 1,000 users, 7 rounds
    python benchmarks/compare_startup.py --min-ratio 0.1  # the CI guard

``WINBACK_BENCH_SLOWDOWN=startup:3`` runs the winback command three times per timed round
(to check that the guard fails on a 3x slower start-up).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import AS_OF, generator_world, slowdown, timed  # noqa: E402


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=1000, help="users in the world (default 1000)")
    ap.add_argument("--rounds", type=int, default=7, help="runs of each command, median kept (default 7)")
    ap.add_argument("--dir", default=None, help="keep the world here (default: a temporary directory)")
    ap.add_argument("--min-ratio", type=float, default=None,
                    help="exit 1 when bare-import seconds / winback seconds is below this")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="winback-startup-") as tmp:
        base = Path(args.dir) if args.dir else Path(tmp)
        world = generator_world(args.users, 7, base)
        out = Path(tmp) / "scores.arrow"
        py = sys.executable
        cmds = {
            "bare": [py, "-c", "import numpy, pyarrow"],
            "winback score": [py, "-m", "engine", "score", str(world / "users.arrow"), str(world / "events.arrow"),
                              "--as-of", AS_OF, "-o", str(out), "--no-progress"],
            "winback --help": [py, "-m", "engine", "--help"],
        }
        repeat = slowdown("startup")
        # warm the numba cache, the page cache and the bytecode cache: under PYTHONDONTWRITEBYTECODE a
        # module edited since the last compile is compiled from source in every run (an installed
        # package has its bytecode; `scripts/_setup.sh` compiles a checkout once)
        for warm in ("winback score", "winback --help"):
            timed(cmds[warm], env={"PYTHONDONTWRITEBYTECODE": ""})
        runs: dict[str, list[tuple[float, float]]] = {k: [] for k in cmds}
        for _ in range(args.rounds):
            for name, cmd in cmds.items():
                times = [timed(cmd) for _ in range(repeat if name == "winback score" else 1)]
                runs[name].append((sum(t["seconds"] for t in times), max(t["peak_mib"] for t in times)))
    med = {k: statistics.median(s for s, _ in v) for k, v in runs.items()}
    peak = {k: max(p for _, p in v) for k, v in runs.items()}
    print(f"start-up, {args.users:,} users (seed 7), median of {args.rounds} runs each, interleaved:")
    for k in cmds:
        spread = f"{min(s for s, _ in runs[k]):.3f}-{max(s for s, _ in runs[k]):.3f}"
        print(f"  {k:15s} {med[k]:6.3f} s  (range {spread} s)  peak RSS {peak[k]:5.0f} MiB")
    ratio = med["bare"] / med["winback score"]
    print(f"winback score takes {1 / ratio:.2f}x a bare 'import numpy, pyarrow' (ratio {ratio:.3f}; "
          f"target >= 0.333); winback --help {med['winback --help'] / med['bare']:.2f}x")
    if args.min_ratio is not None and ratio < args.min_ratio:
        print(f"FAIL: start-up ratio {ratio:.3f} below the floor {args.min_ratio}: run "
              "'python -X importtime -m engine score ...' and look for a heavy module imported at start")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
