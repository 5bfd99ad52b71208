#!/usr/bin/env bash
# Shared set-up for demo.sh and test.sh: a .venv with winback and its extras.
# Idempotent: a second run only reinstalls when pyproject.toml changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  for cand in python3.11 python3 python; do
    if command -v "$cand" >/dev/null 2>&1; then PY="$cand"; break; fi
  done
fi
if [[ -z "$PY" ]]; then
  echo "winback needs Python 3.11 or newer; none found on PATH (set PYTHON=/path/to/python3.11)." >&2
  exit 1
fi
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "winback needs Python 3.11 or newer; $PY is $("$PY" --version 2>&1)." >&2
  exit 1
fi
if [[ ! -x .venv/bin/python ]]; then
  echo "==> creating .venv with $("$PY" --version 2>&1)"
  "$PY" -m venv .venv
fi
STAMP=.venv/.winback-installed
EXTRAS="${WINBACK_EXTRAS:-test,report,bench}"
WANT="$(cat pyproject.toml; echo "$EXTRAS")"
if [[ ! -f "$STAMP" ]] || [[ "$(cat "$STAMP")" != "$WANT" ]]; then
  echo "==> installing winback[$EXTRAS] into .venv (first run takes a few minutes)"
  .venv/bin/python -m pip install --quiet --upgrade pip setuptools wheel
  .venv/bin/python -m pip install --quiet -e ".[$EXTRAS]"
  printf '%s' "$WANT" > "$STAMP"
fi
# byte-compile the (editable) package once, so each winback command starts without
# compiling its modules from source even where PYTHONDONTWRITEBYTECODE is set (~0.1 s a run)
.venv/bin/python -m compileall -q engine adapters >/dev/null || true
export PATH="$ROOT/.venv/bin:$PATH"
