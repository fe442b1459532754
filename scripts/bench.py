"""Side-by-side benchmark of the proxy path (scripts/bench.sh runs this; see README "Performance").

Every system under test (SUT) runs at once and is idle while the others are measured. Rounds
interleave the cases so a noisy machine affects them alike; the table shows medians over rounds and
ratios to the direct connection. CPU is the SUT's whole process tree (gateway plus its upstreams),
from /proc, per 1,000 calls. Standard library only."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INTEROP = ROOT / "tests/interop"
EVERYTHING = INTEROP / "node_modules/@modelcontextprotocol/server-everything/dist/index.js"
BENCH = ROOT / "target/bench-peers"
PLAIN = "mcp-edge-gateway → HTTP upstream"
GROUP = "mcp-edge-gateway → group (HTTP member)"
BASELINE = "mcp-edge-gateway (baseline build) → HTTP upstream"
FLOOR = "pass-through proxy (axum + the gateway's hyper-util client, no MCP) → HTTP upstream"
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree(pid: int) -> list[int]:
    """pid and all its descendants."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid: int, own: bool = False) -> float:
    total = 0
    for p in ([pid] if own else tree(pid)):
        try:
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            pass
    return total / TICK


def rss_mib(pid: int, own: bool = False) -> float:
    kib = 0
    for p in ([pid] if own else tree(pid)):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    kib += int(line.split()[1])
        except OSError:
            pass
    return kib / 1024


class Sut:
    """One system under test: a command line, its MCP URL and the tool name it exposes."""

    def __init__(self, name: str, argv: list[str], port: int, tool: str, env: dict | None = None, path: str = "/mcp"):
        self.name, self.argv, self.port, self.tool, self.env, self.path = name, argv, port, tool, env, path
        self.url = f"http://127.0.0.1:{port}{path}"
        self.proc: subprocess.Popen | None = None
        self.startup_ms = None
        self.idle_rss = None
        self.self_rss = None

    def start(self, loadgen: str) -> None:
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.argv, env={**os.environ, **(self.env or {})}, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        # Start-up = exec to the first successful tools/call (so it includes the upstream's start).
        r = subprocess.run([loadgen, "ready", "--url", self.url, "--timeout-ms", "60000", "--tool", self.tool],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"{self.name} did not start: {r.stderr}")
        self.startup_ms = (time.perf_counter() - t0) * 1000

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def load(loadgen: str, sut: Sut, sessions: int, conc: int, calls: int) -> dict:
    before, before_own = cpu_seconds(sut.proc.pid), cpu_seconds(sut.proc.pid, own=True)
    r = subprocess.run([loadgen, "run", "--url", sut.url, "--sessions", str(sessions), "--concurrency", str(conc),
                        "--calls", str(calls), "--warmup", str(max(50, calls // 10)), "--tool", sut.tool],
                       capture_output=True, text=True)
    after, after_own = cpu_seconds(sut.proc.pid), cpu_seconds(sut.proc.pid, own=True)
    if r.returncode != 0:
        return {"failed": r.stderr.strip()[:200]}
    out = json.loads(r.stdout)
    # CPU over the whole run includes the warm-up calls: scale per call actually made.
    made = out["calls"] + max(50, calls // 10)
    out["cpu_per_1000"] = (after - before) / made * 1000
    out["own_cpu_per_1000"] = (after_own - before_own) / made * 1000
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--smoke", action="store_true",
                    help="one short round, to show every case runs (the test command's; its figures mean nothing); "
                         "exits non-zero when a case fails")
    ap.add_argument("--peers", default="", help="comma list of peer commands found: supergateway,mcp-proxy")
    ap.add_argument("--baseline", default="", help="another build of the gateway, measured beside this one (HTTP upstream)")
    ap.add_argument("--summary", default="", help="a JSON file of the medians, for scripts/bench_summary.py")
    a = ap.parse_args()
    rounds, calls = (1, 100) if a.smoke else (2, 1000) if a.quick else (5, 4000)
    tmp = Path(tempfile.mkdtemp())

    suts: list[Sut] = []
    p = free_port()
    suts.append(Sut("direct (server-everything, Streamable HTTP)", ["node", str(EVERYTHING), "streamableHttp"], p, "echo", {"PORT": str(p)}))
    cfg = tmp / "stdio.json"
    cfg.write_text(json.dumps({"mcpServers": {"everything": {"command": "node", "args": [str(EVERYTHING), "stdio"], "prefix": False}}}))
    p = free_port()
    suts.append(Sut("mcp-edge-gateway → stdio upstream", [a.gateway, "serve", "--config", str(cfg), "--listen", f"127.0.0.1:{p}", "--data-dir", str(tmp / "data-stdio")], p, "echo"))
    def with_http_upstream(name: str, gateway: str, tag: str, servers, extra: dict, tool: str) -> Sut:
        """A gateway build and its own server-everything over HTTP, started together (one process
        group): the upstream is part of the system under test."""
        up, p = free_port(), free_port()
        cfg = tmp / f"{tag}.json"
        cfg.write_text(json.dumps({"mcpServers": servers(f"http://127.0.0.1:{up}/mcp"), **extra}))
        return Sut(name,
                   ["bash", "-c", f'PORT={up} node "{EVERYTHING}" streamableHttp >/dev/null 2>&1 & '
                                f'for i in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/{up}) 2>/dev/null && break; sleep 0.05; done; '
                                f'exec "{gateway}" serve --config "{cfg}" --listen 127.0.0.1:{p} --data-dir "{tmp}/data-{tag}"'], p, tool)

    plain = lambda url: {"everything": {"url": url, "prefix": False}}  # noqa: E731
    suts.append(with_http_upstream(PLAIN, a.gateway, "http", plain, {}, "echo"))
    # The same, through a group whose preferred member is that kind of upstream (the other member
    # is another session with it): what the group's routing and health bookkeeping cost.
    suts.append(with_http_upstream(GROUP, a.gateway, "group", lambda url: {"local": {"url": url}, "cloud": {"url": url}},
                                   {"gateway": {"groups": {"g": {"members": ["local", "cloud"]}}}}, "g__echo"))
    # The floor: a pass-through proxy on the gateway's own stack (axum in, its hyper-util client out, one tokio
    # thread) that copies bytes and parses nothing. The gateway's CPU above it is the gateway's.
    up, p = free_port(), free_port()
    suts.append(Sut(FLOOR,
                    ["bash", "-c", f'PORT={up} node "{EVERYTHING}" streamableHttp >/dev/null 2>&1 & '
                                 f'for i in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/{up}) 2>/dev/null && break; sleep 0.05; done; '
                                 f'exec "{a.loadgen}" passthrough --listen 127.0.0.1:{p} --upstream http://127.0.0.1:{up}/mcp'], p, "echo"))
    if a.baseline:
        # The same case with another build (e.g. the commit before a change): before/after in one run.
        suts.append(with_http_upstream(BASELINE, a.baseline, "baseline", plain, {}, "echo"))
    peers = set(filter(None, a.peers.split(",")))
    if "supergateway" in peers:
        p = free_port()
        sg = BENCH / "node_modules/.bin/supergateway"
        suts.append(Sut("supergateway (stateful Streamable HTTP) → stdio",
                        [str(sg), "--stdio", f'node "{EVERYTHING}" stdio', "--outputTransport", "streamableHttp",
                         "--stateful", "--port", str(p), "--streamableHttpPath", "/mcp", "--logLevel", "none"], p, "echo"))
    if "mcp-proxy" in peers:
        p = free_port()
        mp = BENCH / "venv/bin/mcp-proxy"
        suts.append(Sut("mcp-proxy (Streamable HTTP) → stdio",
                        [str(mp), "--host", "127.0.0.1", "--port", str(p), "--log-level", "WARNING", "--", "node", str(EVERYTHING), "stdio"], p, "echo"))

    canned_port = free_port()
    canned = subprocess.Popen([a.loadgen, "canned", "--listen", f"127.0.0.1:{canned_port}"], start_new_session=True)
    ceiling = Sut("canned responder (load generator ceiling)", ["true"], canned_port, "echo")
    try:
        for s in suts:
            s.start(a.loadgen)
            time.sleep(1.0)
            s.idle_rss = rss_mib(s.proc.pid)
            s.self_rss = rss_mib(s.proc.pid, own=True)
        subprocess.run([a.loadgen, "ready", "--url", ceiling.url], capture_output=True, check=True)
        ceiling.proc = canned
        modes = [(1, 1), (1, 16), (16, 16)]  # (sessions, concurrency)
        results: dict[tuple[str, tuple[int, int]], list[dict]] = {}
        for r in range(rounds):
            for mode in modes:
                for s in [ceiling, *suts]:
                    out = load(a.loadgen, s, mode[0], mode[1], calls)
                    results.setdefault((s.name, mode), []).append(out)
            print(f"round {r + 1}/{rounds} done", file=sys.stderr)
        after_rss = {s.name: (rss_mib(s.proc.pid), rss_mib(s.proc.pid, own=True)) for s in suts}
    finally:
        for s in suts:
            s.stop()
        canned.terminate()

    def med(xs, k):
        vals = [x[k] for x in xs if k in x]
        return statistics.median(vals) if vals else float("nan")

    direct = suts[0].name
    print(f"\n{rounds} interleaved rounds × {calls} `tools/call echo` per case and mode; medians. "
          "CPU and RSS: the system's whole process tree (gateway and its upstreams) / its own top process.\n")
    print("| system | sessions × in flight | req/s | p50 ms | p99 ms | req/s vs direct | p50 vs direct | CPU s / 1000 calls (tree / own) | RSS idle MiB (tree / own) | RSS after MiB (tree / own) | start-up ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for s in [ceiling, *suts]:
        for mode in modes:
            xs = results[(s.name, mode)]
            fails = [x["failed"] for x in xs if "failed" in x]
            if fails:
                print(f"| {s.name} | {mode[0]} × {mode[1]} | failed: {fails[0]} |||||||||")
                continue
            rps, p50, p99 = med(xs, "rps"), med(xs, "p50_us") / 1000, med(xs, "p99_us") / 1000
            d = results[(direct, mode)]
            rr = rps / med(d, "rps") if s is not ceiling else float("nan")
            pr = p50 / (med(d, "p50_us") / 1000) if s is not ceiling else float("nan")
            cpu = med(xs, "cpu_per_1000") if s is not ceiling else float("nan")
            own = med(xs, "own_cpu_per_1000") if s is not ceiling else float("nan")
            idle = f"{s.idle_rss:.1f} / {s.self_rss:.1f}" if s is not ceiling and s.idle_rss is not None else ""
            aft = f"{after_rss[s.name][0]:.1f} / {after_rss[s.name][1]:.1f}" if s is not ceiling else ""
            st = f"{s.startup_ms:.0f}" if s is not ceiling and s.startup_ms else ""
            fmt = lambda v, f: "" if v != v else f.format(v)  # noqa: E731 (NaN check)
            print(f"| {s.name} | {mode[0]} × {mode[1]} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {fmt(rr, '{:.2f}×')} | {fmt(pr, '{:.2f}×')} | {fmt(cpu, '{:.3f}')}{fmt(own, ' / {:.3f}')} | {idle} | {aft} | {st} |")
    failed = [(s.name, m) for s in [ceiling, *suts] for m in modes if any("failed" in x for x in results[(s.name, m)])]
    if a.smoke:
        if failed:
            raise SystemExit(f"bench smoke run: failed cases {failed}")
        print(f"bench smoke run: every case answered ({len(suts) + 1} systems × {len(modes)} modes)")
        return
    print("\nThrough a group against a plain upstream of the same kind (ratios of medians; the gateway's own CPU per call):\n")
    print("| sessions × in flight | req/s group / plain | p50 group / plain | own CPU group / plain |")
    print("|---|---|---|---|")
    for mode in modes:
        g, q = results[(GROUP, mode)], results[(PLAIN, mode)]
        print(f"| {mode[0]} × {mode[1]} | {med(g, 'rps') / med(q, 'rps'):.3f} | {med(g, 'p50_us') / med(q, 'p50_us'):.3f} | "
              f"{med(g, 'own_cpu_per_1000') / med(q, 'own_cpu_per_1000'):.3f} |")

    print("\nThe gateway against the pass-through floor, both with an HTTP upstream (the gateway's own CPU per call "
          "in µs, and what it adds above the floor):\n")
    print("| sessions × in flight | own CPU floor µs | own CPU gateway µs | gateway − floor µs | p50 gateway − floor µs |")
    print("|---|---|---|---|---|")
    for mode in modes:
        g, f = results[(PLAIN, mode)], results[(FLOOR, mode)]
        gc, fc = med(g, "own_cpu_per_1000") * 1000, med(f, "own_cpu_per_1000") * 1000
        print(f"| {mode[0]} × {mode[1]} | {fc:.0f} | {gc:.0f} | {gc - fc:.0f} | {med(g, 'p50_us') - med(f, 'p50_us'):.0f} |")

    if a.summary:
        keep = {"direct": direct, "this": PLAIN, "floor": FLOOR, "baseline": BASELINE if a.baseline else None}
        Path(a.summary).write_text(json.dumps({
            tag: {f"{m[0]}x{m[1]}": {k: med(results[(name, m)], k) for k in ("rps", "p50_us", "p99_us", "own_cpu_per_1000")}
                  for m in modes} for tag, name in keep.items() if name}))
    if a.baseline:
        print("\nThis build against the baseline build, both with an HTTP upstream (ratios of medians):\n")
        print("| sessions × in flight | req/s this / baseline | p50 this / baseline | own CPU this / baseline |")
        print("|---|---|---|---|")
        for mode in modes:
            t, b = results[(PLAIN, mode)], results[(BASELINE, mode)]
            print(f"| {mode[0]} × {mode[1]} | {med(t, 'rps') / med(b, 'rps'):.3f} | {med(t, 'p50_us') / med(b, 'p50_us'):.3f} | "
                  f"{med(t, 'own_cpu_per_1000') / med(b, 'own_cpu_per_1000'):.3f} |")


if __name__ == "__main__":
    main()
