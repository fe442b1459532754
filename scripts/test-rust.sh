#!/usr/bin/env bash
# Rust tests: core unit tests, deterministic engine simulations, golden fixtures, native-host unit
# tests; then formatting, clippy with warnings as errors (native, browser, no_std) and cargo-deny.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
step "cargo test --workspace"
cargo_locked test --workspace
step "cargo fmt --check"
cargo fmt --all -- --check
(cd "$ROOT/fuzz" && cargo fmt --all -- --check)   # the fuzz targets are a workspace of their own
step "cargo clippy"
cargo_locked clippy --workspace --all-targets -- -D warnings
cargo_locked clippy -p mcp-edge-gateway --target wasm32-unknown-unknown --features web --all-targets -- -D warnings
cargo_locked clippy -p mcp-edge-gateway --target wasm32-unknown-unknown --features sw --lib -- -D warnings
# The no_std core (scripts/test-embedded.sh builds it and the embedded example).
cargo_locked clippy -p mcp-edge-gateway --lib --target riscv32imc-unknown-none-elf --no-default-features -- -D warnings
step "cargo deny check licenses bans sources (deny.toml; advisories: README, Checks)"
cargo_locked deny check licenses bans sources
step "README's run command resolves to the gateway (cargo run ... -- serve)"
cargo_locked run -q -p mcp-edge-gateway-native -- --help | grep -q "Serve MCP over Streamable HTTP"
