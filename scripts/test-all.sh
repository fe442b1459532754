#!/usr/bin/env bash
# Everything a fresh machine needs, then every test. This is the command README and .ci/run use.
source "$(dirname "$0")/lib.sh"
start=$(date +%s)
"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build.sh"
"$ROOT/scripts/test-rust.sh"
# Every fuzz target briefly (and every kept crash input once); long runs are kept out (fuzz/README.md).
"$ROOT/scripts/fuzz.sh" 15
"$ROOT/scripts/build-npm.sh"
"$ROOT/scripts/test-wasm.sh"
"$ROOT/scripts/test-interop.sh"
"$ROOT/scripts/test-release.sh"
"$ROOT/scripts/test-browser.sh"
"$ROOT/scripts/test-embedded.sh"
"$ROOT/scripts/test-targets.sh"
step "all tests passed in $(( $(date +%s) - start )) s"
