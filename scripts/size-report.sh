#!/usr/bin/env bash
# Where the bytes go, for README "Lean and fast": the npm default entry's wasm per crate and per module of
# ours (twiggy), and the native binary per crate (cargo-bloat), both with Cargo.toml's release
# profile. Installs the two tools from crates.io, pinned. Not part of the test command.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
[ "$(twiggy --version 2>/dev/null | awk '{print $2}')" = "$TWIGGY_VERSION" ] || cargo_locked install --locked twiggy --version "$TWIGGY_VERSION"
[ "$(cargo-bloat --version 2>/dev/null | awk '{print $2}')" = "$BLOAT_VERSION" ] || cargo_locked install --locked cargo-bloat --version "$BLOAT_VERSION"

step "the default entry's wasm (--features web; names kept for twiggy)"
W="$ROOT/target/size-report"
CARGO_TARGET_DIR="$W" CARGO_PROFILE_RELEASE_OPT_LEVEL=z CARGO_PROFILE_RELEASE_PANIC=abort CARGO_PROFILE_RELEASE_STRIP=false \
  cargo_locked build --release --lib --target wasm32-unknown-unknown --features web
twiggy top -n 1000000 --format csv "$W/wasm32-unknown-unknown/release/mcp_edge_gateway.wasm" > "$W/twiggy.csv"
python3 "$ROOT/scripts/size_table.py" "$W/twiggy.csv"

step "the native binary, per crate (cargo-bloat; symbols kept for it, the hot-text layout left out)"
# cargo-bloat reads `.text` alone: with the layout (native-host/build.rs) a third of the code would be
# in `.text.hot` and missing from the table. The same code otherwise, in a target directory of its own.
echo '```'
CARGO_TARGET_DIR="$W/native" MCP_EDGE_GATEWAY_NO_HOT_TEXT=1 CARGO_PROFILE_RELEASE_STRIP=false \
  cargo_locked bloat --release -p mcp-edge-gateway-native --bin mcp-edge-gateway --crates -n 40 2>/dev/null
echo '```'
cargo_locked build --release -p mcp-edge-gateway-native --bin mcp-edge-gateway
strip -o "$W/mcp-edge-gateway.stripped" "$ROOT/target/release/mcp-edge-gateway"
size -A "$W/mcp-edge-gateway.stripped" | awk 'NR > 2 && $2 > 65536 { printf "| %s | %.0f KiB |\n", $1, $2 / 1024 }' |
  { echo "| section of the stripped binary | size |"; echo "|---|---|"; sort -t'|' -k3 -rn; }
