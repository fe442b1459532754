"""User-space instructions per proxied tools/call, counted by callgrind: a figure this shared,
noisy machine cannot move (CPU time per call moves 10 % between rounds; this moves under 0.1 %).

    bench_instructions.py LOADGEN CONCURRENCY CALLS NAME=COMMAND...

Each COMMAND (words split as a shell would; {port}, {upstream}, {config} and {data} in it are
filled in: {config} is a gateway config whose one server is that upstream) is a proxy started under
`valgrind --tool=callgrind` in front of `mcp-loadgen canned` (an upstream that answers at once, so
nothing of a real server's own cost is in the count). After a warm-up of 300 calls the counters
are zeroed, CALLS calls are made with CONCURRENCY in flight, and the instructions the proxy ran
meanwhile (every thread, user space only: the kernel's share is not counted) are divided by CALLS.
Standard library only, plus valgrind (bench.sh installs it: need_valgrind in scripts/lib.sh)."""

import glob
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(loadgen, url, conc, calls, warmup):
    subprocess.run([loadgen, "run", "--url", url, "--concurrency", str(conc), "--calls", str(calls), "--warmup", str(warmup)],
                   check=True, capture_output=True)


def count(loadgen, upstream, command, conc, calls, tmp):
    port = free_port()
    out = os.path.join(tmp, f"cg.{port}")
    config = os.path.join(tmp, "gateway.json")
    with open(config, "w") as f:
        json.dump({"mcpServers": {"canned": {"url": upstream, "prefix": False}}}, f)
    words = shlex.split(command.format(port=port, upstream=upstream, config=config, data=os.path.join(tmp, f"data{port}")))
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p"] + words
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        r = subprocess.run([loadgen, "ready", "--url", url, "--tool", "echo", "--timeout-ms", "120000"], capture_output=True)
        if r.returncode != 0:
            raise SystemExit(f"{command}: not ready under valgrind: {r.stdout.decode()}{r.stderr.decode()}")
        run(loadgen, url, conc, 300, 50)
        subprocess.run(["callgrind_control", "-z", str(p.pid)], check=True, capture_output=True)
        run(loadgen, url, conc, calls, 0)
        subprocess.run(["callgrind_control", "-d", str(p.pid)], check=True, capture_output=True)
        time.sleep(0.5)
        total = 0
        # The dump made after zeroing (callgrind adds a part number to the name).
        dumps = sorted(glob.glob(f"{out}.{p.pid}.*"), key=os.path.getmtime)
        if not dumps:
            raise SystemExit(f"{command}: no callgrind dump")
        with open(dumps[-1], errors="replace") as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    total = int(line.split()[1])
                    break
        return total / calls
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait()


def main():
    loadgen, conc, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    cases = [a.split("=", 1) for a in sys.argv[4:]]
    tmp = tempfile.mkdtemp()
    up = free_port()
    canned = subprocess.Popen([loadgen, "canned", "--listen", f"127.0.0.1:{up}"], start_new_session=True)
    try:
        subprocess.run([loadgen, "ready", "--url", f"http://127.0.0.1:{up}/mcp"], check=True, capture_output=True)
        upstream = f"http://127.0.0.1:{up}/mcp"
        rows = [(name, count(loadgen, upstream, cmd, conc, calls, tmp)) for name, cmd in cases]
    finally:
        os.killpg(canned.pid, signal.SIGTERM)
    print(f"| proxy, {conc} in flight, {calls} calls, canned upstream | instructions per call | against the first |")
    print("|---|---|---|")
    for name, ir in rows:
        print(f"| {name} | {ir / 1000:.1f} k | {ir / rows[0][1]:.2f}× |")


if __name__ == "__main__":
    main()
