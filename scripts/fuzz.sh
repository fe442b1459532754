#!/usr/bin/env bash
# Fuzz every target in fuzz/ (cargo-fuzz + libFuzzer, stable Rust, no sanitizer) for a while each.
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      default: 20 s, every target
# - Installs cargo-fuzz (pinned, from crates.io) into a cache once: $MCP_GW_FUZZ_CACHE, or
#   ~/.cache/mcp-edge-gateway/cargo-fuzz. libfuzzer-sys builds libFuzzer from its C++ source, so a
#   C++ compiler must be there (installed from Debian's packages when it is not).
# - Builds every target once (under the cargo lock), then runs them outside it, FUZZ_JOBS at a
#   time (default: the number of cores): first every input under fuzz/regressions/<target>/ (each
#   must pass), then SECONDS of fuzzing seeded from fuzz/corpus/<target>/ (committed, a few real
#   messages each). New inputs go to fuzz/target/corpus/<target>/ (not committed), so the committed
#   corpus stays small and later runs here start from what earlier ones found.
# - Fails when any target crashes, panics, times out or runs out of memory; the input is kept in
#   fuzz/artifacts/<target>/ and the log in fuzz/target/logs/<target>.log. Reproduce with
#   `cd fuzz && cargo fuzz run -s none <target> artifacts/<target>/<file>`.
# Prints each target's executions, coverage (cov: edges, ft: features) and corpus size.
source "$(dirname "$0")/lib.sh"

SECS="${1:-20}"
shift || true
CARGO_FUZZ=0.13.2
CACHE="${MCP_GW_FUZZ_CACHE:-$HOME/.cache/mcp-edge-gateway/cargo-fuzz}"
FUZZ="$ROOT/fuzz"
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
BIN="$FUZZ/target/$TRIPLE/release"
JOBS="${FUZZ_JOBS:-$(nproc)}"
export PATH="$CACHE/bin:$PATH"

step "cargo-fuzz $CARGO_FUZZ (crates.io, cached in $CACHE)"
if ! command -v c++ >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends g++
fi
if [ "$(cargo-fuzz --version 2>/dev/null | awk 'NR==1 {print $2}')" != "$CARGO_FUZZ" ]; then
  mkdir -p "$CACHE"
  cargo_locked install cargo-fuzz --version "$CARGO_FUZZ" --locked --root "$CACHE"
fi

cd "$FUZZ"
TARGETS=("$@")
if [ "${#TARGETS[@]}" -eq 0 ]; then
  mapfile -t TARGETS < <(awk '/^\[\[bin\]\]/ {b=1; next} b && /^name *=/ {gsub(/[" ]/, "", $3); print $3; b=0}' Cargo.toml)
fi

step "build the fuzz targets (release, debug assertions, -s none)"
cargo_locked fuzz build -s none

LOGS="$FUZZ/target/logs"
mkdir -p "$LOGS"
run_one() {
  local t="$1" log="$LOGS/$1.log" seeds=() rc=0
  local work="$FUZZ/target/corpus/$t" art="$FUZZ/artifacts/$t/"
  mkdir -p "$work" "$art"
  : >"$log"
  # Every kept crash must pass now (each input run once).
  if [ -d "$FUZZ/regressions/$t" ] && [ -n "$(ls -A "$FUZZ/regressions/$t")" ]; then
    "$BIN/$t" -runs=0 -artifact_prefix="$art" "$FUZZ/regressions/$t" >>"$log" 2>&1 || rc=$?
    seeds+=("$FUZZ/regressions/$t")
  fi
  [ -d "$FUZZ/corpus/$t" ] && seeds+=("$FUZZ/corpus/$t")
  # Text targets mutate with fuzz/dicts/mcp.dict (syntax, the keys and methods the gateway reads).
  # The engine's input is a whole scenario: long inputs from the start (libFuzzer grows them slowly).
  local extra=(-dict="$FUZZ/dicts/mcp.dict")
  case "$t" in
    engine | http_face) extra=(-max_len=4096 -len_control=0) ;;
    store_restore) extra+=(-max_len=8192) ;;
  esac
  if [ "$rc" -eq 0 ]; then
    "$BIN/$t" -max_total_time="$SECS" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 "${extra[@]}" \
      -artifact_prefix="$art" "$work" "${seeds[@]}" >>"$log" 2>&1 || rc=$?
  fi
  echo "$rc" >"$LOGS/$t.rc"
}

step "fuzz ${#TARGETS[@]} targets for $SECS s each, $JOBS at a time"
for t in "${TARGETS[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  run_one "$t" &
done
wait

failed=()
printf '%-14s %12s %8s %8s %8s %8s\n' target executions exec/s cov ft corpus >&2
for t in "${TARGETS[@]}"; do
  log="$LOGS/$t.log"
  rc="$(cat "$LOGS/$t.rc" 2>/dev/null || echo 1)"
  # (A target that failed on its regressions never fuzzed: its log has no progress lines.)
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
  last="$(grep -E '^#[0-9]+' "$log" | tail -1 || true)"
  cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")"
  ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")"
  corp="$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")"
  printf '%-14s %12s %8s %8s %8s %8s%s\n' "$t" "${execs:--}" "${rate:--}" "${cov:--}" "${ft:--}" "${corp:--}" \
    "$([ "$rc" -eq 0 ] || echo "  FAILED (exit $rc)")" >&2
  [ "$rc" -eq 0 ] || failed+=("$t")
done

if [ "${#failed[@]}" -gt 0 ]; then
  for t in "${failed[@]}"; do
    printf '\n--- %s (log: %s) ---\n' "$t" "$LOGS/$t.log" >&2
    if grep -qE 'panicked at|ERROR: libFuzzer|==ERROR' "$LOGS/$t.log"; then
      grep -E -A25 'panicked at|ERROR: libFuzzer|==ERROR' "$LOGS/$t.log" | head -60 >&2
    else
      tail -30 "$LOGS/$t.log" >&2
    fi
    ls "$FUZZ/artifacts/$t" >&2
  done
  echo "fuzzing found crashes in: ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
  exit 1
fi
step "fuzzing: ${#TARGETS[@]} targets, no crash"
