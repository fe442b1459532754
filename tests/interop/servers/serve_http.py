"""What the test servers share: serve an MCPServer's Streamable HTTP app on HOST:PORT (0 picks a free
port), announcing `READY <port>` on stdout only once the socket accepts connections.

With `get_stream=False` a GET on the MCP path is answered 405 Method Not Allowed, as the spec allows a
server that offers no standalone GET stream: a client then has no open stream that would tell it the
server restarted."""

from __future__ import annotations

import socket

import uvicorn
from mcp.server.transport_security import TransportSecuritySettings


def without_get_stream(app, path: str):
    """The ASGI app, but GET on `path` gets 405 (Allow: POST, DELETE) before the SDK sees it."""
    async def wrapped(scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"].rstrip("/") == path.rstrip("/"):
            await send({"type": "http.response.start", "status": 405,
                        "headers": [(b"allow", b"POST, DELETE"), (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)

    return wrapped


def serve(server, host: str, port: int, path: str, get_stream: bool = True) -> None:
    app = server.streamable_http_app(
        streamable_http_path=path,
        host=host,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    if not get_stream:
        app = without_get_stream(app, path)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)  # accept connections before announcing READY
    print(f"READY {sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
