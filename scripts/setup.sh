#!/usr/bin/env bash
# Install everything the build and the tests need, from the package registries only. Idempotent.
source "$(dirname "$0")/lib.sh"

step "rust targets"
command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup first (https://rustup.rs)" >&2; exit 1; }
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi

step "cross targets (rustup dist), qemu-user and mingw-w64 (Debian), zig (PyPI ziglang) and cargo-zigbuild (crates.io)"
for t in $CROSS_TARGETS riscv32imc-unknown-none-elf wasm32-wasip1; do
  rustup target list --installed | grep -qx "$t" || rustup target add "$t"
done
if ! command -v qemu-aarch64 >/dev/null || ! command -v file >/dev/null || ! command -v x86_64-w64-mingw32-gcc >/dev/null || [ ! -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends qemu-user mingw-w64 libc6-arm64-cross file
fi
if [ "$("$ZIG_VENV/bin/python" -m ziglang version 2>/dev/null)" != "$ZIG_VERSION" ]; then
  python3 -m venv "$ZIG_VENV"
  "$ZIG_VENV/bin/pip" install --disable-pip-version-check -q "ziglang==$ZIG_VERSION"
fi
if [ "$(cargo-zigbuild --version 2>/dev/null | awk '{print $2}')" != "$ZIGBUILD_VERSION" ]; then
  cargo_locked install cargo-zigbuild --version "$ZIGBUILD_VERSION" --locked
fi
if [ "$(cargo-deny --version 2>/dev/null | awk '{print $2}')" != "$DENY_VERSION" ]; then
  cargo_locked install cargo-deny --version "$DENY_VERSION" --locked
fi

step "Chromium and ChromeDriver (Debian packages) for the browser tests"
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver
fi

step "systemd-analyze (Debian's systemd package) to verify the service unit"
if ! command -v systemd-analyze >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends systemd
fi

step "wasm-bindgen CLI (the version in Cargo.lock) and wasm-pack, from crates.io"
WBG=$(grep -A1 'name = "wasm-bindgen"' "$ROOT/Cargo.lock" | sed -n 's/version = "\(.*\)"/\1/p')
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WBG" ]; then
  cargo install wasm-bindgen-cli --version "$WBG"   # not --locked: a yanked dependency breaks it
fi
WASM_PACK=0.15.1
if [ "$(wasm-pack --version 2>/dev/null | awk '{print $2}')" != "$WASM_PACK" ]; then
  cargo install wasm-pack --version "$WASM_PACK"
fi

step "node build and browser-test dependencies (www/package-lock.json: binaryen wasm-opt, playwright-core, tsc)"
if [ ! -d "$ROOT/www/node_modules" ] || [ "$ROOT/www/package-lock.json" -nt "$ROOT/www/node_modules/.package-lock.json" ]; then
  (cd "$ROOT/www" && npm ci --no-audit --no-fund)
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
step "the small model for the sampling tests (scripts/setup-model.sh: llama-cpp-python + SmolLM2-135M, cached)"
# Its two MODEL_*= lines (stdout) are for callers that eval them; the tests find the cache themselves.
"$ROOT/scripts/setup-model.sh" </dev/null >&2
echo "setup done"
