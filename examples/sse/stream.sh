#!/usr/bin/env bash
# Streams a run of the assistant graph over SSE with curl, then reconnects with Last-Event-ID
# and gets what came after the event it names, without a gap.
#
#   FINCH=http://localhost:8080 EMAIL=demo@finch.example PASSWORD=finch-demo-2026 \
#       examples/sse/stream.sh "How much did I spend on groceries last month?"
set -euo pipefail
FINCH="${FINCH:-http://localhost:8080}"
question="${1:-How much did I spend on groceries last month?}"
json() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }

token=$(curl -fsS -H 'Content-Type: application/json' \
    -d "{\"email\": \"${EMAIL:?}\", \"password\": \"${PASSWORD:?}\"}" "$FINCH/api/auth/login" | json access_token)
auth=(-H "Authorization: Bearer $token" -H 'Content-Type: application/json')

thread=$(curl -fsS "${auth[@]}" -d '{"graph": "assistant"}' "$FINCH/api/threads" | json thread_id)
echo "thread $thread"

# -N: print each event as it arrives. Every event has an `id:`; `end` closes the stream.
body="{\"input\": {\"messages\": [{\"role\": \"user\", \"content\": \"$question\"}]}, \"stream_mode\": [\"updates\", \"messages\"]}"
curl -fsSN "${auth[@]}" -d "$body" "$FINCH/api/threads/$thread/runs/stream" | tee /tmp/finch-stream.txt

# As a client that lost its connection after the third event would: ask for the rest.
run=$(json run_id < /tmp/finch-stream.txt | head -1)
third=$(sed -n "s/^id: *//p" /tmp/finch-stream.txt | sed -n 3p)
echo "--- reconnecting after event $third"
curl -fsSN "${auth[@]}" -H "Last-Event-ID: $third" \
    "$FINCH/api/threads/$thread/runs/$run/stream?stream_mode=updates,messages"
