"""Shared topology for the Python interop tests.

    python mcp 2.3.0 Client ──HTTP /mcp──► mcp-edge-gateway ──stdio──► server-everything (legacy era)
                                                            └─HTTP────► servers/modern_server.py (2026-07-28)

Every process runs on free ports of its own, logs to a temp file, and is killed by PID at teardown.
The gateway's stderr log is attached to the report of any failing test that used it.

With MCP_GW_TEST_AUTH=1 every gateway these helpers start is authenticated (see "Auth mode" below):
its config gets an [auth] section with static bearer tokens (random per run, in the environment),
and every client, raw request and /status poll aimed at such a gateway carries the main token.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mcp.client import ClientRequestContext
from mcp_types import (
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitRequestParams,
    ElicitResult,
    ErrorData,
    TextContent,
)

HERE = Path(__file__).resolve().parent
INTEROP = HERE.parent
ROOT = INTEROP.parent.parent
EVERYTHING = INTEROP / "node_modules/@modelcontextprotocol/server-everything/dist/index.js"
MODERN_SERVER = INTEROP / "servers/modern_server.py"
COUNTER_SERVER = INTEROP / "servers/counter_server.py"
GATEWAY_BIN = os.environ.get("MCP_EDGE_GATEWAY_BIN", str(ROOT / "target/debug/mcp-edge-gateway"))
PYTHON = sys.executable

MODERN = "2026-07-28"
LEGACY = "2025-11-25"  # what the Python client offers in initialize

DEFAULT_TIMEOUT = 120


# ------------------------------------------------------------------------------------------------
# Auth mode (MCP_GW_TEST_AUTH=1)
# ------------------------------------------------------------------------------------------------
# Every gateway started through `Gateway` (or given a config through `with_auth`) gets an [auth]
# section with static bearer tokens, unless its config already has one of its own. The tokens are
# random per run and reach the gateways through the environment (token_env), never the config file.
# The main principal has the admin scope too, so /status and /admin/* work. Requests to such a
# gateway's port carry `Authorization: Bearer <main token>` unless they set their own: the mcp
# Client (its default httpx client, patched below), raw_request, Gateway.status, and the tests' own
# http.client / urllib calls through auth_headers(). Stdio mode has no auth, as the spec says.

TEST_AUTH = os.environ.get("MCP_GW_TEST_AUTH") == "1"
AUTH_PRINCIPAL = "interop-tests"
AUTH_TOKEN_ENV = "MCP_GW_TEST_TOKEN"
# Further principals (scope "mcp" only), for tests that tell auth contexts apart (the private cache).
OTHER_PRINCIPALS = ("alice", "bob", "carol")


def _token_env(principal: str) -> str:
    return AUTH_TOKEN_ENV if principal == AUTH_PRINCIPAL else f"{AUTH_TOKEN_ENV}_{principal.upper()}"


_TOKENS: dict[str, str] = {p: secrets.token_urlsafe(32) for p in (AUTH_PRINCIPAL, *OTHER_PRINCIPALS)} if TEST_AUTH else {}
if TEST_AUTH:
    # Every gateway (and whatever wraps it) inherits them.
    os.environ.update({_token_env(p): t for p, t in _TOKENS.items()})

# Ports of the gateways that got the test [auth] section (and proxies in front of them).
_AUTH_PORTS: set[int] = set()


def auth_section() -> dict[str, Any]:
    """The [auth] section of an auth-mode gateway (JSON shape; the TOML one is the same)."""
    return {
        "scopes": ["mcp"],
        "admin_scopes": ["mcp:admin"],
        "tokens": [{"principal": p, "token_env": _token_env(p),
                    "scopes": ["mcp", "mcp:admin"] if p == AUTH_PRINCIPAL else ["mcp"]} for p in _TOKENS],
    }


def _auth_toml() -> str:
    a = auth_section()
    lines = ["", "[auth]", f"scopes = {json.dumps(a['scopes'])}", f"admin_scopes = {json.dumps(a['admin_scopes'])}"]
    for t in a["tokens"]:
        lines += ["", "[[auth.tokens]]", f"principal = {json.dumps(t['principal'])}",
                  f"token_env = {json.dumps(t['token_env'])}", f"scopes = {json.dumps(t['scopes'])}"]
    return "\n".join(lines) + "\n"


def authed_port(port: int) -> None:
    """Mark a port as an auth-mode gateway's (or a proxy's in front of one): requests to it carry the token."""
    if TEST_AUTH:
        _AUTH_PORTS.add(port)


def with_auth(config: Path, port: int | None = None) -> Path:
    """The config file to give `serve`. In auth mode: a copy of `config` (next to it, `<stem>.auth<suffix>`)
    with the test [auth] section appended, and `port`, where the gateway will listen, marked as an
    authenticated gateway's; a config that has an auth section of its own is returned as it is. Without
    auth mode: `config` itself."""
    if not TEST_AUTH:
        return config
    text = config.read_text()
    if config.suffix == ".json" or text.lstrip().startswith("{"):
        obj = json.loads(text)
        if "auth" in (obj.get("gateway") or {}):
            return config
        obj.setdefault("gateway", {})["auth"] = auth_section()
        out = json.dumps(obj, indent=1)
    else:
        if re.search(r"^\s*\[\[?\s*auth\s*[\].]", text, re.M):
            return config
        out = text.rstrip("\n") + "\n" + _auth_toml()
    dst = config.with_name(f"{config.stem}.auth{config.suffix}")
    dst.write_text(out)
    if port is not None:
        authed_port(port)
    return dst


def embedded_default_args(tmp: Path, port: int) -> list[str]:
    """`serve` arguments for the embedded default (the built-in edge tools, unprefixed) on `port`: none
    without auth mode; in auth mode, which needs a config file for its [auth], `--config` with a file
    saying the same (`builtin = "edge"`, no prefix) and the test [auth] section."""
    if not TEST_AUTH:
        return []
    cfg = tmp / f"embedded-{port}.toml"
    cfg.write_text('[upstreams.edge]\nbuiltin = "edge"\nprefix = false\n')
    return ["--config", str(with_auth(cfg, port))]


def _port_of(url: str) -> int | None:
    import urllib.parse

    u = urllib.parse.urlsplit(url)
    return u.port or (443 if u.scheme == "https" else 80)


def auth_headers(target: str | int | None = None) -> dict[str, str]:
    """{"Authorization": "Bearer <main token>"} in auth mode when `target` (a URL or a port; None: any)
    is an authenticated gateway's; {} otherwise."""
    if not TEST_AUTH:
        return {}
    port = _port_of(target) if isinstance(target, str) else target
    if target is not None and port not in _AUTH_PORTS:
        return {}
    return {"Authorization": f"Bearer {_TOKENS[AUTH_PRINCIPAL]}"}


def bearer(principal: str) -> dict[str, str]:
    """An Authorization header naming one of OTHER_PRINCIPALS: its real token in auth mode, else
    `Bearer <principal>` (an opaque auth context to an unauthenticated gateway)."""
    assert principal in OTHER_PRINCIPALS, principal
    return {"Authorization": f"Bearer {_TOKENS[principal] if TEST_AUTH else principal}"}


if TEST_AUTH:
    # The mcp Client, given a URL, builds its httpx client with this factory: every Client aimed at an
    # authenticated gateway carries the main token (a request that sets its own Authorization keeps it).
    import httpx2
    import mcp.client.streamable_http as _streamable_http

    class _GatewayBearer(httpx2.Auth):
        def auth_flow(self, request):
            if "authorization" not in request.headers:
                request.headers.update(auth_headers(request.url.port or 80))
            yield request

    _plain_http_client = _streamable_http.create_mcp_http_client

    def _authed_http_client(headers=None, timeout=None, auth=None):
        return _plain_http_client(headers=headers, timeout=timeout, auth=auth or _GatewayBearer())

    _streamable_http.create_mcp_http_client = _authed_http_client


def pytest_report_header(config):
    return f"gateway auth mode (MCP_GW_TEST_AUTH): {'on, static bearer tokens' if TEST_AUTH else 'off'}"


# ------------------------------------------------------------------------------------------------
# pytest plumbing
# ------------------------------------------------------------------------------------------------

def pytest_collection_modifyitems(items):
    # A per-test timeout everywhere, unless a test sets its own.
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TIMEOUT))


_LIVE_GATEWAYS: list["Gateway"] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        for gw in list(_LIVE_GATEWAYS):
            report.sections.append((f"gateway log ({gw.log})", gw.log_tail()))
    return report


# ------------------------------------------------------------------------------------------------
# Processes
# ------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout: float, what: str, interval: float = 0.05, detail=lambda: ""):
    """Poll pred() until it returns a truthy value; fail with `what` (and detail()) otherwise."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - polling
            last_exc = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc!r})\n{detail()}")


def kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def children_of(pid: int) -> list[int]:
    """Direct children of a process, from /proc/<pid>/task/*/children."""
    kids: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    for t in task_dir.iterdir() if task_dir.exists() else []:
        try:
            kids += [int(x) for x in (t / "children").read_text().split()]
        except OSError:
            pass
    return sorted(set(kids))


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def is_alive(pid: int) -> bool:
    """True if the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class ModernServer:
    """servers/modern_server.py over Streamable HTTP; restartable on the same port."""

    def __init__(self, workdir: Path, port: int = 0) -> None:
        self.workdir = workdir
        self.port = port
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        log = (self.workdir / "modern.log").open("a")
        self.proc = subprocess.Popen(
            [PYTHON, str(MODERN_SERVER), "--port", str(self.port)],
            stdout=subprocess.PIPE, stderr=log, text=True,
        )
        log.close()
        # READY <port> arrives once the socket is bound (uvicorn accepts right after).
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            self.stop()
            raise AssertionError(f"modern_server.py did not start: {line!r}\n{(self.workdir / 'modern.log').read_text()}")
        self.port = int(line.split()[1])
        wait_until(lambda: _connectable(self.port), 20, f"modern server on port {self.port}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    stop = kill9


class CounterServer:
    """servers/counter_server.py on a fixed port, started only when a test says so (until then the
    port is reserved but closed: the upstream is down); restartable on the same port, where it has
    forgotten every session. Its record() calls are logged to `log` (the ones that ran) and
    `started_log` (each one's start and end). With a `name`, log entries carry it as "server" (so
    several servers can be told apart), and `fail=True` makes its lookup() tool fail server-side."""

    def __init__(self, workdir: Path, delay_ms: int = 0, ttl_ms: int = 1000, get_stream: bool = True,
                 name: str | None = None, fail: bool = False) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.fail = fail
        self.port = free_port()
        self.log = workdir / "records.jsonl"
        self.started_log = workdir / "started.jsonl"
        self.delay_ms = delay_ms
        self.ttl_ms = ttl_ms
        self.get_stream = get_stream
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> None:
        stderr = (self.workdir / "counter.log").open("a")
        self.proc = subprocess.Popen(
            [PYTHON, str(COUNTER_SERVER), "--port", str(self.port), "--log", str(self.log),
             "--started-log", str(self.started_log), "--ttl-ms", str(self.ttl_ms),
             "--delay-ms", str(self.delay_ms), *([] if self.get_stream else ["--no-get-stream"]),
             *(["--name", self.name] if self.name else []), *(["--fail"] if self.fail else [])],
            stdout=subprocess.PIPE, stderr=stderr, text=True,
        )
        stderr.close()
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            self.kill9()
            raise AssertionError(f"counter_server.py did not start: {line!r}\n"
                                 f"{(self.workdir / 'counter.log').read_text()}")
        wait_until(lambda: _connectable(self.port), 20, f"counter server on port {self.port}")

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    @staticmethod
    def _lines(path: Path) -> list[dict]:
        try:
            text = path.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(ln) for ln in text.splitlines() if ln.strip()]

    def records(self) -> list[dict]:
        """The record() calls that ran, in order: [{"n", "key"}...] (and "tool", "server" with a name)."""
        return [e for e in self._lines(self.log) if e.get("tool", "record") == "record"]

    def calls(self, tool: str | None = None) -> list[dict]:
        """Every logged tool call (record and lookup), in order; only `tool`'s if given."""
        return [e for e in self._lines(self.log) if tool is None or e.get("tool", "record") == tool]

    def started(self) -> list[dict]:
        """The record() calls that started (their "start" entries), in order."""
        return [e for e in self._lines(self.started_log) if e["phase"] == "start"]

    def unfinished(self) -> list[tuple[int, Any]]:
        """(n, key) of record() calls that started and have not ended yet (finished or cancelled)."""
        open_calls: Counter = Counter()
        for e in self._lines(self.started_log):
            open_calls[(e["n"], e["key"])] += 1 if e["phase"] == "start" else -1
        return sorted((k for k, v in open_calls.items() for _ in range(v)), key=repr)


def tcp_connections(pid: int, remote_port: int) -> list[str]:
    """The TCP connections process `pid` holds open to 127.0.0.1:`remote_port`, as their states, counting
    only ESTABLISHED and CLOSE_WAIT (a peer that closed, but the process has not noticed yet): the
    connections on which a request could still be written. From /proc/<pid>/fd (socket inodes) and
    /proc/<pid>/net/tcp{,6}."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    states = {"01": "ESTABLISHED", "08": "CLOSE_WAIT"}
    out = []
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for ln in lines:
            f = ln.split()
            remote, state, inode = f[2], f[3], f[9]
            if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == remote_port and state in states:
                out.append(states[state])
    return out


def wait_no_connections(pid: int, remote_port: int, timeout: float = 20) -> None:
    """Wait until process `pid` holds no connection to the port it could still write a request on."""
    wait_until(lambda: not tcp_connections(pid, remote_port), timeout,
               f"pid {pid} to drop its connections to port {remote_port}",
               detail=lambda: f"still open: {tcp_connections(pid, remote_port)}")


def _connectable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def write_config(path: Path, modern_url: str) -> Path:
    path.write_text(json.dumps({"mcpServers": {
        "everything": {"command": "node", "args": [str(EVERYTHING), "stdio"]},
        "modern": {"url": modern_url},
    }}, indent=1))
    return path


@dataclass
class Gateway:
    """`mcp-edge-gateway serve` on a free loopback port."""

    config: Path
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    # Each gateway keeps its durable store (cache, offline queue) in a directory of its own, never the
    # user's; pass the same data_dir to a second Gateway to restart on the first one's store.
    data_dir: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    # Extra environment variables (RUST_LOG, say) on top of the test's own.
    env: dict[str, str] = field(default_factory=dict)
    # In auth mode (MCP_GW_TEST_AUTH=1) the gateway runs on `with_auth(config)`; False: on `config` as it is.
    test_auth: bool = True

    def start(self) -> "Gateway":
        if self.data_dir is None:
            self.data_dir = self.log.parent / f"data-{self.port}"
        config = with_auth(self.config, self.port) if self.test_auth else self.config
        with self.log.open("w") as err:
            self.proc = subprocess.Popen(
                [GATEWAY_BIN, "serve", "--config", str(config), "--listen", f"127.0.0.1:{self.port}",
                 "--data-dir", str(self.data_dir), *self.extra_args],
                stdout=subprocess.DEVNULL, stderr=err, env=os.environ | self.env,
            )
        _LIVE_GATEWAYS.append(self)
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return "<no log>"

    def log_tail(self, n: int = 200) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def status(self) -> dict:
        req = urllib.request.Request(f"{self.base}/status", headers=auth_headers(self.port))
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.load(r)

    def upstream(self, name: str) -> dict | None:
        return next((u for u in self.status()["upstreams"] if u["name"] == name), None)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _detail(self) -> str:
        try:
            st = json.dumps(self.status())
        except Exception as e:  # noqa: BLE001
            st = f"<status unavailable: {e!r}>"
        rc = None if self.proc is None else self.proc.poll()
        return f"gateway pid {self.pid} exit code {rc}\nlast /status: {st}\n--- gateway log ---\n{self.log_tail()}"

    def wait_state(self, names: set[str], ready: bool = True, timeout: float = 30) -> dict:
        def check():
            if not self.alive():
                raise AssertionError(f"gateway exited with {self.proc.returncode}\n{self._detail()}")
            st = self.status()
            states = {u["name"]: u["state"] for u in st["upstreams"]}
            return st if all((states.get(n) == "ready") == ready for n in names) else None

        return wait_until(check, timeout, f"upstreams {sorted(names)} {'ready' if ready else 'not ready'}",
                          detail=self._detail)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self in _LIVE_GATEWAYS:
            _LIVE_GATEWAYS.remove(self)
        _AUTH_PORTS.discard(self.port)  # the port may serve something else next


@dataclass
class Topology:
    gateway: Gateway
    modern: ModernServer
    tmp: Path

    @property
    def url(self) -> str:
        return self.gateway.url

    def everything_child(self) -> int:
        """PID of the gateway's server-everything child."""
        kids = [p for p in children_of(self.gateway.pid) if str(EVERYTHING) in cmdline(p) and is_alive(p)]
        assert len(kids) == 1, f"expected one server-everything child of {self.gateway.pid}, got {kids}"
        return kids[0]


def start_topology(tmp: Path) -> Topology:
    modern = ModernServer(tmp)
    cfg = write_config(tmp / "gateway.json", modern.url)
    gw = Gateway(cfg, tmp / "gateway.log").start()
    topo = Topology(gw, modern, tmp)
    try:
        gw.wait_state({"everything", "modern"}, ready=True, timeout=45)
    except BaseException:
        stop_topology(topo)
        raise
    return topo


def stop_topology(topo: Topology) -> None:
    # Grab the stdio child first: if the gateway is killed hard, its child must not be left behind.
    kids = children_of(topo.gateway.pid) if topo.gateway.alive() else []
    topo.gateway.stop()
    for k in kids:
        if is_alive(k) and str(EVERYTHING) in cmdline(k):
            kill_pid(k)
    topo.modern.stop()


def assert_gateway_healthy(topo: Topology) -> None:
    gw = topo.gateway
    assert gw.alive(), f"the gateway died\n{gw._detail()}"
    assert "panicked" not in gw.log_text(), f"the gateway panicked\n{gw.log_tail()}"


@pytest.fixture(scope="session")
def topo(tmp_path_factory):
    """The shared gateway + both upstreams; tests that break things build their own."""
    t = start_topology(tmp_path_factory.mktemp("topo"))
    try:
        yield t
    finally:
        log = t.gateway.log_text()
        stop_topology(t)
        assert "panicked" not in log, log


# ------------------------------------------------------------------------------------------------
# Client helpers
# ------------------------------------------------------------------------------------------------

SAMPLED_TEXT = "old pond / frog jumps in / splash"
ELICITED_NAME = "Ada Lovelace"
ELICITED_NOTE = "via python client"


class Recorder:
    """Sampling and elicitation callbacks that remember what they were asked."""

    def __init__(self) -> None:
        self.elicitations: list[ElicitRequestParams] = []
        self.samplings: list[CreateMessageRequestParams] = []

    async def on_elicit(self, ctx: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult | ErrorData:
        self.elicitations.append(params)
        props = (getattr(params, "requested_schema", None) or {}).get("properties", {})
        if "confirm" in props:  # modern upstream's delete_thing
            return ElicitResult(action="accept", content={"confirm": True, "note": ELICITED_NOTE})
        return ElicitResult(action="accept", content={"name": ELICITED_NAME, "check": True, "integer": 7})

    async def on_sample(self, ctx: ClientRequestContext, params: CreateMessageRequestParams) -> CreateMessageResult | ErrorData:
        self.samplings.append(params)
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text=SAMPLED_TEXT),
                                   model="fake-llm", stop_reason="endTurn")

    def kwargs(self) -> dict[str, Any]:
        return {"elicitation_callback": self.on_elicit, "sampling_callback": self.on_sample}


def client_kwargs(mode: str, recorder: Recorder | None = None, **extra) -> dict[str, Any]:
    from mcp_types import Implementation

    kw: dict[str, Any] = {"mode": mode, "client_info": Implementation(name="py-interop", version="1"),
                          "read_timeout_seconds": 30}
    if recorder is not None:
        kw |= recorder.kwargs()
    return kw | extra


async def list_all(fetch, attr: str) -> tuple[list, int]:
    """Follow nextCursor until exhausted; returns (items, number of pages)."""
    items, cursor, pages = [], None, 0
    while True:
        page = await fetch(cursor=cursor)
        pages += 1
        items += getattr(page, attr)
        cursor = page.next_cursor
        if not cursor:
            return items, pages
        assert pages < 100, "runaway pagination"


def text_of(result) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


# ------------------------------------------------------------------------------------------------
# Raw HTTP helpers
# ------------------------------------------------------------------------------------------------

@dataclass
class Raw:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def rpc(self) -> Any:
        """The JSON-RPC message: the JSON body, or the last `data:` event of an SSE body."""
        ctype = self.headers.get("content-type", "")
        if "text/event-stream" in ctype:
            # Empty data is a priming event (2025-11-25: an id to resume from, no message).
            datas = [ln[5:].strip() for ln in self.body.decode().splitlines() if ln.startswith("data:") and ln[5:].strip()]
            assert datas, f"empty SSE body: {self.body!r}"
            return json.loads(datas[-1])
        return self.json()

    def events(self) -> list[Any]:
        return [json.loads(ln[5:].strip()) for ln in self.body.decode().splitlines()
                if ln.startswith("data:") and ln[5:].strip()]


def raw_request(url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                method: str = "POST", timeout: float = 30) -> Raw:
    h = {"Accept": "application/json, text/event-stream"}
    if body is not None:
        h["Content-Type"] = "application/json"
    # The token, to an authenticated gateway; not on a CORS preflight (a browser sends none there).
    if method != "OPTIONS":
        h |= auth_headers(url)
    h |= headers or {}
    req = urllib.request.Request(url, data=body, headers=h, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Raw(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
    except urllib.error.HTTPError as e:
        return Raw(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())


def modern_meta(caps: dict | None = None) -> dict:
    return {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "raw-http", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": caps if caps is not None else
        {"elicitation": {"form": {}}, "sampling": {}},
    }


def modern_post(url: str, method: str, params: dict | None = None, req_id: int = 1, name: str | None = None,
                headers: dict[str, str] | None = None) -> Raw:
    """A 2026-07-28 request, with the routing headers and the _meta envelope."""
    p = dict(params or {})
    p["_meta"] = modern_meta() | p.get("_meta", {})
    h = {"MCP-Protocol-Version": MODERN, "Mcp-Method": method}
    if name is None:
        name = p.get("uri") if method == "resources/read" else p.get("name")
    if name is not None and method in ("tools/call", "prompts/get", "resources/read"):
        h["Mcp-Name"] = name
    h |= headers or {}
    body = json.dumps({"jsonrpc": "2.0", "id": req_id, "method": method, "params": p}).encode()
    return raw_request(url, body, h)


def legacy_session(url: str) -> str:
    """Open a legacy session by hand (initialize + initialized); returns the Mcp-Session-Id."""
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}
    r = raw_request(url, json.dumps(init).encode())
    assert r.status == 200, (r.status, r.body)
    sid = r.headers.get("mcp-session-id")
    assert sid, r.headers
    r2 = raw_request(url, json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode(),
                     {"Mcp-Session-Id": sid, "MCP-Protocol-Version": LEGACY})
    assert r2.status == 202, (r2.status, r2.body)
    return sid


def legacy_post(url: str, sid: str, msg: dict | bytes, headers: dict[str, str] | None = None) -> Raw:
    body = msg if isinstance(msg, bytes) else json.dumps(msg).encode()
    h = {"Mcp-Session-Id": sid, "MCP-Protocol-Version": LEGACY} | (headers or {})
    return raw_request(url, body, h)


# ------------------------------------------------------------------------------------------------
# Running coroutines
# ------------------------------------------------------------------------------------------------

def _leaves(eg: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for e in eg.exceptions:
        out += _leaves(e) if isinstance(e, BaseExceptionGroup) else [e]
    return out


def run_async(coro):
    """asyncio.run, but an assertion failing inside `async with Client(...)` is reported as itself,
    not wrapped in the transport's task-group ExceptionGroups (nor hidden behind what the transport
    raised while being torn down: those are added to it as notes)."""
    import asyncio

    try:
        return asyncio.run(coro)
    except BaseExceptionGroup as eg:
        leaves = _leaves(eg)
        if len(leaves) == 1:
            raise leaves[0] from None
        failed = [e for e in leaves if isinstance(e, AssertionError)]
        if len(failed) == 1:
            for other in leaves:
                if other is not failed[0]:
                    failed[0].add_note(f"also raised meanwhile: {other!r}")
            raise failed[0] from None
        raise
