"""A real OpenAI-compatible chat-completions upstream: llama-cpp-python's `llama_cpp.server` serving
SmolLM2-135M-Instruct (Q4_1 gguf) on a loopback port, from the cache that scripts/setup-model.sh fills
($MCP_GW_MODEL_CACHE, or ~/.cache/mcp-edge-gateway/model: `venv/bin/python` and the gguf beside it).
Standard library only, so any Python can drive it.

    with ModelServer("smollm2-135m") as m:
        m.url                                   # "http://127.0.0.1:<port>/v1", for an OpenAI client
        m.chat([{"role": "user", "content": "Say hello in three words"}], max_tokens=20)

What this server does (llama-cpp-python 0.3.36), so tests do not expect more of it:
- the response's `model` echoes the request's `model`, whatever it is (the alias is not checked);
- requests are served one at a time. With llama_cpp.server's default `--interrupt_requests True` a new
  request cuts a stream in flight short, so ModelServer starts it with False: requests queue instead;
- `content` as a list of parts (text or image_url) is a 500 with the gguf's own chat template, which
  only takes strings (and there is no projector for images); chat_format="chatml" takes the list but
  drops that message's content, silently;
- `tools` alone are ignored (plain text back): `tool_calls` (finish_reason "tool_calls") come only with
  a named `tool_choice`, which forces that call by grammar, or with chat_format="chatml-function-calling"
  and tool_choice "auto", where the model chooses. `n` > 1 and `stream_options.include_usage` are
  ignored; `stop` works (the stop text is cut off, finish_reason "stop");
- a request that fails validation is a 500, not a 4xx; too long a prompt is a 400
  (code "context_length_exceeded").

Usage as a script, to check the cache: python model_server.py [ALIAS]
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path
from typing import Any, Sequence

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
START_TIMEOUT_S = 120.0


def cache_dir() -> Path:
    """Where scripts/setup-model.sh installs: $MCP_GW_MODEL_CACHE (unless empty), else the default."""
    return Path(os.environ.get("MCP_GW_MODEL_CACHE") or Path.home() / ".cache" / "mcp-edge-gateway" / "model")


def model_python() -> Path:
    return cache_dir() / "venv" / "bin" / "python"


def model_gguf() -> Path:
    return cache_dir() / GGUF_NAME


class ModelServerError(RuntimeError):
    """The server could not be started, died, or answered a request with an HTTP error."""


class ModelServerHTTPError(ModelServerError):
    def __init__(self, status: int, body: str):
        super().__init__(f"HTTP {status}: {body[:2000]}")
        self.status = status
        self.body = body


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _terminate(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class ModelServer:
    """One `llama_cpp.server` process serving the cached model as `alias` on 127.0.0.1.

    `port=None` picks a free port (and retries on another one if it was taken in between). The
    constructor returns once GET /v1/models answers with the alias; it raises ModelServerError if the
    process exits first or `timeout` seconds pass, with the tail of the server's output in the message.
    `chat_format` (e.g. "chatml-function-calling") and `extra_args` go to llama_cpp.server as given.
    `api_key` starts it with `--api_key`: every request then needs `Authorization: Bearer <key>` (a
    wrong or missing key is a 401), and this class sends it itself (the readiness check, chat()).
    """

    def __init__(self, alias: str, port: int | None = None, *, n_ctx: int = 2048,
                 chat_format: str | None = None, extra_args: Sequence[str] = (),
                 api_key: str | None = None,
                 timeout: float = START_TIMEOUT_S, host: str = "127.0.0.1"):
        python, gguf = model_python(), model_gguf()
        for path in (python, gguf):
            if not path.exists():
                raise ModelServerError(f"{path} not found: run scripts/setup-model.sh first")
        self.alias = alias
        self.host = host
        extra_args = list(extra_args)
        if "--api_key" in extra_args[:-1]:  # given the raw way: still authenticate our own requests
            api_key = api_key or extra_args[extra_args.index("--api_key") + 1]
        elif api_key:
            extra_args += ["--api_key", api_key]
        self.api_key = api_key
        self._proc: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile(prefix=f"model-server-{alias}-")
        self._started = time.monotonic()
        attempts = 1 if port is not None else 3
        for attempt in range(attempts):
            self.port = port if port is not None else free_port(host)
            cmd = [str(python), "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", alias,
                   "--host", host, "--port", str(self.port), "--n_ctx", str(n_ctx),
                   "--interrupt_requests", "False"]
            if chat_format:
                cmd += ["--chat_format", chat_format]
            cmd += extra_args
            self._log.seek(0)
            self._log.truncate()
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
            self._finalizer = weakref.finalize(self, _terminate, self._proc)
            try:
                self._wait_ready(timeout)
                break
            except ModelServerError:
                self.stop(close_log=False)
                if attempt + 1 < attempts and "address already in use" in self.log_tail().lower():
                    continue
                self._log.close()
                raise
        self.start_seconds = time.monotonic() - self._started

    @property
    def url(self) -> str:
        """The OpenAI base URL: http://127.0.0.1:<port>/v1."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            rc = self._proc.poll()
            if rc is not None:
                raise ModelServerError(
                    f"llama_cpp.server for {self.alias!r} on port {self.port} exited with code {rc} before it "
                    f"answered; its last output:\n{self.log_tail()}")
            try:
                req = urllib.request.Request(self.url + "/models", headers=self._auth())
                with urllib.request.urlopen(req, timeout=2) as r:
                    ids = [m.get("id") for m in json.load(r).get("data", [])]
                if self.alias in ids:
                    return
            except (OSError, ValueError):
                pass  # not listening yet (connection refused, reset, or a half-started app)
            if time.monotonic() > deadline:
                raise ModelServerError(
                    f"llama_cpp.server for {self.alias!r} on port {self.port} did not answer GET /v1/models "
                    f"within {timeout:g} s; its last output:\n{self.log_tail()}")
            time.sleep(0.1)

    def _auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's stdout and stderr (llama.cpp's and uvicorn's logs)."""
        if self._log.closed:
            return ""
        self._log.flush()
        self._log.seek(0, os.SEEK_END)
        size = self._log.tell()
        self._log.seek(max(0, size - 64 * 1024))
        text = self._log.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def rss_bytes(self) -> int | None:
        """The server process's resident memory (Linux /proc), or None once it is gone."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except (OSError, TypeError):
            pass
        return None

    def chat(self, messages: list[dict[str, Any]], *, timeout: float = 120.0, **kw: Any) -> dict[str, Any]:
        """POST /v1/chat/completions directly (model = the alias unless `model=` is given); the parsed
        JSON response. An HTTP error status raises ModelServerHTTPError with .status and .body."""
        body = {"model": self.alias, "messages": messages, **kw}
        req = urllib.request.Request(self.url + "/chat/completions", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json", **self._auth()})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            raise ModelServerHTTPError(e.code, e.read().decode("utf-8", "replace")) from None

    def stop(self, close_log: bool = True) -> None:
        """SIGTERM, then SIGKILL after 10 s. Idempotent."""
        if self._proc is not None:
            _terminate(self._proc)
            self._finalizer.detach()
        if close_log and not self._log.closed:
            self._log.close()

    def __enter__(self) -> "ModelServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    alias = sys.argv[1] if len(sys.argv) > 1 else "smollm2-135m"
    with ModelServer(alias) as server:
        print(f"{server.url} up in {server.start_seconds:.1f} s, pid {server.pid}, rss {server.rss_bytes()} B")
        t = time.perf_counter()
        reply = server.chat([{"role": "system", "content": "You are a helpful assistant."},
                             {"role": "user", "content": "Say hello in three words"}], max_tokens=20)
        print(f"{(time.perf_counter() - t) * 1000:.0f} ms:", json.dumps(reply))
