"""Running the gateway as an operator does: `check-config`, two gateways side by side on their
default data directories, the systemd unit (checked by `systemd-analyze verify`) and its readiness
notification (a real datagram on $NOTIFY_SOCKET, as systemd reads it)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import conftest
from conftest import ROOT, free_port, wait_until

UNIT = ROOT / "native-host/systemd/mcp-edge-gateway.service"


def _check(path: Path, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([conftest.GATEWAY_BIN, "check-config", str(path)], capture_output=True, text=True,
                          timeout=30, env=env)


def test_check_config_says_what_it_would_serve_and_never_a_secret(tmp_path):
    cfg = tmp_path / "kitchen.toml"
    cfg.write_text("""
[server]
listen = "127.0.0.1:9911"
[upstreams.notes]
url = "https://agent:pa55word@notes.example/mcp?api_key=query-secret"
headers = { Authorization = "Bearer header-secret-value" }
[upstreams.edge]
builtin = "edge"
[groups.both]
members = ["edge", "notes"]
[[policy.rules]]
principals = ["kitchen-agent"]
allow = ["edge__*"]
""")
    env = os.environ | {"XDG_DATA_HOME": str(tmp_path / "xdg")}
    r = _check(cfg, env)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for fact in ["valid", "listen     127.0.0.1:9911", "notes", "Streamable HTTP https://notes.example/mcp",
                 "(headers: Authorization)", "edge             built in: edge", "group      both: edge, notes",
                 "policy     1 rules", str(tmp_path / "xdg/mcp-edge-gateway/configs/kitchen-")]:
        assert fact in out, f"{fact!r} not in:\n{out}"
    for secret in ["pa55word", "query-secret", "header-secret-value"]:
        assert secret not in out + r.stderr, f"{secret} printed:\n{out}"
    assert not (tmp_path / "xdg").exists(), "check-config creates nothing"


def test_check_config_names_the_key_at_fault(tmp_path):
    cases = {
        '[upstreams.x]\nurl = 5\n': "upstreams.x.url",
        '[upstreams.a]\nbuiltin = "edge"\n[groups.g]\nmembers = ["a", "nope"]\n': "groups.g.members",
        '[upstreams.a]\nbuiltin = "edge"\n[limits]\nrequests_per_minute = "many"\n': "limits.requests_per_minute",
        '[upstreams.a]\nbuiltin = "edge"\n[[auth.tokens]]\nprincipal = "p"\ntoken_env = "MCP_GW_UNSET_TOKEN_ENV"\n':
            "auth.tokens",
    }
    for i, (text, key) in enumerate(cases.items()):
        cfg = tmp_path / f"bad{i}.toml"
        cfg.write_text(text)
        r = _check(cfg)
        assert r.returncode == 2, (text, r.stdout, r.stderr)
        assert key in r.stderr, (key, r.stderr)
        assert "panicked" not in r.stderr


def _serve(cfg: Path | None, port: int, env: dict) -> subprocess.Popen:
    args = [conftest.GATEWAY_BIN, "serve", "--listen", f"127.0.0.1:{port}"]
    if cfg:
        args += ["--config", str(cfg)]
    return subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)


def test_two_gateways_with_different_configurations_run_side_by_side_on_their_default_stores(tmp_path):
    env = os.environ | {"XDG_DATA_HOME": str(tmp_path / "xdg")}
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    configs = []
    for d in ("one", "two"):  # the same file name in two places: two configurations
        c = tmp_path / d / "gateway.toml"
        c.write_text('[upstreams.edge]\nbuiltin = "edge"\n')
        configs.append(conftest.with_auth(c) if conftest.TEST_AUTH else c)
    ports = [free_port(), free_port()]
    procs = [_serve(c, p, env) for c, p in zip(configs, ports)]
    try:
        for p, proc in zip(ports, procs):
            wait_until(lambda: conftest._connectable(p) or proc.poll() is not None, 20, "a gateway")
            assert proc.poll() is None, proc.stderr.read()
        # The port is bound before the store is opened: the file may come a moment after.
        find = lambda: sorted((tmp_path / "xdg/mcp-edge-gateway/configs").glob("*/gateway.sqlite3"))  # noqa: E731
        wait_until(lambda: len(find()) == 2, 20, "both stores")
        stores = find()
        assert len(stores) == 2, stores
        # Each is named after its file (`<stem>-<hash of its path>`), and the two differ.
        assert {s.parent.name.rsplit("-", 1)[0] for s in stores} == {Path(c).stem for c in configs}, stores
        # The same configuration twice shares its store: the second is refused, clearly.
        again = subprocess.run([conftest.GATEWAY_BIN, "serve", "--listen", f"127.0.0.1:{free_port()}", "--config",
                                str(configs[0])], env=env, capture_output=True, text=True, timeout=20)
        assert again.returncode != 0, again.stderr
        assert "in use by another" in again.stderr, again.stderr
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def test_the_systemd_unit_verifies(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze (Debian's systemd package) is needed: scripts/setup.sh installs it"
    unit = tmp_path / "mcp-edge-gateway.service"
    text = UNIT.read_text()
    assert "ExecStart=/usr/local/bin/mcp-edge-gateway serve" in text
    # verify checks that the binary exists: point it at the one under test.
    unit.write_text(text.replace("/usr/local/bin/mcp-edge-gateway", str(Path(conftest.GATEWAY_BIN).resolve())))
    r = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "mcp-edge-gateway.service" not in r.stderr, r.stderr  # no warning about the unit itself
    for line in ["Type=notify", "StateDirectory=mcp-edge-gateway", "Restart=on-failure", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "DynamicUser=yes"]:
        assert line in text, line


def test_serve_tells_systemd_it_is_ready_once_it_listens(tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(20)
    port = free_port()
    env = os.environ | {"NOTIFY_SOCKET": str(path)}
    args = [conftest.GATEWAY_BIN, "serve", "--listen", f"127.0.0.1:{port}", "--no-store"]
    args += conftest.embedded_default_args(tmp_path, port)
    proc = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)
    try:
        msg = sock.recv(4096).decode()
        assert "READY=1" in msg.split("\n"), msg
        assert conftest._connectable(port), "READY=1 came before the port listened"
        proc.terminate()
        msg = sock.recv(4096).decode()
        assert "STOPPING=1" in msg.split("\n"), msg
        assert proc.wait(15) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
