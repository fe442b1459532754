#!/usr/bin/env bash
# The README's run command builds (the release profile: fat LTO, one codegen unit, opt-level z) and
# the binary answers; its hot functions are laid out together (native-host/hot-text.ld, README
# "Lean and fast"): .text.hot must hold at least 80 % of the bytes the list had when it was made,
# else the list has gone stale and scripts/hot-text.sh regenerates it. Then start-up and RSS,
# three runs, for the log (figures, not pass/fail: they depend on the machine).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
step "release build of the gateway (README run command)"
cargo_locked build --release -p mcp-edge-gateway-native --bin mcp-edge-gateway
bin="$ROOT/target/release/mcp-edge-gateway"
step "hot functions laid out together (.text.hot)"
want=$(sed -n 's/.*hot-bytes \([0-9]*\).*/\1/p' native-host/hot-text.ld)
size=$(readelf -SW "$bin" | awk '{ for (i = 1; i < NF; i++) if ($i == ".text.hot") print $(i + 4) }')
have=${size:+$(( 16#$size ))}
echo ".text.hot: ${have:-missing} bytes; the list's functions: $want bytes"
if [ -z "$have" ] || [ "$have" -lt $(( want * 8 / 10 )) ]; then
  echo "the hot-function list no longer matches the build: run scripts/hot-text.sh and commit native-host/hot-text.ld" >&2
  exit 1
fi
step "release binary: start-up and RSS (3 runs)"
python3 "$ROOT/scripts/bench_startup.py" "$bin" 3
