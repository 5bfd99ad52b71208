#!/usr/bin/env bash
# Quick performance regression guard (CI): same-run ratios vs floors in benchmarks/floors.toml.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=python; [[ -x .venv/bin/python ]] && PY=.venv/bin/python
exec "$PY" benchmarks/guard.py "$@"
