"""Measure the native host: time from exec to the first successful MCP answer, and resident memory
when idle. Runs the binary N times with the embedded default config (built-in edge tools) and
reports medians. Standard library only, so it runs before any setup."""

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BIN, RUNS = sys.argv[1], int(sys.argv[2])
# Optional third argument: a JSON file for scripts/bench_summary.py (the before/after table).
SUMMARY = sys.argv[3] if len(sys.argv) > 3 else ""
INIT = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                   "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}})


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port, body, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("POST", "/mcp", body, {"content-type": "application/json", "accept": "application/json, text/event-stream", **(headers or {})})
    r = c.getresponse()
    data = r.read()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


first_answer, first_tools, idle_rss, after_rss, created = [], [], [], [], []
# The default set-up, store included. Every other run starts on a new data directory (the store is
# created: a device's first start) and the others on the previous run's (the store is opened and
# read: every later start); both are reported.
data = tempfile.mkdtemp()
for run in range(2 * RUNS):
    port = free_port()
    if run % 2 == 0:
        data = tempfile.mkdtemp()
    t0 = time.perf_counter()
    p = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data], stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                status, headers, _ = post(port, INIT)
                if status == 200:
                    break
            except OSError:
                time.sleep(0.0005)
        if run % 2 == 0:
            created.append((time.perf_counter() - t0) * 1000)
            p.terminate()
            p.wait()
            continue
        first_answer.append((time.perf_counter() - t0) * 1000)
        sid = headers["mcp-session-id"]
        status, _, body = post(port, json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}), {"mcp-session-id": sid})
        assert status == 200 and b'"tools"' in body, body
        first_tools.append((time.perf_counter() - t0) * 1000)
        time.sleep(1.0)
        idle_rss.append(rss_kib(p.pid))
        for i in range(200):
            post(port, json.dumps({"jsonrpc": "2.0", "id": 10 + i, "method": "tools/call", "params": {"name": "load"}}), {"mcp-session-id": sid})
        after_rss.append(rss_kib(p.pid))
    finally:
        p.terminate()
        p.wait()

size = os.path.getsize(BIN)
stripped = BIN + ".stripped"
subprocess.run(["strip", "-o", stripped, BIN], check=True)
ssize = os.path.getsize(stripped)
os.remove(stripped)
print(f"native host, {RUNS} runs, embedded default config (median):\n")
print("| measure | value |")
print("|---|---|")
print(f"| start-up to first answer (initialize), store exists | {statistics.median(first_answer):.1f} ms |")
print(f"| start-up to first answer, first start (store created) | {statistics.median(created):.1f} ms |")
print(f"| start-up to first tools/list answer | {statistics.median(first_tools):.1f} ms |")
print(f"| RSS idle (1 s after start) | {statistics.median(idle_rss) / 1024:.1f} MiB |")
print(f"| RSS after 200 tools/call | {statistics.median(after_rss) / 1024:.1f} MiB |")
print(f"| binary size, x86_64 (unstripped / stripped) | {size / 1024 / 1024:.1f} MiB / {ssize / 1024 / 1024:.1f} MiB |")
if SUMMARY:
    with open(SUMMARY, "w") as f:
        json.dump({"first_answer_ms": statistics.median(first_answer), "created_ms": statistics.median(created),
                   "first_tools_ms": statistics.median(first_tools), "idle_rss_mib": statistics.median(idle_rss) / 1024,
                   "after_rss_mib": statistics.median(after_rss) / 1024}, f)
