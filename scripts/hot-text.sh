#!/usr/bin/env bash
# Regenerate native-host/hot-text.ld, the list of functions a serving gateway runs that release
# builds lay out together (native-host/build.rs, README "Lean and fast"): builds the release binary
# unstripped (target/hot-text), runs it under callgrind (scripts/hot_text.py) and writes the list.
# Run it after a change that renames or adds much of the start-up or request path;
# scripts/test-release.sh says when the list has gone stale. Not part of the test command.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
need_valgrind
# The release profile as it is, symbols kept by the last link only: changing the profile's strip
# would change every crate's symbol hashes and, through them, some of LLVM's choices.
step "release build, symbols kept (target/hot-text)"
CARGO_TARGET_DIR="$ROOT/target/hot-text" \
  cargo_locked rustc --release -p mcp-edge-gateway-native --bin mcp-edge-gateway -- -C strip=none
step "profile start-up, initialize, tools/list, tools/call and idle under callgrind"
python3 "$ROOT/scripts/hot_text.py" "$ROOT/target/hot-text/release/mcp-edge-gateway" "$ROOT/native-host/hot-text.ld"
