"""Durable enqueue rate of the native gateway: tools/call to a queueable tool of an unreachable
upstream, so every call is written to the store before it is answered. SQLite (the default store,
synchronous=FULL, group commit) next to --no-store (memory: the same path without the disk), in the
same run, at 1 and 16 calls in flight, interleaved rounds, medians. Prints markdown.
Usage: python3 scripts/bench_offline.py GATEWAY LOADGEN [rounds] [calls]"""
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
from pathlib import Path

gateway, loadgen = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
calls = int(sys.argv[4]) if len(sys.argv) > 4 else 2000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


tmp = Path(tempfile.mkdtemp())
cfg = tmp / "offline.json"
# Port 9 (discard) is closed here: the upstream is unreachable from the start.
cfg.write_text(json.dumps({"mcpServers": {"cloud": {"url": "http://127.0.0.1:9/mcp", "offlineQueue": ["note"], "prefix": False}}}))


def run(store: str, conc: int, n: int) -> dict:
    port = free_port()
    args = [gateway, "serve", "--config", str(cfg), "--listen", f"127.0.0.1:{port}"]
    args += ["--no-store"] if store == "memory" else ["--data-dir", str(tmp / f"data-{port}")]
    p = subprocess.Popen(args, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), 0.2):
                    break
            except OSError:
                time.sleep(0.05)
        r = subprocess.run([loadgen, "run", "--url", url, "--concurrency", str(conc), "--calls", str(n),
                            "--warmup", "100", "--tool", "note", "--args", '{"text":"buy milk"}'],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"loadgen failed: {r.stderr}")
        out = json.loads(r.stdout)
        if out["errors"]:
            raise SystemExit(f"{out['errors']} calls failed: {r.stderr}")
        return out
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(10)


results: dict[tuple[str, int], list[dict]] = {}
for _ in range(rounds):
    for conc in (1, 16):
        for store in ("sqlite", "memory"):
            results.setdefault((store, conc), []).append(run(store, conc, calls))

print(f"Durable enqueue, native ({rounds} interleaved rounds × {calls} queued calls, medians):\n")
print("| store | in flight | queued calls/s | p50 | p99 | vs memory |")
print("|---|---|---|---|---|---|")
for conc in (1, 16):
    mem = statistics.median(r["rps"] for r in results[("memory", conc)])
    for store in ("sqlite", "memory"):
        rs = results[(store, conc)]
        rps = statistics.median(r["rps"] for r in rs)
        p50 = statistics.median(r["p50_us"] for r in rs) / 1000
        p99 = statistics.median(r["p99_us"] for r in rs) / 1000
        print(f"| {store} | {conc} | {rps:.0f} | {p50:.2f} ms | {p99:.2f} ms | {rps / mem:.2f}× |")
