"""Sampling answered at the edge (issue 10): an upstream's sampling request goes down the gateway's
chain of providers, `[sampling] order = ["local", "cloud", "client"]`, before (or instead of) the MCP
client. Real peers throughout:

    python mcp Client ──HTTP──► mcp-edge-gateway ──stdio──► server-everything (legacy: sampling/createMessage)
                                      │          └─HTTP───► servers/modern_server.py (modern: input_required)
                                      ├─ "local" ─► llama.cpp server, SmolLM2-135M, alias smollm2-135m
                                      └─ "cloud" ─► llama.cpp server, SmolLM2-135M, alias big-model, --api_key

Both providers are real OpenAI-compatible servers (servers/model_server.py, from the cache that
scripts/setup-model.sh fills); "cloud" demands an API key, which the gateway reads from CLOUD_LLM_KEY.
A missing model cache fails these tests: it is never a skip.

The only test double is the deliberately broken provider of test_a_broken_provider_..., a stdlib
http.server answering a 500, non-JSON, JSON without choices, and too late.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from mcp import Client
from mcp_types import CreateMessageResult, TextContent

from conftest import (
    EVERYTHING,
    GATEWAY_BIN,
    INTEROP,
    Gateway,
    ModernServer,
    children_of,
    client_kwargs,
    cmdline,
    free_port,
    is_alive,
    kill_pid,
    run_async,
    text_of,
)

sys.path.insert(0, str(INTEROP / "servers"))
import model_server  # noqa: E402  (servers/ is not a package)
from model_server import ModelServer  # noqa: E402

LOCAL_MODEL = "smollm2-135m"
CLOUD_MODEL = "big-model"
CLOUD_KEY = "test-key"
CLIENT_MODEL = "client-model"
CLIENT_TEXT = "answered by the client's own LLM"
ORDER = ["local", "cloud", "client"]
SAMPLING_TOOL = "everything__trigger-sampling-request"
NO_PROVIDER = "no sampling provider could answer"

pytestmark = pytest.mark.timeout(90)


# ------------------------------------------------------------------------------------------------
# Fixtures and helpers
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def model_cache():
    """The model cache must be there: without it these tests fail, loudly, and say how to fix it."""
    missing = [p for p in (model_server.model_python(), model_server.model_gguf()) if not p.exists()]
    if missing:
        pytest.fail(f"the model cache is incomplete ({', '.join(map(str, missing))} missing; cache dir "
                    f"{model_server.cache_dir()}): run scripts/setup-model.sh (scripts/setup.sh does)",
                    pytrace=False)


@pytest.fixture
def local_model():
    m = ModelServer(LOCAL_MODEL)
    yield m
    m.stop()


@pytest.fixture
def cloud_model():
    m = ModelServer(CLOUD_MODEL, api_key=CLOUD_KEY)
    yield m
    m.stop()


def chat_requests(m: ModelServer) -> list[str]:
    """The server's access-log lines for chat completions (uvicorn logs each with its status)."""
    return [ln for ln in m.log_tail(2000).splitlines() if "/v1/chat/completions" in ln]


def toml_value(v) -> str:
    # JSON strings, numbers, booleans and arrays of them are TOML too.
    return json.dumps(v)


def sampling_toml(path: Path, modern_url: str, providers: dict[str, dict], order: list[str]) -> Path:
    """A TOML config: server-everything (stdio) and modern_server (HTTP) upstreams, and the chain."""
    lines = ["[upstreams.everything]", 'command = "node"', f"args = {toml_value([str(EVERYTHING), 'stdio'])}",
             "[upstreams.modern]", f"url = {toml_value(modern_url)}", "", "[sampling]",
             f"order = {toml_value(order)}"]
    for name, p in providers.items():
        lines.append(f"[sampling.providers.{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in p.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def provider(url: str, model: str, **kw) -> dict:
    return {"url": url, "model": model, **kw}


@dataclass
class Edge:
    gateway: Gateway
    modern: ModernServer

    @property
    def url(self) -> str:
        return self.gateway.url

    def sampling(self) -> dict:
        return self.gateway.status()["sampling"]

    def assert_healthy(self) -> None:
        gw = self.gateway
        assert gw.alive(), f"the gateway died (exit code {gw.proc.returncode})\n{gw.log_tail()}"
        assert "panicked" not in gw.log_text(), f"the gateway panicked\n{gw.log_tail()}"
        with urllib.request.urlopen(f"{gw.base}/healthz", timeout=5) as r:
            assert r.status == 200


@pytest.fixture
def edge_factory(tmp_path):
    """Builds the gateway + both upstreams with a given chain; tears everything down by PID."""
    made: list[Edge] = []

    def make(providers: dict[str, dict], order: list[str], env: dict[str, str] | None = None) -> Edge:
        modern = ModernServer(tmp_path)
        cfg = sampling_toml(tmp_path / "gateway.toml", modern.url, providers, order)
        gw = Gateway(cfg, tmp_path / "gateway.log", env=env or {})
        edge = Edge(gw, modern)
        made.append(edge)
        gw.start()
        gw.wait_state({"everything", "modern"}, ready=True, timeout=45)
        return edge

    yield make
    for e in made:
        kids = children_of(e.gateway.pid) if e.gateway.alive() else []
        e.gateway.stop()
        for k in kids:
            if is_alive(k) and str(EVERYTHING) in cmdline(k):
                kill_pid(k)
        e.modern.stop()


def chain(local: str, cloud: str) -> dict[str, dict]:
    return {"local": provider(local, LOCAL_MODEL, timeout_ms=60000),
            "cloud": provider(cloud, CLOUD_MODEL, api_key_env="CLOUD_LLM_KEY")}


CLOUD_ENV = {"CLOUD_LLM_KEY": CLOUD_KEY}


def sampled(result) -> dict:
    """server-everything's trigger-sampling-request result: "LLM sampling result: \\n<JSON>"."""
    text = text_of(result)
    assert not result.is_error, text
    head, sep, body = text.partition("LLM sampling result:")
    assert sep, f"not a sampling result: {text!r}"
    return json.loads(body)


async def sample_both(c: Client, prompt: str = "Say hello in three words") -> tuple[dict, str]:
    """One sampling request from each upstream era: (server-everything's result, haiku's text)."""
    legacy = sampled(await c.call_tool(SAMPLING_TOOL, {"prompt": prompt, "maxTokens": 24}))
    r = await c.call_tool("modern__haiku", {"topic": "rust"})
    assert not r.is_error, text_of(r)
    return legacy, text_of(r)


def assert_answered_by(legacy: dict, haiku: str, model: str) -> None:
    # The sampling result that server-everything received, as it puts it in its tool result.
    assert legacy["model"] == model, legacy
    assert legacy["role"] == "assistant", legacy
    assert legacy["content"]["type"] == "text" and legacy["content"]["text"].strip(), legacy
    assert legacy.get("stopReason") in ("endTurn", "maxTokens"), legacy
    # haiku returns f"[{model}] {text}".
    m = re.fullmatch(rf"\[{re.escape(model)}\] (.+)", haiku, re.S)
    assert m and m.group(1).strip(), f"haiku was not answered by {model}: {haiku!r}"


def no_sampling_client(mode: str = "auto", **kw) -> dict:
    # No sampling_callback: the client declares no sampling capability.
    return client_kwargs(mode, **kw)


# ------------------------------------------------------------------------------------------------
# 1. A real local model answers
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["auto", "legacy"])  # a modern (2026-07-28) and a legacy client
def test_a_real_local_model_answers_both_upstreams_for_a_client_that_cannot_sample(
        edge_factory, local_model, cloud_model, mode):
    edge = edge_factory(chain(local_model.url, cloud_model.url), ORDER, env=CLOUD_ENV)
    assert edge.sampling() == {"order": ORDER, "answers": {}, "failures": {}}, edge.sampling()

    async def run():
        async with Client(edge.url, **no_sampling_client(mode)) as c:
            return await sample_both(c)

    legacy, haiku = run_async(run())
    assert_answered_by(legacy, haiku, LOCAL_MODEL)

    st = edge.sampling()
    assert st["order"] == ORDER, st
    assert st["answers"].get("local") == 2 and not st["answers"].get("cloud") and not st["answers"].get("client"), st
    assert not st["failures"], st
    # The local llama.cpp server really answered both, and the cloud one saw nothing.
    assert len(chat_requests(local_model)) == 2, chat_requests(local_model)
    assert chat_requests(cloud_model) == [], chat_requests(cloud_model)
    log = edge.gateway.log_text()
    assert log.count(f'sampling answered by "local" ({LOCAL_MODEL})') == 2, edge.gateway.log_tail()
    edge.assert_healthy()


# ------------------------------------------------------------------------------------------------
# 2. Local stopped: the cloud provider answers, with its API key
# ------------------------------------------------------------------------------------------------

def test_with_local_stopped_the_cloud_provider_answers_with_its_api_key(edge_factory, local_model, cloud_model):
    edge = edge_factory(chain(local_model.url, cloud_model.url), ORDER, env=CLOUD_ENV)
    local_model.stop()

    async def run():
        async with Client(edge.url, **no_sampling_client()) as c:
            return await sample_both(c)

    legacy, haiku = run_async(run())
    assert_answered_by(legacy, haiku, CLOUD_MODEL)

    st = edge.sampling()
    assert st["answers"].get("cloud") == 2 and not st["answers"].get("local"), st
    assert st["failures"].get("local") == 2 and not st["failures"].get("cloud"), st
    log = edge.gateway.log_text()
    assert re.search(r'sampling provider "local" failed \(.+\); trying the next', log), edge.gateway.log_tail()
    assert log.count(f'sampling answered by "cloud" ({CLOUD_MODEL})') == 2, edge.gateway.log_tail()
    # llama.cpp started with --api_key refuses a request without the right key (401): these were 200s.
    reqs = chat_requests(cloud_model)
    assert len(reqs) == 2 and all(" 200" in r for r in reqs), reqs
    edge.assert_healthy()


# ------------------------------------------------------------------------------------------------
# 3. Both stopped: the client's own sampling handler answers
# ------------------------------------------------------------------------------------------------

def test_with_both_providers_stopped_the_client_answers(edge_factory, local_model, cloud_model):
    edge = edge_factory(chain(local_model.url, cloud_model.url), ORDER, env=CLOUD_ENV)
    local_model.stop()
    cloud_model.stop()
    asked = []

    async def on_sample(ctx, params):
        asked.append(params)
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text=CLIENT_TEXT),
                                   model=CLIENT_MODEL, stop_reason="endTurn")

    async def run():
        async with Client(edge.url, **client_kwargs("auto"), sampling_callback=on_sample) as c:
            return await sample_both(c, prompt="tell me a joke")

    legacy, haiku = run_async(run())
    assert legacy["model"] == CLIENT_MODEL and legacy["content"]["text"] == CLIENT_TEXT, legacy
    assert haiku == f"[{CLIENT_MODEL}] {CLIENT_TEXT}", haiku
    assert len(asked) == 2, asked
    assert "tell me a joke" in asked[0].messages[0].content.text
    assert asked[1].messages[0].content.text == "Write a haiku about rust"

    st = edge.sampling()
    assert st["failures"].get("local") == 2 and st["failures"].get("cloud") == 2, st
    assert not st["answers"].get("local") and not st["answers"].get("cloud"), st
    log = edge.gateway.log_text()
    for p in ("local", "cloud"):
        assert re.search(rf'sampling provider "{p}" failed \(.+\); trying the next', log), edge.gateway.log_tail()
    edge.assert_healthy()


# ------------------------------------------------------------------------------------------------
# 4. Nobody left: a clear error, and the gateway stays healthy
# ------------------------------------------------------------------------------------------------

def test_with_nobody_left_the_call_reports_a_clear_error_and_the_gateway_stays_healthy(
        edge_factory, local_model, cloud_model):
    edge = edge_factory(chain(local_model.url, cloud_model.url), ORDER, env=CLOUD_ENV)
    local_model.stop()
    cloud_model.stop()

    async def run():
        async with Client(edge.url, **no_sampling_client()) as c:
            legacy = await c.call_tool(SAMPLING_TOOL, {"prompt": "anyone there?", "maxTokens": 8})
            try:
                modern = await c.call_tool("modern__haiku", {"topic": "silence"})
                modern_text, modern_error = text_of(modern), modern.is_error
            except Exception as e:  # noqa: BLE001 - a JSON-RPC error is an exception in this client
                modern_text, modern_error = f"{type(e).__name__}: {e}", True
            echo = await c.call_tool("everything__echo", {"message": "still here"})
            return legacy, (modern_text, modern_error), echo

    legacy, (modern_text, modern_error), echo = run_async(run())
    # server-everything got the gateway's JSON-RPC error for its sampling/createMessage and reports it
    # in its tool result.
    legacy_text = text_of(legacy)
    assert legacy.is_error, legacy_text
    assert NO_PROVIDER in legacy_text, legacy_text
    for p in ("local", "cloud", "client"):
        assert f"{p}: " in legacy_text, f"the error does not say why {p!r} could not answer: {legacy_text!r}"
    assert "client: the client did not declare" in legacy_text, legacy_text
    assert "127.0.0.1" not in legacy_text, f"a provider's URL reached the upstream: {legacy_text!r}"
    # The modern upstream's input_required: the client gets an error that says the same.
    assert modern_error and NO_PROVIDER in modern_text, modern_text
    # And the gateway is fine.
    assert "still here" in text_of(echo), text_of(echo)
    st = edge.sampling()
    assert st["failures"].get("local") == 2 and st["failures"].get("cloud") == 2, st
    assert not any(st["answers"].values()), st
    assert edge.gateway.upstream("everything")["state"] == "ready"
    assert edge.gateway.upstream("modern")["state"] == "ready"
    edge.assert_healthy()


# ------------------------------------------------------------------------------------------------
# 5. A broken provider is a failed provider, never a crash
# ------------------------------------------------------------------------------------------------

class BrokenProvider:
    """A deliberately broken provider: a TEST DOUBLE (stdlib http.server), answering each chat
    completion in turn with a 500, non-JSON with a 200, JSON without choices, then too late (after
    the gateway's timeout) — and recording what the gateway sent it."""

    MODES = ["500", "not-json", "no-choices", "too-late"]

    def __init__(self, late_s: float = 3.0) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.late_s = late_s
        me = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                n = len(me.requests)
                me.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                mode = me.MODES[n % len(me.MODES)]
                if mode == "500":
                    return self._send(500, b'{"error": {"message": "internal error", "type": "server_error"}}')
                if mode == "not-json":
                    return self._send(200, b"<html>this is not JSON at all", "text/html")
                if mode == "no-choices":
                    return self._send(200, b'{"id": "x", "object": "chat.completion", "choices": []}')
                time.sleep(me.late_s)
                try:
                    self._send(200, json.dumps({"model": "late", "choices": [
                        {"message": {"role": "assistant", "content": "too late"}, "finish_reason": "stop"}]}).encode())
                except OSError:
                    pass  # the gateway hung up

            def _send(self, status: int, body: bytes, ctype: str = "application/json"):
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_broken_provider_is_a_failed_provider_and_the_chain_moves_on(edge_factory, local_model):
    broken = BrokenProvider()
    try:
        providers = {"broken": provider(broken.url, "broken-model", api_key_env="BROKEN_LLM_KEY", timeout_ms=1000),
                     "local": provider(local_model.url, LOCAL_MODEL)}
        edge = edge_factory(providers, ["broken", "local", "client"], env={"BROKEN_LLM_KEY": "sk-broken"})

        async def run():
            async with Client(edge.url, **no_sampling_client()) as c:
                out = []
                for i in range(2):  # 500, then not-json; then no-choices, then too late
                    out.append(await sample_both(c, prompt=f"round {i}"))
                return out

        for legacy, haiku in run_async(run()):
            assert_answered_by(legacy, haiku, LOCAL_MODEL)

        assert len(broken.requests) == 4, [r[0] for r in broken.requests]
        # What the gateway POSTed: {url}/chat/completions, the key, the configured model, the MCP
        # request mapped to chat messages.
        path, headers, body = broken.requests[0]
        assert path == "/v1/chat/completions", path
        assert headers.get("authorization") == "Bearer sk-broken", headers
        req = json.loads(body)
        assert req["model"] == "broken-model", req
        assert req["messages"] == [
            {"role": "system", "content": "You are a helpful test server."},
            {"role": "user", "content": "Resource trigger-sampling-request context: round 0"}], req
        assert req["max_tokens"] == 24 and req["temperature"] == 0.7, req
        haiku_req = json.loads(broken.requests[1][2])
        assert haiku_req["messages"] == [{"role": "user", "content": "Write a haiku about rust"}], haiku_req
        assert haiku_req["max_tokens"] == 64, haiku_req

        st = edge.sampling()
        assert st["failures"].get("broken") == 4 and st["answers"].get("local") == 4, st
        assert not st["answers"].get("broken"), st
        log = edge.gateway.log_text()
        fails = re.findall(r'sampling provider "broken" failed \((.+)\); trying the next', log)
        assert len(fails) == 4, edge.gateway.log_tail()
        assert "500" in fails[0], fails
        assert "did not answer in time" in fails[3], fails
        edge.assert_healthy()
    finally:
        broken.close()


# ------------------------------------------------------------------------------------------------
# 6. Bad configuration is refused at start-up, naming the key
# ------------------------------------------------------------------------------------------------

GOOD_LOCAL = '[sampling.providers.local]\nurl = "http://127.0.0.1:9/v1"\nmodel = "m"\n'
UPSTREAMS = (f'[upstreams.everything]\ncommand = "node"\nargs = {toml_value([str(EVERYTHING), "stdio"])}\n'
             '[upstreams.modern]\nurl = "http://127.0.0.1:9/mcp"\n')

BAD_CONFIGS = {
    "api key variable unset": (
        "gateway.toml", UPSTREAMS + GOOD_LOCAL
        + '[sampling.providers.cloud]\nurl = "https://llm.example/v1"\napi_key_env = "CLOUD_LLM_KEY"\n'
          'model = "big-model"\n',
        [r"sampling\.providers\.cloud\.api_key_env", "CLOUD_LLM_KEY"]),
    "api key variable unset (mcpServers JSON)": (
        "gateway.json", json.dumps({"mcpServers": {"everything": {"command": "node", "args": [str(EVERYTHING), "stdio"]}},
                                    "gateway": {"sampling": {"order": ["cloud", "client"], "providers": {"cloud": {
                                        "url": "https://llm.example/v1", "model": "big-model",
                                        "apiKeyEnv": "CLOUD_LLM_KEY"}}}}}),
        [r"gateway\.sampling\.providers\.cloud\.apiKeyEnv", "CLOUD_LLM_KEY"]),
    "provider without url": (
        "gateway.toml", UPSTREAMS + '[sampling]\norder = ["local", "client"]\n[sampling.providers.local]\nmodel = "m"\n',
        [r"sampling\.providers\.local\.url"]),
    "unknown group member": (
        "gateway.toml", UPSTREAMS + '[groups.g]\nmembers = ["everything", "nobody"]\n',
        [r"groups\.g\.members\[1\]", "nobody"]),
    "member of two groups": (
        "gateway.toml", UPSTREAMS + '[groups.g]\nmembers = ["everything"]\n[groups.h]\nmembers = ["everything"]\n',
        [r"groups\.[gh]\.members\[0\]", "already a member"]),
    "group named like an upstream": (
        "gateway.toml", UPSTREAMS + '[groups.modern]\nmembers = ["everything"]\n',
        [r"groups\.modern\b", "upstream"]),
    "invalid breaker threshold": (
        "gateway.toml", UPSTREAMS + '[groups.g]\nmembers = ["everything", "modern"]\nbreaker = { error_rate = 2 }\n',
        [r"groups\.g\.breaker\.error_rate"]),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_configuration_is_refused_at_start_up_naming_the_key(tmp_path, case):
    name, text, patterns = BAD_CONFIGS[case]
    cfg = tmp_path / name
    cfg.write_text(text)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "CLOUD_LLM_KEY"}
    t = time.monotonic()
    try:
        p = subprocess.run([GATEWAY_BIN, "serve", "--config", str(cfg), "--listen", f"127.0.0.1:{port}",
                            "--data-dir", str(tmp_path / "data")],
                           capture_output=True, text=True, timeout=10, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the gateway did not refuse the configuration ({case}); it ran for 10 s:\n{e.stderr}")
    took = time.monotonic() - t
    assert p.returncode != 0, f"exit code 0 for a bad configuration ({case}):\n{p.stderr}"
    for pat in patterns:
        assert re.search(pat, p.stderr), f"stderr does not name {pat!r}:\n{p.stderr}"
    assert "panicked" not in p.stderr, p.stderr
    # Refused before doing anything: quickly, no upstream started, nothing served.
    assert took < 5, f"took {took:.1f} s to refuse"
    for did in ("started node", "serving MCP", "store "):
        assert did not in p.stderr, f"it did something before refusing ({did!r}):\n{p.stderr}"


# ------------------------------------------------------------------------------------------------
# Measurement (reported, not asserted): one sampling answer through the gateway vs a direct chat()
# ------------------------------------------------------------------------------------------------

def test_measure_sampling_latency_through_the_gateway_vs_direct(edge_factory, local_model, cloud_model, capsys):
    """Medians of a few rounds, printed and written to sampling-latency.txt beside the gateway log (or
    to $SAMPLING_BENCH_OUT). Through the gateway: server-everything's sampling tool minus its echo
    tool (same path, no sampling); direct: ModelServer.chat() with the very request the gateway
    makes. max_tokens=1 shows the gateway's own cost (llama.cpp reuses the cached prompt, so the
    model's part is a few ms); max_tokens=16 a short real answer, where generation dominates."""
    edge = edge_factory(chain(local_model.url, cloud_model.url), ORDER, env=CLOUD_ENV)
    prompt = "Name a colour"
    messages = [{"role": "system", "content": "You are a helpful test server."},
                {"role": "user", "content": f"Resource trigger-sampling-request context: {prompt}"}]
    settings = [(1, 10), (16, 5)]  # (max_tokens, rounds)

    async def through(max_tokens: int, rounds: int):
        async with Client(edge.url, **no_sampling_client()) as c:
            await c.call_tool("everything__echo", {"message": "warm-up"})
            sampled(await c.call_tool(SAMPLING_TOOL, {"prompt": prompt, "maxTokens": max_tokens}))
            echo_ms, tool_ms = [], []
            for _ in range(rounds):
                t = time.perf_counter()
                r = await c.call_tool("everything__echo", {"message": "x"})
                echo_ms.append((time.perf_counter() - t) * 1000)
                assert not r.is_error, text_of(r)
                t = time.perf_counter()
                s = sampled(await c.call_tool(SAMPLING_TOOL, {"prompt": prompt, "maxTokens": max_tokens}))
                tool_ms.append((time.perf_counter() - t) * 1000)
                assert s["model"] == LOCAL_MODEL, s
            return echo_ms, tool_ms

    med = statistics.median
    lines = []
    for max_tokens, rounds in settings:
        echo_ms, tool_ms = run_async(through(max_tokens, rounds))
        direct_ms = []
        local_model.chat(messages, max_tokens=max_tokens, temperature=0.7)  # warm-up
        for _ in range(rounds):
            t = time.perf_counter()
            r = local_model.chat(messages, max_tokens=max_tokens, temperature=0.7)
            direct_ms.append((time.perf_counter() - t) * 1000)
            assert r["model"] == LOCAL_MODEL and r["choices"], r
        gw = med(tool_ms) - med(echo_ms)
        lines.append(f"sampling latency, max_tokens={max_tokens}, {rounds} rounds, medians: through the gateway "
                     f"{gw:.0f} ms (sampling tool {med(tool_ms):.0f} ms - echo tool {med(echo_ms):.0f} ms), "
                     f"direct chat() {med(direct_ms):.0f} ms, difference {gw - med(direct_ms):+.0f} ms "
                     f"[tool {[round(x) for x in tool_ms]}, echo {[round(x) for x in echo_ms]}, "
                     f"direct {[round(x) for x in direct_ms]}]")
    out = Path(os.environ.get("SAMPLING_BENCH_OUT") or edge.gateway.log.parent / "sampling-latency.txt")
    out.write_text("\n".join(lines) + "\n")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert edge.sampling()["answers"].get("local") == sum(r + 1 for _, r in settings), edge.sampling()
    assert not edge.sampling()["failures"], edge.sampling()
    edge.assert_healthy()
