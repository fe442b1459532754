"""README's run command: `serve` with no config serves the built-in edge tools, with real readings of
this machine, to a real client (both eras)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from mcp import Client

from conftest import embedded_default_args

ROOT = Path(__file__).resolve().parents[3]
GATEWAY = os.environ.get("MCP_EDGE_GATEWAY_BIN", str(ROOT / "target/debug/mcp-edge-gateway"))


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # In auth mode (MCP_GW_TEST_AUTH=1) the same, from a config file that adds the [auth] section.
    extra = embedded_default_args(tmp_path_factory.mktemp("embedded"), port)
    p = subprocess.Popen([GATEWAY, "serve", "--listen", f"127.0.0.1:{port}", "--no-store", *extra],
                         stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        p.terminate()
        p.wait(10)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_embedded_default_serves_real_device_readings(url, mode):
    async def run():
        async with Client(url, mode=mode) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            assert {"system_info", "load", "memory", "temperatures", "network"} <= names
            mem = (await c.call_tool("memory", {})).structured_content
            total = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
            assert mem["totalBytes"] == total
            info = (await c.call_tool("system_info", {})).structured_content
            assert info["cpuCount"] == os.cpu_count()
            assert info["kernel"] == Path("/proc/sys/kernel/osrelease").read_text().strip()

    asyncio.run(run())
