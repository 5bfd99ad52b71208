#!/usr/bin/env bash
# Full side-by-side benchmarks (slow: minutes). Writes benchmarks/results/<date>.json
# with each script's command, exit code, seconds and output.
#   scripts/bench.sh                      # default sizes
#   WINBACK_BENCH_USERS=1000000 scripts/bench.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"
USERS="${WINBACK_BENCH_USERS:-1000000}"
python - "$USERS" <<'PY'
import datetime as dt, json, subprocess, sys, time
from pathlib import Path
users = sys.argv[1]
runs = {
    "score": ["benchmarks/compare_score.py", "--users", users],
    "bgnbd": ["benchmarks/compare_bgnbd.py", "--users", users],
    "send": ["benchmarks/compare_send.py"],
    "items": ["benchmarks/compare_items.py", "--users", users, "--items", str(min(100_000, int(users) // 10))],
}
out = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "runs": {}}
for name, cmd in runs.items():
    if not Path(cmd[0]).exists():
        continue
    print(f"==> {name}: {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *cmd], capture_output=True, text=True)
    sys.stdout.write(proc.stdout + proc.stderr)
    out["runs"][name] = {"cmd": cmd, "exit_code": proc.returncode,
                         "seconds": round(time.perf_counter() - t0, 1), "output": proc.stdout}
path = Path("benchmarks/results") / f"{dt.date.today().isoformat()}.json"
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps(out, indent=2))
print(f"wrote {path}")
PY
