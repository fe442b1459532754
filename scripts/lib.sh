# Shared by the scripts: repo root, logging, and the cargo lock so two builds never run at once.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
INTEROP="$ROOT/tests/interop"
export PATH="$HOME/.cargo/bin:$PATH"
step() { printf '\n==> %s\n' "$*" >&2; }
cargo_locked() { flock /tmp/mcp-edge-gateway-cargo.lock cargo "$@"; }
# Cross builds (scripts/test-targets.sh, scripts/release.sh): the Linux and Windows triples, and the
# pinned tools they use. Their target directory lives outside the clone, so a second run is fast.
CROSS_TARGETS="aarch64-unknown-linux-gnu x86_64-unknown-linux-musl aarch64-unknown-linux-musl x86_64-pc-windows-gnu x86_64-apple-darwin"
ZIG_VERSION=0.15.2
ZIGBUILD_VERSION=0.24.1
DENY_VERSION=0.20.2
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/mcp-edge-gateway"
ZIG_VENV="$CACHE_DIR/zig-venv"
# cargo-zigbuild finds zig as `python3 -m ziglang` (the PyPI wheel) when no zig is on PATH.
zig_env() { export PATH="$ZIG_VENV/bin:$PATH"; }
LLVM_COV_VERSION=0.9.1
# The size tools (scripts/size-report.sh only; not needed by the tests).
TWIGGY_VERSION=0.8.0
BLOAT_VERSION=0.12.1

# valgrind (callgrind) from apt, for the instruction counts (bench.sh) and the hot-text list.
need_valgrind() {
  command -v valgrind >/dev/null && return
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends valgrind
}
