"""A real MCP upstream (Python `mcp` SDK, MCPServer over Streamable HTTP) for the offline-queue and
cache tests. Like modern_server.py it serves both eras on one endpoint, so the gateway's probe finds it
modern.

- tool `record(n, pad="")`: appends one JSON line `{"n": n, "key": <idempotency key or null>}` to the
  `--log` file (flushed and fsynced before answering) and returns "recorded <n>". The key is the
  request's `_meta["io.github.mcp-edge-gateway/idempotencyKey"]`, read from the SDK's request context.
  `--delay-ms` sleeps before recording, so a test can kill the gateway while a call is in flight.
  With `--started-log FILE`, each record() call also appends `{"n", "key", "phase": "start"}` there
  when it begins and `{"n", "key", "phase": "end", "recorded": <bool>}` when it ends, however it ends
  (in a `finally`: also when the client went away and the SDK cancelled it). A test can then wait
  until every call that started has ended, instead of sleeping in the hope that it has.
- tool `lookup(n)`, annotated `readOnlyHint` (so a gateway may repeat it): appends
  `{"tool": "lookup", "n": n, "server": <--name>}` to the `--log` file and returns "<name> <n>", so a test
  can tell which of several servers ran each call. With `--fail` it logs the call (with `"failed": true`)
  and then fails it with a JSON-RPC internal error (-32603, an `MCPError` raised by the tool, which the
  SDK passes through unchanged), not an `isError` result: the server stays up and answers everything
  else, but its lookups fail server-side.
- `--name NAME`: record() entries (in both logs) carry `"tool": "record", "server": NAME` too. Without
  it they stay `{"n", "key"}`.
- resource `counter://public`: "public v<k>", k counting reads; cacheScope "public", ttlMs `--ttl-ms`.
- resource `counter://private`: "private v<k>"; cacheScope "private", ttlMs `--ttl-ms`.

Server-wide cache hints come from `MCPServer(cache_hints=...)`, which is per method. The SDK has no
per-resource hint (MCPServer's resources/read handler builds the result itself), so a middleware, the
SDK's public hook around every request, rewrites `cacheScope` on the 2026-07-28 wire form of
counter://private's result. Legacy-era results carry no hints (the SDK sieves them out).

`--no-get-stream` answers GET on the MCP path with 405: no standalone GET stream (the spec allows it),
so a client with a legacy session has no open stream that would tell it the server restarted.

Usage: python counter_server.py --port PORT --log FILE [--host 127.0.0.1] [--path /mcp] [--ttl-ms MS]
       [--delay-ms MS] [--started-log FILE] [--no-get-stream] [--name NAME] [--fail]
Prints "READY <port>" on stdout once listening.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import anyio
from mcp.server.caching import CacheHint
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, ToolAnnotations

from serve_http import serve  # a sibling module: Python puts the script's folder on sys.path

IDEMPOTENCY_KEY = "io.github.mcp-edge-gateway/idempotencyKey"
PUBLIC_URI = "counter://public"
PRIVATE_URI = "counter://private"


class Settings:
    log_path: str = ""
    started_path: str = ""
    delay_s: float = 0.0
    ttl_ms: int = 1000
    name: str = ""
    fail: bool = False


reads = {PUBLIC_URI: 0, PRIVATE_URI: 0}


def append_line(path: str, entry: dict) -> None:
    """One JSON line, flushed and fsynced before returning."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")
        f.flush()
        os.fsync(f.fileno())


async def private_scope_by_uri(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Marks counter://private's resources/read result `cacheScope: "private"`. Runs around the handler
    and sees the serialized wire dict; only a 2026-07-28 result has `ttlMs` to begin with."""
    result = await call_next(ctx)
    uri = (ctx.params or {}).get("uri") if ctx.method == "resources/read" else None
    if uri == PRIVATE_URI and isinstance(result, dict) and "ttlMs" in result:
        result = {**result, "ttlMs": Settings.ttl_ms, "cacheScope": "private"}
    return result


def build_server(ttl_ms: int) -> MCPServer:
    hint = CacheHint(ttl_ms=ttl_ms, scope="public")
    mcp = MCPServer(
        "counter-upstream",
        version="1.0.0",
        instructions="Counts calls and reads, for the gateway's offline-queue and cache tests",
        cache_hints={m: hint for m in ("tools/list", "resources/list", "resources/templates/list",
                                       "prompts/list", "resources/read")},
        middleware=[private_scope_by_uri],
    )

    @mcp.tool()
    async def record(n: int, ctx: Context, pad: str = "") -> str:
        """Append {"n", "key"} to the log file; `pad` is ignored (it makes a call big)."""
        meta = ctx.request_context.meta or {}
        key = meta.get(IDEMPOTENCY_KEY)
        who = {"tool": "record", "server": Settings.name} if Settings.name else {}
        recorded = False
        if Settings.started_path:
            append_line(Settings.started_path, {"n": n, "key": key, "phase": "start"} | who)
        try:
            if Settings.delay_s:
                await anyio.sleep(Settings.delay_s)
            append_line(Settings.log_path, {"n": n, "key": key} | who)
            recorded = True
        finally:
            if Settings.started_path:
                append_line(Settings.started_path,
                            {"n": n, "key": key, "phase": "end", "recorded": recorded} | who)
        return f"recorded {n}"

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=True))
    async def lookup(n: int) -> str:
        """Read-only: log {"tool": "lookup", "n", "server"} and answer "<server> <n>"."""
        entry = {"tool": "lookup", "n": n, "server": Settings.name}
        if Settings.fail:
            append_line(Settings.log_path, entry | {"failed": True})
            raise MCPError(code=INTERNAL_ERROR, message=f"{Settings.name or 'counter'} is failing (--fail)")
        append_line(Settings.log_path, entry)
        return f"{Settings.name} {n}"

    @mcp.resource(PUBLIC_URI, name="public", mime_type="text/plain")
    def public() -> str:
        reads[PUBLIC_URI] += 1
        return f"public v{reads[PUBLIC_URI]}"

    @mcp.resource(PRIVATE_URI, name="private", mime_type="text/plain")
    def private() -> str:
        reads[PRIVATE_URI] += 1
        return f"private v{reads[PRIVATE_URI]}"

    return mcp


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--path", default="/mcp")
    p.add_argument("--log", required=True, help="file that record() appends to")
    p.add_argument("--ttl-ms", type=int, default=1000, help="ttlMs of every cacheable result")
    p.add_argument("--delay-ms", type=int, default=0, help="sleep before each record()")
    p.add_argument("--started-log", default="", help="file that record() appends its start and end to")
    p.add_argument("--no-get-stream", action="store_true", help="answer GET on the MCP path with 405")
    p.add_argument("--name", default="", help="this server's name, in log entries and lookup() answers")
    p.add_argument("--fail", action="store_true", help="lookup() fails with a JSON-RPC internal error")
    a = p.parse_args()
    Settings.name = a.name
    Settings.fail = a.fail
    Settings.log_path = a.log
    Settings.started_path = a.started_log
    Settings.delay_s = a.delay_ms / 1000
    Settings.ttl_ms = a.ttl_ms
    serve(build_server(a.ttl_ms), a.host, a.port, a.path, get_stream=not a.no_get_stream)


if __name__ == "__main__":
    main()
