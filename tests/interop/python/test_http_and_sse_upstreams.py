"""The gateway's HTTP upstream connectors against real servers: @modelcontextprotocol/server-everything
in Streamable HTTP mode (legacy era, sessions) and in legacy HTTP+SSE mode. A restarted HTTP server
has forgotten the gateway's session: the gateway initialises a new one and the call still succeeds,
also when the first the gateway hears of the restart is the 404 that refuses a client's call
(servers/counter_server.py, Python `mcp` SDK, without a GET stream)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from conftest import (
    CounterServer,
    Gateway,
    auth_headers,
    client_kwargs,
    raw_request,
    run_async,
    text_of,
    wait_no_connections,
    with_auth,
)

HERE = Path(__file__).resolve().parent
INTEROP = HERE.parent
ROOT = INTEROP.parent.parent
EVERYTHING = INTEROP / "node_modules/@modelcontextprotocol/server-everything/dist/index.js"
GATEWAY = os.environ.get("MCP_EDGE_GATEWAY_BIN", str(ROOT / "target/debug/mcp-edge-gateway"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}")


class _Everything:
    """server-everything over HTTP on a fixed port, restartable."""

    def __init__(self, mode: str) -> None:
        self.mode, self.port, self.proc = mode, _free_port(), None
        self.start()

    def start(self) -> None:
        env = dict(os.environ, PORT=str(self.port))
        self.proc = subprocess.Popen(["node", str(EVERYTHING), self.mode], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _status(port: int) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/status", headers=auth_headers(port))
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


def _wait_ready(port: int, names: set[str], log: Path, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = _status(port)
            ready = {u["name"] for u in last["upstreams"] if u["state"] == "ready"}
            if names <= ready:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"upstreams {names} not ready: {last}\n--- gateway log ---\n{log.read_text()}")


@pytest.fixture(scope="module")
def http_topology():
    http, sse = _Everything("streamableHttp"), _Everything("sse")
    tmp = Path(tempfile.mkdtemp())
    cfg = tmp / "gateway.json"
    cfg.write_text(json.dumps({"mcpServers": {
        "evhttp": {"url": f"http://127.0.0.1:{http.port}/mcp"},
        "evsse": {"url": f"http://127.0.0.1:{sse.port}/sse"},
    }}))
    port, log = _free_port(), tmp / "gateway.log"
    gw = subprocess.Popen([GATEWAY, "serve", "--config", str(with_auth(cfg, port)), "--listen", f"127.0.0.1:{port}",
                           "--no-store"], stderr=log.open("w"), stdout=subprocess.DEVNULL)
    try:
        _wait_ready(port, {"evhttp", "evsse"}, log)
        yield {"port": port, "http": http, "sse": sse, "log": log, "gateway": gw}
    finally:
        gw.terminate()
        gw.wait(10)
        http.stop()
        sse.stop()
        assert "panicked" not in log.read_text()


def _text(result) -> str:
    return result.content[0].text


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_streamable_http_and_sse_upstreams_serve_tools(http_topology, mode):
    async def run():
        async with Client(f"http://127.0.0.1:{http_topology['port']}/mcp", mode=mode) as c:
            names, cursor = [], None
            while True:
                page = await c.list_tools(cursor=cursor)
                names += [t.name for t in page.tools]
                cursor = page.next_cursor
                if not cursor:
                    break
            assert "evhttp__echo" in names and "evsse__echo" in names
            assert _text(await c.call_tool("evhttp__echo", {"message": "over http"})) == "Echo: over http"
            assert _text(await c.call_tool("evsse__echo", {"message": "over sse"})) == "Echo: over sse"
            r = await c.call_tool("evhttp__get-sum", {"a": 2, "b": 40})
            assert "42" in _text(r)
    asyncio.run(run())


def _wait_state(port: int, name: str, ready: bool, log: Path, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(u["name"] == name and (u["state"] == "ready") == ready for u in _status(port)["upstreams"]):
            return
        time.sleep(0.05)
    raise AssertionError(f"{name} never became {'ready' if ready else 'not ready'}\n{log.read_text()}")


@pytest.mark.timeout(120)
def test_restarted_http_upstream_is_noticed_and_comes_back(http_topology):
    http, port, log = http_topology["http"], http_topology["port"], http_topology["log"]

    async def call() -> str:
        async with Client(f"http://127.0.0.1:{port}/mcp", mode="legacy") as c:
            return _text(await c.call_tool("evhttp__echo", {"message": "again"}))

    assert asyncio.run(call()) == "Echo: again"
    http.stop()
    # The gateway notices without waiting for a call (its GET stream breaks).
    _wait_state(port, "evhttp", False, log)
    http.start()
    _wait_state(port, "evhttp", True, log)
    assert asyncio.run(call()) == "Echo: again"


@pytest.mark.timeout(120)
def test_dead_sse_upstream_fails_clearly_while_the_other_keeps_working(http_topology):
    sse, port, log = http_topology["sse"], http_topology["port"], http_topology["log"]
    sse.stop()
    _wait_state(port, "evsse", False, log)

    async def calls():
        async with Client(f"http://127.0.0.1:{port}/mcp", mode="legacy") as c:
            with pytest.raises(MCPError) as err:
                await c.call_tool("evsse__echo", {"message": "x"})
            assert err.value.error.code == -32000 and "evsse" in err.value.error.message
            return _text(await c.call_tool("evhttp__echo", {"message": "still here"}))

    assert asyncio.run(calls()) == "Echo: still here"
    sse.start()
    _wait_state(port, "evsse", True, log)

    async def again():
        async with Client(f"http://127.0.0.1:{port}/mcp", mode="legacy") as c:
            return _text(await c.call_tool("evsse__echo", {"message": "back"}))

    assert asyncio.run(again()) == "Echo: back"


EXPIRED = "session expired; initialising a new one"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_call_refused_by_an_expired_session_is_resent_on_a_new_one(tmp_path, mode):
    """The upstream (a legacy session: `"era": "legacy"`) restarts and forgets the gateway's session,
    and the gateway has no way to notice before the next call: the server has no GET stream (it
    answers 405) and the gateway holds no connection to it any more. The client's next call is
    answered 404 by the server; the gateway initialises a new session and re-sends the call, which
    runs exactly once (the server's log), and the client sees its result, not an error."""
    counter = CounterServer(tmp_path, get_stream=False)
    counter.start()
    cfg = tmp_path / "gateway.json"
    cfg.write_text(json.dumps({"mcpServers": {"counter": {"url": counter.url, "era": "legacy"}}}))
    gw = Gateway(cfg, tmp_path / "gateway.log", env={"RUST_LOG": "info"}).start()
    try:
        gw.wait_state({"counter"}, ready=True)
        u = gw.upstream("counter")
        assert u["era"] == "legacy", f"the upstream is not on a legacy session: {u}"
        get = raw_request(counter.url, None, {"Accept": "text/event-stream"}, method="GET")
        assert get.status == 405, f"the counter server offers a GET stream after all: HTTP {get.status}"

        async def run():
            async with Client(gw.url, **client_kwargs(mode)) as c:
                r = await c.call_tool("counter__record", {"n": 1})
                assert not r.is_error and text_of(r) == "recorded 1", r

                counter.kill9()
                # Not one connection left that could tell the gateway: the next call opens a new one.
                await asyncio.to_thread(wait_no_connections, gw.pid, counter.port)
                counter.start()
                assert EXPIRED not in gw.log_text(), "the gateway noticed the restart before the call"
                assert gw.upstream("counter")["state"] == "ready", gw.upstream("counter")

                # Not cancelled on a timeout (the SDK's teardown noise would hide the failure): the
                # client is closed, and the test fails below.
                call = asyncio.create_task(c.call_tool("counter__record", {"n": 2}))
                done, _ = await asyncio.wait({call}, timeout=20)
                return call.result() if done else None

        r = run_async(run())
        log = gw.log_text()
        assert r is not None, f"the call refused by the expired session was never answered\n{log}"
        assert not r.is_error and text_of(r) == "recorded 2", f"the client saw: {r}\n{log}"
        assert log.count(EXPIRED) == 1, f"the gateway did not renew the session because of the 404:\n{log}"
        ns = [x["n"] for x in counter.records()]
        assert ns == [1, 2], f"the upstream ran these calls: {ns}"

        async def after():
            async with Client(gw.url, **client_kwargs(mode)) as c:
                return await c.call_tool("counter__record", {"n": 3})

        assert text_of(run_async(after())) == "recorded 3"
        assert [x["n"] for x in counter.records()] == [1, 2, 3]
        assert "panicked" not in gw.log_text()
    finally:
        gw.stop()
        counter.kill9()
