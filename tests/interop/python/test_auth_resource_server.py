"""The gateway as an OAuth 2.1 resource server, with real peers (issue 12, points 1-6 and 9):

    Python mcp client ──► mcp-edge-gateway [auth] ──► notes (servers/header_recorder.py; the gateway's
    (ClientCredentials-     │    ▲                     static credential, "Bearer ${UP_STATIC_TOKEN}")
     OAuthProvider)         │    │ JWKS            └─► vault (servers/header_recorder.py; a token the
          │                 │    │                     gateway got itself by client credentials)
          └──── token ──────┴──► as1: servers/auth_server.mjs (npm oidc-provider), RFC 9068 at+jwt

Also as2 (another issuer, keys of its own) and an impostor (claims as1's issuer and kid, other key),
for the tokens that must be refused. Policy and rate limits each get a gateway of their own, and the
refusal to serve 0.0.0.0 without [auth] runs the binary alone.

Every process runs on free ports, logs to the test's temp dir and is killed by PID at teardown.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import urllib.parse

import httpx2
import pytest
from mcp import Client
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from auth_support import (
    AuthServer,
    ConnectionCounter,
    HeaderRecorder,
    alg_none,
    auth_toml,
    bearer,
    challenge,
    hs256_keyed_with_public_key,
    http_get,
    jwt_parts,
    start_gateway,
    tampered_payload,
    tampered_signature,
    timed,
    toml_str,
    verify_with_jwks,
    ws_upgrade_status,
)
from conftest import GATEWAY_BIN, LEGACY, MODERN, free_port, list_all, modern_meta, raw_request, run_async, text_of

PRM_PATH = "/.well-known/oauth-protected-resource"

# The authorization server's clients (as1; as2 and the impostor know the same ones).
MCP_CLIENT = {"client_id": "mcp-client", "client_secret": secrets.token_urlsafe(16), "scope": "mcp mcp:admin"}
OTHER_CLIENT = {"client_id": "other-client", "client_secret": secrets.token_urlsafe(16), "scope": "other"}
EXPIRED_CLIENT = {"client_id": "expired-client", "client_secret": secrets.token_urlsafe(16), "scope": "mcp"}
FUTURE_CLIENT = {"client_id": "future-client", "client_secret": secrets.token_urlsafe(16), "scope": "mcp"}
GW_UPSTREAM = {"client_id": "gw-upstream", "client_secret": secrets.token_urlsafe(16), "scope": "notes"}
CLIENTS = [MCP_CLIENT, OTHER_CLIENT, EXPIRED_CLIENT, FUTURE_CLIENT, GW_UPSTREAM]

# Static bearer tokens of the main gateway, and the gateway's own static upstream credential.
STATIC = {p: secrets.token_urlsafe(24) for p in ("kitchen-agent", "ops", "guest")}
STATIC_ENV = {"kitchen-agent": "GW_TOKEN_KITCHEN", "ops": "GW_TOKEN_OPS", "guest": "GW_TOKEN_GUEST"}
STATIC_SCOPES = {"kitchen-agent": ["mcp"], "ops": ["mcp", "mcp:admin"], "guest": ["other"]}
UP_STATIC_TOKEN = "up-" + secrets.token_urlsafe(24)

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "auth-test", "version": "1"}}}


class World:
    """What the module's tests share: the servers, the main gateway, and the tokens the tests got."""

    def __init__(self, tmp) -> None:
        self.tmp = tmp
        self.client_tokens: set[str] = set()  # every token a client sent the gateway (none may go upstream)


def modern_body(method: str, params: dict | None = None, req_id: int = 1) -> bytes:
    p = dict(params or {})
    p["_meta"] = modern_meta() | p.get("_meta", {})
    return json.dumps({"jsonrpc": "2.0", "id": req_id, "method": method, "params": p}).encode()


def modern_headers(method: str, name: str | None = None) -> dict[str, str]:
    h = {"MCP-Protocol-Version": MODERN, "Mcp-Method": method}
    if name is not None:
        h["Mcp-Name"] = name
    return h


def modern_call(url: str, token: str | None, method: str, params: dict | None = None, req_id: int = 1):
    h = modern_headers(method, (params or {}).get("name") if method == "tools/call" else None)
    if token is not None:
        h |= bearer(token)
    return raw_request(url, modern_body(method, params, req_id), h)


def legacy_session_with(url: str, token: str) -> str:
    r = raw_request(url, json.dumps(INIT).encode(), bearer(token))
    assert r.status == 200, (r.status, r.headers, r.body[:300])
    sid = r.headers.get("mcp-session-id")
    assert sid, r.headers
    r2 = raw_request(url, json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode(),
                     bearer(token) | {"Mcp-Session-Id": sid, "MCP-Protocol-Version": LEGACY})
    assert r2.status == 202, (r2.status, r2.body)
    return sid


def legacy_call(url: str, token: str, sid: str, msg: dict | bytes):
    body = msg if isinstance(msg, bytes) else json.dumps(msg).encode()
    return raw_request(url, body, bearer(token) | {"Mcp-Session-Id": sid, "MCP-Protocol-Version": LEGACY})


def error_of(r) -> dict:
    msg = r.rpc()
    assert "error" in msg and "result" not in msg, f"HTTP {r.status}: expected a JSON-RPC error, got {msg}"
    return msg["error"]


class MemoryTokenStorage:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


# ------------------------------------------------------------------------------------------------
# The shared world
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("auth")
    w = World(tmp)
    stops = []
    try:
        w.gw_port = free_port()
        w.audience = f"http://127.0.0.1:{w.gw_port}/mcp"
        # Where the annotate tool's $ref points: an "https" server that counts who knocks.
        w.ref_listener = ConnectionCounter()
        stops.append(w.ref_listener.stop)
        w.ref_url = f"https://127.0.0.1:{w.ref_listener.port}/schemas/extra.json"
        w.notes = HeaderRecorder(tmp, "notes", ref_url=w.ref_url)
        stops.append(w.notes.stop)
        w.vault = HeaderRecorder(tmp, "vault")
        stops.append(w.vault.stop)
        # Two more resources as1 knows: another gateway (other port), and a path under ours.
        w.other_audience = f"http://127.0.0.1:{free_port()}/mcp"
        w.sub_audience = f"{w.audience}/other"
        resources = {
            w.audience: {"scope": "mcp mcp:admin other"},
            w.other_audience: {"scope": "mcp mcp:admin"},
            w.sub_audience: {"scope": "mcp mcp:admin"},
            w.vault.url: {"scope": "notes"},
        }
        times = {"expired_clients": [EXPIRED_CLIENT["client_id"]],
                 "not_yet_valid_clients": [FUTURE_CLIENT["client_id"]]}
        w.as1 = AuthServer(tmp, "as1", CLIENTS, resources, **times)
        stops.append(w.as1.stop)
        w.as2 = AuthServer(tmp, "as2", CLIENTS, {w.audience: {"scope": "mcp mcp:admin"}})
        stops.append(w.as2.stop)
        w.impostor = AuthServer(tmp, "impostor", CLIENTS, {w.audience: {"scope": "mcp mcp:admin"}},
                                issuer=w.as1.issuer, kid=w.as1.kids[0])
        stops.append(w.impostor.stop)

        toml = auth_toml(w.as1.issuer, w.audience, [
            {"principal": p, "token_env": STATIC_ENV[p], "scopes": STATIC_SCOPES[p]} for p in STATIC])
        toml += f"""
[upstreams.notes]
url = {toml_str(w.notes.url)}
headers = {{ Authorization = "Bearer ${{UP_STATIC_TOKEN}}" }}

[upstreams.vault]
url = {toml_str(w.vault.url)}
oauth = {{ token_url = {toml_str(w.as1.token_endpoint)}, client_id = {toml_str(GW_UPSTREAM["client_id"])}, client_secret_env = "GW_UP_SECRET", scopes = ["notes"], resource = {toml_str(w.vault.url)} }}
"""
        env = {STATIC_ENV[p]: t for p, t in STATIC.items()} | {
            "UP_STATIC_TOKEN": UP_STATIC_TOKEN, "GW_UP_SECRET": GW_UPSTREAM["client_secret"],
            # Secrets stay out of the log at every level, debug included.
            "RUST_LOG": "debug"}
        w.gw = start_gateway(tmp, "gateway", toml, w.gw_port, env, STATIC["ops"], {"notes", "vault"})
        stops.append(w.gw.stop)
        w.client_tokens |= set(STATIC.values())
        yield w
    finally:
        for stop in reversed(stops):
            stop()


def good_token(w: World, scope: str = "mcp") -> str:
    t = w.as1.token(MCP_CLIENT["client_id"], w.audience, scope)
    w.client_tokens.add(t)
    return t


# ------------------------------------------------------------------------------------------------
# 1. Metadata, challenges, the real client
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [PRM_PATH, PRM_PATH + "/mcp"])
def test_protected_resource_metadata_is_served_without_a_token(world, path):
    r = http_get(world.gw.base + path)
    assert r.status == 200, (r.status, r.body[:300])
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    doc = r.json()
    assert doc.get("resource") == world.audience, doc
    assert doc.get("authorization_servers") == [world.as1.issuer], doc
    assert "mcp" in doc.get("scopes_supported", []), doc
    assert doc.get("bearer_methods_supported") == ["header"], doc


def test_no_token_gets_401_with_the_resource_metadata_challenge(world):
    r = raw_request(world.gw.url, json.dumps(INIT).encode())
    assert r.status == 401, (r.status, r.body[:300])
    c = challenge(r)
    assert c[""].lower() == "bearer", c
    assert c.get("resource_metadata") == f"{world.gw.base}{PRM_PATH}/mcp", c
    assert "mcp" in c.get("scope", "").split(), c
    assert "error" not in c, f"a missing token is no error (RFC 6750 §3.1): {c}"
    # The modern era and GET are behind the same door, and so is the WebSocket face.
    assert modern_call(world.gw.url, None, "tools/list").status == 401
    assert raw_request(world.gw.url, None, {"Accept": "text/event-stream"}, method="GET").status == 401
    assert ws_upgrade_status(world.gw_port) == 401
    # /healthz stays open.
    assert http_get(f"{world.gw.base}/healthz").status == 200


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_python_client_credentials_start_from_401_discover_and_call_tools(world, mode):
    """mcp's ClientCredentialsOAuthProvider, given only the gateway's URL, the client's id/secret and
    the issuer it belongs to: its first request is refused 401, it reads the gateway's resource metadata,
    then the authorization server's, gets a token for the gateway's resource and calls tools."""
    seen: list[tuple[str, str, int]] = []  # responses
    sent: list[tuple[str, str]] = []  # requests (one more than responses when a connection drops)

    async def on_request(request: httpx2.Request) -> None:
        sent.append((request.method, str(request.url)))

    async def on_response(response: httpx2.Response) -> None:
        seen.append((response.request.method, str(response.request.url), response.status_code))

    storage = MemoryTokenStorage()
    provider = ClientCredentialsOAuthProvider(
        server_url=world.gw.url, storage=storage, client_id=MCP_CLIENT["client_id"],
        client_secret=MCP_CLIENT["client_secret"], issuer=world.as1.issuer)

    async def run():
        http = create_mcp_http_client(auth=provider)
        http.event_hooks = {"request": [on_request], "response": [on_response]}
        async with http:
            async with Client(streamable_http_client(world.gw.url, http_client=http), mode=mode,
                              read_timeout_seconds=30) as c:
                tools, _ = await list_all(c.list_tools, "tools")
                names = {t.name for t in tools}
                assert {"notes__echo", "notes__read_note", "vault__echo"} <= names, names
                r = await c.call_tool("notes__echo", {"text": f"hello via oauth ({mode})"})
                assert text_of(r) == f"hello via oauth ({mode})", r
                r = await c.call_tool("vault__read_note", {"id": "n1"})
                assert text_of(r) == "note n1", r

    try:
        run_async(run())
    except BaseException as e:
        e.add_note(f"requests sent: {sent}\nresponses (method, url, status): {seen}")
        raise

    first = seen[0]
    assert first[1].startswith(world.gw.url) and first[2] == 401, f"the first request was not refused: {seen}"
    urls = [(m, u.split("?")[0], s) for m, u, s in seen]
    assert ("GET", f"{world.gw.base}{PRM_PATH}/mcp", 200) in urls, f"no resource metadata fetched: {seen}"
    assert any(u.startswith(world.as1.base + "/.well-known/") and s == 200 for _, u, s in urls), \
        f"no authorization server metadata fetched: {seen}"
    token_posts = [s for m, u, s in urls if m == "POST" and u == world.as1.token_endpoint]
    assert token_posts == [200], f"expected one token request: {seen}"
    after = [s for m, u, s in urls[urls.index(("POST", world.as1.token_endpoint, 200)):] if u.startswith(world.gw.url)]
    assert after and all(s in (200, 202) for s in after), f"refused after getting a token: {seen}"

    token = storage.tokens.access_token
    world.client_tokens.add(token)
    header, claims, _ = jwt_parts(token)
    assert header["typ"] == "at+jwt" and header["alg"] == "RS256", header
    assert claims["aud"] == world.audience and claims["iss"] == world.as1.issuer, claims
    assert "mcp" in claims["scope"].split(), claims
    grant = [g for g in world.as1.grants() if g["client_id"] == MCP_CLIENT["client_id"]][-1]
    assert grant["resource"] == world.audience and grant["status"] == 200, grant


def test_a_good_token_is_accepted(world):
    """The control for the bad tokens below: the same request with a token straight from as1 works."""
    token = good_token(world)
    r = modern_call(world.gw.url, token, "tools/list")
    assert r.status == 200, (r.status, r.headers, r.body[:300])
    assert any(t["name"] == "notes__echo" for t in r.rpc()["result"]["tools"]), r.rpc()
    assert raw_request(world.gw.url, json.dumps(INIT).encode(), bearer(token)).status == 200
    assert ws_upgrade_status(world.gw_port, bearer(token)) == 101


BAD_TOKENS = {
    "other_audience": lambda w: w.as1.token(MCP_CLIENT["client_id"], w.other_audience),
    "audience_is_a_path_under_ours": lambda w: w.as1.token(MCP_CLIENT["client_id"], w.sub_audience),
    "expired": lambda w: w.as1.token(EXPIRED_CLIENT["client_id"], w.audience),
    "not_yet_valid": lambda w: w.as1.token(FUTURE_CLIENT["client_id"], w.audience),
    "other_issuer": lambda w: w.as2.token(MCP_CLIENT["client_id"], w.audience),
    "our_issuer_and_kid_other_key": lambda w: w.impostor.token(MCP_CLIENT["client_id"], w.audience),
    "tampered_signature": lambda w: tampered_signature(good_token(w)),
    "tampered_claims": lambda w: tampered_payload(good_token(w), scope="mcp mcp:admin", client_id="ops"),
    "alg_none": lambda w: alg_none(good_token(w)),
    "hs256_keyed_with_the_public_key": lambda w: hs256_keyed_with_public_key(good_token(w), w.as1.jwks()),
    "opaque_token_without_resource": lambda w: w.as1.token(MCP_CLIENT["client_id"], None),
    "not_a_token": lambda w: "hello",
}


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
def test_bad_tokens_get_401_invalid_token(world, kind):
    token = BAD_TOKENS[kind](world)
    world.client_tokens.add(token)
    if kind == "expired":
        assert jwt_parts(token)[1]["exp"] < time.time() - 600, jwt_parts(token)
    for r in (raw_request(world.gw.url, json.dumps(INIT).encode(), bearer(token)),
              modern_call(world.gw.url, token, "tools/list")):
        assert r.status == 401, f"{kind}: HTTP {r.status} {r.body[:300]!r}"
        c = challenge(r)
        assert c[""].lower() == "bearer" and c.get("error") == "invalid_token", c
        assert c.get("resource_metadata") == f"{world.gw.base}{PRM_PATH}/mcp", c
    assert ws_upgrade_status(world.gw_port, bearer(token)) == 401


@pytest.mark.parametrize("who", ["no_token", "bad_token", "no_scope"])
def test_a_refused_request_leaves_the_connection_usable_or_closes_it_cleanly(world, who):
    """A client that sends its headers and then its body (as httpx often does, in two writes) and is
    refused before the body arrives: the answer says `Connection: close`, or the next request on the
    same keep-alive connection is answered. (The mcp client's OAuth flow reuses the connection of the
    401 for the metadata GET; a connection dropped silently fails it with "Server disconnected".)"""
    import http.client

    token = {"no_token": None, "bad_token": "hello", "no_scope": STATIC["guest"]}[who]
    body = json.dumps(INIT).encode()
    conn = http.client.HTTPConnection("127.0.0.1", world.gw_port, timeout=10)
    try:
        conn.putrequest("POST", "/mcp")
        for k, v in {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                     "Content-Length": str(len(body)), **(bearer(token) if token else {})}.items():
            conn.putheader(k, v)
        conn.endheaders()
        time.sleep(0.1)  # the refusal can come before the body
        conn.send(body)
        r = conn.getresponse()
        r.read()
        assert r.status in (401, 403), r.status
        if (r.getheader("connection") or "").lower() == "close":
            return
        try:
            conn.request("GET", PRM_PATH + "/mcp")
            second = conn.getresponse()
            second.read()
        except (OSError, http.client.HTTPException) as e:
            raise AssertionError(f"after a {r.status} without `Connection: close` the gateway dropped the "
                                 f"keep-alive connection: the next request on it failed with {e!r}") from None
        assert second.status == 200, second.status
    finally:
        conn.close()


def test_a_session_belongs_to_the_principal_that_opened_it(world):
    """A legacy session opened by one principal is not found (404) by another's token, so a leaked
    or guessed Mcp-Session-Id is of no use without its owner's token; the owner goes on using it."""
    url = world.gw.url
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    r = raw_request(url, json.dumps(init).encode(), bearer(STATIC["kitchen-agent"]))
    assert r.status == 200, (r.status, r.body[:200])
    sid = r.headers["mcp-session-id"]
    ping = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "ping"}).encode()
    other = raw_request(url, ping, bearer(STATIC["ops"]) | {"Mcp-Session-Id": sid})
    assert other.status == 404, (other.status, other.body[:200])
    for method in ("GET", "DELETE"):
        h = bearer(STATIC["ops"]) | {"Mcp-Session-Id": sid}
        assert raw_request(url, None, h, method=method).status == 404, method
    mine = raw_request(url, ping, bearer(STATIC["kitchen-agent"]) | {"Mcp-Session-Id": sid})
    assert mine.status == 200 and json.loads(mine.body)["result"] == {}, (mine.status, mine.body[:200])


def test_a_token_in_the_query_string_gets_401(world):
    token = good_token(world)
    q = urllib.parse.urlencode({"access_token": token})
    r = raw_request(f"{world.gw.url}?{q}", json.dumps(INIT).encode())
    assert r.status == 401, (r.status, r.body[:300])
    assert challenge(r).get("resource_metadata") == f"{world.gw.base}{PRM_PATH}/mcp"
    # Not even alongside a good header: a token in a URL ends up in logs.
    r = raw_request(f"{world.gw.url}?{q}", json.dumps(INIT).encode(), bearer(token))
    assert r.status == 401, (r.status, r.body[:300])


def test_a_token_without_the_scope_gets_403_insufficient_scope(world):
    scoped_out = world.as1.token(OTHER_CLIENT["client_id"], world.audience, scope="other")
    world.client_tokens.add(scoped_out)
    assert jwt_parts(scoped_out)[1].get("scope") == "other", jwt_parts(scoped_out)
    # The other client may not even ask for "mcp".
    status, body = world.as1.token_response(OTHER_CLIENT["client_id"], world.audience, "mcp")
    assert status == 400 and body.get("error") == "invalid_scope", (status, body)
    for token in (scoped_out, STATIC["guest"]):
        for r in (raw_request(world.gw.url, json.dumps(INIT).encode(), bearer(token)),
                  modern_call(world.gw.url, token, "tools/list")):
            assert r.status == 403, (r.status, r.body[:300])
            c = challenge(r)
            assert c[""].lower() == "bearer" and c.get("error") == "insufficient_scope", c
            assert "mcp" in c.get("scope", "").split(), c
            assert c.get("resource_metadata") == f"{world.gw.base}{PRM_PATH}/mcp", c


def test_a_browser_on_an_allowed_origin_can_read_the_challenge(world):
    """CORS: the preflight needs no token and allows the Authorization header; a 401 to an allowed
    origin exposes WWW-Authenticate, so a browser client can find the metadata."""
    origin = "http://localhost:5173"
    r = raw_request(world.gw.url, None, {"Origin": origin, "Access-Control-Request-Method": "POST",
                                         "Access-Control-Request-Headers": "authorization, content-type"},
                    method="OPTIONS")
    assert r.status in (200, 204), (r.status, r.headers)
    assert r.headers.get("access-control-allow-origin") == origin, r.headers
    allowed = {h.strip().lower() for h in r.headers.get("access-control-allow-headers", "").split(",")}
    assert "authorization" in allowed, r.headers
    r = raw_request(world.gw.url, json.dumps(INIT).encode(), {"Origin": origin})
    assert r.status == 401, (r.status, r.body[:200])
    assert r.headers.get("access-control-allow-origin") == origin, r.headers
    exposed = {h.strip().lower() for h in r.headers.get("access-control-expose-headers", "").split(",")}
    assert "www-authenticate" in exposed, r.headers


def test_status_and_admin_need_the_admin_scope(world):
    base = world.gw.base
    assert http_get(f"{base}/status").status == 401
    for token in (STATIC["kitchen-agent"], good_token(world, "mcp")):
        r = http_get(f"{base}/status", bearer(token))
        assert r.status == 403, (r.status, r.body[:200])
        assert challenge(r).get("error") == "insufficient_scope"
        assert http_get(f"{base}/admin/queue", bearer(token)).status == 403
    for token in (STATIC["ops"], good_token(world, "mcp mcp:admin")):
        r = http_get(f"{base}/status", bearer(token))
        assert r.status == 200, (r.status, r.body[:200])
        assert {u["name"] for u in r.json()["upstreams"]} == {"notes", "vault"}


# ------------------------------------------------------------------------------------------------
# 2. No passthrough
# ------------------------------------------------------------------------------------------------

def test_upstreams_see_only_the_gateways_own_credentials(world):
    """Calls made with an OAuth token and with a static token reach both upstreams; `notes` only ever
    sees the static credential from ${UP_STATIC_TOKEN}, `vault` only tokens as1 issued to the gateway's
    own client for vault's resource, and no header of any request carries a token of a client."""
    marker = secrets.token_hex(4)
    oauth = good_token(world)
    for token in (oauth, STATIC["kitchen-agent"]):
        for up in ("notes", "vault"):
            r = modern_call(world.gw.url, token, "tools/call",
                            {"name": f"{up}__echo", "arguments": {"text": f"{marker} {up}"}})
            assert r.status == 200, (r.status, r.body[:300])
            assert r.rpc()["result"]["content"][0]["text"] == f"{marker} {up}", r.rpc()
        sid = legacy_session_with(world.gw.url, token)
        r = legacy_call(world.gw.url, token, sid, {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "vault__read_note", "arguments": {"id": marker}}})
        assert r.rpc()["result"]["content"][0]["text"] == f"note {marker}", r.rpc()

    for rec in (world.notes, world.vault):
        echoes = [m for m in rec.tool_calls("echo") if (m.get("arguments") or {}).get("text", "").startswith(marker)]
        assert len(echoes) == 2, f"{rec.name}: the calls did not arrive: {echoes}"

    notes_auth = {e["headers"].get("authorization") for e in world.notes.entries()}
    assert notes_auth == {f"Bearer {UP_STATIC_TOKEN}"}, notes_auth

    vault_auth = {e["headers"].get("authorization") for e in world.vault.entries()}
    assert vault_auth and all(a and a.startswith("Bearer ") for a in vault_auth), vault_auth
    jwks = world.as1.jwks()
    for a in vault_auth:
        claims = verify_with_jwks(a[len("Bearer "):], jwks, audience=world.vault.url, issuer=world.as1.issuer)
        assert claims["client_id"] == GW_UPSTREAM["client_id"] and claims["scope"] == "notes", claims
    gw_grants = [g for g in world.as1.grants() if g["client_id"] == GW_UPSTREAM["client_id"]]
    assert gw_grants and all(g["resource"] == world.vault.url and g["status"] == 200 for g in gw_grants), gw_grants
    # Cached, not one token per request.
    assert len(gw_grants) <= 2 < len(world.vault.entries()), (gw_grants, len(world.vault.entries()))

    client_tokens = world.client_tokens | {oauth}
    for rec in (world.notes, world.vault):
        for e in rec.entries():
            for k, v in e["headers"].items():
                leaked = [t for t in client_tokens if t in v]
                assert not leaked, f"{rec.name} got a client token in header {k}: {e}"
            assert not any(t in e["query"] for t in client_tokens), e


def test_secrets_stay_out_of_the_log_and_status(world):
    # Make sure the gateway has used everything at least once.
    r = modern_call(world.gw.url, good_token(world), "tools/call", {"name": "vault__echo", "arguments": {"text": "x"}})
    assert r.status == 200, (r.status, r.body[:300])
    upstream_tokens = {e["headers"]["authorization"][len("Bearer "):] for e in world.vault.entries()
                       if e["headers"].get("authorization")}
    secret_values = (set(STATIC.values()) | {UP_STATIC_TOKEN, GW_UPSTREAM["client_secret"]} | upstream_tokens
                     | world.client_tokens)
    secret_values = {s for s in secret_values if len(s) >= 16}
    status = http_get(f"{world.gw.base}/status", bearer(STATIC["ops"])).body.decode()
    log = world.gw.log_text()
    for where, text in (("/status", status), ("the gateway's log", log)):
        found = [s[:12] + "…" for s in secret_values if s in text]
        assert not found, f"secrets in {where}: {found}"


# ------------------------------------------------------------------------------------------------
# 3. Not on all interfaces without auth
# ------------------------------------------------------------------------------------------------

def test_serve_on_all_interfaces_without_auth_refuses_to_start(tmp_path):
    cfg = tmp_path / "noauth.toml"
    cfg.write_text('[upstreams.edge]\nbuiltin = "edge"\n')
    for args in (["--config", str(cfg)], []):
        port = free_port()
        try:
            p = subprocess.run([GATEWAY_BIN, "serve", *args, "--listen", f"0.0.0.0:{port}", "--no-store"],
                               capture_output=True, text=True, timeout=20)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"serve {args} on 0.0.0.0 without [auth] kept running: {e.stderr!r}") from None
        out = p.stderr + p.stdout
        assert p.returncode != 0, f"exit code 0: {out}"
        assert "0.0.0.0" in out, f"the message does not say which address: {out}"
        assert "[auth]" in out and "--allow-unauthenticated" in out, f"the message does not say what to do: {out}"
    # The escape hatch the message names does start it.
    port = free_port()
    proc = subprocess.Popen([GATEWAY_BIN, "serve", "--config", str(cfg), "--listen", f"0.0.0.0:{port}",
                             "--no-store", "--allow-unauthenticated"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"--allow-unauthenticated exited {proc.returncode}: {proc.stderr.read()}"
            try:
                if http_get(f"http://127.0.0.1:{port}/healthz", timeout=1).status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("--allow-unauthenticated: /healthz never answered")
    finally:
        proc.kill()
        proc.wait(10)


# ------------------------------------------------------------------------------------------------
# 4. Policy
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def policy_world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("policy")
    tokens = {p: secrets.token_urlsafe(24) for p in ("alice", "bob", "admin")}
    rec = HeaderRecorder(tmp, "policy-notes")
    try:
        toml = auth_toml(None, None, [
            {"principal": "alice", "token_env": "POL_ALICE", "scopes": ["mcp"]},
            {"principal": "bob", "token_env": "POL_BOB", "scopes": ["mcp"]},
            {"principal": "admin", "token_env": "POL_ADMIN", "scopes": ["mcp", "mcp:admin"]},
        ])
        toml += f"""
[[policy.rules]]
principals = ["alice"]
allow = ["notes__*"]
deny = ["notes__delete_*"]

[[policy.rules]]
principals = ["bob"]
allow = ["notes__echo"]

[[policy.rules]]
principals = ["admin"]
allow = ["*"]

[upstreams.notes]
url = {toml_str(rec.url)}
"""
        env = {"POL_ALICE": tokens["alice"], "POL_BOB": tokens["bob"], "POL_ADMIN": tokens["admin"]}
        gw = start_gateway(tmp, "policy-gateway", toml, free_port(), env, tokens["admin"], {"notes"})
        try:
            yield gw, rec, tokens
        finally:
            gw.stop()
    finally:
        rec.stop()


def _tool_names(url: str, token: str) -> set[str]:
    async def run():
        http = create_mcp_http_client(headers=bearer(token))
        async with http:
            async with Client(streamable_http_client(url, http_client=http), read_timeout_seconds=30) as c:
                tools, _ = await list_all(c.list_tools, "tools")
                return {t.name for t in tools}

    return run_async(run())


def test_two_principals_list_different_tools(policy_world):
    gw, _, tokens = policy_world
    all_tools = {"notes__read_note", "notes__delete_note", "notes__echo", "notes__set_level", "notes__annotate"}
    assert _tool_names(gw.url, tokens["admin"]) == all_tools
    assert _tool_names(gw.url, tokens["alice"]) == all_tools - {"notes__delete_note"}
    assert _tool_names(gw.url, tokens["bob"]) == {"notes__echo"}


def test_a_denied_call_is_refused_and_never_reaches_the_upstream(policy_world):
    gw, rec, tokens = policy_world
    marker = secrets.token_hex(4)
    denied = [("alice", "notes__delete_note", {"id": marker}), ("bob", "notes__read_note", {"id": marker}),
              ("bob", "notes__delete_note", {"id": marker})]
    for who, name, args in denied:
        r = modern_call(gw.url, tokens[who], "tools/call", {"name": name, "arguments": args})
        err = error_of(r)
        assert err["code"] == -32003 and "policy" in err["message"], f"{who} {name}: {err}"
        sid = legacy_session_with(gw.url, tokens[who])
        r = legacy_call(gw.url, tokens[who], sid, {"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                                                    "params": {"name": name, "arguments": args}})
        err = error_of(r)
        assert err["code"] == -32003 and "policy" in err["message"], f"{who} {name} (legacy): {err}"
    # What the policy allows goes through (so the log below is the upstream's real one).
    r = modern_call(gw.url, tokens["alice"], "tools/call", {"name": "notes__read_note", "arguments": {"id": marker}})
    assert r.rpc()["result"]["content"][0]["text"] == f"note {marker}", r.rpc()
    arrived = [(m["name"], m["arguments"]) for m in rec.tool_calls() if (m.get("arguments") or {}).get("id") == marker]
    assert arrived == [("read_note", {"id": marker})], f"the upstream saw {arrived}"


# ------------------------------------------------------------------------------------------------
# 5. Argument validation
# ------------------------------------------------------------------------------------------------

INVALID_ARGS = [
    ({"level": 11, "target": {"room": "kitchen"}}, "/level"),
    ({"level": "3", "target": {"room": "kitchen"}}, "/level"),
    ({"level": 3, "target": {"room": "attic"}}, "/target/room"),
    ({"level": 3, "target": {"room": "hall", "window": True}}, "/target"),
]


def _mentions(err: dict, path: str) -> bool:
    return path in err.get("message", "") or path in json.dumps(err.get("data"))


@pytest.mark.parametrize("args,path", INVALID_ARGS, ids=["over_maximum", "wrong_type", "not_in_enum", "extra_property"])
def test_invalid_arguments_are_refused_with_the_path_and_never_arrive(world, args, path):
    token = STATIC["kitchen-agent"]
    before = len(world.notes.tool_calls("set_level"))
    r = modern_call(world.gw.url, token, "tools/call", {"name": "notes__set_level", "arguments": args})
    err = error_of(r)
    assert err["code"] == -32602 and _mentions(err, path), f"modern: want -32602 naming {path}: {err}"
    sid = legacy_session_with(world.gw.url, token)
    r = legacy_call(world.gw.url, token, sid, {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                                               "params": {"name": "notes__set_level", "arguments": args}})
    err = error_of(r)
    assert err["code"] == -32602 and _mentions(err, path), f"legacy: want -32602 naming {path}: {err}"
    assert len(world.notes.tool_calls("set_level")) == before, world.notes.tool_calls("set_level")[before:]


def test_valid_arguments_pass(world):
    token = STATIC["kitchen-agent"]
    r = modern_call(world.gw.url, token, "tools/call",
                    {"name": "notes__set_level", "arguments": {"level": 10, "target": {"room": "hall"}}})
    assert r.rpc()["result"]["content"][0]["text"] == "level 10 in hall", r.rpc()
    sid = legacy_session_with(world.gw.url, token)
    r = legacy_call(world.gw.url, token, sid, {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
        "name": "notes__set_level", "arguments": {"level": 0, "target": {"room": "kitchen"}}}})
    assert r.rpc()["result"]["content"][0]["text"] == "level 0 in kitchen", r.rpc()
    calls = [m["arguments"] for m in world.notes.tool_calls("set_level")]
    assert {"level": 10, "target": {"room": "hall"}} in calls and {"level": 0, "target": {"room": "kitchen"}} in calls
    for a in calls:  # every call that ever arrived was a valid one
        assert a["level"] in range(11) and a["target"].keys() == {"room"} and a["target"]["room"] in ("kitchen", "hall"), a


def test_a_schema_with_an_https_ref_causes_no_network_request(world):
    token = STATIC["kitchen-agent"]
    listed = modern_call(world.gw.url, token, "tools/list").rpc()["result"]["tools"]
    schema = next(t for t in listed if t["name"] == "notes__annotate")["inputSchema"]
    assert schema["properties"]["extra"]["$ref"] == world.ref_url, schema
    for args in ({"text": "hi"}, {"text": "hi", "extra": {"k": 1}}):
        (r, took) = timed(modern_call, world.gw.url, token, "tools/call", {"name": "notes__annotate", "arguments": args})
        msg = r.rpc()
        assert "result" in msg or "error" in msg, msg
        assert took < 5, f"took {took:.1f}s"
    time.sleep(0.3)
    assert world.ref_listener.count == 0, f"{world.ref_listener.count} connection(s) to the $ref's host"


# ------------------------------------------------------------------------------------------------
# 6. Rate limits
# ------------------------------------------------------------------------------------------------

RPM = 30


@pytest.fixture(scope="module")
def limit_world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("limits")
    tokens = {p: secrets.token_urlsafe(24) for p in ("burst", "calm", "watch")}
    rec = HeaderRecorder(tmp, "limit-notes")
    try:
        toml = auth_toml(None, None, [
            {"principal": "burst", "token_env": "LIM_BURST", "scopes": ["mcp"]},
            {"principal": "calm", "token_env": "LIM_CALM", "scopes": ["mcp"]},
            {"principal": "watch", "token_env": "LIM_WATCH", "scopes": ["mcp", "mcp:admin"]},
        ])
        toml += f"""
[limits]
requests_per_minute = {RPM}

[upstreams.notes]
url = {toml_str(rec.url)}
"""
        env = {"LIM_BURST": tokens["burst"], "LIM_CALM": tokens["calm"], "LIM_WATCH": tokens["watch"]}
        gw = start_gateway(tmp, "limit-gateway", toml, free_port(), env, tokens["watch"], {"notes"})
        try:
            yield gw, rec, tokens
        finally:
            gw.stop()
    finally:
        rec.stop()


def test_a_burst_over_the_limit_gets_429_and_others_are_unaffected(limit_world):
    gw, _, tokens = limit_world
    ok = 0
    t0 = time.monotonic()
    limited = None
    for i in range(4 * RPM):
        r = modern_call(gw.url, tokens["burst"], "tools/list", req_id=i)
        if r.status == 429:
            limited = r
            break
        assert r.status == 200, (r.status, r.body[:300])
        ok += 1
    elapsed = time.monotonic() - t0
    assert limited is not None, f"{ok} requests in {elapsed:.1f}s and no 429"
    # A full bucket holds RPM requests; it refills RPM per minute meanwhile.
    assert RPM <= ok <= RPM + int(elapsed * RPM / 60) + 1, f"429 after {ok} requests in {elapsed:.1f}s"
    retry_after = limited.headers.get("retry-after")
    assert retry_after and retry_after.isdigit() and 1 <= int(retry_after) <= 60, limited.headers
    assert "ratelimit" in limited.headers and "ratelimit-policy" in limited.headers, limited.headers

    # Another principal is unaffected, and so is the legacy era for it.
    r = modern_call(gw.url, tokens["calm"], "tools/call", {"name": "notes__echo", "arguments": {"text": "calm"}})
    assert r.status == 200 and r.rpc()["result"]["content"][0]["text"] == "calm", (r.status, r.body[:300])
    # The limited one stays limited until the wait is over...
    assert modern_call(gw.url, tokens["burst"], "tools/list").status == 429
    time.sleep(int(retry_after) + 0.2)
    # ...and then its calls succeed.
    r = modern_call(gw.url, tokens["burst"], "tools/call", {"name": "notes__echo", "arguments": {"text": "again"}})
    assert r.status == 200 and r.rpc()["result"]["content"][0]["text"] == "again", (r.status, r.headers, r.body[:300])


# ------------------------------------------------------------------------------------------------
# 9. Shapes the schema rules out
# ------------------------------------------------------------------------------------------------

BAD_META = [1, "x", []]
BAD_ARGUMENTS = [None, "x", [], 1]
META_METHODS = ["tools/list", "tools/call", "prompts/list", "resources/list", "resources/templates/list"]


def _shape_cases():
    for meta in BAD_META:
        for method in META_METHODS:
            yield f"{method}-_meta={json.dumps(meta)}", method, {"_meta": meta}
    for args in BAD_ARGUMENTS:
        yield f"tools/call-arguments={json.dumps(args)}", "tools/call", {"arguments": args}


SHAPES = list(_shape_cases())


def _params(method: str, extra: dict) -> dict:
    p = {"name": "notes__echo"} if method == "tools/call" else {}
    if "arguments" in extra or method != "tools/call":
        return p | extra
    return p | {"arguments": {"text": "never"}} | extra


def _calls_so_far(world) -> int:
    return len(world.notes.tool_calls()) + len(world.vault.tool_calls())


def _assert_nothing_bad_arrived(world, calls_before: int) -> None:
    calls = world.notes.tool_calls() + world.vault.tool_calls()
    assert len(calls) == calls_before, f"tools/call reached an upstream: {calls[calls_before:]}"
    for rec in (world.notes, world.vault):
        for m in rec.rpcs():
            assert m.get("meta_type") in (None, "object"), f"{rec.name} got a non-object _meta: {m}"
            if m.get("method") == "tools/call":
                assert m.get("arguments_type") in (None, "object"), f"{rec.name} got non-object arguments: {m}"


@pytest.mark.parametrize("case", SHAPES, ids=[c[0] for c in SHAPES])
def test_non_object_meta_or_arguments_in_a_legacy_session_get_32602_at_once(world, case):
    _, method, extra = case
    token = STATIC["kitchen-agent"]
    sid = legacy_session_with(world.gw.url, token)
    calls_before = _calls_so_far(world)
    msg = {"jsonrpc": "2.0", "id": 7, "method": method, "params": _params(method, extra)}
    r, took = timed(legacy_call, world.gw.url, token, sid, msg)
    assert took < 3, f"answered after {took:.1f}s"
    err = error_of(r)
    assert err["code"] == -32602, err
    assert r.rpc().get("id") == 7, r.rpc()
    _assert_nothing_bad_arrived(world, calls_before)


@pytest.mark.parametrize("case", SHAPES, ids=[c[0] for c in SHAPES])
def test_non_object_meta_or_arguments_in_the_modern_era_get_32602_at_once(world, case):
    _, method, extra = case
    token = STATIC["kitchen-agent"]
    calls_before = _calls_so_far(world)
    params = _params(method, extra)
    if "_meta" not in extra:
        params["_meta"] = modern_meta()  # a good envelope: only `arguments` is wrong
    body = json.dumps({"jsonrpc": "2.0", "id": 8, "method": method, "params": params}).encode()
    h = modern_headers(method, "notes__echo" if method == "tools/call" else None) | bearer(token)
    r, took = timed(raw_request, world.gw.url, body, h)
    assert took < 3, f"answered after {took:.1f}s"
    err = error_of(r)
    assert err["code"] == -32602, err
    assert r.rpc().get("id") == 8, r.rpc()
    _assert_nothing_bad_arrived(world, calls_before)


def test_zz_the_gateway_is_healthy_after_all_this(world):
    assert world.gw.alive(), world.gw.log_tail()
    assert "panicked" not in world.gw.log_text(), world.gw.log_tail()
    r = modern_call(world.gw.url, STATIC["kitchen-agent"], "tools/call",
                    {"name": "notes__echo", "arguments": {"text": "still here"}})
    assert r.rpc()["result"]["content"][0]["text"] == "still here", r.rpc()
