#!/usr/bin/env bash
# shellcheck disable=SC2317  # stop_server/on_signal run from traps
# Runs Atende locally: migrate, start every role (`atende all`), wait for the gateway, seed the
# demo tenant and print how to try it. Ctrl-C stops the server. Used by `make run`, which first
# runs `deploy/local/infra.sh up` (writes .infra/env) and `cargo build --bin atende`.
#
# Environment: ATENDE_BIN (default $CARGO_TARGET_DIR/debug/atende), GATEWAY_PORT (default: the port
# of ATENDE__GATEWAY__HTTP_ADDR, else 8080),
# ATENDE_LOG (default .infra/atende.log), FOLLOW_LOGS=1 to tail the server log after start-up.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
cd "$ROOT"

if [ -f .infra/env ]; then
  # shellcheck source=/dev/null
  . ./.infra/env
else
  echo "run: .infra/env not found; run 'deploy/local/infra.sh up' (or 'make run') first" >&2
  exit 1
fi

CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/atende-target}"
ATENDE_BIN="${ATENDE_BIN:-$CARGO_TARGET_DIR/debug/atende}"
# the gateway's HTTP port: GATEWAY_PORT, else the port of ATENDE__GATEWAY__HTTP_ADDR, else 8080
if [ -z "${GATEWAY_PORT:-}" ] && [ -n "${ATENDE__GATEWAY__HTTP_ADDR:-}" ]; then
  GATEWAY_PORT="${ATENDE__GATEWAY__HTTP_ADDR##*:}"
fi
GATEWAY_PORT="${GATEWAY_PORT:-8080}"
ATENDE_LOG="${ATENDE_LOG:-$ROOT/.infra/atende.log}"
HEALTH_URL="http://127.0.0.1:$GATEWAY_PORT/healthz"

[ -x "$ATENDE_BIN" ] || { echo "run: $ATENDE_BIN not found; run 'make build' first" >&2; exit 1; }

echo "run: postgres $ATENDE__POSTGRES__URL"
echo "run: redis    $ATENDE__REDIS__URL"
echo "run: nats     $ATENDE__NATS__URL"

# A laptop demo: the development mode fills every secret with its publicly known development
# value (see README "Security"). Never expose these ports with it.
export ATENDE__SECURITY__MODE="${ATENDE__SECURITY__MODE:-development}"
echo "run: security mode $ATENDE__SECURITY__MODE"

echo "run: atende migrate"
"$ATENDE_BIN" migrate

SERVER_PID=""
TAIL_PID=""
FAKE_PID=""

server_alive() { [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; }

show_log() {
  echo "---- last 50 lines of $ATENDE_LOG ----" >&2
  tail -n 50 "$ATENDE_LOG" >&2 || true
}

stop_server() {
  if [ -n "$TAIL_PID" ]; then kill "$TAIL_PID" 2>/dev/null || true; TAIL_PID=""; fi
  if [ -n "$FAKE_PID" ]; then kill "$FAKE_PID" 2>/dev/null || true; FAKE_PID=""; fi
  if server_alive; then
    echo "run: stopping atende (pid $SERVER_PID)" >&2
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
}

on_signal() {
  trap - INT TERM
  stop_server
  exit "$1"
}
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
trap stop_server EXIT

mkdir -p "$(dirname "$ATENDE_LOG")"
: >"$ATENDE_LOG"
# Replies go to a local fake of Meta's Graph API (it prints each send) unless a real base URL
# is configured: the demo credentials are not a Meta account.
if [ -z "${ATENDE__CHANNEL_ADAPTER__GRAPH_API_BASE:-}" ]; then
  FAKE_GRAPH_ADDR="${FAKE_GRAPH_ADDR:-127.0.0.1:8099}"
  FAKE_LOG="$(dirname "$ATENDE_LOG")/fake-graph.log"
  "$ATENDE_BIN" fake-graph --addr "$FAKE_GRAPH_ADDR" </dev/null >"$FAKE_LOG" 2>&1 &
  FAKE_PID=$!
  export ATENDE__CHANNEL_ADAPTER__GRAPH_API_BASE="http://$FAKE_GRAPH_ADDR"
  echo "run: fake Graph API on http://$FAKE_GRAPH_ADDR (sends printed to $FAKE_LOG)"
fi
echo "run: atende all (log: $ATENDE_LOG)"
"$ATENDE_BIN" all </dev/null >>"$ATENDE_LOG" 2>&1 &
SERVER_PID=$!

echo "run: waiting for $HEALTH_URL"
ready=0
deadline=$((SECONDS + 60))
while [ "$SECONDS" -lt "$deadline" ]; do
  if ! server_alive; then
    status=0
    wait "$SERVER_PID" || status=$?
    SERVER_PID=""
    echo "run: atende exited early (status $status)" >&2
    show_log
    exit 1
  fi
  if curl -sf -o /dev/null --max-time 2 "$HEALTH_URL"; then ready=1; break; fi
  sleep 0.5
done
if [ "$ready" -ne 1 ]; then
  echo "run: $HEALTH_URL did not answer within 60 s" >&2
  show_log
  exit 1
fi

# The gateway can answer before every role's gRPC server does: retry seed-demo for up to ~30 s.
echo "run: atende seed-demo"
seeded=0
for attempt in $(seq 15); do
  if "$ATENDE_BIN" seed-demo; then seeded=1; break; fi
  server_alive || break
  echo "run: seed-demo failed (attempt $attempt/15); retrying in 2 s" >&2
  sleep 2
done
if [ "$seeded" -ne 1 ]; then
  echo "run: seed-demo did not succeed" >&2
  show_log
  exit 1
fi
echo
"$ATENDE_BIN" demo-help
echo
echo "run: atende is running (pid $SERVER_PID); log: $ATENDE_LOG; Ctrl-C to stop"

if [ "${FOLLOW_LOGS:-0}" = 1 ]; then
  tail -n 0 -f "$ATENDE_LOG" &
  TAIL_PID=$!
fi

status=0
wait "$SERVER_PID" || status=$?
SERVER_PID=""
if [ "$status" -ne 0 ]; then
  echo "run: atende exited with status $status" >&2
  show_log
fi
exit "$status"
