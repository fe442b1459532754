"""Write native-host/hot-text.ld: the linker script that lays out together the functions a serving
gateway runs (README "Lean and fast", native-host/build.rs).

    python3 scripts/hot_text.py BIN OUT.ld     BIN: an unstripped release build of the gateway

Runs BIN under callgrind with the embedded default config through start-up, initialize,
tools/list, 50 tools/call and one idle second, takes every function that ran, in the order it first
ran, and writes one input-section pattern per function with the symbol hash left out (legacy
`17h<hash>E`, v0 crate disambiguators) and LLVM's numbered suffixes (`.llvm.<n>`, `.<n>`: local
names made unique after LTO) matched by a wildcard, so that a rebuild with another toolchain,
profile or dependency release still matches. Each pattern also takes LLVM's `.text.unlikely.`
variant (cold functions such as one-time initialisers). Standard library and
valgrind only."""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

BIN, OUT = sys.argv[1], sys.argv[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port, body, sid=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if sid:
        headers["mcp-session-id"] = sid
    c.request("POST", "/mcp", json.dumps(body), headers)
    r = c.getresponse()
    data = r.read()
    assert r.status in (200, 202), (r.status, data)
    return r.getheader("mcp-session-id"), data


def profile(out):
    port, data = free_port(), tempfile.mkdtemp()
    p = subprocess.Popen(["valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={out}",
                          BIN, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "hot-text", "version": "0"}}}
        deadline = time.monotonic() + 120
        while True:
            try:
                sid, _ = post(port, init)
                break
            except OSError:
                if time.monotonic() > deadline or p.poll() is not None:
                    raise SystemExit("the gateway did not answer under valgrind")
                time.sleep(0.2)
        post(port, {"jsonrpc": "2.0", "method": "notifications/initialized"}, sid)
        _, body = post(port, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, sid)
        tools = [t["name"] for t in json.loads(body)["result"]["tools"]]
        for i in range(50):
            post(port, {"jsonrpc": "2.0", "id": 10 + i, "method": "tools/call",
                        "params": {"name": tools[i % len(tools)], "arguments": {}}}, sid)
        time.sleep(1.0)
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(timeout=60)


def functions_run(out):
    """Names of the functions that ran, in the order callgrind first saw them."""
    names, ran = {}, set()
    for line in open(out):
        m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if m:
            kind, fid, name = m.groups()
            if name:
                names[fid] = re.sub(r"'\d+$", "", name)  # callgrind's recursion-depth suffix
            if kind == "fn":
                ran.add(fid)
    return [names[f] for f in sorted(ran, key=int) if f in names]


def text_symbols():
    """Size of every function symbol, and the names at each address: LLVM merges identical
    functions into one body with several names, and callgrind reports only one of them, while
    another build may keep that body under another of the names."""
    nm = subprocess.run(["nm", "-S", "--defined-only", BIN], capture_output=True, text=True, check=True).stdout
    sizes, at, names_at = {}, {}, {}
    for line in nm.splitlines():
        f = line.split()
        if len(f) == 4 and f[2] in "tTwW":
            sizes[f[3]] = int(f[1], 16)
            at[f[3]] = f[0]
            names_at.setdefault(f[0], []).append(f[3])
    return sizes, lambda name: names_at[at[name]]


def pattern(name):
    p = re.sub(r"17h[0-9a-f]{16}E", "17h*E", name)
    if p.startswith("_R"):
        p = re.sub(r"Cs[0-9a-zA-Z]+_(?=\d)", "Cs*_", p)
    return re.sub(r"\.(llvm\.)?\d+$", "", p)


with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "callgrind.out")
    profile(out)
    sizes, aliases = text_symbols()
    ran = [n for n in functions_run(out) if n in sizes]  # in this binary's text: not libc's
patterns, seen = [], set()
for p in (a for n in ran for a in aliases(n)):
    p = pattern(p)
    # A linker-script glob: `*?[` would be read as wildcards, whitespace and `()` end the pattern.
    if p not in seen and not re.search(r"[\s()\[?\"*]", p.replace("17h*E", "").replace("Cs*_", "")):
        seen.add(p)
        patterns.append(p)
hot = sum(sizes[n] for n in set(ran))
rustc = subprocess.run(["rustc", "-V"], capture_output=True, text=True).stdout.strip()
with open(OUT, "w") as f:
    f.write("/* Generated by scripts/hot-text.sh; do not edit (native-host/build.rs says why).\n")
    f.write(f"   {len(ran)} functions ran, {len(patterns)} patterns, {rustc}.\n")
    f.write(f"   hot-bytes {hot} (their size in the profiled build; scripts/test-release.sh checks\n")
    f.write("   that .text.hot holds at least 80 % of it). */\n")
    # The C start-up code (`_start`) has no section of its own: its object file's .text goes first.
    f.write("SECTIONS {\n  .text.hot : {\n    *crt1.o(.text)\n")
    for p in patterns:
        f.write(f"    *(.text.{p} .text.{p}.* .text.unlikely.{p} .text.unlikely.{p}.*)\n")
    f.write("  }\n} INSERT BEFORE .text;\n")
print(f"{OUT}: {len(ran)} functions ({hot} bytes), {len(patterns)} patterns")
