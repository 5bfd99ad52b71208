"""CI performance guard: run each quick side-by-side comparison against its floor.

Reads ``benchmarks/floors.toml``; for each entry runs
``python SCRIPT ARGS... --min-ratio FLOOR`` and collects the exit codes.  The entries
watch the worst case: the fused pass on two generator seeds and on BG/NBD-process
activity, the whole ``winback score`` command and the ``engine.score()`` API path, the
BG/NBD fit at 200k users, and start-up.  Each
script prints its own measured ratio and, when below the floor, which hot path
regressed and by how much.  Exits 1 when any guard failed.

    python benchmarks/guard.py            # all guards
    python benchmarks/guard.py score send # some of them
    WINBACK_BENCH_SLOWDOWN=pass:3 python benchmarks/guard.py score score_bgnbd   # must fail
"""

from __future__ import annotations

import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    floors = tomllib.loads((ROOT / "benchmarks" / "floors.toml").read_text())
    if any(a in ("-h", "--help") for a in argv):
        sys.stdout.write(__doc__ + "\nguards: " + ", ".join(floors) + "\n")
        return 0
    unknown = [a for a in argv if a not in floors]
    if unknown:
        sys.stderr.write(f"guard: no guard named {', '.join(unknown)} in benchmarks/floors.toml; "
                         f"pick from: {', '.join(floors)}\n")
        return 2
    names = argv or list(floors)
    failed = []
    t_all = time.perf_counter()
    for name in names:
        entry = floors[name]
        script = ROOT / entry["script"]
        if not script.exists():
            sys.stdout.write(f"guard {name}: {entry['script']} missing -> FAIL\n")
            failed.append(name)
            continue
        cmd = [sys.executable, str(script), *entry.get("args", []), "--min-ratio", str(entry["min_ratio"])]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
        took = time.perf_counter() - t0
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
        status = "ok" if proc.returncode == 0 else "FAIL"
        sys.stdout.write(f"guard {name} (floor {entry['min_ratio']}x, {took:.0f}s): {status}\n{tail}\n\n")
        if proc.returncode != 0:
            failed.append(name)
    sys.stdout.write(f"guard took {time.perf_counter() - t_all:.0f}s for {len(names)} entries\n")
    if failed:
        sys.stdout.write(
            f"performance guard failed for: {', '.join(failed)}. A hot path is markedly slower than "
            "its same-run baseline; see the ratios above, profile the change, or if the slowdown is "
            "intended, lower the floor in benchmarks/floors.toml with a reason.\n"
        )
        return 1
    sys.stdout.write("performance guard: all ratios above their floors\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
