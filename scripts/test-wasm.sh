#!/usr/bin/env bash
# The core must build for wasm32-unknown-unknown and import nothing from the host ("env" or anywhere
# else): it does no I/O and reads no clock. The deterministic engine simulations are compiled to wasm
# too, checked the same way, and run in Node's WebAssembly engine.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
T=wasm32-unknown-unknown
step "build the core for $T"
cargo_locked build -p mcp-edge-gateway --lib --target $T --release
step "build the engine simulations for $T"
out=$(cargo_locked test -p mcp-edge-gateway --target $T --release --no-run --message-format=json 2>/dev/null)
mapfile -t wasms < <(printf '%s\n' "$out" | node -e '
  let s = require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean).map(JSON.parse);
  for (const m of s) if (m.reason === "compiler-artifact" && m.executable) console.log(m.executable);')
wasms+=("target/$T/release/mcp_edge_gateway.wasm")
[ "${#wasms[@]}" -ge 5 ] || { echo "expected the core and its simulation tests as wasm, got: ${wasms[*]}" >&2; exit 1; }
step "check imports and run the simulations"
node "$ROOT/scripts/wasm-check.mjs" "${wasms[@]}"
