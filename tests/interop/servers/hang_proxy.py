"""A TCP proxy in front of a real server that can be told to hang, for the upstream-group tests.

- "pass": bytes flow both ways. The upstream connection is opened on a client connection's first
  bytes, so a bare connect (a liveness check) costs the server nothing.
- "hang": new connections are accepted and read, but nothing a client sends is forwarded and
  nothing is answered: the server looks alive (TCP connects succeed) but never replies. This holds
  for connections that were already open too: their next requests are swallowed. A connection that
  had bytes swallowed stays hanging for good (its HTTP stream is broken; forwarding the rest of a
  half-swallowed request later would be garbage or, worse, a stale request running late). Answers to
  requests forwarded before the switch still flow back.

`drop_connections()` resets every open connection at once (both sides) while the proxy keeps
listening: what a client sees when a server behind a live listener (a load balancer, a supervisor)
crashes mid-request, with connection attempts still succeeding.

In-process: `HangProxy(target_port).start()` runs its own asyncio loop in a daemon thread; `hang()`
and `pass_()` switch modes (thread-safe); `close()` stops it. As a script, `python hang_proxy.py
--target PORT [--port P]` prints "READY <port>" and reads "hang" / "pass" lines on stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading


class HangProxy:
    def __init__(self, target_port: int, port: int = 0, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        self.port = port
        self.mode = "pass"
        self.connections = 0  # accepted so far
        self.hung_connections = 0  # connections that had bytes swallowed
        self.swallowed_bytes = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task] = set()
        # Each open client connection's writers: [client side, upstream side or None].
        self._conns: dict[asyncio.Task, list] = {}

    # -- control (any thread) ----------------------------------------------------------------------

    def hang(self) -> None:
        self.mode = "hang"

    def pass_(self) -> None:
        self.mode = "pass"

    def start(self) -> "HangProxy":
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

        self._thread = threading.Thread(target=run, name=f"hang-proxy-{self.target_port}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failed:
            raise failed[0]
        return self

    def drop_connections(self) -> int:
        """Reset every open connection (RST to the client, close to the server); returns how many."""
        async def drop() -> int:
            conns = list(self._conns.values())
            for client, up in conns:
                client.transport.abort()
                if up is not None:
                    up.transport.abort()
            return len(conns)

        return asyncio.run_coroutine_threadsafe(drop(), self._loop).result(10)

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

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        self.connections += 1
        up_writer: asyncio.StreamWriter | None = None
        pump: asyncio.Task | None = None
        hung = False
        self._conns[task] = conn = [writer, None]
        try:
            while data := await reader.read(65536):
                if hung or self.mode == "hang":
                    if not hung:
                        self.hung_connections += 1
                    hung = True
                    self.swallowed_bytes += len(data)
                    continue
                if up_writer is None:
                    try:
                        up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
                    except OSError:
                        break  # the server is down: so is this connection
                    conn[1] = up_writer
                    pump = asyncio.create_task(self._pipe(up_reader, writer))
                    self._tasks.add(pump)
                    pump.add_done_callback(self._tasks.discard)
                up_writer.write(data)
                await up_writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            if up_writer is not None:
                up_writer.close()
            if pump is not None:
                pump.cancel()
            writer.close()
            self._tasks.discard(task)
            self._conns.pop(task, None)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--target", type=int, required=True, help="the server's port on 127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args()
    proxy = HangProxy(a.target, a.port).start()
    print(f"READY {proxy.port}", flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "hang":
            proxy.hang()
        elif cmd == "pass":
            proxy.pass_()
        print(f"MODE {proxy.mode}", flush=True)
    proxy.close()


if __name__ == "__main__":
    main()
