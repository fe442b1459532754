#!/usr/bin/env bash
# The core without an operating system, and under WASI:
# - riscv32imc-unknown-none-elf (the ESP32-C3): the core as no_std + alloc (the exact command of
#   issue 13), then examples/embedded_loop.rs as a bare-metal image (its own heap, panic handler
#   and entry point) that links; its size is printed. No board here to run it on.
# - the same loop on the host against its scripted board (a client, and a sensor server in the
#   same firmware): the tool call must be answered.
# - wasm32-wasip1: that program built for WASI and run under Node's node:wasi, the client's lines
#   piped through WASI stdin, the answers checked on its stdout.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
step "the no_std core for riscv32imc-unknown-none-elf"
cargo_locked build -p mcp-edge-gateway --lib --target riscv32imc-unknown-none-elf --no-default-features
step "the embedded loop as a bare-metal riscv32imc image"
# opt-level "z", as on a board with little flash (Cargo.toml's "s" is the native host's).
CARGO_PROFILE_RELEASE_OPT_LEVEL=z cargo_locked build -p mcp-edge-gateway --example embedded_loop \
  --target riscv32imc-unknown-none-elf --no-default-features --release
img="target/riscv32imc-unknown-none-elf/release/examples/embedded_loop"
file -b "$img"
# Flash (code and constants) and RAM (data, bss: the 128 KiB heap) from the section headers.
readelf -SW "$img" | python3 -c '
import re, sys
flash = ram = 0
for line in sys.stdin:
    m = re.search(r"\]\s+(\.\S+)\s+\S+\s+[0-9a-f]+\s+[0-9a-f]+\s+([0-9a-f]+)", line)
    if not m: continue
    name, size = m.group(1), int(m.group(2), 16)
    if re.match(r"\.(text|s?rodata)", name): flash += size
    elif re.match(r"\.(s?data|s?bss)", name): ram += size
print(f"riscv32imc image: {flash/1024:.1f} KiB of flash (code, constants), {ram/1024:.1f} KiB of RAM (data, bss with the heap)")
'
step "the embedded loop on the host (scripted board)"
cargo_locked run -q -p mcp-edge-gateway --example embedded_loop >/dev/null
step "the embedded loop for wasm32-wasip1, run under node:wasi"
cargo_locked build -q -p mcp-edge-gateway --example embedded_loop --target wasm32-wasip1 --release
wasm="target/wasm32-wasip1/release/examples/embedded_loop.wasm"
out=$(printf '%s\n' \
  '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"wasi","version":"1"}}}' \
  '{"jsonrpc":"2.0","method":"notifications/initialized"}' \
  'not json' \
  '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' \
  '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"sensors__temperature","arguments":{}}}' \
  | node --no-warnings "$ROOT/scripts/wasi-run.mjs" "$wasm" --stdin)
node -e '
  const lines = require("fs").readFileSync(0, "utf8").trim().split("\n").map(JSON.parse);
  const by = (id) => lines.find((m) => m.id === id);
  const fail = (why) => { console.error(why + "\n" + JSON.stringify(lines, null, 1)); process.exit(1); };
  if (by(1)?.result?.serverInfo?.name !== "mcp-edge-gateway") fail("initialize not answered");
  if (by(2)?.result?.tools?.[0]?.name !== "sensors__temperature") fail("tools/list not answered");
  if (by(3)?.result?.content?.[0]?.text !== "21.5 °C") fail("tools/call not answered");
  if (!lines.some((m) => m.id === null && m.error?.code === -32700)) fail("no parse error for the bad line");
  console.log(`wasm32-wasip1 under node:wasi: ${lines.length} answers, the tool call answered`);
' <<<"$out"
ls -l "$wasm" | awk '{printf "wasip1 program: %.1f KiB\n", $5/1024}'
