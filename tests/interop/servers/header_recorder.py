"""A real MCP upstream (Python `mcp` SDK, MCPServer over Streamable HTTP, both eras on one endpoint)
that records every HTTP request it gets, for the gateway's auth tests: what arrived, with which
headers, and what never did.

Each HTTP request on any path appends one JSON line to the `--log` file before the SDK sees it
(flushed and fsynced):
    {"server": <--name>, "http_method": "POST", "path": "/mcp", "query": "",
     "headers": {<lower-case name>: <value>, ...},
     "rpc": [{"method": ..., "id": ..., "name": <params.name>, "uri": <params.uri>,
              "meta_type": <JSON type of params._meta, or null if absent>,
              "arguments_type": <JSON type of params.arguments, or null if absent>,
              "arguments": <params.arguments, tools/call only>,
              "traceparent", "tracestate": <from params._meta, when it is an object>}, ...]}
`rpc` lists the JSON-RPC messages of the body (one, or each of a batch; [] for no JSON body).

Tools:
- read_note(id) -> "note <id>"; delete_note(id) -> "deleted <id>"; echo(text) -> text
- set_level(level, target): a strict inputSchema, with no other properties allowed anywhere:
    level: integer 0..10; target: {room: "kitchen" | "hall"} -> "level <level> in <room>"
- annotate(text, extra?): its inputSchema's `extra` is a `$ref` to `--ref-url` (default
  https://127.0.0.1:9/never.json), an https:// URL nobody should ever fetch -> "annotated <text>"

Usage: python header_recorder.py --log FILE [--port PORT] [--host 127.0.0.1] [--path /mcp] [--name NAME]
       [--ref-url URL]
Prints "READY <port>" on stdout once listening.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

STRICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "level": {"type": "integer", "minimum": 0, "maximum": 10},
        "target": {
            "type": "object",
            "properties": {"room": {"type": "string", "enum": ["kitchen", "hall"]}},
            "required": ["room"],
            "additionalProperties": False,
        },
    },
    "required": ["level", "target"],
    "additionalProperties": False,
}


def ref_schema(ref_url: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"text": {"type": "string"}, "extra": {"$ref": ref_url}},
        "required": ["text"],
    }


def json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def describe(msg: Any) -> dict[str, Any]:
    if not isinstance(msg, dict):
        return {"method": None, "shape": json_type(msg)}
    params = msg.get("params")
    out: dict[str, Any] = {"method": msg.get("method"), "id": msg.get("id")}
    if isinstance(params, dict):
        out["name"] = params.get("name")
        out["uri"] = params.get("uri")
        out["meta_type"] = json_type(params["_meta"]) if "_meta" in params else None
        if isinstance(params.get("_meta"), dict):
            out["traceparent"] = params["_meta"].get("traceparent")
            out["tracestate"] = params["_meta"].get("tracestate")
        out["arguments_type"] = json_type(params["arguments"]) if "arguments" in params else None
        if msg.get("method") == "tools/call":
            out["arguments"] = params.get("arguments")
    elif params is not None:
        out["params_type"] = json_type(params)
    return out


def build_server(ref_url: str) -> MCPServer:
    mcp = MCPServer("header-recorder", version="1.0.0",
                    instructions="Records every request's headers, for the gateway's auth tests")

    @mcp.tool()
    def read_note(id: str) -> str:
        """Read a note."""
        return f"note {id}"

    @mcp.tool()
    def delete_note(id: str) -> str:
        """Delete a note."""
        return f"deleted {id}"

    @mcp.tool()
    def echo(text: str) -> str:
        """Echo text back."""
        return text

    @mcp.tool()
    def set_level(level: int, target: dict) -> str:
        """Set a level (0..10) in a room (kitchen or hall); nothing else allowed."""
        return f"level {level} in {target.get('room')}"

    @mcp.tool()
    def annotate(text: str, extra: dict | None = None) -> str:
        """Annotate text; `extra`'s schema lives at a remote URL."""
        return f"annotated {text}"

    # The SDK derives inputSchema from the signature; these two have schemas of their own.
    mcp._tool_manager.get_tool("set_level").parameters = STRICT_SCHEMA
    mcp._tool_manager.get_tool("annotate").parameters = ref_schema(ref_url)
    return mcp


def recording(app, log_path: str, name: str):
    """The ASGI app, recording each HTTP request (headers and JSON-RPC summary) before it runs."""

    def append(entry: dict) -> None:
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())

    async def wrapped(scope, receive, send):
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    break
            else:  # disconnected before the body ended
                break
        body = b"".join(chunks)
        rpc: list[dict] = []
        if body:
            try:
                parsed = json.loads(body)
                rpc = [describe(m) for m in parsed] if isinstance(parsed, list) else [describe(parsed)]
            except ValueError:
                rpc = [{"method": None, "unparsed": True}]
        headers: dict[str, str] = {}
        for k, v in scope.get("headers", []):
            key = k.decode("latin-1").lower()
            val = v.decode("latin-1")
            headers[key] = f"{headers[key]}, {val}" if key in headers else val
        append({"server": name, "http_method": scope["method"], "path": scope["path"],
                "query": scope.get("query_string", b"").decode("latin-1"), "headers": headers, "rpc": rpc})

        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await app(scope, replay, send)

    return wrapped


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--path", default="/mcp")
    p.add_argument("--log", required=True)
    p.add_argument("--name", default="recorder")
    p.add_argument("--ref-url", default="https://127.0.0.1:9/never.json")
    a = p.parse_args()

    server = build_server(a.ref_url)
    app = server.streamable_http_app(
        streamable_http_path=a.path,
        host=a.host,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    app = recording(app, a.log, a.name)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((a.host, a.port))
    sock.listen(128)  # accept connections before announcing READY
    print(f"READY {sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


if __name__ == "__main__":
    main()
