#!/usr/bin/env bash
# Benchmarks, side by side in one run: the proxy path (direct vs mcp-edge-gateway with a stdio and an
# HTTP upstream vs supergateway and mcp-proxy), the load generator's own ceiling, start-up and
# memory; then sizes and the core's criterion micro-benchmarks. Prints markdown.
# Usage: scripts/bench.sh [--quick]   (not part of the CI test run: too noisy)
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
QUICK="${1:-}"
PEERS="$ROOT/target/bench-peers"
SUPERGATEWAY=4.0.0
MCP_PROXY=0.13.0

step "peers from the registries (pinned) into target/bench-peers"
mkdir -p "$PEERS"
if [ ! -x "$PEERS/node_modules/.bin/supergateway" ]; then
  (cd "$PEERS" && npm install --no-audit --no-fund --no-save "supergateway@$SUPERGATEWAY" >/dev/null)
fi
if [ ! -x "$PEERS/venv/bin/mcp-proxy" ]; then
  python3 -m venv "$PEERS/venv"
  "$PEERS/venv/bin/pip" install -q --disable-pip-version-check "mcp-proxy==$MCP_PROXY"
fi
[ -d "$INTEROP/node_modules" ] || (cd "$INTEROP" && npm ci --no-audit --no-fund)

step "release build"
cargo_locked build --release -p mcp-edge-gateway-native

step "proxy path (this takes a while; the machine should be otherwise idle)"
python3 "$ROOT/scripts/bench.py" --gateway "$ROOT/target/release/mcp-edge-gateway" \
  --loadgen "$ROOT/target/release/mcp-loadgen" --peers supergateway,mcp-proxy ${QUICK:+--quick}

step "start-up and idle memory of the native host alone (embedded default)"
python3 "$ROOT/scripts/bench_startup.py" "$ROOT/target/release/mcp-edge-gateway" "$([ -n "$QUICK" ] && echo 5 || echo 20)"

step "npm package size"
if [ -f "$ROOT/pkg/mcp_edge_gateway_bg.wasm" ]; then node "$ROOT/scripts/npm-size.mjs" "$ROOT/pkg"; else echo "(run scripts/build-npm.sh for the package sizes)"; fi

step "core micro-benchmarks (criterion)"
cargo_locked bench --bench core -- --warm-up-time 1 --measurement-time "$([ -n "$QUICK" ] && echo 2 || echo 5)" 2>/dev/null \
  | awk '/^[a-z].*(round trip|merge)/ { name = $0 } /time:/ { sub(/^ +time: +/, ""); print "| " name " | " $0 " |" }' \
  | { echo "| core hot path | time [low median high] |"; echo "|---|---|"; cat; }
