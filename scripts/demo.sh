#!/usr/bin/env bash
# Set up .venv, generate a sample world and run the whole main job on it:
# validate -> score -> plan -> send (to a local provider started here) ->
# simulate outcomes -> report.  Everything lands in ./demo-out/.
#   scripts/demo.sh                 # 50,000 users, about a minute
#   WINBACK_DEMO_USERS=200000 scripts/demo.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"

USERS="${WINBACK_DEMO_USERS:-50000}"
SEED="${WINBACK_DEMO_SEED:-7}"
OUT="${WINBACK_DEMO_OUT:-demo-out}"
AS_OF="2026-11-01T00:00:00Z"
PORT="${WINBACK_DEMO_PORT:-8025}"
rm -rf "$OUT"; mkdir -p "$OUT"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "generate a sample world: $USERS users (seed $SEED)"
winback generate --users "$USERS" --seed "$SEED" --as-of "$AS_OF" -o "$OUT/world"

step "validate users and events against the data contract"
winback validate "$OUT/world/users.arrow" "$OUT/world/events.arrow" --items "$OUT/world/items.arrow" --as-of "$AS_OF"

step "score: lapse risk, best send time, fatigue budget, category affinity"
winback score "$OUT/world/users.arrow" "$OUT/world/events.arrow" --items "$OUT/world/items.arrow" --as-of "$AS_OF" -o "$OUT/scores.arrow"

step "plan the three-step win-back campaign: channel, time, theme and items per message"
winback plan "$OUT/scores.arrow" examples/winback_content.toml --items "$OUT/world/items.arrow" --ledger "$OUT/ledger.db" -o "$OUT/plan.arrow"

step "send to the local provider on 127.0.0.1:$PORT"
# fake credentials for the local provider; real ones only ever come from the environment
export SENDGRID_API_KEY=demo-key TWILIO_ACCOUNT_SID=AC0000demo TWILIO_AUTH_TOKEN=demo-token \
       FCM_ACCESS_TOKEN=demo-token WINBACK_WEBHOOK_SECRET=demo-secret
winback provider --port "$PORT" --record "$OUT/provider-record.json" > "$OUT/provider.log" 2>&1 &
PROVIDER_PID=$!
trap 'kill "$PROVIDER_PID" 2>/dev/null || true; wait "$PROVIDER_PID" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  python - "$PORT" 2>/dev/null <<'PY' && break || sleep 0.2
import socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.2).close()
PY
done
winback send "$OUT/plan.arrow" --providers examples/providers.local.toml --ledger "$OUT/ledger.db" --now

step "simulate what users do next (winback's plan, and batch-and-blast on the same world)"
winback simulate "$OUT/plan.arrow" --truth "$OUT/world/truth.arrow" --ledger "$OUT/ledger.db" --seed "$SEED" -o "$OUT/outcomes"
winback simulate "$OUT/plan.arrow" --truth "$OUT/world/truth.arrow" --policy blast --scores "$OUT/scores.arrow" --seed "$SEED" -o "$OUT/blast"

step "report the lift against the holdout"
winback report "$OUT/plan.arrow" "$OUT/outcomes" --ledger "$OUT/ledger.db" --blast "$OUT/blast" -o "$OUT/report"
printf '\nOpen %s/report/index.html in a browser for the full report.\n' "$OUT"
