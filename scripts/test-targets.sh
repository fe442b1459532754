#!/usr/bin/env bash
# Every target of the ADR's list beyond x86_64 glibc, built and tested where it can run here:
# - aarch64 glibc, x86_64 and aarch64 musl (static): built with cargo-zigbuild, then the interop
#   smoke tests (the real Python mcp client in both eras, real upstreams, stdio mode) against each
#   binary, the aarch64 ones under qemu-user;
# - x86_64-pc-windows-gnu (mingw-w64) and x86_64-apple-darwin (zig): the native host builds;
# (riscv32imc-unknown-none-elf, the no_std core, and wasm32-wasip1: scripts/test-embedded.sh.)
# Debug builds without debug info and with unoptimised dependencies (the quickest to compile: these
# binaries only run the smoke tests); scripts/release.sh makes the release binaries. The target
# directory is outside the clone ($CACHE_DIR/cross-target), so a second run is fast.
source "$(dirname "$0")/lib.sh"
zig_env
export CARGO_TARGET_DIR="$CACHE_DIR/cross-target"
QUICK=(--config 'profile.dev.debug=false' --config 'profile.dev.package."*".opt-level=0')
SMOKE="python/test_python_client_both_eras.py python/test_stdio_mode.py"

build() {  # triple
  step "build the native host for $1"
  case "$1" in
    *-windows-gnu) cargo_locked build "${QUICK[@]}" -p mcp-edge-gateway-native --bin mcp-edge-gateway --target "$1" ;;
    *) cargo_locked zigbuild "${QUICK[@]}" -p mcp-edge-gateway-native --bin mcp-edge-gateway --target "$1" ;;
  esac
}

smoke() {  # triple, runner (empty: run natively)
  local bin="$CARGO_TARGET_DIR/$1/debug/mcp-edge-gateway" run="$CARGO_TARGET_DIR/$1/run-gateway"
  local kind; kind=$(file -b "$bin")
  echo "$kind" >&2
  case "$1" in
    *-musl) case "$kind" in *"statically linked"*|*"static-pie linked"*) ;; *) echo "$bin is not static" >&2; exit 1 ;; esac ;;
  esac
  printf '#!/bin/sh\nexec %s %s "$@"\n' "$2" "$bin" > "$run"
  chmod +x "$run"
  "$run" --version
  step "interop smoke tests against the $1 binary${2:+ (under $2)}"
  (cd "$INTEROP" && MCP_EDGE_GATEWAY_BIN="$run" .venv/bin/python -m pytest -q -p no:cacheprovider $SMOKE)
}

for t in aarch64-unknown-linux-gnu x86_64-unknown-linux-musl aarch64-unknown-linux-musl x86_64-pc-windows-gnu x86_64-apple-darwin; do
  build "$t"
done
smoke x86_64-unknown-linux-musl ""
smoke aarch64-unknown-linux-musl "qemu-aarch64"
smoke aarch64-unknown-linux-gnu "qemu-aarch64 -L /usr/aarch64-linux-gnu"
file -b "$CARGO_TARGET_DIR/x86_64-pc-windows-gnu/debug/mcp-edge-gateway.exe"
file -b "$CARGO_TARGET_DIR/x86_64-apple-darwin/debug/mcp-edge-gateway"
step "every target built; the aarch64 and musl binaries passed the smoke tests"
