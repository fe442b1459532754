"""Groups and sampling, measured (scripts/bench.sh runs this; README "Performance"):

1. failover latency: a group of server-everything over stdio (local) and over Streamable HTTP
   (cloud); a client calls `echo` back to back; the local member's process is killed (-9); the time
   from the kill to the first call answered after it, and the slowest call around it;
2. a hanging member: local behind a proxy that starts swallowing every request; the time from the
   hang to the breaker being open (GET /status), and the latency of calls once it is;
3. sampling through the gateway's local provider (a real SmolLM2-135M behind llama.cpp's
   OpenAI-compatible server) against the same request sent to the model server directly.

Standard library only, plus the repository's test servers. Medians of several rounds."""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INTEROP = ROOT / "tests/interop"
EVERYTHING = INTEROP / "node_modules/@modelcontextprotocol/server-everything/dist/index.js"
sys.path.insert(0, str(INTEROP / "servers"))
from hang_proxy import HangProxy  # noqa: E402
from model_server import ModelServer  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(pred, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            v = pred()
            if v:
                return v
        except OSError:
            pass
        time.sleep(0.02)
    raise SystemExit(f"timed out waiting for {what}")


class Session:
    """A legacy Streamable HTTP session with the gateway."""

    def __init__(self, url: str) -> None:
        self.url, self.sid, self.n = url, None, 0
        self.rpc("initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}})
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def post(self, body: dict, timeout: float = 60) -> dict | None:
        h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.sid:
            h["Mcp-Session-Id"] = self.sid
        req = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=h, method="POST")
        with urllib.request.urlopen(req, timeout=timeout) as r:
            self.sid = r.headers.get("Mcp-Session-Id", self.sid)
            text = r.read().decode()
        if not text.strip():
            return None
        if text.lstrip().startswith("{"):
            return json.loads(text)
        msgs = [json.loads(l[5:]) for l in text.splitlines() if l.startswith("data:") and l[5:].strip()]
        return next((m for m in msgs if m.get("id") == body.get("id")), None)

    def rpc(self, method: str, params: dict, timeout: float = 60) -> dict:
        self.n += 1
        r = self.post({"jsonrpc": "2.0", "id": self.n, "method": method, "params": params}, timeout)
        if r is None or "error" in r:
            raise RuntimeError(f"{method}: {r}")
        return r["result"]


def gateway(bin_: str, cfg: dict, tmp: Path, name: str) -> tuple[subprocess.Popen, str]:
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(cfg))
    port = free_port()
    p = subprocess.Popen([bin_, "serve", "--config", str(path), "--listen", f"127.0.0.1:{port}", "--no-store"],
                         stdout=subprocess.DEVNULL, stderr=open(tmp / f"{name}.log", "w"), start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    return p, base


def status(base: str) -> dict:
    with urllib.request.urlopen(f"{base}/status", timeout=5) as r:
        return json.load(r)


def ready(base: str, names: set[str]) -> bool:
    st = status(base)
    return all(u["state"] == "ready" for u in st["upstreams"] if u["name"] in names)


def everything_http() -> tuple[subprocess.Popen, int]:
    port = free_port()
    p = subprocess.Popen(["node", str(EVERYTHING), "streamableHttp"], env={**os.environ, "PORT": str(port)},
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait(lambda: socket.create_connection(("127.0.0.1", port), 0.2).close() or True, 30, "server-everything")
    return p, port


def children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def kill_group(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass


def failover(bin_: str, tmp: Path, rounds: int) -> None:
    cloud, cport = everything_http()
    cfg = {"mcpServers": {"local": {"command": "node", "args": [str(EVERYTHING), "stdio"]},
                          "cloud": {"url": f"http://127.0.0.1:{cport}/mcp"}},
           "gateway": {"groups": {"g": {"members": ["local", "cloud"]}}}}
    gw, base = gateway(bin_, cfg, tmp, "failover")
    try:
        wait(lambda: ready(base, {"local", "cloud"}), 45, "the group's members")
        s = Session(f"{base}/mcp")
        gaps, worst = [], []
        for _ in range(rounds):
            wait(lambda: status(base)["groups"][0]["serving"] == "local", 30, "local serving")
            for _ in range(20):
                s.rpc("tools/call", {"name": "g__echo", "arguments": {"message": "warm"}})
            kid = next(k for k in children(gw.pid) if "index.js" in Path(f"/proc/{k}/cmdline").read_text())
            os.kill(kid, signal.SIGKILL)
            t_kill = time.perf_counter()
            slow = 0.0
            first = None
            for _ in range(50):
                t = time.perf_counter()
                s.rpc("tools/call", {"name": "g__echo", "arguments": {"message": "after"}})
                slow = max(slow, time.perf_counter() - t)
                if first is None:
                    first = time.perf_counter() - t_kill
            gaps.append(first * 1000)
            worst.append(slow * 1000)
        print(f"| failover: kill -9 of the stdio member → first call answered by the HTTP member | "
              f"{statistics.median(gaps):.2f} ms (median of {rounds}; slowest call around it {statistics.median(worst):.2f} ms) |")
    finally:
        kill_group(gw)
        kill_group(cloud)


def hanging(bin_: str, tmp: Path, rounds: int) -> None:
    local, lport = everything_http()
    cloud, cport = everything_http()
    proxy = HangProxy(lport).start()
    timeout_ms, failures = 1000, 3
    cfg = {"mcpServers": {"local": {"url": f"http://127.0.0.1:{proxy.port}/mcp"},
                          "cloud": {"url": f"http://127.0.0.1:{cport}/mcp"}},
           "gateway": {"groups": {"g": {"members": ["local", "cloud"], "firstByteTimeoutMs": timeout_ms,
                                        "breaker": {"failures": failures, "cooldownMs": 600000, "maxCooldownMs": 600000}}}}}
    gw, base = gateway(bin_, cfg, tmp, "hanging")
    try:
        wait(lambda: ready(base, {"local", "cloud"}), 45, "the group's members")
        s = Session(f"{base}/mcp")
        normal = []
        for _ in range(30):
            t = time.perf_counter()
            s.rpc("tools/call", {"name": "g__echo", "arguments": {"message": "x"}})
            normal.append((time.perf_counter() - t) * 1000)
        proxy.hang()
        t_hang = time.perf_counter()
        while status(base)["groups"][0]["members"][0]["breaker"] != "open":
            s.rpc("tools/call", {"name": "g__echo", "arguments": {"message": "x"}})
        opened = (time.perf_counter() - t_hang) * 1000
        after = []
        for _ in range(30):
            t = time.perf_counter()
            s.rpc("tools/call", {"name": "g__echo", "arguments": {"message": "x"}})
            after.append((time.perf_counter() - t) * 1000)
        print(f"| hanging member (first byte {timeout_ms} ms, {failures} failures) → breaker open | {opened:.0f} ms |")
        print(f"| call latency p50: before the hang / with the breaker open (cloud) | "
              f"{statistics.median(normal):.2f} ms / {statistics.median(after):.2f} ms |")
    finally:
        proxy.close()
        kill_group(gw)
        kill_group(local)
        kill_group(cloud)


def sampling(bin_: str, tmp: Path, rounds: int) -> None:
    with ModelServer("smollm2-135m") as m:
        cfg = {"mcpServers": {"everything": {"command": "node", "args": [str(EVERYTHING), "stdio"]}},
               "gateway": {"sampling": {"order": ["local"], "providers": {"local": {"url": m.url, "model": "smollm2-135m"}}}}}
        gw, base = gateway(bin_, cfg, tmp, "sampling")
        try:
            wait(lambda: ready(base, {"everything"}), 45, "server-everything")
            s = Session(f"{base}/mcp")
            prompt, tokens = "Say hello", 16
            # What server-everything's tool sends, sent to the model directly (temperature 0.7 as it does).
            messages = [{"role": "system", "content": "You are a helpful test server."},
                        {"role": "user", "content": f"Resource trigger-sampling-request context: {prompt}"}]
            via, direct, echo = [], [], []
            for _ in range(rounds):
                t = time.perf_counter()
                s.rpc("tools/call", {"name": "everything__echo", "arguments": {"message": "x"}})
                echo.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                r = s.rpc("tools/call", {"name": "everything__trigger-sampling-request", "arguments": {"prompt": prompt, "maxTokens": tokens}})
                via.append((time.perf_counter() - t) * 1000)
                assert "smollm2-135m" in json.dumps(r), r
                t = time.perf_counter()
                m.chat(messages, max_tokens=tokens, temperature=0.7)
                direct.append((time.perf_counter() - t) * 1000)
            v, d, e = statistics.median(via), statistics.median(direct), statistics.median(echo)
            print(f"| sampling through the gateway's local provider (tool call) / direct to the model server / an echo call | "
                  f"{v:.0f} ms / {d:.0f} ms / {e:.1f} ms (medians of {rounds}; {max_tokens_note(tokens)}) |")
        finally:
            kill_group(gw)


def max_tokens_note(n: int) -> str:
    return f"max {n} tokens, so the model's own time varies with the answer's length"


def main() -> None:
    bin_ = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    tmp = Path(tempfile.mkdtemp())
    print("| groups and sampling | measured |")
    print("|---|---|")
    failover(bin_, tmp, rounds)
    hanging(bin_, tmp, rounds)
    sampling(bin_, tmp, rounds * 2)


if __name__ == "__main__":
    main()
