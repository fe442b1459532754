# Shared by the scripts: repo root, logging, and the cargo lock so two builds never run at once.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
INTEROP="$ROOT/tests/interop"
export PATH="$HOME/.cargo/bin:$PATH"
step() { printf '\n==> %s\n' "$*" >&2; }
cargo_locked() { flock /tmp/mcp-edge-gateway-cargo.lock cargo "$@"; }
