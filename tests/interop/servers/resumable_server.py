"""A raw Streamable HTTP MCP server (legacy era, 2025-11-25) whose SSE streams end early and can be
resumed, for the tests of the gateway's upstream stream resumption (native and browser connectors).

Standard library only (http.server's ThreadingHTTPServer, HTTP/1.1, SSE bodies chunked and ended
cleanly with the terminating chunk: the server ends a stream, as SEP-1699 lets it, rather than the
network breaking it).

- POST /mcp
  - `server/discover` (the gateway's era probe): HTTP 400 with a JSON-RPC -32601 error, as a legacy
    server has no such method (and no session yet); the client falls back to `initialize`.
  - `initialize`: a new session (`Mcp-Session-Id` header), protocolVersion 2025-11-25, tools only.
  - Any other message needs a known `Mcp-Session-Id` (else HTTP 404).
  - Notifications and responses: 202, no body.
  - `tools/list`: one tool, `slow_echo(text)`.
  - `tools/call slow_echo`: the reply is an SSE stream, call k's events carry ids `p<k>-<n>`:
    a priming event (`id: p<k>-0`, `retry: --call-retry-ms`, empty data), then `id: p<k>-1` with a
    notifications/progress (if the request had a progressToken) or a notifications/message, and then
    the stream ENDS, before the response. The tool runs once, in the background (`--tool-delay-ms`),
    its run logged. A GET with `Last-Event-ID: p<k>-<n>` resumes that stream: the events after n, then
    (once the tool is done) the response `id: p<k>-2` with the request's id as the client sent it, then
    the stream ends.
- GET /mcp with `Accept: text/event-stream` and without a `p…` Last-Event-ID: the standalone stream.
  Stream g sends one event, `id: g-<g>`, `retry: --get-retry-ms`, a notifications/message, and ENDS.
- DELETE /mcp: ends the session (200).
- OPTIONS (any path): CORS preflight, 204. Every response carries Access-Control-Allow-Origin: * and
  exposes Mcp-Session-Id, so a page of another origin can use the server.
- GET /log: what the server saw, as JSON (times are the server's time.monotonic(), in seconds):
    {"posts": [{"t", "method", "id", "session", "version"}...],
     "gets": [{"t", "kind": "standalone"|"resume"|"refused", "last_event_id", "session", "version",
               "accept", "origin", "sent_ids": [...], "t_end" (when the server ended the stream), "stream"}...],
     "calls": [{"k", "request_id", "text", "t", "sent_ids", "t_end" (the POST stream's end), "response_id"}...],
     "runs": [{"k", "request_id", "text", "t"}...], "options": [...], "deletes": [...], "sessions": [...]}

Usage: python resumable_server.py [--port PORT] [--get-retry-ms 500] [--call-retry-ms 300]
       [--tool-delay-ms 100]
Prints "READY <port>" on stdout once listening.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LEGACY = "2025-11-25"
SLOW_ECHO = {
    "name": "slow_echo",
    "description": "Echoes its text; its POST stream always ends before the answer (resume it with GET).",
    "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
}
CORS_ALLOW = ["content-type", "accept", "mcp-session-id", "mcp-protocol-version", "last-event-id",
              "mcp-method", "mcp-name", "authorization"]


class Settings:
    get_retry_ms = 500
    call_retry_ms = 300
    tool_delay_ms = 100


class Call:
    """One tools/call stream: its events (after the priming one), and the response once the tool ran."""

    def __init__(self, k: int, request_id, text: str) -> None:
        self.k = k
        self.request_id = request_id
        self.text = text
        self.events: list[tuple[int, str]] = []  # (seq, data) for seq >= 1
        self.done = threading.Event()
        self.response: str | None = None
        self.entry: dict = {}


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sessions: set[str] = set()
        self.log: dict[str, list] = {"posts": [], "gets": [], "calls": [], "runs": [], "options": [], "deletes": []}
        self.calls: dict[int, Call] = {}
        self.next_call = 1
        self.next_get = 1

    def snapshot(self) -> dict:
        with self.lock:
            return json.loads(json.dumps(self.log | {"sessions": sorted(self.sessions)}))


STATE = State()


def sse(event_id: str | None, data: str, retry: int | None = None) -> str:
    out = ""
    if event_id is not None:
        out += f"id: {event_id}\n"
    if retry is not None:
        out += f"retry: {retry}\n"
    return out + f"data: {data}\n\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "resumable-server/1"

    def log_message(self, fmt, *args):  # to stderr, with the monotonic time
        sys.stderr.write(f"{time.monotonic():.3f} {self.command} {self.path} {fmt % args}\n")

    # ---- plumbing ------------------------------------------------------------------------------

    def cors(self, preflight: bool = False) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Expose-Headers", "mcp-session-id, mcp-protocol-version")
        if preflight:
            asked = [h.strip().lower() for h in (self.headers.get("Access-Control-Request-Headers") or "").split(",") if h.strip()]
            allow = CORS_ALLOW + [h for h in asked if h not in CORS_ALLOW]
            self.send_header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
            self.send_header("Access-Control-Allow-Headers", ", ".join(allow))
            self.send_header("Access-Control-Max-Age", "600")

    def reply(self, status: int, body: bytes = b"", ctype: str = "application/json", headers: dict | None = None) -> None:
        self.send_response(status)
        self.cors()
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def reply_json(self, status: int, obj, headers: dict | None = None) -> None:
        self.reply(status, json.dumps(obj).encode(), headers=headers)

    def start_sse(self) -> None:
        self.send_response(200)
        self.cors()
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def chunk(self, text: str) -> None:
        b = text.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(b), b))
        self.wfile.flush()

    def end_sse(self) -> None:
        """End the stream cleanly: the terminating chunk (the connection stays open for reuse)."""
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def session(self) -> str | None:
        return self.headers.get("Mcp-Session-Id")

    # ---- methods -------------------------------------------------------------------------------

    def do_OPTIONS(self) -> None:
        with STATE.lock:
            STATE.log["options"].append({"t": time.monotonic(), "path": self.path,
                                         "request_headers": self.headers.get("Access-Control-Request-Headers"),
                                         "request_method": self.headers.get("Access-Control-Request-Method")})
        self.send_response(204)
        self.cors(preflight=True)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_DELETE(self) -> None:
        sid = self.session()
        with STATE.lock:
            STATE.log["deletes"].append({"t": time.monotonic(), "session": sid})
            known = sid in STATE.sessions
            STATE.sessions.discard(sid)
        self.reply(200 if known else 404)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/log":
            return self.reply_json(200, STATE.snapshot())
        if path != "/mcp":
            return self.reply(404)
        now = time.monotonic()
        last = self.headers.get("Last-Event-ID")
        entry = {"t": now, "last_event_id": last, "session": self.session(),
                 "version": self.headers.get("MCP-Protocol-Version"), "accept": self.headers.get("Accept"),
                 "origin": self.headers.get("Origin"), "sent_ids": [], "t_end": None, "kind": "refused"}
        with STATE.lock:
            STATE.log["gets"].append(entry)
            known = entry["session"] in STATE.sessions
        if "text/event-stream" not in (entry["accept"] or ""):
            return self.reply(405)
        if not known:
            return self.reply_json(404, {"jsonrpc": "2.0", "id": None,
                                         "error": {"code": -32001, "message": "Session not found"}})
        if last and last.startswith("p"):
            return self.resume_call(entry, last)
        # The standalone stream: one event, then the server ends it.
        with STATE.lock:
            g = STATE.next_get
            STATE.next_get += 1
            entry["kind"] = "standalone"
            entry["stream"] = f"g-{g}"
        note = {"jsonrpc": "2.0", "method": "notifications/message",
                "params": {"level": "info", "logger": "resumable", "data": f"standalone stream g-{g}"}}
        self.start_sse()
        self.chunk(sse(f"g-{g}", json.dumps(note), retry=Settings.get_retry_ms))
        with STATE.lock:
            entry["sent_ids"].append(f"g-{g}")
        self.end_sse()
        with STATE.lock:
            entry["t_end"] = time.monotonic()

    def resume_call(self, entry: dict, last: str) -> None:
        try:
            k_s, n_s = last[1:].split("-", 1)
            k, n = int(k_s), int(n_s)
        except ValueError:
            return self.reply(400)
        with STATE.lock:
            call = STATE.calls.get(k)
            entry["kind"] = "resume"
            entry["stream"] = f"p{k}"
        if call is None:
            return self.reply(400)
        self.start_sse()
        with STATE.lock:
            missed = [(seq, data) for seq, data in call.events if seq > n]
        for seq, data in missed:
            with STATE.lock:
                entry["sent_ids"].append(f"p{k}-{seq}")
            self.chunk(sse(f"p{k}-{seq}", data))
        call.done.wait(10)
        if call.response is not None:
            # Logged before it is written: a client that has the answer must find it in /log.
            with STATE.lock:
                entry["sent_ids"].append(f"p{k}-2")
                call.entry["response_id"] = call.request_id
            self.chunk(sse(f"p{k}-2", call.response))
        self.end_sse()
        with STATE.lock:
            entry["t_end"] = time.monotonic()

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/mcp":
            return self.reply(404)
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        try:
            msg = json.loads(raw)
        except ValueError:
            return self.reply_json(400, {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}})
        meth, mid, sid = msg.get("method"), msg.get("id"), self.session()
        with STATE.lock:
            STATE.log["posts"].append({"t": time.monotonic(), "method": meth, "id": mid, "session": sid,
                                       "version": self.headers.get("MCP-Protocol-Version")})
        if meth == "initialize":
            sid = uuid.uuid4().hex
            with STATE.lock:
                STATE.sessions.add(sid)
            result = {"protocolVersion": LEGACY, "capabilities": {"tools": {"listChanged": True}, "logging": {}},
                      "serverInfo": {"name": "resumable-server", "version": "1"}}
            return self.reply_json(200, {"jsonrpc": "2.0", "id": mid, "result": result}, {"Mcp-Session-Id": sid})
        if meth == "server/discover" and sid is None:
            return self.reply_json(400, {"jsonrpc": "2.0", "id": mid,
                                         "error": {"code": -32601, "message": "Method not found: server/discover"}})
        with STATE.lock:
            known = sid in STATE.sessions
        if not known:
            return self.reply_json(404, {"jsonrpc": "2.0", "id": None,
                                         "error": {"code": -32001, "message": "Session not found"}})
        if mid is None or meth is None:  # a notification, or a response to a request of ours
            return self.reply(202)
        if meth == "ping":
            return self.reply_json(200, {"jsonrpc": "2.0", "id": mid, "result": {}})
        if meth == "tools/list":
            return self.reply_json(200, {"jsonrpc": "2.0", "id": mid, "result": {"tools": [SLOW_ECHO]}})
        if meth == "tools/call" and (msg.get("params") or {}).get("name") == "slow_echo":
            return self.slow_echo(msg)
        return self.reply_json(200, {"jsonrpc": "2.0", "id": mid,
                                     "error": {"code": -32601, "message": f"Method not found: {meth}"}})

    def slow_echo(self, msg: dict) -> None:
        params = msg.get("params") or {}
        text = str((params.get("arguments") or {}).get("text", ""))
        token = (params.get("_meta") or {}).get("progressToken")
        with STATE.lock:
            k = STATE.next_call
            STATE.next_call += 1
            call = Call(k, msg["id"], text)
            call.entry = {"k": k, "request_id": msg["id"], "text": text, "t": time.monotonic(),
                          "sent_ids": [], "t_end": None, "response_id": None, "progress_token": token}
            STATE.calls[k] = call
            STATE.log["calls"].append(call.entry)
        if token is not None:
            first = {"jsonrpc": "2.0", "method": "notifications/progress",
                     "params": {"progressToken": token, "progress": 1, "total": 2, "message": "working"}}
        else:
            first = {"jsonrpc": "2.0", "method": "notifications/message",
                     "params": {"level": "info", "logger": "slow_echo", "data": "working"}}
        call.events.append((1, json.dumps(first)))

        def run() -> None:
            time.sleep(Settings.tool_delay_ms / 1000)
            result = {"content": [{"type": "text", "text": f"echo: {text}"}]}
            with STATE.lock:
                STATE.log["runs"].append({"k": k, "request_id": msg["id"], "text": text, "t": time.monotonic()})
                call.response = json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result})
            call.done.set()

        threading.Thread(target=run, daemon=True).start()
        self.start_sse()
        self.chunk(sse(f"p{k}-0", "", retry=Settings.call_retry_ms))  # priming: an id, no message
        self.chunk(sse(f"p{k}-1", call.events[0][1]))
        with STATE.lock:
            call.entry["sent_ids"] += [f"p{k}-0", f"p{k}-1"]
        self.end_sse()  # before the response: the client must resume with GET
        with STATE.lock:
            call.entry["t_end"] = time.monotonic()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        super().server_bind()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--get-retry-ms", type=int, default=500)
    p.add_argument("--call-retry-ms", type=int, default=300)
    p.add_argument("--tool-delay-ms", type=int, default=100)
    a = p.parse_args()
    Settings.get_retry_ms, Settings.call_retry_ms, Settings.tool_delay_ms = a.get_retry_ms, a.call_retry_ms, a.tool_delay_ms
    srv = Server((a.host, a.port), Handler)  # bound and listening from here on
    print(f"READY {srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
