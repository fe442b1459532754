"""Notifications outside replies, bridged across the eras by the gateway (src/engine/listen.rs):

    python mcp 2.3.0 Client ──HTTP /mcp──► mcp-edge-gateway ──stdio, legacy──► servers/watch_server.py --stdio
                                                              └─HTTP, modern──► servers/watch_server.py --port

(1) A modern client (2026-07-28) sends `subscriptions/listen` for tools list changes and one resource
    URI of the LEGACY upstream. The gateway acknowledges on that request's SSE stream, passes the
    URI on to the upstream as `resources/subscribe`, and relays the upstream's plain
    `notifications/resources/updated` / `notifications/tools/list_changed` (pushed on its legacy
    connection) onto the listen stream, stamped with the listen's id - only what was asked for.
    Shown with the SDK's `Client.listen()` and, frame by frame, with a raw HTTP listen. The changes
    are triggered through the gateway by a second, legacy, client; a modern client's own requests
    reach this strict legacy upstream too (the gateway takes the 2026-07-28 envelope off them).
(2) A legacy client (initialize + session) does `resources/subscribe` to a resource of the MODERN
    upstream. The gateway (re)opens its own `subscriptions/listen` to that upstream with the URI in
    `resourceSubscriptions` (the server logs every listen it serves), and the upstream's stamped
    events reach the client's session as ordinary legacy notifications. When the session ends, the
    gateway's listen drops the URI again.

Every test gets a gateway and upstreams of its own; `touch` on an upstream notifies the URIs it is
given in order (also ones nobody subscribed to: the gateway must filter) and then its tool-list
change, so once the last one has arrived a leaked earlier one would have too.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.subscriptions import ResourceUpdated, ToolsListChanged
from mcp_types import ResourceUpdatedNotification, ToolListChangedNotification

from conftest import (
    LEGACY,
    MODERN,
    PYTHON,
    Gateway,
    auth_headers,
    children_of,
    client_kwargs,
    cmdline,
    is_alive,
    kill_pid,
    legacy_post,
    legacy_session,
    modern_meta,
    run_async,
    text_of,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)

INTEROP = Path(__file__).resolve().parent.parent
WATCH_SERVER = INTEROP / "servers/watch_server.py"
SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"

L_ALPHA, L_BETA = "watch://legacy/alpha", "watch://legacy/beta"
M_ALPHA, M_BETA = "watch://modern/alpha", "watch://modern/beta"


def _lines(path: Path) -> list[dict]:
    try:
        return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    except FileNotFoundError:
        return []


@dataclass
class Watch:
    gateway: Gateway
    legacy_log: Path
    modern_log: Path

    @property
    def url(self) -> str:
        return self.gateway.url

    def legacy_events(self) -> list[dict]:
        return _lines(self.legacy_log)

    def modern_events(self) -> list[dict]:
        return _lines(self.modern_log)

    def open_listens(self) -> list[dict]:
        """The modern upstream's listen streams that started and have not ended, oldest first."""
        ev = self.modern_events()
        ended = {json.dumps(e["id"]) for e in ev if e["event"] == "listen-end"}
        return [e for e in ev if e["event"] == "listen" and json.dumps(e["id"]) not in ended]

    def detail(self) -> str:
        return (f"legacy upstream log: {self.legacy_events()}\nmodern upstream log: {self.modern_events()}\n"
                f"--- gateway log ---\n{self.gateway.log_tail(80)}")


@pytest.fixture
def watch(tmp_path):
    legacy_log, modern_log = tmp_path / "legacy.jsonl", tmp_path / "modern.jsonl"
    modern = subprocess.Popen(
        [PYTHON, str(WATCH_SERVER), "--port", "0", "--name", "modern", "--log", str(modern_log)],
        stdout=subprocess.PIPE, stderr=(tmp_path / "modern.err").open("w"), text=True)
    gw = None
    try:
        line = modern.stdout.readline()
        assert line.startswith("READY "), f"watch_server.py --port did not start: {line!r}\n" \
                                          f"{(tmp_path / 'modern.err').read_text()}"
        port = int(line.split()[1])
        cfg = tmp_path / "gateway.json"
        cfg.write_text(json.dumps({"mcpServers": {
            "legacy": {"command": PYTHON, "era": "legacy",
                       "args": [str(WATCH_SERVER), "--stdio", "--name", "legacy", "--log", str(legacy_log)]},
            "modern": {"url": f"http://127.0.0.1:{port}/mcp"},
        }}, indent=1))
        gw = Gateway(cfg, tmp_path / "gateway.log").start()
        gw.wait_state({"legacy", "modern"}, ready=True, timeout=30)
        era = {u["name"]: (u["era"], u["protocolVersion"]) for u in gw.status()["upstreams"]}
        assert era == {"legacy": ("legacy", LEGACY), "modern": ("modern", MODERN)}, era
        yield Watch(gw, legacy_log, modern_log)
        assert gw.alive(), f"the gateway died\n{gw.log_tail()}"
        assert "panicked" not in gw.log_text(), gw.log_tail()
    finally:
        if gw is not None:
            kids = children_of(gw.pid) if gw.alive() else []
            gw.stop()
            for k in kids:
                if is_alive(k) and str(WATCH_SERVER) in cmdline(k):
                    kill_pid(k)
        modern.kill()
        modern.wait(10)


async def until(pred, timeout: float, what: str, detail=lambda: ""):
    """Async wait_until: poll pred() (which may read the servers' logs) without blocking the loop."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{detail()}")
        await anyio.sleep(0.05)


# ------------------------------------------------------------------------------------------------
# (1) modern client, legacy upstream
# ------------------------------------------------------------------------------------------------

def test_modern_client_listen_gets_a_legacy_upstreams_updates(watch):
    teed: list = []  # what the modern session tees to message_handler: the stamped wire notifications

    async def on_message(m):
        teed.append(m)

    async def run():
        # The changes are triggered by a second, legacy, client.
        async with Client(watch.url, **client_kwargs("auto", message_handler=on_message)) as c, \
                Client(watch.url, **client_kwargs("legacy")) as trigger:
            assert c.protocol_version == MODERN and trigger.protocol_version == LEGACY
            # The legacy upstream's resources keep their URIs downstream; its tools are prefixed.
            assert {L_ALPHA, L_BETA} <= {r.uri for r in (await trigger.list_resources()).resources}
            names = {t.name for t in (await trigger.list_tools()).tools}
            assert "legacy__touch" in names and "legacy__fresh" not in names, names

            async with c.listen(tools_list_changed=True, resource_subscriptions=[L_ALPHA]) as sub:
                # The acknowledgement: exactly the filter asked for.
                assert sub.honored.tools_list_changed is True, sub.honored
                assert sub.honored.resource_subscriptions == [L_ALPHA], sub.honored
                assert not sub.honored.prompts_list_changed and not sub.honored.resources_list_changed, sub.honored
                # The gateway passed the URI on to the legacy upstream as resources/subscribe.
                await until(lambda: {"event": "subscribe", "uri": L_ALPHA} in watch.legacy_events(), 10,
                            "the legacy upstream to get resources/subscribe", watch.detail)

                r = await trigger.call_tool("legacy__touch", {"uris": [L_BETA, L_ALPHA], "tools_changed": True})
                assert text_of(r) == f"touched {L_BETA} {L_ALPHA}", r
                events = []
                with anyio.fail_after(10):
                    async for ev in sub:
                        events.append(ev)
                        if ResourceUpdated(uri=L_ALPHA) in events and ToolsListChanged() in events:
                            break
                assert ResourceUpdated(uri=L_BETA) not in events, \
                    f"a resource nobody listened to reached the listen stream: {events}"
                sid = sub.subscription_id

            # Each relayed notification carried the listen's id (the session routed them by it).
            await until(lambda: any(isinstance(m, ToolListChangedNotification) for m in teed), 5, "the tee")
            relayed = [m for m in teed if isinstance(m, (ResourceUpdatedNotification, ToolListChangedNotification))]
            assert [type(m).__name__ for m in relayed] == ["ResourceUpdatedNotification",
                                                           "ToolListChangedNotification"], relayed
            assert relayed[0].params.uri == L_ALPHA, relayed
            for m in relayed:
                assert m.params.meta and m.params.meta.get(SUBSCRIPTION_ID) == sid, (sid, m)

            # The list change was real: the gateway's catalogue gets the legacy upstream's new tool.
            async def has_fresh():
                return "legacy__fresh" in {t.name for t in (await trigger.list_tools(cache_mode="refresh")).tools}

            deadline = time.monotonic() + 10
            while not await has_fresh():
                assert time.monotonic() < deadline, "legacy__fresh never appeared after tools/list_changed"
                await anyio.sleep(0.1)
            assert text_of(await trigger.call_tool("legacy__fresh", {})) == "fresh"

    run_async(run())


def test_modern_client_requests_reach_a_strict_legacy_upstream(watch):
    async def run():
        async with Client(watch.url, **client_kwargs("auto")) as c:
            assert c.protocol_version == MODERN
            # The Python SDK's legacy connection refuses requests that carry the modern envelope.
            r = await c.call_tool("legacy__touch", {"uris": [L_ALPHA]})
            assert text_of(r) == f"touched {L_ALPHA}", r
            names = {t.name for t in (await c.list_tools()).tools}
            assert "legacy__touch" in names, names

    run_async(run())


class SSE:
    """A raw 2026-07-28 POST whose answer is an event stream, read one `data:` message at a time."""

    def __init__(self, port: int, body: dict, headers: dict[str, str]) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.conn.request("POST", "/mcp", json.dumps(body).encode(), {
            "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
            **auth_headers(port), **headers})
        self.resp = self.conn.getresponse()

    def next(self) -> dict:
        while True:
            line = self.resp.fp.readline()
            assert line, "the listen stream ended"
            if line.startswith(b"data:") and line[5:].strip():
                return json.loads(line[5:])

    def close(self) -> None:
        self.conn.close()


def test_raw_listen_stream_acknowledges_first_and_stamps_every_frame(watch):
    """The wire, frame by frame: the listen POST's SSE stream opens with the acknowledgement, then
    carries exactly the asked-for notifications, each with `_meta[subscriptionId]` = the request id."""
    listen_id = 41
    params = {"notifications": {"toolsListChanged": True, "resourceSubscriptions": [L_ALPHA]},
              "_meta": modern_meta()}
    s = SSE(watch.gateway.port, {"jsonrpc": "2.0", "id": listen_id, "method": "subscriptions/listen", "params": params},
            {"MCP-Protocol-Version": MODERN, "Mcp-Method": "subscriptions/listen"})
    try:
        assert s.resp.status == 200, (s.resp.status, s.resp.read())
        assert s.resp.getheader("content-type", "").startswith("text/event-stream"), s.resp.getheaders()
        ack = s.next()
        assert ack == {"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
                       "params": {"notifications": {"toolsListChanged": True, "resourceSubscriptions": [L_ALPHA]},
                                  "_meta": {SUBSCRIPTION_ID: listen_id}}}, ack
        wait_until(lambda: {"event": "subscribe", "uri": L_ALPHA} in watch.legacy_events(), 10,
                   "the legacy upstream to get resources/subscribe", detail=watch.detail)

        # Touched from a legacy session.
        sid = legacy_session(watch.url)
        r = legacy_post(watch.url, sid, {"jsonrpc": "2.0", "id": 42, "method": "tools/call", "params": {
            "name": "legacy__touch", "arguments": {"uris": [L_BETA, L_ALPHA], "tools_changed": True}}})
        assert r.status == 200 and r.rpc()["result"]["content"][0]["text"] == f"touched {L_BETA} {L_ALPHA}", r.body
        frames = [s.next(), s.next()]
        assert frames == [
            {"jsonrpc": "2.0", "method": "notifications/resources/updated",
             "params": {"uri": L_ALPHA, "_meta": {SUBSCRIPTION_ID: listen_id}}},
            {"jsonrpc": "2.0", "method": "notifications/tools/list_changed",
             "params": {"_meta": {SUBSCRIPTION_ID: listen_id}}},
        ], frames
    finally:
        s.close()


# ------------------------------------------------------------------------------------------------
# (2) legacy client, modern upstream
# ------------------------------------------------------------------------------------------------

def test_legacy_client_subscription_to_a_modern_upstream_is_served_by_a_listen(watch):
    got: list = []

    async def on_message(m):
        got.append(m)

    def updates():
        return [m for m in got if isinstance(m, ResourceUpdatedNotification)]

    async def run():
        # With its link up and no client interested in a URI yet, the gateway listens to the modern
        # upstream for list changes only.
        first = await until(watch.open_listens, 10, "the gateway's listen to the modern upstream", watch.detail)
        assert len(first) == 1, first
        assert first[0]["notifications"].get("toolsListChanged") is True, first
        assert "resourceSubscriptions" not in first[0]["notifications"], first

        async with Client(watch.url, **client_kwargs("legacy", message_handler=on_message)) as c:
            assert c.protocol_version == LEGACY
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # resources/subscribe is deprecated in the SDK (2026 has listen)
                await c.subscribe_resource(M_ALPHA)

            # The gateway replaced its listen with one that names the URI.
            def listening_for_alpha():
                cur = watch.open_listens()
                return cur if len(cur) == 1 and cur[0]["notifications"].get("resourceSubscriptions") == [M_ALPHA] else None

            now = await until(listening_for_alpha, 10, f"a listen for {M_ALPHA} (and only it) upstream", watch.detail)
            assert now[0]["notifications"].get("toolsListChanged") is True, now
            assert now[0]["id"] != first[0]["id"], (first, now)

            r = await c.call_tool("modern__touch", {"uris": [M_BETA, M_ALPHA], "tools_changed": True})
            assert text_of(r) == f"touched {M_BETA} {M_ALPHA}", r
            await until(lambda: updates() and any(isinstance(m, ToolListChangedNotification) for m in got), 10,
                        "notifications/resources/updated and tools/list_changed on the legacy session",
                        lambda: f"client got: {got}\n{watch.detail()}")
            assert [m.params.uri for m in updates()] == [M_ALPHA], got
            # Plain legacy notifications: the upstream listen's subscription id is not passed on.
            meta = updates()[0].params.meta or {}
            assert SUBSCRIPTION_ID not in meta, updates()[0]

            # The update is real: reading the resource now shows the touch.
            res = await c.read_resource(M_ALPHA)
            assert res.contents[0].text == "modern alpha v1", res

        # The session is gone: the gateway's listen upstream no longer names the URI.
        def listening_without_uris():
            cur = watch.open_listens()
            return cur if len(cur) == 1 and "resourceSubscriptions" not in cur[0]["notifications"] else None

        await until(listening_without_uris, 10, "the gateway to drop the URI from its upstream listen", watch.detail)

    run_async(run())
