#!/usr/bin/env bash
# Build the workspace: the core and the native binary (debug, used by the tests) and, with
# --release, the optimised binary users run (target/release/mcp-edge-gateway).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
if [ "${1:-}" = "--release" ]; then
  step "cargo build --release"
  cargo_locked build --release -p mcp-edge-gateway-native
else
  step "cargo build"
  cargo_locked build --workspace --all-targets
fi
