#!/usr/bin/env bash
# Install everything the build and the tests need, from the package registries only. Idempotent.
source "$(dirname "$0")/lib.sh"

step "rust targets"
command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup first (https://rustup.rs)" >&2; exit 1; }
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi

step "node test dependencies (tests/interop/package-lock.json)"
command -v node >/dev/null || { echo "node not found: install Node.js >= 20" >&2; exit 1; }
if [ ! -d "$INTEROP/node_modules" ] || [ "$INTEROP/package-lock.json" -nt "$INTEROP/node_modules/.package-lock.json" ]; then
  (cd "$INTEROP" && npm ci --no-audit --no-fund)
fi

step "python test dependencies (tests/interop/requirements.txt)"
VENV="$INTEROP/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! cmp -s "$INTEROP/requirements.txt" "$VENV/.installed-requirements" 2>/dev/null; then
  "$VENV/bin/pip" install --disable-pip-version-check -q -r "$INTEROP/requirements.txt"
  cp "$INTEROP/requirements.txt" "$VENV/.installed-requirements"
fi
echo "setup done"
