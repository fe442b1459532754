#!/usr/bin/env bash
# Interop tests with real peers: the official TypeScript SDK clients (v1 legacy, v2 modern) and the
# Python mcp 2.x client (auto and legacy modes) against the gateway fronting real upstreams
# (@modelcontextprotocol/server-everything over stdio, a Python MCPServer over Streamable HTTP),
# plus the bad-input corpus, upstream crashes and stdio mode.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
export MCP_EDGE_GATEWAY_BIN="${MCP_EDGE_GATEWAY_BIN:-$ROOT/target/debug/mcp-edge-gateway}"
[ -x "$MCP_EDGE_GATEWAY_BIN" ] || { echo "no gateway binary at $MCP_EDGE_GATEWAY_BIN: run scripts/build.sh" >&2; exit 1; }
step "python interop tests"
(cd "$INTEROP" && .venv/bin/python -m pytest -q -p no:cacheprovider python/)
step "node interop tests"
# The files, not the folder: `node --test node/` runs the folder's tests on Node 20 only (Node 22+ takes
# it for a module to run and fails with MODULE_NOT_FOUND). The shell expands the glob, so every Node runs it.
(cd "$INTEROP" && node --test --test-concurrency=1 node/*.test.mjs)
