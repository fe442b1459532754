#!/usr/bin/env bash
# The core must build for wasm32-unknown-unknown and import nothing from the host ("env" or anywhere
# else): it does no I/O and reads no clock. A small program that drives the engine end to end
# (examples/engine_in_wasm.rs) is built for wasm, checked for imports and run in Node's WebAssembly
# engine; the npm package's wasm (if built) may import only from its own wasm-bindgen glue.
# The engine simulations themselves run in Chromium under wasm-bindgen-test (scripts/test-browser.sh).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
T=wasm32-unknown-unknown
step "build the core and the engine example for $T"
cargo_locked build -p mcp-edge-gateway --lib --target $T --release
cargo_locked build -p mcp-edge-gateway --example engine_in_wasm --target $T --release
step "check imports, run the engine in wasm"
node "$ROOT/scripts/wasm-check.mjs" "target/$T/release/mcp_edge_gateway.wasm" "target/$T/release/examples/engine_in_wasm.wasm"
if [ -f "$ROOT/pkg/mcp_edge_gateway_bg.wasm" ]; then
  node "$ROOT/scripts/wasm-check.mjs" --glue "$ROOT/pkg/mcp_edge_gateway_bg.wasm"
fi
