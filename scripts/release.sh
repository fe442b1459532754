#!/usr/bin/env bash
# Release builds of every artefact, with the ADR's release profile, and their sizes:
#   native binaries: target/<triple>/release/mcp-edge-gateway[.exe] for every triple below, built
#     with fat LTO, one codegen unit, panic = "abort", symbols stripped and opt-level $OPT
#     ("z" by default: the smaller of the two, measured in README "Release builds");
#   the npm package (scripts/build-npm.sh: wasm-pack + wasm-opt), wasm and JS gzip per entry.
# The profile is passed with --config for these builds only: Cargo.toml's release profile (what
# `cargo build --release`, the benchmarks and the README's run command use) stays.
#
#   scripts/release.sh                 every triple and the npm package
#   scripts/release.sh TRIPLE...       only these triples (no npm package)
#   OPT=s scripts/release.sh TRIPLE    another opt-level, to compare
# Not part of the test command (a fat-LTO build takes minutes per triple); test-targets.sh builds
# and tests the same triples in CI.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
zig_env
OPT="${OPT:-z}"
NATIVE="x86_64-unknown-linux-gnu $CROSS_TARGETS"
triples="${*:-$NATIVE}"
ADR=()
for kv in 'lto="fat"' codegen-units=1 'panic="abort"' 'strip="symbols"' debug=false "opt-level=\"$OPT\"" \
  "package.mcp-edge-gateway.opt-level=\"$OPT\""; do
  ADR+=(--config "profile.release.$kv")
done

times=()
for t in $triples; do
  step "release build for $t (fat LTO, codegen-units 1, panic abort, strip, opt-level $OPT)"
  s=$(date +%s)
  case "$t" in
    x86_64-unknown-linux-gnu | *-windows-gnu) cargo_locked build "${ADR[@]}" --release -p mcp-edge-gateway-native --bin mcp-edge-gateway --target "$t" ;;
    *) cargo_locked zigbuild "${ADR[@]}" --release -p mcp-edge-gateway-native --bin mcp-edge-gateway --target "$t" ;;
  esac
  times+=("$t $(( $(date +%s) - s ))")
done

if [ -z "${*:-}" ]; then
  "$ROOT/scripts/build-npm.sh" >/dev/null
fi

step "release artefacts"
echo "| artefact | bytes | MiB | build s |"
echo "|---|---|---|---|"
for entry in "${times[@]}"; do
  t=${entry% *}
  f="target/$t/release/mcp-edge-gateway"
  [ -f "$f" ] || f="$f.exe"
  b=$(stat -c %s "$f")
  awk -v f="$f" -v b="$b" -v s="${entry##* }" 'BEGIN { printf "| `%s` (opt-level '"$OPT"') | %d | %.2f | %d |\n", f, b, b / 1048576, s }'
done
if [ -z "${*:-}" ]; then
  node "$ROOT/scripts/npm-size.mjs" "$ROOT/pkg"
fi
