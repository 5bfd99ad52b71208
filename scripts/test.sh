#!/usr/bin/env bash
# Set up .venv (like demo.sh) and run the whole test suite, then the quick
# performance guards (same-run ratios against floors in benchmarks/floors.toml).
# Extra arguments go to pytest, e.g. scripts/test.sh -k bgnbd -x
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"
export PYTHONHASHSEED=0
echo "==> running the test suite"
# pytest exits 5 when no test ran: that is a failure here, as any non-zero code.
python -m pytest -q -p no:cacheprovider "$@"
if [[ $# -eq 0 && -x scripts/guard.sh ]]; then
  echo "==> performance regression guard"
  scripts/guard.sh
fi
