#!/usr/bin/env bash
# Interop tests with real peers: the official TypeScript SDK clients (v1 legacy, v2 modern) and the
# Python mcp 2.x client (auto and legacy modes) against the gateway fronting real upstreams
# (@modelcontextprotocol/server-everything over stdio, a Python MCPServer over Streamable HTTP),
# plus the bad-input corpus, upstream crashes and stdio mode.
#
# Two passes: first with the gateways unauthenticated, then the same suites with MCP_GW_TEST_AUTH=1,
# where the helpers (python/conftest.py, node/common/topology.mjs) give every gateway they start an
# [auth] section with static bearer tokens (random per run, passed in the environment) and every
# client, raw request and /status poll the token. Files that configure auth themselves (the
# resource-server and OAuth tests) are authenticated in the first pass already and are not run again;
# stdio-mode tests run unchanged (stdio has no auth). MCP_GW_TEST_AUTH_PASS=0 skips the second pass,
# MCP_GW_TEST_AUTH_PASS=only runs it alone.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
export MCP_EDGE_GATEWAY_BIN="${MCP_EDGE_GATEWAY_BIN:-$ROOT/target/debug/mcp-edge-gateway}"
[ -x "$MCP_EDGE_GATEWAY_BIN" ] || { echo "no gateway binary at $MCP_EDGE_GATEWAY_BIN: run scripts/build.sh" >&2; exit 1; }

# Test files with an auth setup of their own: left out of the MCP_GW_TEST_AUTH=1 pass.
OWN_AUTH=(python/test_auth_resource_server.py node/ts_sdk_oauth_client_credentials.test.mjs)

# suites <auth: 0|1>
suites() {
  local auth=$1 label="" py_skip=() node_files=() f
  if [ "$auth" = 1 ]; then
    label=" (MCP_GW_TEST_AUTH=1: bearer tokens on every gateway)"
    for f in "${OWN_AUTH[@]}"; do [[ $f == python/* ]] && py_skip+=("--ignore=$f"); done
  fi
  # The files, not the folder: `node --test node/` runs the folder's tests on Node 20 only (Node 22+
  # takes it for a module to run and fails with MODULE_NOT_FOUND). The shell expands the glob, so
  # every Node runs it.
  for f in "$INTEROP"/node/*.test.mjs; do
    f=node/${f##*/}
    [[ $auth = 1 && " ${OWN_AUTH[*]} " == *" $f "* ]] || node_files+=("$f")
  done
  step "python interop tests$label"
  (cd "$INTEROP" && MCP_GW_TEST_AUTH=$auth .venv/bin/python -m pytest -q -p no:cacheprovider python/ "${py_skip[@]}")
  step "node interop tests$label"
  (cd "$INTEROP" && MCP_GW_TEST_AUTH=$auth node --test --test-concurrency=1 "${node_files[@]}")
}

pass=${MCP_GW_TEST_AUTH_PASS:-1}
[ "$pass" = only ] || suites 0
[ "$pass" = 0 ] || suites 1

# The benchmark's own short run (its long runs are scripts/bench.sh's, not the tests'): every case of
# the proxy table starts and answers, the pass-through floor among them.
step "benchmark smoke run (scripts/bench.py --smoke, debug builds)"
python3 "$ROOT/scripts/bench.py" --smoke --gateway "$MCP_EDGE_GATEWAY_BIN" --loadgen "$ROOT/target/debug/mcp-loadgen"
