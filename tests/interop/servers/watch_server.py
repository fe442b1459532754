"""A real MCP upstream whose resources and tool list change on demand, for the notification tests
(`subscriptions/listen` downstream and upstream, `resources/subscribe`). Built on the Python `mcp`
SDK's low-level `Server`, in one of two roles:

- `--stdio`: the LEGACY role. Served on stdin/stdout; the gateway is configured with `"era": "legacy"`
  so its first message is `initialize`, and the SDK then keeps the connection legacy (2025-11-25:
  an enveloped 2026-07-28 request on it is refused). It advertises `resources.subscribe` and
  `tools.listChanged`, serves `resources/subscribe` / `resources/unsubscribe`, and pushes plain
  (unstamped) `notifications/resources/updated` and `notifications/tools/list_changed` on the
  connection. It does not serve `subscriptions/listen`.
- `--port PORT`: the MODERN role, Streamable HTTP (prints "READY <port>"). It serves
  `subscriptions/listen` with the SDK's `ListenHandler` (ack first, every frame stamped with the
  listen's id) over an in-memory bus, and no `resources/subscribe` (the modern wire has none).

Either way:
- resources `watch://<name>/alpha` and `watch://<name>/beta` (text "<name> <leaf> v<k>", k counting
  touches of that URI);
- tool `touch(uris, tools_changed=False)`: for each URI, in the order given, one "this resource
  changed" notification (whether or not anyone subscribed to it: a server may notify more than was
  asked, the gateway filters); then, with `tools_changed`, it adds a tool `fresh` to its list and
  announces the list change. It answers "touched <uris>" after the notifications were sent.
- tool `fresh` (only after a `touch(..., tools_changed=True)`): answers "fresh".

`--log FILE` gets one JSON line per event, flushed and fsynced before the server goes on:
`{"event": "subscribe"|"unsubscribe", "uri"}` (legacy role), `{"event": "listen", "id",
"notifications"}` when a `subscriptions/listen` stream starts, written just before its handler
registers on the bus (so once a test has read this line, a later `touch` reaches that stream), and
`{"event": "listen-end", "id"}` when it ends however it ends (modern role), and
`{"event": "touch", "uris", "tools_changed"}` once a touch has sent its notifications.

Usage: python watch_server.py (--stdio | --port PORT [--host 127.0.0.1] [--path /mcp]) --log FILE
       [--name NAME]
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import mcp_types as types
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ResourceUpdated, ToolsListChanged


class State:
    log_path = ""
    name = "watch"
    legacy = True
    fresh = False
    touches: dict[str, int] = {}
    subscribed: set[str] = set()


def log(entry: dict) -> None:
    with open(State.log_path, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")
        f.flush()
        os.fsync(f.fileno())


def uris() -> list[str]:
    return [f"watch://{State.name}/alpha", f"watch://{State.name}/beta"]


TOUCH = types.Tool(
    name="touch",
    description="Send resource-updated for each URI given, then (tools_changed) grow the tool list.",
    inputSchema={
        "type": "object",
        "properties": {"uris": {"type": "array", "items": {"type": "string"}},
                       "tools_changed": {"type": "boolean"}},
        "required": ["uris"],
    },
)
FRESH = types.Tool(name="fresh", description="Appears after touch(tools_changed=True).",
                   inputSchema={"type": "object", "properties": {}})


class RecordingListen(ListenHandler):
    """The SDK's listen handler, logging each stream's filter as it starts and its end."""

    async def __call__(self, ctx, params: types.SubscriptionsListenRequestParams):
        log({"event": "listen", "id": ctx.request_id,
             "notifications": params.notifications.model_dump(by_alias=True, exclude_none=True, mode="json")})
        try:
            return await super().__call__(ctx, params)
        finally:
            log({"event": "listen-end", "id": ctx.request_id})


def build() -> Server:
    bus = InMemorySubscriptionBus()

    async def list_tools(ctx, params) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[TOUCH, FRESH] if State.fresh else [TOUCH])

    async def call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        args: dict[str, Any] = params.arguments or {}
        if params.name == "fresh" and State.fresh:
            return types.CallToolResult(content=[types.TextContent(type="text", text="fresh")])
        if params.name != "touch":
            return types.CallToolResult(content=[types.TextContent(type="text", text=f"no tool {params.name}")],
                                        is_error=True)
        touched = [str(u) for u in args.get("uris", [])]
        for uri in touched:
            State.touches[uri] = State.touches.get(uri, 0) + 1
            if State.legacy:
                await ctx.session.send_resource_updated(uri)
            else:
                await bus.publish(ResourceUpdated(uri=uri))
        changed = bool(args.get("tools_changed"))
        if changed:
            State.fresh = True
            if State.legacy:
                await ctx.session.send_tool_list_changed()
            else:
                await bus.publish(ToolsListChanged())
        log({"event": "touch", "uris": touched, "tools_changed": changed})
        return types.CallToolResult(content=[types.TextContent(type="text", text=f"touched {' '.join(touched)}")])

    async def list_resources(ctx, params) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=[
            types.Resource(name=u.rsplit("/", 1)[1], uri=u, mimeType="text/plain") for u in uris()])

    async def read_resource(ctx, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        uri = str(params.uri)
        leaf = uri.rsplit("/", 1)[1]
        text = f"{State.name} {leaf} v{State.touches.get(uri, 0)}"
        return types.ReadResourceResult(contents=[types.TextResourceContents(uri=uri, mimeType="text/plain", text=text)])

    async def subscribe(ctx, params: types.SubscribeRequestParams) -> types.EmptyResult:
        State.subscribed.add(str(params.uri))
        log({"event": "subscribe", "uri": str(params.uri)})
        return types.EmptyResult()

    async def unsubscribe(ctx, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        State.subscribed.discard(str(params.uri))
        log({"event": "unsubscribe", "uri": str(params.uri)})
        return types.EmptyResult()

    kw: dict[str, Any] = {}
    if State.legacy:
        kw |= {"on_subscribe_resource": subscribe, "on_unsubscribe_resource": unsubscribe}
    else:
        kw |= {"on_subscriptions_listen": RecordingListen(bus)}
    return Server(
        f"watch-{State.name}",
        version="1.0.0",
        instructions=f"{'Legacy' if State.legacy else 'Modern'} upstream whose resources change on demand",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_read_resource=read_resource,
        **kw,
    )


async def run_stdio(server: Server) -> None:
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read, write):
        opts = server.create_initialization_options(NotificationOptions(tools_changed=True))
        await server.run(read, write, opts)


def main() -> None:
    p = argparse.ArgumentParser()
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--stdio", action="store_true", help="the legacy role, on stdin/stdout")
    mode.add_argument("--port", type=int, help="the modern role, Streamable HTTP on this port (0: any)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--path", default="/mcp")
    p.add_argument("--log", required=True)
    p.add_argument("--name", default="watch")
    a = p.parse_args()
    State.log_path, State.name, State.legacy = a.log, a.name, a.stdio
    server = build()
    if a.stdio:
        import anyio

        anyio.run(run_stdio, server)
    else:
        from serve_http import serve  # a sibling module: Python puts the script's folder on sys.path

        serve(server, a.host, a.port, a.path)


if __name__ == "__main__":
    main()
