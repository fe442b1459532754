#!/usr/bin/env bash
# Line coverage (cargo-llvm-cov) across the Rust tests and the interop tests: the workspace's tests
# run instrumented, then the interop suites (both passes) run against an instrumented gateway
# binary, and one report merges both. Prints lines covered per crate (the core: src/ without
# src/web, which only the browser compiles; the native host: native-host/src/) and writes the
# HTML report to target/llvm-cov/html. Not part of the test command (about 11 minutes warm).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
step "cargo-llvm-cov $LLVM_COV_VERSION and llvm-tools (crates.io, rustup dist)"
rustup component add llvm-tools-preview >/dev/null 2>&1 || rustup component add llvm-tools
if [ "$(cargo llvm-cov --version 2>/dev/null | awk '{print $2}')" != "$LLVM_COV_VERSION" ]; then
  cargo_locked install cargo-llvm-cov --version "$LLVM_COV_VERSION" --locked
fi
# A rustc wrapper that instruments the workspace crates, LLVM_PROFILE_FILE (profiles in target/).
eval "$(cargo llvm-cov show-env --sh 2>/dev/null)"
cargo llvm-cov clean --workspace
step "the Rust tests, instrumented"
cargo_locked test --workspace
step "the interop tests against an instrumented gateway"
cargo_locked build -p mcp-edge-gateway-native --bin mcp-edge-gateway
MCP_EDGE_GATEWAY_BIN="$CARGO_LLVM_COV_TARGET_DIR/debug/mcp-edge-gateway" "$ROOT/scripts/test-interop.sh"
step "report"
# Gateways a test starts with an environment of its own (no LLVM_PROFILE_FILE) write default_*.profraw
# into their working directory: the same binary's profiles, so they are counted too.
# Renamed after LLVM_PROFILE_FILE's pattern, which is what the report reads.
n=0
while IFS= read -r f; do
  n=$((n + 1)); mv "$f" "${LLVM_PROFILE_FILE%%-%p*}-cleared-env-$n.profraw"
done < <(find "$ROOT" -name 'default_*.profraw' -not -path "$CARGO_LLVM_COV_TARGET_DIR/*")
cargo llvm-cov report --workspace --html >/dev/null
cargo llvm-cov report --workspace --json --summary-only | python3 -c '
import json, os, sys
files = json.load(sys.stdin)["data"][0]["files"]
for f in files:
    f["filename"] = os.path.relpath(f["filename"], os.environ["ROOT"])
crates = {"core (`src/`, without the browser-only `src/web`)": lambda f: f.startswith("src/") and not f.startswith("src/web/"),
          "native host (`native-host/src/`, without the benchmark load generator)": lambda f: f.startswith("native-host/src/") and not f.startswith("native-host/src/bin/"),
          "benchmark load generator (`native-host/src/bin/mcp-loadgen.rs`, run by scripts/bench.sh only)": lambda f: f.startswith("native-host/src/bin/")}
print("| crate | lines | covered | line coverage |\n|---|---|---|---|")
for name, pick in crates.items():
    n = c = 0
    for f in files:
        if pick(f["filename"]):
            n += f["summary"]["lines"]["count"]; c += f["summary"]["lines"]["covered"]
    print(f"| {name} | {n} | {c} | {100 * c / max(n, 1):.1f} % |")
low = sorted((f["summary"]["lines"]["percent"], f["filename"]) for f in files if any(p(f["filename"]) for p in crates.values()))
print("\nleast covered files:", ", ".join(f"{p:.0f} % {n}" for p, n in low[:8]))
'
