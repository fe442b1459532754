"""A TCP proxy in front of a real HTTP server that cuts a connection in the middle of a response
stream, for the downstream resumption tests.

Bytes flow both ways untouched until a connection's server-to-client bytes have carried `count`
occurrences of `marker` (by default the second `notifications/progress` event of an SSE stream). The
proxy then forwards up to the end of the SSE event holding that occurrence (its blank line, and the
chunk's CRLF when one follows), and resets the connection on both sides (SO_LINGER 0: an RST to the
client and to the server, no FIN), as a broken network would. Only the first `cuts` connections that
get that far are cut; later ones (the client's resumption) pass untouched.

It records what it saw: `connections` (accepted so far), `cut_log` (one entry per cut: the connection's
number, the bytes it had forwarded to the client and the SSE event ids among them, in order) and `requests`, the HTTP/1.1 requests clients
sent, in order, each as {"conn", "method", "path", "headers" (lower-case names), "rpc"} where "rpc" is
the JSON-RPC body of a POST with a Content-Length (or null).

In-process: `CutProxy(target_port).start()` runs its own asyncio loop in a daemon thread; `stats()`
returns the records; `close()` stops it. As a script, `python cut_proxy.py --target PORT [--port P]
[--marker TEXT] [--count N] [--cuts N]` prints "READY <port>" and answers each "stats" line on stdin
with one JSON line of the records.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import struct
import sys
import threading

EVENT_ID_LINE = re.compile(rb"(?m)^id: ?([^\r\n]*)\n")
REQUEST_HEAD = re.compile(rb"(GET|POST|DELETE|OPTIONS|PUT|PATCH) (\S+) HTTP/1\.[01]\r\n(.*?)\r\n\r\n", re.DOTALL)


def _reset_on_close(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass


class CutProxy:
    def __init__(self, target_port: int, port: int = 0, host: str = "127.0.0.1",
                 marker: bytes = b"notifications/progress", count: int = 2, cuts: int = 1) -> None:
        self.host = host
        self.target_port = target_port
        self.port = port
        self.marker = marker
        self.count = count
        self.cuts = cuts
        self.connections = 0
        self.cut_log: list[dict] = []
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task] = set()

    # -- control (any thread) ----------------------------------------------------------------------

    def start(self) -> "CutProxy":
        ready = threading.Event()
        failed: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, self.host, self.port, reuse_address=True))
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as e:  # noqa: BLE001 - reported to start()
                failed.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name=f"cut-proxy-{self.target_port}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failed:
            raise failed[0]
        return self

    def stats(self) -> dict:
        with self._lock:
            return {"connections": self.connections, "cuts": [dict(c) for c in self.cut_log],
                    "requests": [dict(r) for r in self.requests]}

    def close(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            loop.stop()

        asyncio.run_coroutine_threadsafe(stop(), loop)
        if self._thread is not None:
            self._thread.join(10)

    # -- the proxy (its loop's thread) -------------------------------------------------------------

    def _record_requests(self, conn: int, buf: bytearray, at: int) -> int:
        """Record the complete requests in `buf` from offset `at`; returns where parsing stopped."""
        while True:
            m = REQUEST_HEAD.match(buf, at)
            if m is None:
                return at
            headers = {}
            for line in m.group(3).split(b"\r\n"):
                k, _, v = line.partition(b":")
                headers[k.strip().lower().decode(errors="replace")] = v.strip().decode(errors="replace")
            body_at = m.end()
            length = int(headers.get("content-length", "0") or 0)
            if len(buf) < body_at + length:
                return at  # the body is not all here yet
            rpc = None
            if length:
                try:
                    rpc = json.loads(bytes(buf[body_at:body_at + length]))
                except ValueError:
                    rpc = None
            with self._lock:
                self.requests.append({"conn": conn, "method": m.group(1).decode(), "path": m.group(2).decode(),
                                      "headers": headers, "rpc": rpc})
            at = body_at + length

    async def _up_to_client(self, conn: int, up_reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            up_writer: asyncio.StreamWriter) -> None:
        seen = bytearray()  # every byte the server sent on this connection
        try:
            while data := await up_reader.read(65536):
                start = len(seen)
                seen += data
                cut_at = None
                if len(self.cut_log) < self.cuts and seen.count(self.marker) >= self.count:
                    pos = -1
                    for _ in range(self.count):
                        pos = seen.find(self.marker, pos + 1)
                    end = seen.find(b"\n\n", pos)
                    if end >= 0:
                        cut_at = end + 2
                        if seen[cut_at:cut_at + 2] == b"\r\n":
                            cut_at += 2
                        cut_at = max(cut_at, start)
                if cut_at is None:
                    writer.write(data)
                    await writer.drain()
                    continue
                writer.write(bytes(seen[start:cut_at]))
                await writer.drain()
                # Let the last bytes reach the client's socket before the reset.
                while writer.transport.get_write_buffer_size():
                    await asyncio.sleep(0.005)
                await asyncio.sleep(0.05)
                ids = [m.decode(errors="replace") for m in EVENT_ID_LINE.findall(bytes(seen[:cut_at]))]
                with self._lock:
                    self.cut_log.append({"conn": conn, "forwarded_bytes": cut_at, "event_ids": ids})
                for w in (writer, up_writer):
                    _reset_on_close(w)
                    w.transport.abort()
                return
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        with self._lock:
            self.connections += 1
            conn = self.connections
        up_writer: asyncio.StreamWriter | None = None
        pump: asyncio.Task | None = None
        sent = bytearray()
        parsed = 0
        try:
            while data := await reader.read(65536):
                sent += data
                parsed = self._record_requests(conn, sent, parsed)
                if up_writer is None:
                    try:
                        up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
                    except OSError:
                        break  # the server is down: so is this connection
                    pump = asyncio.create_task(self._up_to_client(conn, up_reader, writer, up_writer))
                    self._tasks.add(pump)
                    pump.add_done_callback(self._tasks.discard)
                up_writer.write(data)
                await up_writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            if pump is not None and not pump.done():
                # The client closed its side: let the server's answer finish flowing back.
                try:
                    await pump
                except (OSError, asyncio.CancelledError):
                    pass
            if up_writer is not None:
                up_writer.close()
            writer.close()
            self._tasks.discard(task)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--target", type=int, required=True, help="the server's port on 127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--marker", default="notifications/progress")
    p.add_argument("--count", type=int, default=2)
    p.add_argument("--cuts", type=int, default=1)
    a = p.parse_args()
    proxy = CutProxy(a.target, a.port, marker=a.marker.encode(), count=a.count, cuts=a.cuts).start()
    print(f"READY {proxy.port}", flush=True)
    for line in sys.stdin:
        if line.strip() == "stats":
            print(json.dumps(proxy.stats()), flush=True)
    proxy.close()


if __name__ == "__main__":
    main()
