"""The gateway's HTTP client (native-host/src/upstream/wire.rs: hyper-util's, driven directly,
where the gateway used reqwest before) keeps what reqwest did for it, against real peers:

- a redirect in front of the upstream is followed: a 307 sends the same POST, body and all, to the
  new place; on a hop to another origin the configured `Authorization` is dropped and the other
  configured headers are kept (the upstream is servers/header_recorder.py, the Python `mcp` SDK,
  which records every request's headers);
- a proxy the environment names (`HTTP_PROXY`) carries the link's requests, and `NO_PROXY` takes a
  host out of it again; the proxy is proxy.py from PyPI, a real forward proxy whose access log
  says what passed through it;
- credentials in the proxy's URL reach the proxy (`Proxy-Authorization`, which proxy.py's
  `--basic-auth` demands), and wrong ones are refused by it, not sent around it;
- an `https` upstream goes through the proxy in a `CONNECT` tunnel to its host and port (the TLS
  inside it then fails: the server behind is plain HTTP, and no local certificate is trusted by
  webpki's roots, so this shows the tunnel, not a whole call).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from mcp import Client

from auth_support import HeaderRecorder
from conftest import Gateway, _connectable, client_kwargs, free_port, run_async, text_of, wait_until


class Redirector:
    """Answers every request with `status` and a Location on `target` (same path), and counts them."""

    def __init__(self, target: str, status: int = 307) -> None:
        self.seen: list[tuple[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _redirect(self) -> None:
                n = int(self.headers.get("content-length") or 0)
                if n:
                    self.rfile.read(n)
                outer.seen.append((self.command, self.path))
                self.send_response(status)
                self.send_header("Location", target + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_DELETE = _redirect

            def log_message(self, *_a) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ForwardProxy:
    """proxy.py (PyPI), one worker, on a free loopback port; its access log is in `log`."""

    def __init__(self, workdir: Path, basic_auth: str | None = None) -> None:
        self.port = free_port()
        self.log = workdir / f"proxy-{self.port}.log"
        extra = ["--basic-auth", basic_auth] if basic_auth else []
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", str(self.port),
                 "--num-workers", "1", "--num-acceptors", "1", *extra],
                stdout=out, stderr=subprocess.STDOUT)
        wait_until(lambda: _connectable(self.port), 30, f"proxy.py on port {self.port}",
                   detail=lambda: self.log.read_text())

    def passed(self, target_port: int) -> list[str]:
        """Access-log lines of requests the proxy forwarded to 127.0.0.1:`target_port`."""
        return [ln for ln in self.log.read_text(errors="replace").splitlines()
                if "access_log" in ln and f"127.0.0.1:{target_port}/" in ln]

    def tunnels(self, target_port: int) -> list[str]:
        """Access-log lines of CONNECT tunnels the proxy made to 127.0.0.1:`target_port`."""
        return [ln for ln in self.log.read_text(errors="replace").splitlines()
                if "access_log" in ln and f"CONNECT 127.0.0.1:{target_port} " in ln]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _gateway(tmp: Path, name: str, url: str, headers: dict[str, str] | None = None,
             env: dict[str, str] | None = None, up: bool = True) -> Gateway:
    server = {"url": url} | ({"headers": headers} if headers else {})
    config = tmp / f"{name}.json"
    config.write_text(json.dumps({"mcpServers": {"notes": server}}))
    gw = Gateway(config=config, log=tmp / f"{name}.log", env=env or {}).start()
    if up:
        gw.wait_state({"notes"})
    return gw


def _proxy_env(proxy_url: str, no_proxy: str = "") -> dict[str, str]:
    return {"HTTP_PROXY": proxy_url, "http_proxy": proxy_url, "HTTPS_PROXY": proxy_url,
            "https_proxy": proxy_url, "NO_PROXY": no_proxy, "no_proxy": no_proxy}


async def _echo(gw: Gateway, text: str) -> str:
    async with Client(gw.url, **client_kwargs("auto")) as c:
        return text_of(await c.call_tool("notes__echo", {"text": text}))


@pytest.mark.timeout(120)
def test_a_redirected_upstream_is_followed_and_its_credentials_stay_behind(tmp_path):
    rec = HeaderRecorder(tmp_path, "moved")
    redirector = Redirector(f"http://127.0.0.1:{rec.port}")
    gw = None
    try:
        gw = _gateway(tmp_path, "gw-redirect", f"http://127.0.0.1:{redirector.port}/mcp",
                      headers={"Authorization": "Bearer not-for-another-origin", "X-Team": "blue"})
        assert run_async(_echo(gw, "through a 307")) == "through a 307"
        calls = rec.tool_calls("echo")
        assert len(calls) == 1, f"the call reached the new place once: {calls}"
        assert calls[0]["arguments"] == {"text": "through a 307"}, "the 307 re-sent the same body"
        posts = [p for p in redirector.seen if p[0] == "POST"]
        assert posts and all(path == "/mcp" for _, path in posts), redirector.seen
        for e in rec.entries():
            assert "authorization" not in e["headers"], f"a credential followed a cross-origin redirect: {e}"
            assert e["headers"].get("x-team") == "blue", f"a configured header was lost: {e}"
    finally:
        if gw:
            gw.stop()
        redirector.stop()
        rec.stop()


@pytest.mark.timeout(120)
def test_the_proxy_the_environment_names_carries_the_link_and_no_proxy_takes_it_out(tmp_path):
    rec = HeaderRecorder(tmp_path, "behind-proxy")
    proxy = ForwardProxy(tmp_path)
    proxy_url = f"http://127.0.0.1:{proxy.port}"
    gw = None
    try:
        gw = _gateway(tmp_path, "gw-proxied", rec.url,
                      env={"HTTP_PROXY": proxy_url, "http_proxy": proxy_url, "NO_PROXY": "", "no_proxy": ""})
        assert run_async(_echo(gw, "via the proxy")) == "via the proxy"
        wait_until(lambda: any("POST" in ln for ln in proxy.passed(rec.port)), 10,
                   "the proxy's access log to show the link's POST", detail=lambda: proxy.log.read_text())
        assert "sending through the proxy" in gw.log_text()
        gw.stop()

        # A second upstream of its own, so that the first gateway's connections, which proxy.py
        # logs only when they close, cannot be counted against this one.
        around = HeaderRecorder(tmp_path, "around-proxy")
        try:
            gw = _gateway(tmp_path, "gw-no-proxy", around.url,
                          env={"HTTP_PROXY": proxy_url, "http_proxy": proxy_url, "NO_PROXY": "127.0.0.1",
                               "no_proxy": "127.0.0.1"})
            assert run_async(_echo(gw, "around the proxy")) == "around the proxy"
            assert len(around.tool_calls("echo")) == 1
            gw.stop()
            time.sleep(1)  # any connection through the proxy is closed, so logged, by now
            assert proxy.passed(around.port) == [], "NO_PROXY named the host, yet the proxy saw it"
        finally:
            around.stop()
        assert "sending through the proxy" not in gw.log_text()
    finally:
        if gw:
            gw.stop()
        proxy.stop()
        rec.stop()


@pytest.mark.timeout(120)
def test_the_proxy_gets_the_credentials_in_its_url_and_refuses_wrong_ones(tmp_path):
    rec = HeaderRecorder(tmp_path, "behind-locked-proxy")
    proxy = ForwardProxy(tmp_path, basic_auth="edge:s3cret")
    gw = None
    try:
        gw = _gateway(tmp_path, "gw-proxy-auth", rec.url,
                      env=_proxy_env(f"http://edge:s3cret@127.0.0.1:{proxy.port}"))
        assert run_async(_echo(gw, "with the proxy's password")) == "with the proxy's password"
        wait_until(lambda: any("POST" in ln for ln in proxy.passed(rec.port)), 10,
                   "the proxy's access log to show the link's POST", detail=lambda: proxy.log.read_text())
        assert "s3cret" not in gw.log_text(), "the proxy's password was logged"
        gw.stop()
        seen = len(rec.entries())

        gw = _gateway(tmp_path, "gw-proxy-wrong", rec.url,
                      env=_proxy_env(f"http://edge:Wr0ngPa55@127.0.0.1:{proxy.port}"), up=False)
        wait_until(lambda: "407" in gw.log_text(), 20, "the gateway to report the proxy's 407",
                   detail=gw.log_tail)
        assert (gw.upstream("notes") or {}).get("state") != "ready", gw.status()
        assert len(rec.entries()) == seen, "a request went around the proxy that refused it"
        assert "Wr0ngPa55" not in gw.log_text(), "the proxy's password was logged"
    finally:
        if gw:
            gw.stop()
        proxy.stop()
        rec.stop()


@pytest.mark.timeout(120)
def test_an_https_upstream_goes_through_the_proxy_in_a_connect_tunnel(tmp_path):
    rec = HeaderRecorder(tmp_path, "tls-behind-proxy")
    proxy = ForwardProxy(tmp_path)
    gw = None
    try:
        gw = _gateway(tmp_path, "gw-tunnel", f"https://127.0.0.1:{rec.port}/mcp",
                      env=_proxy_env(f"http://127.0.0.1:{proxy.port}"), up=False)
        wait_until(lambda: proxy.tunnels(rec.port), 30,
                   "the proxy's access log to show a CONNECT to the upstream's host and port",
                   detail=lambda: proxy.log.read_text() + "\n--- gateway ---\n" + gw.log_tail())
        assert "sending through the proxy" in gw.log_text()
        assert not rec.entries(), "the plain-HTTP server behind got an HTTP request: TLS was not used"
    finally:
        if gw:
            gw.stop()
        proxy.stop()
        rec.stop()
