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
# the local providers file pointed at this port, the ads channel writing Meta Custom Audiences files
sed -e "s|127.0.0.1:8025|127.0.0.1:$PORT|" -e 's|^adapter = "file"|adapter = "ads"\nplatform = "meta"|' \
    -e "s|out/audience.csv|$OUT/audience/audience.csv|" examples/providers.local.toml > "$OUT/providers.toml"
winback send "$OUT/plan.arrow" --providers "$OUT/providers.toml" --ledger "$OUT/ledger.db" --now

step "simulate what users do next (winback's plan, and batch-and-blast on the same world)"
winback simulate "$OUT/plan.arrow" --truth "$OUT/world/truth.arrow" --ledger "$OUT/ledger.db" --seed "$SEED" -o "$OUT/outcomes"
winback simulate "$OUT/plan.arrow" --truth "$OUT/world/truth.arrow" --policy blast --scores "$OUT/scores.arrow" --seed "$SEED" -o "$OUT/blast"

step "report the lift against the holdout"
winback report "$OUT/plan.arrow" "$OUT/outcomes" --ledger "$OUT/ledger.db" --blast "$OUT/blast" -o "$OUT/report"

# -- part 2: incentives, a subject-line test, an ads audience and a survey ------------------
# an alternative campaign on the same world, as if the first had not run: its own ledger.
# (Campaigns that follow one another share one --ledger, so caps, gaps and suppressions
# hold across them: docs/campaigns.md.)
O2="$OUT/offers"; mkdir -p "$O2"
step "plan a campaign with two offers, two subject variants, an ads audience and a survey"
winback plan "$OUT/scores.arrow" examples/winback_offers.toml --ledger "$O2/ledger.db" -o "$O2/plan.arrow"

step "send: email and push to the local provider, the ads step as a Meta Custom Audiences file"
winback send "$O2/plan.arrow" --providers "$OUT/providers.toml" --ledger "$O2/ledger.db" --now

step "simulate what users do next (the offers and the copy change it)"
winback simulate "$O2/plan.arrow" --truth "$OUT/world/truth.arrow" --ledger "$O2/ledger.db" --seed "$SEED" -o "$O2/outcomes"

step "survey answers arrive at 'winback receive' as signed reason events"
RPORT=$((PORT + 1))
winback receive --port "$RPORT" -o "$O2/received" --flush-seconds 0.2 > "$O2/receive.log" 2>&1 &
RECEIVE_PID=$!
trap 'kill "$PROVIDER_PID" "$RECEIVE_PID" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
python - "$RPORT" "$O2/outcomes/answers.jsonl" <<'PY'
# what the survey page does: post each answer, signed like the webhook adapter
import json, os, socket, sys, time, urllib.request
from engine.sending.signing import sign
port, path = int(sys.argv[1]), sys.argv[2]
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close(); break
    except OSError:
        time.sleep(0.2)
answers = [json.loads(line) for line in open(path)] if os.path.exists(path) else []
statuses = set()
for i in range(0, len(answers), 500):  # requests well under the receiver's body limit
    body = json.dumps({"events": answers[i:i + 500]}).encode()
    ts = str(int(time.time()))
    req = urllib.request.Request(f"http://127.0.0.1:{port}/events", data=body, method="POST", headers={
        "Content-Type": "application/json", "X-Winback-Timestamp": ts,
        "X-Winback-Signature": sign(os.environ["WINBACK_WEBHOOK_SECRET"], ts, body)})
    statuses.add(urllib.request.urlopen(req, timeout=30).status)
print(f"posted {len(answers)} survey answers: HTTP {', '.join(map(str, sorted(statuses))) or '-'}")
PY
kill "$RECEIVE_PID"; wait "$RECEIVE_PID" 2>/dev/null || true

step "report: offer economics, variant against variant, the ads step, survey reasons, harm"
# (the first report has the harm beside batch-and-blast; add --blast here for this campaign's)
winback report "$O2/plan.arrow" "$O2/outcomes" --ledger "$O2/ledger.db" --feedback "$O2/received" -o "$O2/report"
printf '\nOpen %s/report/index.html and %s/report/index.html in a browser for the full reports.\n' "$OUT" "$O2"
