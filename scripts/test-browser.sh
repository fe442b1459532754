#!/usr/bin/env bash
# Browser tests in headless Debian Chromium:
#  1. wasm-bindgen-test: the deterministic engine simulations (the same tests as natively) and the
#     fetch and WebSocket connectors against a native gateway this script starts;
#  2. the npm package: its types checked with tsc --noEmit, and the end-to-end test (playwright-core
#     drives www/e2e.html, which imports pkg/).
# Needs scripts/setup.sh, scripts/build.sh and scripts/build-npm.sh first.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
export CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"
export MCP_EDGE_GATEWAY_BIN="${MCP_EDGE_GATEWAY_BIN:-$ROOT/target/debug/mcp-edge-gateway}"
[ -x "$CHROMEDRIVER" ] || { echo "no chromedriver at $CHROMEDRIVER: run scripts/setup.sh" >&2; exit 1; }

step "native gateway for the connector tests"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cfg=$(mktemp --suffix .json)
log=$(mktemp)
printf '{"mcpServers":{"everything":{"command":"node","args":["%s","stdio"]}}}' \
  "$INTEROP/node_modules/@modelcontextprotocol/server-everything/dist/index.js" > "$cfg"
"$MCP_EDGE_GATEWAY_BIN" serve --config "$cfg" --listen "127.0.0.1:$port" --no-store 2>"$log" &
gw=$!
trap 'kill $gw 2>/dev/null; wait $gw 2>/dev/null; rm -f "$cfg" "$log"' EXIT
ready=""
for _ in $(seq 300); do
  if curl -fsS "http://127.0.0.1:$port/status" 2>/dev/null | grep -Eq '"state": ?"ready"'; then ready=1; break; fi
  kill -0 $gw 2>/dev/null || break
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "the native gateway for the connector tests did not become ready on 127.0.0.1:$port within 30 s (or it exited); its log:" >&2
  cat "$log" >&2
  exit 1
fi

step "wasm-bindgen-test in Chromium: engine simulations and connectors"
MCP_TEST_GATEWAY="127.0.0.1:$port" cargo_locked test -p mcp-edge-gateway --target wasm32-unknown-unknown --features web --tests
if grep -q panicked "$log"; then cat "$log"; exit 1; fi

step "TypeScript types of the package (tsc --noEmit)"
(cd "$ROOT/www" && node_modules/.bin/tsc --noEmit -p tsconfig.json)

step "end-to-end in Chromium (playwright-core)"
(cd "$ROOT/www" && node --test --test-concurrency=1 tests/*.test.mjs)   # files, not a folder: Node 22 runs no folders
