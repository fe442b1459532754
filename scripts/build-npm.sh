#!/usr/bin/env bash
# Build the npm package into pkg/: wasm-pack (no tool downloads: --mode no-install with the pinned
# wasm-bindgen CLI and the npm binaryen wasm-opt first on PATH), wasm-opt -Oz, then the package
# assembled from pkg-template/. Prints the sizes. MCP_GW_NPM_VALIDATE=1: the opt-in build whose default
# entry validates tool arguments in the page.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
WWW="$ROOT/www"
[ -x "$WWW/node_modules/.bin/wasm-opt" ] || { echo "run scripts/setup.sh first (npm binaryen)" >&2; exit 1; }
export PATH="$WWW/node_modules/.bin:$PATH"   # npm wasm-opt 132 first: Debian's 108 corrupts the output
want=$(grep -A1 'name = "wasm-bindgen"' Cargo.lock | sed -n 's/version = "\(.*\)"/\1/p')
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')
[ "$want" = "$have" ] || { echo "wasm-bindgen CLI $have does not match Cargo.lock's $want: run scripts/setup.sh" >&2; exit 1; }

# Two wasm builds: the default entry (`--features web`) and the service worker's (`--features sw`,
# which adds the Streamable HTTP server face), so the default entry carries none of the server.
build() { # <features> <out dir>
  step "wasm-pack build --features $1 (release, size-optimised)"
  rm -rf "$2"
  # Cargo.toml's release profile (fat LTO, one codegen unit) with opt-level "z" (the native
  # host's "s" makes the wasm 19 % larger), panic = "abort" (what wasm32-unknown-unknown does
  # anyway) and no strip: stripping would drop the `target_features` section wasm-opt reads to know
  # that bulk memory is in use; wasm-opt drops the names itself.
  CARGO_PROFILE_RELEASE_OPT_LEVEL=z CARGO_PROFILE_RELEASE_PANIC=abort CARGO_PROFILE_RELEASE_STRIP=false \
    flock /tmp/mcp-edge-gateway-cargo.lock \
    wasm-pack build --mode no-install --release --target web --no-pack --out-dir "$2" --out-name mcp_edge_gateway \
    . -- --features "$1"
  step "wasm-opt -Oz ($1)"
  wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
    "$2/mcp_edge_gateway_bg.wasm" -o "$2/mcp_edge_gateway_bg.wasm"
}
out="$ROOT/target/wasm-pack"
if [ "${MCP_GW_NPM_VALIDATE:-}" = 1 ]; then
  # Opt-in: the default entry also checks tools/call arguments against inputSchema (boon in
  # the wasm; see the README for what it costs). Its own target dir: other RUSTFLAGS.
  CARGO_TARGET_DIR="$ROOT/target/wasm-validate" RUSTFLAGS='--cfg getrandom_backend="wasm_js"' \
    build web,validate "$out/web"
else
  build web "$out/web"
fi
build sw "$out/sw"

step "assemble pkg/"
rm -rf "$ROOT/pkg"
mkdir -p "$ROOT/pkg/sw"
glue="mcp_edge_gateway.js mcp_edge_gateway.d.ts mcp_edge_gateway_bg.wasm mcp_edge_gateway_bg.wasm.d.ts"
for f in $glue; do cp "$out/web/$f" "$ROOT/pkg/"; cp "$out/sw/$f" "$ROOT/pkg/sw/"; done
cp "$ROOT"/pkg-template/* "$ROOT/pkg/"
node "$ROOT/scripts/npm-size.mjs" "$ROOT/pkg"

step "npm pack (dry run)"
(cd "$ROOT/pkg" && npm pack --dry-run --json 2>/dev/null | node -e '
  const [p] = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const files = p.files.map((f) => f.path).sort();
  const need = ["index.js", "index.d.ts", "mcp_edge_gateway_bg.wasm", "mcp_edge_gateway.js", "package.json", "transport.js",
    "sw.js", "sw.d.ts", "sw/mcp_edge_gateway.js", "sw/mcp_edge_gateway_bg.wasm"];
  const missing = need.filter((f) => !files.includes(f));
  if (missing.length) { console.error("npm pack is missing " + missing.join(", ")); process.exit(1); }
  console.log(`${p.filename}: ${p.files.length} files, ${(p.size / 1024).toFixed(1)} KiB`);')
