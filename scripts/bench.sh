#!/usr/bin/env bash
# Benchmarks, side by side in one run: the proxy path (direct vs mcp-edge-gateway with a stdio and an
# HTTP upstream vs supergateway and mcp-proxy), the load generator's own ceiling, start-up and
# memory; the proxy path through a group; failover and breaker timings and sampling through a local
# model; the offline queue's durable enqueue rate; then sizes and the core's criterion
# micro-benchmarks (cache hit vs miss among them). Prints markdown.
# Usage: scripts/bench.sh [--quick]   (not part of the CI test run: too noisy)
#        BENCH_BASELINE=path/to/older/mcp-edge-gateway scripts/bench.sh   (that build measured beside this one)
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
  --loadgen "$ROOT/target/release/mcp-loadgen" --peers supergateway,mcp-proxy ${QUICK:+--quick} \
  ${BENCH_BASELINE:+--baseline "$BENCH_BASELINE"}

step "the engine's cost of a group, in instructions (callgrind; exact, unlike the timings above)"
cargo_locked build --release --example route_cost
echo "| engine round trip (parse, route, remap, serialise, both ways) | instructions per call |"
echo "|---|---|"
for mode in plain group; do
  ir=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$ROOT/target/release/examples/route_cost" "$mode" 20000 2>&1 | sed -n 's/.*I *refs: *//p' | tr -d ,)
  echo "| $mode | $(( ir / 20000 )) |"
done

step "groups and sampling: failover latency, a breaker opening on a hanging member, sampling through the local model"
"$ROOT/scripts/setup-model.sh" >/dev/null
"$INTEROP/.venv/bin/python" "$ROOT/scripts/bench_groups.py" "$ROOT/target/release/mcp-edge-gateway" "$([ -n "$QUICK" ] && echo 3 || echo 7)"

step "start-up and idle memory of the native host alone (embedded default)"
python3 "$ROOT/scripts/bench_startup.py" "$ROOT/target/release/mcp-edge-gateway" "$([ -n "$QUICK" ] && echo 5 || echo 20)"

step "offline queue: durable enqueue rate, SQLite next to memory"
python3 "$ROOT/scripts/bench_offline.py" "$ROOT/target/release/mcp-edge-gateway" "$ROOT/target/release/mcp-loadgen" \
  "$([ -n "$QUICK" ] && echo 1 || echo 3)" 2000

step "native binary sizes (stripped)"
x86=$(mktemp); strip -o "$x86" "$ROOT/target/release/mcp-edge-gateway"
echo "| native binary | stripped |"
echo "|---|---|"
echo "| x86_64-unknown-linux-gnu | $(( $(stat -c %s "$x86") / 1024 )) KiB |"
rm -f "$x86"
if command -v aarch64-linux-gnu-gcc >/dev/null || { [ "$(id -u)" -eq 0 ] && apt-get install -y -qq --no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross >/dev/null 2>&1; }; then
  rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu >/dev/null
  if CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
     cargo_locked build --release -p mcp-edge-gateway-native --bin mcp-edge-gateway --target aarch64-unknown-linux-gnu 2>/dev/null; then
    a64=$(mktemp); aarch64-linux-gnu-strip -o "$a64" "$ROOT/target/aarch64-unknown-linux-gnu/release/mcp-edge-gateway"
    echo "| aarch64-unknown-linux-gnu (Raspberry Pi, Jetson) | $(( $(stat -c %s "$a64") / 1024 )) KiB |"
    rm -f "$a64"
  else
    echo "| aarch64-unknown-linux-gnu | build failed |"
  fi
else
  echo "| aarch64-unknown-linux-gnu | not built: no aarch64-linux-gnu-gcc (apt gcc-aarch64-linux-gnu) |"
fi

step "npm package size"
if [ -f "$ROOT/pkg/mcp_edge_gateway_bg.wasm" ]; then node "$ROOT/scripts/npm-size.mjs" "$ROOT/pkg"; else echo "(run scripts/build-npm.sh for the package sizes)"; fi

step "browser (headless Chromium)"
if [ -f "$ROOT/pkg/mcp_edge_gateway_bg.wasm" ] && [ -d "$ROOT/www/node_modules" ]; then
  (cd "$ROOT/www" && node bench/browser_bench.mjs "$ROOT/target/release/mcp-edge-gateway" \
    "$([ -n "$QUICK" ] && echo 200 || echo 500)" "$([ -n "$QUICK" ] && echo 3 || echo 5)")
else
  echo "(run scripts/setup.sh and scripts/build-npm.sh for the browser benchmark)"
fi

step "core micro-benchmarks (criterion)"
cargo_locked bench --bench core -- --warm-up-time 1 --measurement-time "$([ -n "$QUICK" ] && echo 2 || echo 5)" 2>/dev/null \
  | awk '/^[a-z]/ { name = $0 } /time:/ { sub(/^ +time: +/, ""); print "| " name " | " $0 " |" }' \
  | { echo "| core hot path | time [low median high] |"; echo "|---|---|"; cat; }
