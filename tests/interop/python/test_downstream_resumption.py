"""The gateway's downstream face is resumable (Streamable HTTP, 2025-11-25): a client whose event stream
is cut in the middle of a slow call gets the rest of it with GET and `Last-Event-ID`, and the call runs
on, once.

    raw HTTP / python mcp 2.3.0 Client ──(servers/cut_proxy.py)──► mcp-edge-gateway ──stdio──► servers/progress_server.py

- The upstream is a real MCP server (the Python SDK's MCPServer over stdio) whose `countdown` tool
  sleeps and reports progress `steps` times, then answers; it logs each call's start, each progress
  it sent and its end, so a test can count how often the tool ran and that it ran to the end.
- Raw HTTP (to see every event id): a legacy session (initialize with protocolVersion 2025-11-25)
  calls the tool with a progressToken. The reply becomes an event stream whose events carry ids
  `<stream>-<seq>`, opening with a priming event (`id: <stream>-0`, a `retry`, empty data). The client
  resets the connection after two progress events; a GET with `Mcp-Session-Id` and `Last-Event-ID`
  gets the events it missed (stored while nobody was connected) and the rest, live, up to the answer
  with the original request id. Nothing twice, nothing missing; the stream of a finished call can be
  replayed from its start.
- The official Python client, through a TCP proxy that resets its connection after the second
  progress event of the call's stream: its transport reconnects by itself with `Last-Event-ID`, and
  the caller sees every progress once and the result, with the tool run once.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import struct
import sys
from pathlib import Path

import pytest
from mcp import Client

from conftest import (
    INTEROP,
    LEGACY,
    PYTHON,
    Gateway,
    auth_headers,
    authed_port,
    children_of,
    client_kwargs,
    cmdline,
    is_alive,
    kill_pid,
    run_async,
    text_of,
    wait_until,
)

sys.path.insert(0, str(INTEROP / "servers"))
from cut_proxy import CutProxy  # noqa: E402

PROGRESS_SERVER = INTEROP / "servers/progress_server.py"
TOOL = "slow__countdown"
EVENT_ID = re.compile(r"^(\d+)-(\d+)$")


class Upstream:
    """What servers/progress_server.py logged: one JSON line per start, progress and end of a call."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def entries(self, tag: str) -> list[dict]:
        try:
            lines = self.log.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [e for e in map(json.loads, filter(str.strip, lines)) if e["tag"] == tag]

    def phases(self, tag: str, phase: str) -> list[dict]:
        return [e for e in self.entries(tag) if e["phase"] == phase]


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    log = tmp / "calls.jsonl"
    cfg = tmp / "gateway.json"
    cfg.write_text(json.dumps({"mcpServers": {
        "slow": {"command": PYTHON, "args": [str(PROGRESS_SERVER), "--log", str(log)]},
    }}, indent=1))
    g = Gateway(cfg, tmp / "gateway.log").start()
    try:
        g.wait_state({"slow"}, ready=True, timeout=30)
        yield g, Upstream(log)
    finally:
        kids = children_of(g.pid) if g.alive() else []
        text = g.log_text()
        g.stop()
        for k in kids:
            if is_alive(k) and str(PROGRESS_SERVER) in cmdline(k):
                kill_pid(k)
        assert "panicked" not in text, text


# ------------------------------------------------------------------------------------------------
# A raw HTTP/1.1 event-stream reader
# ------------------------------------------------------------------------------------------------

class EventStream:
    """One HTTP exchange on the gateway whose response is read event by event (http.client undoes
    the chunked framing); `cut()` resets the TCP connection, as a broken network would."""

    def __init__(self, port: int, method: str, headers: dict[str, str], body: dict | None = None) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        data = None if body is None else json.dumps(body).encode()
        h = auth_headers(port) | dict(headers)
        if data is not None:
            h["Content-Type"] = "application/json"
        self.conn.request(method, "/mcp", body=data, headers=h)
        self.sock = self.conn.sock
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = {k.lower(): v for k, v in self.resp.getheaders()}
        self.ended = False

    def next_event(self) -> dict | None:
        """The next event, as {"id", "retry", "event", "data"} (absent fields None, data "" when
        empty); None once the response has ended. Comments (keep-alives) are skipped."""
        ev: dict = {"id": None, "retry": None, "event": None, "data": None}
        fields = 0
        while True:
            raw = self.resp.readline()
            if not raw:
                self.ended = True
                return None
            line = raw.decode().rstrip("\r\n")
            if line == "":
                if fields:
                    return ev
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            fields += 1
            if name == "data":
                ev["data"] = value if ev["data"] is None else ev["data"] + "\n" + value
            elif name == "retry":
                ev["retry"] = int(value)
            elif name in ("id", "event"):
                ev[name] = value

    def rest(self) -> list[dict]:
        out = []
        while (ev := self.next_event()) is not None:
            out.append(ev)
        return out

    def cut(self) -> None:
        """Reset the connection (SO_LINGER 0: an RST, no FIN), without reading what is still coming."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.resp.close()  # closes the socket's file, which holds a reference to the socket
        self.sock.close()
        assert self.sock.fileno() == -1, "the socket was not closed"
        self.conn.close()

    def close(self) -> None:
        self.resp.close()
        self.conn.close()


def message(ev: dict) -> dict | None:
    return json.loads(ev["data"]) if ev["data"] else None


def progress_of(ev: dict) -> float | None:
    m = message(ev)
    return m["params"]["progress"] if m and m.get("method") == "notifications/progress" else None


def parse_id(ev: dict) -> tuple[int, int]:
    m = EVENT_ID.match(ev["id"] or "")
    assert m, f"event id {ev['id']!r} is not <stream>-<seq>: {ev}"
    return int(m.group(1)), int(m.group(2))


def open_session(port: int) -> str:
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "raw-resume", "version": "1"}}}
    s = EventStream(port, "POST", {"Accept": "application/json, text/event-stream"}, init)
    body = json.loads(s.resp.read())
    s.close()
    assert s.status == 200, body
    assert body["result"]["protocolVersion"] == LEGACY, body
    sid = s.headers.get("mcp-session-id")
    assert sid, s.headers
    s = EventStream(port, "POST", {"Accept": "application/json, text/event-stream", "Mcp-Session-Id": sid,
                                   "MCP-Protocol-Version": LEGACY},
                    {"jsonrpc": "2.0", "method": "notifications/initialized"})
    s.resp.read()
    s.close()
    assert s.status == 202, s.status
    return sid


# ------------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------------

@pytest.mark.timeout(30)
def test_a_cut_stream_resumes_with_last_event_id_and_the_call_runs_on_once(gw):
    g, upstream = gw
    steps, tag, token, req_id = 6, "raw-cut", "resume-raw-1", 7
    sid = open_session(g.port)
    session = {"Mcp-Session-Id": sid, "MCP-Protocol-Version": LEGACY}
    call = {"jsonrpc": "2.0", "id": req_id, "method": "tools/call",
            "params": {"name": TOOL, "arguments": {"steps": steps, "interval_ms": 400, "tag": tag},
                       "_meta": {"progressToken": token}}}

    # 1. The call's reply becomes an event stream: a priming event first, then the progress.
    post = EventStream(g.port, "POST", session | {"Accept": "application/json, text/event-stream"}, call)
    assert post.status == 200 and post.headers["content-type"].startswith("text/event-stream"), post.headers
    before: list[dict] = []
    while sum(progress_of(e) is not None for e in before) < 2:
        ev = post.next_event()
        assert ev is not None, f"the stream ended early: {before}"
        before.append(ev)
    priming = before[0]
    stream, seq0 = parse_id(priming)
    assert seq0 == 0 and priming["data"] == "" and isinstance(priming["retry"], int) and priming["retry"] > 0, \
        f"the stream does not open with a priming event (id <stream>-0, retry, empty data): {priming}"
    for ev in before[1:]:
        assert message(ev)["params"]["progressToken"] == token, ev
    last_id = before[-1]["id"]

    # 2. Cut it (an RST), and let the upstream go on: it sends two more progress events meanwhile.
    post.cut()
    wait_until(lambda: len(upstream.phases(tag, "progress")) >= 4, 10, "the upstream to send progress 4",
               detail=lambda: str(upstream.entries(tag)))
    assert not upstream.phases(tag, "end"), f"the cut ended the call upstream: {upstream.entries(tag)}"

    # 3. Resume on the same session: what was missed, then the rest, ending with the answer.
    get = EventStream(g.port, "GET", session | {"Accept": "text/event-stream", "Last-Event-ID": last_id})
    assert get.status == 200 and get.headers["content-type"].startswith("text/event-stream"), get.headers
    after = get.rest()
    get.close()
    assert after, "the resumed stream carried nothing"
    assert get.ended, "the resumed stream did not end after the answer"

    # Every event carries an id of the same stream; its numbers go on without a gap or a repeat.
    got = before + [e for e in after if e["data"]]
    ids = [parse_id(e) for e in got]
    assert {n for n, _ in ids} == {stream}, f"events of other streams: {[e['id'] for e in got]}"
    assert [s for _, s in ids] == list(range(len(got))), \
        f"event ids are not one gapless sequence: before the cut {[e['id'] for e in before]}, after {[e['id'] for e in after]}"
    # Empty-data events on the resumed stream (a priming one, if any) name a position already seen.
    for e in after:
        if not e["data"]:
            assert parse_id(e) == (stream, ids[len(before) - 1][1]), f"a priming event that moves the position: {e}"

    progress = [p for p in map(progress_of, got) if p is not None]
    assert progress == list(range(1, steps + 1)), f"progress before the cut {list(map(progress_of, before))}, " \
                                                   f"after it {list(map(progress_of, after))}"
    answer = message(got[-1])
    assert answer.get("id") == req_id and "result" in answer, f"the stream does not end with the answer: {got[-1]}"
    assert answer["result"]["content"][0]["text"] == f"finished {steps} steps ({tag})", answer
    assert all(message(e).get("method") == "notifications/progress" for e in got[1:-1]), got

    # The tool ran once, to its end: the cut did not cancel it and nothing repeated it.
    assert len(upstream.phases(tag, "start")) == 1, upstream.entries(tag)
    assert [e["finished"] for e in upstream.phases(tag, "end")] == [True], upstream.entries(tag)

    # 4. The finished stream can be replayed from its start, in full, and then ends.
    replay = EventStream(g.port, "GET", session | {"Accept": "text/event-stream", "Last-Event-ID": f"{stream}-0"})
    again = [e for e in replay.rest() if e["data"]]
    replay.close()
    assert replay.ended
    assert [(e["id"], e["data"]) for e in again] == [(e["id"], e["data"]) for e in got[1:]], again


@pytest.mark.timeout(30)
def test_the_python_client_resumes_a_stream_cut_by_the_network(gw):
    g, upstream = gw
    steps, tag = 8, "py-client-cut"
    proxy = CutProxy(g.port, marker=b"notifications/progress", count=2).start()
    authed_port(proxy.port)  # the client's token goes through the proxy to the gateway
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, msg: str | None) -> None:
        seen.append((progress, total, msg))

    async def run():
        async with Client(f"http://127.0.0.1:{proxy.port}/mcp", **client_kwargs("legacy")) as c:
            assert c.protocol_version == LEGACY
            r = await c.call_tool(TOOL, {"steps": steps, "interval_ms": 300, "tag": tag},
                                  progress_callback=on_progress)
            return r

    try:
        r = run_async(run())
    finally:
        stats = proxy.stats()
        proxy.close()

    assert not r.is_error and text_of(r) == f"finished {steps} steps ({tag})", r
    assert [p for p, _, _ in seen] == list(range(1, steps + 1)), f"progress the client saw: {seen}"
    assert all(t == steps for _, t, _ in seen), seen

    # The connection carrying the call's stream was really cut, mid-call.
    assert len(stats["cuts"]) == 1, stats["cuts"]
    cut_conn = stats["cuts"][0]["conn"]
    reqs = stats["requests"]
    calls = [q for q in reqs if q["method"] == "POST" and (q["rpc"] or {}).get("method") == "tools/call"]
    assert len(calls) == 1, f"the client sent the call {len(calls)} times: {calls}"
    assert calls[0]["conn"] == cut_conn, (calls, stats["cuts"])
    # ... and the client resumed it with GET and Last-Event-ID, on another connection.
    resumes = [q for q in reqs if q["method"] == "GET" and "last-event-id" in q["headers"]]
    assert len(resumes) == 1, f"resumptions: {resumes}"
    assert resumes[0]["conn"] != cut_conn and resumes[0]["headers"]["mcp-session-id"] == calls[0]["headers"]["mcp-session-id"]
    # From an event it got before the cut, past the priming one.
    resumed_from, delivered = resumes[0]["headers"]["last-event-id"], stats["cuts"][0]["event_ids"]
    assert resumed_from in delivered and not resumed_from.endswith("-0"), \
        f"the client resumed from {resumed_from}; the ids on the stream before the cut were {delivered}"
    assert stats["connections"] >= 2, stats["connections"]

    # The tool ran once, to its end.
    assert len(upstream.phases(tag, "start")) == 1, upstream.entries(tag)
    assert [e["finished"] for e in upstream.phases(tag, "end")] == [True], upstream.entries(tag)
