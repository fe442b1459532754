#!/usr/bin/env bash
# Benchmarks, side by side in one run: the proxy path (direct vs mcp-edge-gateway with a stdio and an
# HTTP upstream vs supergateway and mcp-proxy, and the same HTTP case with the "before" build), the
# load generator's own ceiling, start-up and memory; the proxy path through a group; failover and
# breaker timings and sampling through a local model; the offline queue's durable enqueue rate; then
# sizes and the core's criterion micro-benchmarks (cache hit vs miss among them). Ends with issue
# 14's targets, before and after (scripts/bench_summary.py). Prints markdown.
#
# "Before" is the build of BENCH_BASE_REF (default 9343068, the commit issue 14 started from), built
# in a git worktree under target/bench-baseline with that commit's own scripts and profile. Both
# builds are timed from clean (their release and wasm target directories removed first), native
# binary and npm package; --quick reuses what is built and does not time the builds.
# Usage: scripts/bench.sh [--quick]   (not part of the CI test run: too noisy)
#        BENCH_BASELINE=path/to/older/mcp-edge-gateway scripts/bench.sh   (that binary as "before"'s proxy case)
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
QUICK="${1:-}"
PEERS="$ROOT/target/bench-peers"
SUPERGATEWAY=4.0.0
MCP_PROXY=0.13.0
BASE_REF="${BENCH_BASE_REF:-9343068}"
BASE="$ROOT/target/bench-baseline/src"
OUT="$ROOT/target/bench-summary"
rm -rf "$OUT" && mkdir -p "$OUT"

# The baseline's worktree lies under this clone, so cargo reads this clone's .cargo/config.toml too:
# an empty LIBSQLITE3_FLAGS gives it back the SQLite it was built with (the variable wins over [env]).
sqlite_flags() { [ "$1" = base ] && export LIBSQLITE3_FLAGS=; true; }
# A release build of one checkout, native binary and npm package, timed (from clean unless --quick).
timed_build() { # <checkout> <this|base>
  local src=$1 tag=$2 s
  [ -e "$src/www/node_modules" ] || ln -s "$ROOT/www/node_modules" "$src/www/node_modules"
  if [ -z "$QUICK" ]; then rm -rf "$src/target/release" "$src/target/wasm32-unknown-unknown" "$src/target/wasm-pack"; fi
  s=$(date +%s.%N)
  (cd "$src" && sqlite_flags "$tag" && cargo_locked build --release -p mcp-edge-gateway-native && scripts/build-npm.sh >/dev/null)
  [ -n "$QUICK" ] || awk -v s="$s" -v e="$(date +%s.%N)" 'BEGIN { print e - s }' > "$OUT/build-$tag.s"
  rm -rf "$OUT/pkg-$tag" && cp -r "$src/pkg" "$OUT/pkg-$tag"
  strip -o "$OUT/bin-$tag-x86_64" "$src/target/release/mcp-edge-gateway"
}
# The same checkout for aarch64 (Raspberry Pi, Jetson), stripped; Debian's cross gcc links it.
aarch64_build() { # <checkout> <this|base>
  local src=$1 tag=$2
  (cd "$src" && sqlite_flags "$tag" && CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
     cargo_locked build --release -p mcp-edge-gateway-native --bin mcp-edge-gateway --target aarch64-unknown-linux-gnu 2>/dev/null) &&
    aarch64-linux-gnu-strip -o "$OUT/bin-$tag-aarch64" "$src/target/aarch64-unknown-linux-gnu/release/mcp-edge-gateway"
}
have_aarch64() {
  command -v aarch64-linux-gnu-gcc >/dev/null || { [ "$(id -u)" -eq 0 ] && apt-get install -y -qq --no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross >/dev/null 2>&1; } || return 1
  rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu >/dev/null
}

step "peers from the registries (pinned) into target/bench-peers"
mkdir -p "$PEERS"
if [ ! -x "$PEERS/node_modules/.bin/supergateway" ]; then
  (cd "$PEERS" && npm install --no-audit --no-fund --no-save "supergateway@$SUPERGATEWAY" >/dev/null)
fi
if [ ! -x "$PEERS/venv/bin/mcp-proxy" ]; then
  python3 -m venv "$PEERS/venv"
  "$PEERS/venv/bin/pip" install -q --disable-pip-version-check "mcp-proxy==$MCP_PROXY"
fi
[ -d "$INTEROP/node_modules" ] || (cd "$INTEROP" && npm ci --no-audit --no-fund)

step "before: the build of $BASE_REF, in its own worktree (release build and npm package$([ -n "$QUICK" ] && echo ", reused" || echo ", from clean, timed"))"
git worktree prune
if [ ! -d "$BASE" ]; then git worktree add --force --detach "$BASE" "$BASE_REF" >/dev/null; fi
git -C "$BASE" checkout -q --detach "$BASE_REF"
timed_build "$BASE" base
BENCH_BASELINE="${BENCH_BASELINE:-$BASE/target/release/mcp-edge-gateway}"

step "after: this checkout (release build and npm package$([ -n "$QUICK" ] && echo ", reused" || echo ", from clean, timed"))"
timed_build "$ROOT" this

step "proxy path (this takes a while; the machine should be otherwise idle)"
python3 "$ROOT/scripts/bench.py" --gateway "$ROOT/target/release/mcp-edge-gateway" \
  --loadgen "$ROOT/target/release/mcp-loadgen" --peers supergateway,mcp-proxy ${QUICK:+--quick} \
  --baseline "$BENCH_BASELINE" --summary "$OUT/proxy.json"

step "the proxy path in instructions: user-space instructions per tools/call in front of a canned upstream (callgrind; exact, unlike the timings above)"
need_valgrind
gw_cmd() { echo "$1 serve --config {config} --listen 127.0.0.1:{port} --data-dir {data}"; }
for conc in 1 16; do
  python3 "$ROOT/scripts/bench_instructions.py" "$ROOT/target/release/mcp-loadgen" "$conc" "$([ -n "$QUICK" ] && echo 1000 || echo 4000)" \
    "before ($BASE_REF)=$(gw_cmd "$BENCH_BASELINE")" "after=$(gw_cmd "$ROOT/target/release/mcp-edge-gateway")" \
    "the floor (mcp-loadgen passthrough)=$ROOT/target/release/mcp-loadgen passthrough --listen 127.0.0.1:{port} --upstream {upstream}"
done

step "the engine's cost of a group, in instructions (callgrind; exact, unlike the timings above)"
cargo_locked build --release --example route_cost
echo "| engine round trip (parse, route, remap, serialise, both ways) | instructions per call |"
echo "|---|---|"
for mode in plain group; do
  ir=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$ROOT/target/release/examples/route_cost" "$mode" 20000 2>&1 | sed -n 's/.*I *refs: *//p' | tr -d ,)
  echo "| $mode | $(( ir / 20000 )) |"
done

step "groups and sampling: failover latency, a breaker opening on a hanging member, sampling through the local model"
"$ROOT/scripts/setup-model.sh" >/dev/null
"$INTEROP/.venv/bin/python" "$ROOT/scripts/bench_groups.py" "$ROOT/target/release/mcp-edge-gateway" "$([ -n "$QUICK" ] && echo 3 || echo 7)"

step "start-up and idle memory of the native host alone (embedded default)"
python3 "$ROOT/scripts/bench_startup.py" "$ROOT/target/release/mcp-edge-gateway" "$([ -n "$QUICK" ] && echo 5 || echo 20)" "$OUT/startup-this.json"
echo "(the same for the build before, for the summary)"
python3 "$ROOT/scripts/bench_startup.py" "$BASE/target/release/mcp-edge-gateway" "$([ -n "$QUICK" ] && echo 5 || echo 20)" "$OUT/startup-base.json" >/dev/null

step "offline queue: durable enqueue rate, SQLite next to memory"
python3 "$ROOT/scripts/bench_offline.py" "$ROOT/target/release/mcp-edge-gateway" "$ROOT/target/release/mcp-loadgen" \
  "$([ -n "$QUICK" ] && echo 1 || echo 3)" 2000

step "native binary sizes (stripped), before and after"
have_aarch64 && { aarch64_build "$BASE" base; aarch64_build "$ROOT" this; } || echo "(aarch64 not built: no aarch64-linux-gnu-gcc, apt gcc-aarch64-linux-gnu)"
echo "| native binary, stripped | before | after |"
echo "|---|---|---|"
for arch in x86_64 aarch64; do
  kib() { [ -f "$1" ] && echo "$(( $(stat -c %s "$1") / 1024 )) KiB" || echo "not built"; }
  echo "| $arch | $(kib "$OUT/bin-base-$arch") | $(kib "$OUT/bin-this-$arch") |"
done

step "npm package size, before and after"
echo "before ($BASE_REF):"; node "$ROOT/scripts/npm-size.mjs" "$OUT/pkg-base"
echo "after:"; node "$ROOT/scripts/npm-size.mjs" "$OUT/pkg-this"

step "browser (headless Chromium)"
if [ -f "$ROOT/pkg/mcp_edge_gateway_bg.wasm" ] && [ -d "$ROOT/www/node_modules" ]; then
  (cd "$ROOT/www" && node bench/browser_bench.mjs "$ROOT/target/release/mcp-edge-gateway" \
    "$([ -n "$QUICK" ] && echo 200 || echo 500)" "$([ -n "$QUICK" ] && echo 3 || echo 5)")
else
  echo "(run scripts/setup.sh and scripts/build-npm.sh for the browser benchmark)"
fi

step "core micro-benchmarks (criterion)"
cargo_locked bench --bench core -- --warm-up-time 1 --measurement-time "$([ -n "$QUICK" ] && echo 2 || echo 5)" 2>/dev/null \
  | awk '/^[a-z]/ { name = $0 } /time:/ { sub(/^ +time: +/, ""); print "| " name " | " $0 " |" }' \
  | { echo "| core hot path | time [low median high] |"; echo "|---|---|"; cat; }

step "issue 14's targets, before ($BASE_REF) and after, from this run"
python3 "$ROOT/scripts/bench_summary.py" "$OUT"
