"""`mcp-edge-gateway stdio`: the gateway as a desktop app's stdio MCP server, in front of the same two
upstreams (its own server-everything child, and the shared modern HTTP upstream).

- the Python Client's stdio transport, both modes: list tools, call everything__echo and modern__add;
- raw stdin/stdout: a garbage line gets a JSON-RPC -32700 error line and the gateway keeps serving;
  stdout carries nothing but JSON-RPC; closing stdin ends the gateway and its child.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from conftest import (
    ELICITED_NAME,
    EVERYTHING,
    GATEWAY_BIN,
    LEGACY,
    MODERN,
    SAMPLED_TEXT,
    Recorder,
    children_of,
    client_kwargs,
    cmdline,
    is_alive,
    kill_pid,
    list_all,
    run_async,
    text_of,
    wait_until,
)


@pytest.fixture(scope="module")
def stdio_config(topo, tmp_path_factory):
    """The shared topology's config (its modern upstream URL); the stdio gateway runs its own child."""
    d = tmp_path_factory.mktemp("stdio")
    cfg = d / "gateway.json"
    cfg.write_text(topo.gateway.config.read_text())
    return cfg


async def _wait_for_tools(c: Client, names: set[str], timeout: float = 30) -> list:
    """A stdio gateway answers at once; its upstreams come up in the background."""
    deadline = time.monotonic() + timeout
    while True:
        tools, _ = await list_all(lambda cursor: c.list_tools(cursor=cursor, cache_mode="refresh"), "tools")
        have = {t.name for t in tools}
        if names <= have:
            return tools
        if time.monotonic() > deadline:
            raise AssertionError(f"tools {sorted(names - have)} never appeared; have {sorted(have)}")
        await anyio.sleep(0.1)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_python_client_over_stdio(stdio_config, tmp_path, mode):
    log = tmp_path / "stdio-gateway.log"
    params = StdioServerParameters(command=GATEWAY_BIN, args=["stdio", "--config", str(stdio_config), "--no-store"])
    rec = Recorder()

    async def run():
        with log.open("w") as errlog:
            async with Client(stdio_client(params, errlog=errlog), **client_kwargs(mode, rec)) as c:
                assert c.protocol_version == {"auto": MODERN, "legacy": LEGACY}[mode]
                assert c.server_info is not None and c.server_info.name == "mcp-edge-gateway"
                tools = await _wait_for_tools(c, {"everything__echo", "modern__add"})
                assert len({t.name for t in tools}) == len(tools)
                r = await c.call_tool("everything__echo", {"message": f"over stdio ({mode})"})
                assert text_of(r) == f"Echo: over stdio ({mode})"
                r = await c.call_tool("modern__add", {"a": 20, "b": 22})
                assert text_of(r) == "42" and r.structured_content == {"result": 42}
                r = await c.read_resource("demo://hello")
                assert r.contents[0].text == "hello from the modern upstream"
                r = await c.get_prompt("everything__args-prompt", {"city": "Oslo"})
                assert "Oslo" in r.messages[0].content.text
                # Questions from both upstreams reach the stdio client too.
                r = await c.call_tool("everything__trigger-elicitation-request", {})
                assert f"- Name: {ELICITED_NAME}" in text_of(r), text_of(r)
                r = await c.call_tool("modern__haiku", {"topic": "pipes"})
                assert text_of(r) == f"[fake-llm] {SAMPLED_TEXT}", text_of(r)
                assert [e.message for e in rec.elicitations] == ["Please provide inputs for the following fields:"]
                assert [s.messages[0].content.text for s in rec.samplings] == ["Write a haiku about pipes"]

    try:
        run_async(run())
    except BaseException:
        print(f"--- stdio gateway log ---\n{log.read_text(errors='replace')}")
        raise
    assert "panicked" not in log.read_text(errors="replace")


class StdioGateway:
    """The gateway in stdio mode, driven by hand: lines in, lines out (read by a thread)."""

    def __init__(self, config, log) -> None:
        self.log = log
        with log.open("w") as err:
            self.proc = subprocess.Popen([GATEWAY_BIN, "stdio", "--config", str(config), "--no-store"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self.raw_lines: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.raw_lines.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def send(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send_msg(self, m: dict) -> None:
        self.send(json.dumps(m).encode() + b"\n")

    def recv(self, timeout: float = 15) -> dict:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line on stdout within {timeout}s\n{self.log.read_text(errors='replace')}")
        assert line is not None, f"stdout closed\n{self.log.read_text(errors='replace')}"
        return json.loads(line)

    def recv_id(self, req_id, timeout: float = 15) -> dict:
        """Next message answering req_id (notifications in between are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.recv(max(0.1, deadline - time.monotonic()))
            if m.get("id") == req_id and ("result" in m or "error" in m):
                return m

    def request(self, req_id, method: str, params: dict | None = None) -> dict:
        self.send_msg({"jsonrpc": "2.0", "id": req_id, "method": method, "params": params or {}})
        return self.recv_id(req_id)

    def everything_children(self) -> list[int]:
        return [p for p in children_of(self.proc.pid) if str(EVERYTHING) in cmdline(p) and is_alive(p)]

    def close(self) -> None:
        kids = children_of(self.proc.pid) if self.proc.poll() is None else []
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for k in kids:
            if is_alive(k):
                kill_pid(k)


@pytest.fixture
def stdio_gw(stdio_config, tmp_path):
    gw = StdioGateway(stdio_config, tmp_path / "stdio-raw.log")
    try:
        yield gw
    finally:
        gw.close()


def _init(gw: StdioGateway) -> None:
    r = gw.request(1, "initialize", {"protocolVersion": LEGACY, "capabilities": {},
                                     "clientInfo": {"name": "raw-stdio", "version": "1"}})
    assert r["result"]["protocolVersion"] == LEGACY, r
    gw.send_msg({"jsonrpc": "2.0", "method": "notifications/initialized"})


def _echo_when_ready(gw: StdioGateway, req_id: int, text: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = gw.request(req_id, "tools/call", {"name": "everything__echo", "arguments": {"message": text}})
        if "result" in r or time.monotonic() > deadline:
            return r
        time.sleep(0.1)  # the child may still be starting
        req_id += 1000


GARBAGE = {
    "not_json": (b"this is not json\n", -32700),
    "truncated": (b'{"jsonrpc":"2.0","id":5,"method":\n', -32700),
    "invalid_utf8": (b'{"jsonrpc":"2.0","id":6,"method":"\xff"}\n', -32700),
    "batch": (b'[{"jsonrpc":"2.0","id":7,"method":"ping"}]\n', -32600),
    "wrong_shape": (b'{"jsonrpc":"1.0","id":8,"method":"ping"}\n', -32600),
    "deep_nesting": (b"[" * 100000 + b"]" * 100000 + b"\n", -32700),
}


def test_garbage_on_stdin_gets_parse_errors_and_the_gateway_keeps_serving(stdio_gw):
    gw = stdio_gw
    # Garbage before any handshake.
    gw.send(b"this is not json\n")
    m = gw.recv()
    assert m["jsonrpc"] == "2.0" and m["id"] is None and m["error"]["code"] == -32700, m

    _init(gw)
    assert gw.request(2, "ping") == {"jsonrpc": "2.0", "id": 2, "result": {}}

    # After the handshake a notification (the catalogue's list_changed, once a slow upstream is up)
    # may come between the answers at any time: recv_id skips notifications.
    for name, (line, code) in GARBAGE.items():
        gw.send(line)
        m = gw.recv_id(None)
        assert "error" in m and m["error"]["code"] == code, (name, m)
        assert m.get("id") is None, (name, m)
        # Blank lines are ignored, CRLF is accepted, and it still answers.
        gw.send(b"\n   \n")
        gw.send(json.dumps({"jsonrpc": "2.0", "id": f"p-{name}", "method": "ping"}).encode() + b"\r\n")
        assert gw.recv_id(f"p-{name}") == {"jsonrpc": "2.0", "id": f"p-{name}", "result": {}}, name

    r = _echo_when_ready(gw, 100, "still serving")
    assert r["result"]["content"][0]["text"] == "Echo: still serving", r
    r = gw.request(3, "tools/call", {"name": "modern__add", "arguments": {"a": 2, "b": 3}})
    assert r["result"]["content"][0]["text"] == "5", r

    assert gw.proc.poll() is None, "the stdio gateway exited"
    for raw in gw.raw_lines:  # stdout carries only JSON-RPC
        assert json.loads(raw).get("jsonrpc") == "2.0", raw
    assert "panicked" not in gw.log.read_text(errors="replace")


def test_closing_stdin_ends_the_gateway_and_its_child(stdio_gw):
    gw = stdio_gw
    _init(gw)
    r = _echo_when_ready(gw, 10, "bye")
    assert r["result"]["content"][0]["text"] == "Echo: bye", r
    kids = gw.everything_children()
    assert len(kids) == 1, kids
    gw.proc.stdin.close()
    try:
        gw.proc.wait(10)
    except subprocess.TimeoutExpired:
        raise AssertionError("the stdio gateway did not exit after stdin closed")
    assert gw.proc.returncode == 0, gw.proc.returncode
    wait_until(lambda: not is_alive(kids[0]), 10, f"the gateway's child {kids[0]} to exit after the gateway did")
