"""The native WebSocket upstream: a gateway whose upstream is `url = "ws://…"` — here another real
gateway's own `/ws` face (the board's embedded default, serving this machine's device tools) —
serves that upstream's tools to a real client over Streamable HTTP, both eras, and reconnects when
the WebSocket server comes back after a restart."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from mcp import Client

from conftest import AUTH_TOKEN_ENV, TEST_AUTH, auth_headers, embedded_default_args, with_auth

ROOT = Path(__file__).resolve().parents[3]
GATEWAY = os.environ.get("MCP_EDGE_GATEWAY_BIN", str(ROOT / "target/debug/mcp-edge-gateway"))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int) -> None:
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing on {port}")


def _state(port: int, name: str) -> str | None:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/status", headers=auth_headers(port))
    with urllib.request.urlopen(req, timeout=5) as r:
        st = json.load(r)
    return next((u["state"] for u in st["upstreams"] if u["name"] == name), None)


def _wait_state(port: int, name: str, want: str, log: Path, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if _state(port, name) == want:
            return
        time.sleep(0.1)
    raise AssertionError(f"{name} never became {want}\n{log.read_text()}")


class _Board:
    """A gateway with the embedded default on a fixed port (its /ws is the WebSocket server)."""

    def __init__(self, tmp: Path) -> None:
        self.port, self.log, self.proc = _port(), tmp / "board.log", None
        # In auth mode the board's /ws needs the token too (see the gateway's upstream headers below).
        self.args = embedded_default_args(tmp, self.port)
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen([GATEWAY, "serve", "--listen", f"127.0.0.1:{self.port}", "--no-store", *self.args],
                                     stderr=self.log.open("a"), stdout=subprocess.DEVNULL)
        _wait_port(self.port)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def topo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ws")
    board = _Board(tmp)
    cfg = tmp / "gateway.toml"
    cfg.write_text(f'[upstreams.board]\nurl = "ws://127.0.0.1:{board.port}/ws"\n'
                   # auth mode: the gateway's own credential for the board, from its environment
                   + (f'headers = {{ Authorization = "Bearer ${{{AUTH_TOKEN_ENV}}}" }}\n' if TEST_AUTH else ""))
    port, log = _port(), tmp / "gateway.log"
    gw = subprocess.Popen([GATEWAY, "serve", "--config", str(with_auth(cfg, port)), "--listen", f"127.0.0.1:{port}",
                           "--no-store"],
                          stderr=log.open("w"), stdout=subprocess.DEVNULL)
    try:
        _wait_port(port)
        _wait_state(port, "board", "ready", log)
        yield {"port": port, "board": board, "log": log}
    finally:
        gw.terminate()
        gw.wait(10)
        board.stop()
        assert "panicked" not in log.read_text()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_a_websocket_upstream_serves_its_tools(topo, mode):
    async def run():
        async with Client(f"http://127.0.0.1:{topo['port']}/mcp", mode=mode) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            assert {"board__system_info", "board__memory"} <= names, names
            mem = (await c.call_tool("board__memory", {})).structured_content
            assert mem["totalBytes"] == int(Path("/proc/meminfo").read_text().split()[1]) * 1024

    asyncio.run(run())


@pytest.mark.timeout(90)
def test_the_websocket_upstream_is_reconnected_after_its_server_restarts(topo):
    board, port, log = topo["board"], topo["port"], topo["log"]
    board.stop()
    _wait_state(port, "board", "down", log)
    board.start()
    _wait_state(port, "board", "ready", log)

    async def run():
        async with Client(f"http://127.0.0.1:{port}/mcp") as c:
            info = (await c.call_tool("board__system_info", {})).structured_content
            assert info["cpuCount"] == os.cpu_count()

    asyncio.run(run())
    assert "reconnecting in" in log.read_text()
