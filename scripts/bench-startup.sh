#!/usr/bin/env bash
# Start-up to first answer and idle memory of the native host (release build, embedded default
# config), printed as a markdown table. Usage: scripts/bench-startup.sh [runs]
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
"$ROOT/scripts/build.sh" --release >&2
python3 "$ROOT/scripts/bench_startup.py" "$ROOT/target/release/mcp-edge-gateway" "${1:-20}"
