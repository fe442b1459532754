"""A corpus of bad input against POST /mcp (raw HTTP). Each gets a clear HTTP status and, where the
body is a JSON-RPC answer, the right JSON-RPC error code. Afterwards the gateway is alive, /status
answers, a normal client session works, and the log has no panic.

This module builds its own gateway + upstreams, so a crash here cannot spill into other tests.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse

import pytest
from mcp import Client

from conftest import (
    LEGACY,
    MODERN,
    assert_gateway_healthy,
    auth_headers,
    client_kwargs,
    legacy_post,
    legacy_session,
    modern_post,
    raw_request,
    run_async,
    start_topology,
    stop_topology,
    text_of,
)


@pytest.fixture(scope="module")
def bad_topo(tmp_path_factory):
    t = start_topology(tmp_path_factory.mktemp("bad"))
    try:
        yield t
    finally:
        stop_topology(t)


@pytest.fixture(scope="module")
def sid(bad_topo):
    return legacy_session(bad_topo.url)


def rpc_error(r, status: int, code: int) -> dict:
    assert r.status == status, f"HTTP {r.status} (want {status}): {r.body[:300]!r}"
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    msg = r.json()
    assert msg.get("jsonrpc") == "2.0", msg
    assert "error" in msg and "result" not in msg, msg
    assert msg["error"]["code"] == code, msg
    assert isinstance(msg["error"]["message"], str) and msg["error"]["message"], msg
    return msg


# ------------------------------------------------------------------------------------------------
# Bytes that are not JSON-RPC at all
# ------------------------------------------------------------------------------------------------

PARSE_ERRORS = {
    "truncated_json": b'{"jsonrpc":"2.0","id":1,"method":"ping"',
    "not_json": b"hello there",
    "trailing_garbage": b'{"jsonrpc":"2.0","id":1,"method":"ping"} x',
    "empty_body": b"",
    "invalid_utf8": b'{"jsonrpc":"2.0","id":1,"method":"\xff\xfe\xfd"}',
    "lone_surrogate_bytes": b'{"jsonrpc":"2.0","id":1,"method":"\xed\xa0\x80"}',
    "deeply_nested_100000": b"[" * 100000 + b"]" * 100000,
    "deeply_nested_objects": b'{"a":' * 5000 + b"1" + b"}" * 5000,
}


@pytest.mark.parametrize("name", list(PARSE_ERRORS))
def test_unparseable_bodies_get_400_parse_error(bad_topo, name):
    msg = rpc_error(raw_request(bad_topo.url, PARSE_ERRORS[name]), 400, -32700)
    assert msg.get("id") is None, msg


MAX_DEPTH = 64  # README: "Nesting deeper than 64 levels gets 400", counting the message object itself


def _depth(v) -> int:
    """Nesting depth of a JSON value, counted independently of the gateway: each object or array is a
    level, scalars are none."""
    if isinstance(v, dict):
        return 1 + max(map(_depth, v.values()), default=0)
    if isinstance(v, list):
        return 1 + max(map(_depth, v), default=0)
    return 0


def _ping_nested(levels: int) -> tuple[dict, bytes]:
    """A ping whose whole message nests `levels` deep: the message object, its params, and arrays
    down to a number."""
    inner: object = 1
    for _ in range(levels - 2):
        inner = [inner]
    msg = {"jsonrpc": "2.0", "id": 64, "method": "ping", "params": {"x": inner}}
    return msg, json.dumps(msg).encode()


def test_nesting_exactly_at_the_limit_is_accepted_and_one_more_level_is_refused(bad_topo, sid):
    """The depth limit is exactly 64 levels over the whole message, envelope included (serde_json's own
    limit of 128 is not the one that applies): a ping 64 levels deep in a legacy session is answered
    with a result; 65 levels get HTTP 400 with a parse error, before anything is routed."""
    at, body = _ping_nested(MAX_DEPTH)
    assert _depth(at) == MAX_DEPTH and _depth(json.loads(body)) == MAX_DEPTH
    r = legacy_post(bad_topo.url, sid, body)
    assert r.status == 200, f"a message {MAX_DEPTH} levels deep was refused: HTTP {r.status} {r.body[:300]!r}"
    msg = r.rpc()
    assert msg.get("id") == 64 and "result" in msg and "error" not in msg, \
        f"a ping {MAX_DEPTH} levels deep got no result: {msg}"

    over, body = _ping_nested(MAX_DEPTH + 1)
    assert _depth(over) == MAX_DEPTH + 1 and _depth(json.loads(body)) == MAX_DEPTH + 1
    msg = rpc_error(legacy_post(bad_topo.url, sid, body), 400, -32700)
    assert msg.get("id") is None, msg
    # The same bodies outside a session: the limit applies before anything else looks at them.
    rpc_error(raw_request(bad_topo.url, body), 400, -32700)


INVALID_REQUESTS = {
    "missing_jsonrpc": {"id": 1, "method": "ping"},
    "jsonrpc_1_0": {"jsonrpc": "1.0", "id": 1, "method": "ping"},
    "jsonrpc_number": {"jsonrpc": 2.0, "id": 1, "method": "ping"},
    "id_object": {"jsonrpc": "2.0", "id": {"a": 1}, "method": "ping"},
    "id_array": {"jsonrpc": "2.0", "id": [1], "method": "ping"},
    "id_bool": {"jsonrpc": "2.0", "id": True, "method": "ping"},
    "id_null_request": {"jsonrpc": "2.0", "id": None, "method": "ping"},
    "method_number": {"jsonrpc": "2.0", "id": 1, "method": 42},
    "method_null": {"jsonrpc": "2.0", "id": 1, "method": None},
    "params_string": {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": "x"},
    "params_number": {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": 3},
    "batch": [{"jsonrpc": "2.0", "id": 1, "method": "ping"}, {"jsonrpc": "2.0", "id": 2, "method": "ping"}],
    "empty_batch": [],
    "batch_of_initialize": [{"jsonrpc": "2.0", "id": 1, "method": "initialize",
                             "params": {"protocolVersion": LEGACY, "capabilities": {},
                                        "clientInfo": {"name": "x", "version": "1"}}}],
    "empty_object": {},
    "null": None,
    "string": "hello",
    "number": 7,
    "only_jsonrpc": {"jsonrpc": "2.0"},
    "result_without_id": {"jsonrpc": "2.0", "result": {}},
}


@pytest.mark.parametrize("name", list(INVALID_REQUESTS))
def test_wrong_jsonrpc_shapes_get_400_invalid_request(bad_topo, name):
    body = json.dumps(INVALID_REQUESTS[name]).encode()
    rpc_error(raw_request(bad_topo.url, body), 400, -32600)


@pytest.mark.parametrize("name", ["missing_jsonrpc", "id_object", "batch", "null"])
def test_wrong_shapes_are_refused_in_a_session_and_in_the_modern_era_too(bad_topo, sid, name):
    body = json.dumps(INVALID_REQUESTS[name]).encode()
    rpc_error(legacy_post(bad_topo.url, sid, body), 400, -32600)
    modern = {"MCP-Protocol-Version": MODERN, "Mcp-Method": "ping"}
    rpc_error(raw_request(bad_topo.url, body, modern), 400, -32600)


# ------------------------------------------------------------------------------------------------
# Valid JSON-RPC, wrong MCP
# ------------------------------------------------------------------------------------------------

def test_unknown_method_in_a_legacy_session_is_method_not_found(bad_topo, sid):
    r = legacy_post(bad_topo.url, sid, {"jsonrpc": "2.0", "id": 5, "method": "foo/bar", "params": {}})
    assert r.status == 200, (r.status, r.body)
    msg = r.rpc()
    assert msg["id"] == 5 and msg["error"]["code"] == -32601, msg


def test_unknown_method_in_the_modern_era_is_method_not_found(bad_topo):
    r = modern_post(bad_topo.url, "foo/bar", {}, req_id=6)
    rpc_error(r, 404, -32601)
    assert r.json()["id"] == 6


BAD_PARAMS = {
    "tools_call_missing_name": ("tools/call", {"arguments": {}}),
    "tools_call_name_number": ("tools/call", {"name": 123, "arguments": {}}),
    "tools_call_name_null": ("tools/call", {"name": None}),
    "tools_call_unknown_tool": ("tools/call", {"name": "nope__nothing", "arguments": {}}),
    "tools_call_unknown_upstream_prefix": ("tools/call", {"name": "ghost__echo", "arguments": {}}),
    "tools_call_unprefixed_name": ("tools/call", {"name": "echo", "arguments": {}}),
    "tools_call_params_array": ("tools/call", ["everything__echo"]),
    "prompts_get_missing_name": ("prompts/get", {}),
    "prompts_get_unknown": ("prompts/get", {"name": "nope__nothing"}),
    "resources_read_uri_number": ("resources/read", {"uri": 5}),
    "resources_read_missing_uri": ("resources/read", {}),
    "tools_list_garbage_cursor": ("tools/list", {"cursor": "garbage!"}),
    "tools_list_cursor_number": ("tools/list", {"cursor": 3}),
}


@pytest.mark.parametrize("name", list(BAD_PARAMS))
def test_bad_params_in_a_legacy_session_are_invalid_params(bad_topo, sid, name):
    meth, params = BAD_PARAMS[name]
    r = legacy_post(bad_topo.url, sid, {"jsonrpc": "2.0", "id": 9, "method": meth, "params": params})
    assert r.status == 200, (r.status, r.body)
    msg = r.rpc()
    assert msg["id"] == 9, msg
    assert "error" in msg and msg["error"]["code"] == -32602, msg


@pytest.mark.parametrize("name", ["tools_call_missing_name", "tools_call_unknown_tool", "prompts_get_unknown",
                                  "tools_list_garbage_cursor"])
def test_bad_params_in_the_modern_era_are_invalid_params(bad_topo, name):
    meth, params = BAD_PARAMS[name]
    r = modern_post(bad_topo.url, meth, params, req_id=10)
    rpc_error(r, 400, -32602)


@pytest.mark.parametrize("params", [
    {"protocolVersion": 20251125, "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}},
    {"protocolVersion": None, "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}},
    {"capabilities": {}, "clientInfo": {"name": "x", "version": "1"}},
], ids=["version_number", "version_null", "version_missing"])
def test_initialize_with_wrong_types_is_invalid_params(bad_topo, params):
    r = raw_request(bad_topo.url, json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                              "params": params}).encode())
    assert r.status in (200, 400), (r.status, r.body)
    msg = r.rpc()
    assert "error" in msg and msg["error"]["code"] == -32602, msg


def test_failed_initialize_leaves_no_session(bad_topo):
    """An initialize answered with an error (-32602 here) creates no session: no Mcp-Session-Id,
    /status does not count it, and nothing can be called on it. (Regression: a failed handshake
    used to leave a usable session behind, one leaked per bad initialize.)"""
    before = bad_topo.gateway.status()["sessions"]
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": 5}}
    r = raw_request(bad_topo.url, json.dumps(init).encode())
    assert r.rpc()["error"]["code"] == -32602
    leaked = r.headers.get("mcp-session-id")
    after = bad_topo.gateway.status()["sessions"]
    usable = None
    if leaked:
        out = legacy_post(bad_topo.url, leaked, {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "everything__echo", "arguments": {"message": "never initialised"}}})
        usable = (out.status, out.body[:120])
        raw_request(bad_topo.url, None, {"Mcp-Session-Id": leaked}, method="DELETE")  # tidy up
    assert leaked is None and after == before, (
        f"failed initialize returned Mcp-Session-Id={leaked!r}; sessions {before} -> {after}; "
        f"tools/call on it: {usable}")


@pytest.mark.parametrize("params", [
    {"protocolVersion": LEGACY, "capabilities": "all", "clientInfo": {"name": "x", "version": "1"}},
    {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": "x"},
], ids=["capabilities_string", "clientInfo_string"])
def test_initialize_with_non_object_capabilities_or_client_info_is_invalid_params(bad_topo, params):
    """`capabilities` and `clientInfo` of the wrong JSON type (objects in every schema revision) get
    -32602, as a bad protocolVersion does, and no session."""
    r = raw_request(bad_topo.url, json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                              "params": params}).encode())
    msg = r.rpc()
    assert "error" in msg and msg["error"]["code"] == -32602, msg


def test_accepted_capabilities_never_break_other_upstreams(bad_topo):
    """`capabilities: {"elicitation": "yes"}` is refused at initialize (-32602): were it accepted, it
    would be forwarded as _meta.clientCapabilities to the modern upstream, which would then refuse
    every call of the session. Either initialize refuses it or the session must be usable."""
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": LEGACY, "capabilities": {"elicitation": "yes"},
                       "clientInfo": {"name": "x", "version": "1"}}}
    r = raw_request(bad_topo.url, json.dumps(init).encode())
    msg = r.rpc()
    if "error" in msg:
        assert msg["error"]["code"] == -32602, msg
        return
    s = r.headers["mcp-session-id"]
    legacy_post(bad_topo.url, s, {"jsonrpc": "2.0", "method": "notifications/initialized"})
    r = legacy_post(bad_topo.url, s, {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                      "params": {"name": "modern__add", "arguments": {"a": 1, "b": 2}}})
    out = r.rpc()
    assert "result" in out and out["result"]["content"][0]["text"] == "3", out


# ------------------------------------------------------------------------------------------------
# Size limits
# ------------------------------------------------------------------------------------------------

def _post_big(url: str, body: bytes) -> tuple[int, bytes]:
    """POST without urllib (which dies on EPIPE when the server answers before reading it all)."""
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.putrequest("POST", u.path)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Accept", "application/json, text/event-stream")
        conn.putheader("Content-Length", str(len(body)))
        for k, v in auth_headers(url).items():
            conn.putheader(k, v)
        conn.endheaders()
        try:
            conn.send(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused early; its answer is still readable
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_huge_body_is_413(bad_topo):
    pad = b"a" * (5 * 1024 * 1024)
    body = b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"pad":"' + pad + b'"}}'
    status, _ = _post_big(bad_topo.url, body)
    assert status == 413


def test_body_just_under_the_limit_is_parsed(bad_topo):
    pad = b"a" * (4 * 1024 * 1024 - 200)
    body = b'{"jsonrpc":"2.0","id":1,"method":"foo/bar","params":{"pad":"' + pad + b'"}}'
    status, out = _post_big(bad_topo.url, body)
    assert status == 400, out[:200]  # legacy, no session: refused after parsing, not for size
    assert json.loads(out)["error"]["code"] == -32600


# ------------------------------------------------------------------------------------------------
# Origin / CORS
# ------------------------------------------------------------------------------------------------

PING = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode()


@pytest.mark.parametrize("origin", ["https://evil.example", "http://localhost.evil.example", "null",
                                    "http://127.0.0.1.evil.example:80"])
def test_foreign_origin_is_403(bad_topo, origin):
    r = raw_request(bad_topo.url, PING, {"Origin": origin})
    assert r.status == 403, (r.status, r.body)
    assert "access-control-allow-origin" not in r.headers
    r = raw_request(bad_topo.url, None, {"Origin": origin, "Access-Control-Request-Method": "POST"},
                    method="OPTIONS")
    assert r.status == 403 and "access-control-allow-origin" not in r.headers, (r.status, r.headers)


def test_loopback_origin_is_allowed_with_cors_headers(bad_topo):
    origin = "http://localhost:1234"
    r = modern_post(bad_topo.url, "tools/list", {}, headers={"Origin": origin})
    assert r.status == 200, (r.status, r.body)
    assert r.headers.get("access-control-allow-origin") == origin
    assert "mcp-session-id" in r.headers.get("access-control-expose-headers", "").lower()
    assert r.rpc()["result"]["tools"]

    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "b", "version": "1"}}}
    r = raw_request(bad_topo.url, json.dumps(init).encode(), {"Origin": "http://127.0.0.1:5173"})
    assert r.status == 200 and r.headers.get("access-control-allow-origin") == "http://127.0.0.1:5173"
    assert r.headers.get("mcp-session-id")


def test_cors_preflight(bad_topo):
    origin = "http://localhost:1234"
    r = raw_request(bad_topo.url, None, {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, mcp-protocol-version, mcp-method, mcp-name, mcp-param-region",
    }, method="OPTIONS")
    assert r.status in (200, 204), (r.status, r.body)
    assert r.headers.get("access-control-allow-origin") == origin
    methods = r.headers.get("access-control-allow-methods", "").upper()
    assert "POST" in methods and "DELETE" in methods and "GET" in methods, r.headers
    allowed = {h.strip().lower() for h in r.headers.get("access-control-allow-headers", "").split(",")}
    assert {"content-type", "mcp-protocol-version", "mcp-method", "mcp-name", "mcp-param-region"} <= allowed, allowed


# ------------------------------------------------------------------------------------------------
# Sessions and headers
# ------------------------------------------------------------------------------------------------

def test_missing_session_id_on_a_legacy_request_is_400(bad_topo):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()
    rpc_error(raw_request(bad_topo.url, body), 400, -32600)
    r = raw_request(bad_topo.url, None, {"Accept": "text/event-stream"}, method="GET")
    assert r.status == 400, (r.status, r.body)
    r = raw_request(bad_topo.url, None, method="DELETE")
    assert r.status == 400, (r.status, r.body)


def test_unknown_session_id_is_404(bad_topo):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()
    r = legacy_post(bad_topo.url, "0123456789abcdef0123456789abcdef", body)
    rpc_error(r, 404, -32600)
    r = raw_request(bad_topo.url, None, {"Accept": "text/event-stream", "Mcp-Session-Id": "nope"}, method="GET")
    assert r.status == 404
    r = raw_request(bad_topo.url, None, {"Mcp-Session-Id": "nope"}, method="DELETE")
    assert r.status == 404


def test_deleted_session_is_gone(bad_topo):
    s = legacy_session(bad_topo.url)
    assert raw_request(bad_topo.url, None, {"Mcp-Session-Id": s}, method="DELETE").status == 200
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()
    rpc_error(legacy_post(bad_topo.url, s, body), 404, -32600)


def test_modern_mismatched_mcp_method_header_is_400_header_mismatch(bad_topo):
    r = modern_post(bad_topo.url, "tools/list", {}, headers={"Mcp-Method": "prompts/list"})
    rpc_error(r, 400, -32020)


def test_modern_missing_mcp_method_header_is_400_header_mismatch(bad_topo):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list",
                       "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": MODERN,
                                            "io.modelcontextprotocol/clientCapabilities": {}}}}).encode()
    rpc_error(raw_request(bad_topo.url, body, {"MCP-Protocol-Version": MODERN}), 400, -32020)


def test_modern_mismatched_mcp_name_header_is_400_header_mismatch(bad_topo):
    r = modern_post(bad_topo.url, "tools/call", {"name": "everything__echo", "arguments": {"message": "x"}},
                    name="modern__add")
    rpc_error(r, 400, -32020)


def test_modern_header_version_differs_from_meta_version(bad_topo):
    r = modern_post(bad_topo.url, "tools/list",
                    {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-01-01"}})
    assert r.status == 400, (r.status, r.body)
    assert r.json()["error"]["code"] in (-32020, -32022), r.json()


def test_modern_request_without_meta_envelope_is_invalid_params(bad_topo):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}).encode()
    r = raw_request(bad_topo.url, body, {"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/list"})
    rpc_error(r, 400, -32602)


@pytest.mark.parametrize("version", ["1999-01-01", "2099-12-31", "banana", ""])
def test_unsupported_protocol_version_header_is_400_with_supported_list(bad_topo, version):
    body = json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {}}).encode()
    r = raw_request(bad_topo.url, body, {"MCP-Protocol-Version": version, "Mcp-Method": "tools/list"})
    msg = rpc_error(r, 400, -32022)
    supported = msg["error"]["data"]["supported"]
    assert MODERN in supported and LEGACY in supported, supported


def test_get_and_delete_with_modern_header_are_405(bad_topo):
    r = raw_request(bad_topo.url, None, {"MCP-Protocol-Version": MODERN, "Accept": "text/event-stream"},
                    method="GET")
    assert r.status == 405 and "POST" in r.headers.get("allow", ""), (r.status, r.headers)
    r = raw_request(bad_topo.url, None, {"MCP-Protocol-Version": MODERN}, method="DELETE")
    assert r.status == 405, (r.status, r.headers)


def test_stray_messages_are_accepted_and_ignored(bad_topo, sid):
    # A response to a request nobody sent, an error likewise, and an unknown notification.
    for m in [{"jsonrpc": "2.0", "id": 987654, "result": {"action": "accept"}},
              {"jsonrpc": "2.0", "id": "zzz", "error": {"code": -1, "message": "x"}},
              {"jsonrpc": "2.0", "method": "notifications/made-up", "params": {"x": 1}},
              {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 424242}}]:
        r = legacy_post(bad_topo.url, sid, m)
        assert r.status == 202, (m, r.status, r.body)
    # The session still works.
    r = legacy_post(bad_topo.url, sid, {"jsonrpc": "2.0", "id": 77, "method": "tools/call",
                                        "params": {"name": "everything__echo", "arguments": {"message": "ok"}}})
    assert r.rpc()["result"]["content"][0]["text"] == "Echo: ok"


# ------------------------------------------------------------------------------------------------
# And the gateway is fine afterwards (keep this last in the file).
# ------------------------------------------------------------------------------------------------

def test_zz_gateway_survives_the_corpus(bad_topo):
    assert_gateway_healthy(bad_topo)
    st = bad_topo.gateway.status()
    assert {u["name"]: u["state"] for u in st["upstreams"]} == {"everything": "ready", "modern": "ready"}
    assert raw_request(f"{bad_topo.gateway.base}/healthz", None, method="GET").status == 200

    async def run():
        for mode in ("auto", "legacy"):
            async with Client(bad_topo.url, **client_kwargs(mode)) as c:
                r = await c.call_tool("everything__echo", {"message": f"after the corpus ({mode})"})
                assert text_of(r) == f"Echo: after the corpus ({mode})"
                assert text_of(await c.call_tool("modern__add", {"a": 1, "b": 1})) == "2"

    run_async(run())
    assert_gateway_healthy(bad_topo)
