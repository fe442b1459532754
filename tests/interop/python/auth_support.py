"""Helpers for the gateway's auth tests (test_auth_resource_server.py): the real authorization server
(servers/auth_server.mjs, npm oidc-provider), the header-recording upstream (servers/header_recorder.py),
a listener that counts the connections it is offered, bad tokens crafted from good ones, the gateway's
TOML config, and the bits of HTTP the tests look at (WWW-Authenticate challenges).

    test ──► mcp-edge-gateway [auth] ──► notes (header_recorder.py, static ${ENV} credential)
       │              │              └─► vault (header_recorder.py, OAuth client credentials)
       └──────────────┴──────────────► auth_server.mjs (oidc-provider): tokens and JWKS
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from conftest import INTEROP, PYTHON, Gateway, Raw, _connectable, wait_until

AUTH_SERVER = INTEROP / "servers/auth_server.mjs"
HEADER_RECORDER = INTEROP / "servers/header_recorder.py"
NODE = os.environ.get("NODE", "node")


# ------------------------------------------------------------------------------------------------
# The authorization server
# ------------------------------------------------------------------------------------------------

class AuthServer:
    """servers/auth_server.mjs (oidc-provider) on a free port. `clients`: [{client_id, client_secret,
    scope}]; `resources`: {resource URI: {"scope": "...", "ttl": s}}; see the server for the rest."""

    def __init__(self, workdir: Path, name: str, clients: list[dict], resources: dict[str, dict],
                 **extra: Any) -> None:
        self.workdir = workdir
        self.name = name
        self.clients = {c["client_id"]: c for c in clients}
        self.config_path = workdir / f"{name}.json"
        self.config_path.write_text(json.dumps({"clients": clients, "resources": resources, **extra}, indent=1))
        self.log = workdir / f"{name}.grants.jsonl"
        self.stderr_path = workdir / f"{name}.stderr.log"
        with self.stderr_path.open("w") as err:
            self.proc = subprocess.Popen([NODE, str(AUTH_SERVER), "--config", str(self.config_path),
                                          "--log", str(self.log)],
                                         stdout=subprocess.PIPE, stderr=err, text=True, cwd=INTEROP)
        line = self.proc.stdout.readline()
        try:
            info = json.loads(line)
        except ValueError:
            self.stop()
            raise AssertionError(f"{name} (auth_server.mjs) did not start: {line!r}\n{self.stderr()}") from None
        self.issuer: str = info["issuer"]
        self.port: int = info["port"]
        self.token_endpoint: str = info["token_endpoint"]
        self.jwks_uri: str = info["jwks_uri"]
        self.kids: list[str] = info["kids"]
        wait_until(lambda: _connectable(self.port), 10, f"{name} on port {self.port}")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def token_response(self, client_id: str, resource: str | None, scope: str | None = None,
                       secret: str | None = None) -> tuple[int, dict]:
        """POST /token (client_credentials, client_secret_basic): (HTTP status, JSON body)."""
        secret = self.clients[client_id]["client_secret"] if secret is None else secret
        form = {"grant_type": "client_credentials"}
        if resource is not None:
            form["resource"] = resource
        if scope is not None:
            form["scope"] = scope
        basic = base64.b64encode(f"{urllib.parse.quote(client_id)}:{urllib.parse.quote(secret)}".encode()).decode()
        req = urllib.request.Request(self.token_endpoint, data=urllib.parse.urlencode(form).encode(),
                                     headers={"Authorization": f"Basic {basic}",
                                              "Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def token(self, client_id: str, resource: str | None, scope: str | None = "mcp") -> str:
        """An access token for `client_id` (which must get one)."""
        status, body = self.token_response(client_id, resource, scope)
        assert status == 200 and "access_token" in body, f"{self.name}: no token for {client_id}: {status} {body}"
        return body["access_token"]

    def jwks(self) -> dict:
        with urllib.request.urlopen(self.jwks_uri, timeout=10) as r:
            return json.load(r)

    def grants(self) -> list[dict]:
        """The token requests it answered, in order (see --log in the server)."""
        try:
            return [json.loads(ln) for ln in self.log.read_text().splitlines() if ln.strip()]
        except FileNotFoundError:
            return []

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# ------------------------------------------------------------------------------------------------
# The recording upstream
# ------------------------------------------------------------------------------------------------

class HeaderRecorder:
    """servers/header_recorder.py over Streamable HTTP on a free port; every request it got is in
    entries()."""

    def __init__(self, workdir: Path, name: str, ref_url: str | None = None) -> None:
        self.name = name
        self.log = workdir / f"{name}.requests.jsonl"
        self.log.write_text("")
        self.stderr_path = workdir / f"{name}.stderr.log"
        with self.stderr_path.open("w") as err:
            self.proc = subprocess.Popen(
                [PYTHON, str(HEADER_RECORDER), "--log", str(self.log), "--name", name,
                 *(["--ref-url", ref_url] if ref_url else [])],
                stdout=subprocess.PIPE, stderr=err, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            self.stop()
            raise AssertionError(f"header_recorder.py ({name}) did not start: {line!r}\n"
                                 f"{self.stderr_path.read_text()}")
        self.port = int(line.split()[1])
        wait_until(lambda: _connectable(self.port), 20, f"{name} recorder on port {self.port}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def entries(self) -> list[dict]:
        return [json.loads(ln) for ln in self.log.read_text().splitlines() if ln.strip()]

    def rpcs(self, method: str | None = None, name: str | None = None) -> list[dict]:
        """Every JSON-RPC message that arrived (each with its request's headers under "headers")."""
        out = []
        for e in self.entries():
            for m in e["rpc"]:
                if (method is None or m.get("method") == method) and (name is None or m.get("name") == name):
                    out.append(m | {"headers": e["headers"]})
        return out

    def tool_calls(self, name: str | None = None) -> list[dict]:
        return self.rpcs("tools/call", name)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class ConnectionCounter:
    """A TCP listener on 127.0.0.1 that accepts and counts every connection (and closes it at once):
    stands for an https:// server nobody may contact."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            self.count += 1
            conn.close()

    def stop(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


# ------------------------------------------------------------------------------------------------
# Tokens
# ------------------------------------------------------------------------------------------------

def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jwt_parts(token: str) -> tuple[dict, dict, str]:
    """(header, payload, signature segment) of a compact JWS, decoded without checking anything."""
    h, p, s = token.split(".")
    return json.loads(unb64url(h)), json.loads(unb64url(p)), s


def _encode(obj: dict) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def tampered_signature(token: str) -> str:
    """The token with one bit of its signature flipped (header and payload untouched)."""
    h, p, s = token.split(".")
    sig = bytearray(unb64url(s))
    sig[len(sig) // 2] ^= 0x01
    return f"{h}.{p}.{b64url(bytes(sig))}"


def tampered_payload(token: str, **changes: Any) -> str:
    """The token with claims changed (a wider scope, another client) and its original signature."""
    h, p, s = token.split(".")
    payload = json.loads(unb64url(p)) | changes
    return f"{h}.{_encode(payload)}.{s}"


def alg_none(token: str) -> str:
    """The token's claims, unsigned: header alg "none" (typ and kid kept), empty signature."""
    header, payload, _ = jwt_parts(token)
    return f"{_encode(header | {'alg': 'none'})}.{_encode(payload)}."


def hs256_keyed_with_public_key(token: str, jwks: dict) -> str:
    """The token's claims signed HS256 with the authorization server's public key (its PEM, the classic
    algorithm confusion) as the HMAC secret."""
    from cryptography.hazmat.primitives import serialization
    from jwt.algorithms import RSAAlgorithm

    header, payload, _ = jwt_parts(token)
    jwk = next(k for k in jwks["keys"] if k.get("kid") == header.get("kid"))
    pem = RSAAlgorithm.from_jwk(json.dumps(jwk)).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{_encode(header | {'alg': 'HS256'})}.{_encode(payload)}"
    sig = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(sig)}"


def verify_with_jwks(token: str, jwks: dict, audience: str, issuer: str) -> dict:
    """The token's claims once PyJWT has checked its RS256 signature (against the JWKS), aud, iss, exp."""
    import jwt as pyjwt

    header, _, _ = jwt_parts(token)
    jwk = next(k for k in jwks["keys"] if k.get("kid") == header.get("kid"))
    key = pyjwt.PyJWK(jwk).key
    return pyjwt.decode(token, key, algorithms=["RS256"], audience=audience, issuer=issuer)


# ------------------------------------------------------------------------------------------------
# HTTP
# ------------------------------------------------------------------------------------------------

def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def challenge(r: Raw) -> dict[str, str]:
    """The parameters of the response's `WWW-Authenticate: Bearer ...` challenge (scheme under "")."""
    h = r.headers.get("www-authenticate")
    assert h, f"HTTP {r.status} without WWW-Authenticate; headers {r.headers}; body {r.body[:200]!r}"
    scheme, _, rest = h.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'([A-Za-z_][A-Za-z0-9_-]*)="([^"]*)"', rest)}
    return {"": scheme} | params


def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 10) -> Raw:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Raw(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
    except urllib.error.HTTPError as e:
        return Raw(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())


def ws_upgrade_status(port: int, headers: dict[str, str] | None = None) -> int:
    """The HTTP status the gateway answers a WebSocket upgrade on /ws with (101 when it upgrades)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        h = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
             "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()} | (headers or {})
        conn.request("GET", "/ws", headers=h)
        return conn.getresponse().status
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------------
# The gateway
# ------------------------------------------------------------------------------------------------

def toml_str(s: str) -> str:
    return json.dumps(s)


def toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def auth_toml(issuer: str | None, audience: str | None, tokens: list[dict], scopes=("mcp",),
              admin_scopes=("mcp:admin",)) -> str:
    """An [auth] section; tokens: [{"principal", "token_env", "scopes"}]."""
    lines = ["[auth]"]
    if issuer:
        lines.append(f"issuer = {toml_str(issuer)}")
    if audience:
        lines.append(f"audience = {toml_str(audience)}")
    lines += [f"scopes = {toml_list(list(scopes))}", f"admin_scopes = {toml_list(list(admin_scopes))}"]
    for t in tokens:
        lines += ["", "[[auth.tokens]]", f"principal = {toml_str(t['principal'])}",
                  f"token_env = {toml_str(t['token_env'])}", f"scopes = {toml_list(t['scopes'])}"]
    return "\n".join(lines) + "\n"


def start_gateway(tmp: Path, name: str, toml: str, port: int, env: dict[str, str], admin_token: str,
                  ready: set[str], timeout: float = 30) -> Gateway:
    """`serve` on 127.0.0.1:`port` with this TOML config and environment; waits until /status (asked
    with `admin_token`) shows each upstream in `ready` ready."""
    cfg = tmp / f"{name}.toml"
    cfg.write_text(toml)
    gw = Gateway(cfg, tmp / f"{name}.log", port=port, env=env, test_auth=False,
                 data_dir=tmp / f"{name}-data").start()

    def check():
        if not gw.alive():
            raise AssertionError(f"gateway {name} exited with {gw.proc.returncode}\n{gw.log_tail()}")
        r = http_get(f"{gw.base}/status", bearer(admin_token), timeout=5)
        if r.status != 200:
            return None
        states = {u["name"]: u["state"] for u in r.json()["upstreams"]}
        return all(states.get(n) == "ready" for n in ready)

    try:
        wait_until(check, timeout, f"gateway {name}: upstreams {sorted(ready)} ready",
                   detail=lambda: gw.log_tail())
    except BaseException:
        gw.stop()
        raise
    return gw


def timed(fn, *a, **kw) -> tuple[Any, float]:
    t0 = time.monotonic()
    out = fn(*a, **kw)
    return out, time.monotonic() - t0
