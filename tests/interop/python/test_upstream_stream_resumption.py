"""The gateway's native Streamable HTTP upstream connector resumes the streams a legacy (2025-11-25)
server ends: the standalone GET stream, and a POST's response stream cut before its answer.

    raw HTTP client ──/mcp──► mcp-edge-gateway ──HTTP──► servers/resumable_server.py (legacy, sessions)

The upstream (stdlib http.server, raw SSE) ends every standalone GET stream right after one event
(`id: g-<n>`, `retry: 500`), and ends the SSE reply to a `slow_echo` call after its priming event
(`id: p<k>-0`, `retry: 300`) and one notification (`id: p<k>-1`), before the answer. It logs, in its
own clock, when each GET arrived (with its Last-Event-ID) and when it ended each stream, and each run
of the tool; the tests read that log from its /log endpoint.

- The GET stream is opened again after the server's `retry` (500 ms: between 450 and 700 ms after
  the server ended it), with `Last-Event-ID` the last id it sent, several times in a row.
- A client's tools/call gets slow_echo's answer: the gateway resumed the cut POST stream with a GET
  carrying `Last-Event-ID: p<k>-1` (after the 300 ms `retry`), the answer came on it, and the tool
  ran once (the call was not re-POSTed).
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import (
    INTEROP,
    LEGACY,
    PYTHON,
    Gateway,
    legacy_post,
    legacy_session,
    wait_until,
)

SERVER = INTEROP / "servers/resumable_server.py"
UPSTREAM = "resumable"
TOOL = f"{UPSTREAM}__slow_echo"
GET_RETRY_S = 0.5
CALL_RETRY_S = 0.3

pytestmark = pytest.mark.timeout(20)


class ResumableServer:
    def __init__(self, workdir: Path) -> None:
        self.stderr_path = workdir / "resumable_server.log"
        with self.stderr_path.open("w") as err:
            self.proc = subprocess.Popen([PYTHON, str(SERVER), "--port", "0"], stdout=subprocess.PIPE,
                                         stderr=err, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            self.stop()
            raise AssertionError(f"resumable_server.py did not start: {line!r}\n{self.stderr_path.read_text()}")
        self.port = int(line.split()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def log(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/log", timeout=5) as r:
            return json.load(r)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("upstream-resume")
    server = ResumableServer(tmp)
    cfg = tmp / "gateway.toml"
    cfg.write_text(f"[upstreams.{UPSTREAM}]\nurl = {json.dumps(server.url)}\n")
    gw = Gateway(cfg, tmp / "gateway.log").start()
    try:
        gw.wait_state({UPSTREAM}, ready=True, timeout=15)
        yield gw, server
    finally:
        gw.stop()
        server.stop()
        log = gw.log_text()
        assert "panicked" not in log, log


def _upstream_session(log: dict) -> str:
    sessions = log["sessions"]
    assert len(sessions) == 1, f"the gateway should hold one session upstream: {log['posts']}"
    return sessions[0]


def _explain(log: dict) -> str:
    return json.dumps({"gets": log["gets"], "calls": log["calls"], "runs": log["runs"],
                       "posts": [(p["method"], p["id"], round(p["t"], 3)) for p in log["posts"]]}, indent=1)


def test_the_get_stream_is_reopened_after_retry_with_last_event_id(rig):
    gw, server = rig

    def ended_standalone():
        s = [g for g in server.log()["gets"] if g["kind"] == "standalone" and g["t_end"] is not None]
        return s if len(s) >= 4 else None

    wait_until(ended_standalone, 10, "four standalone GET streams opened and ended by the server",
               detail=lambda: _explain(server.log()))
    log = server.log()
    sid = _upstream_session(log)
    gets = [g for g in log["gets"] if g["kind"] == "standalone"]
    assert all(g["kind"] != "refused" for g in log["gets"]), _explain(log)

    first = gets[0]
    assert first["last_event_id"] is None, f"the first GET stream starts fresh: {first}"
    init = next(p for p in log["posts"] if p["method"] == "initialize")
    assert 0 <= first["t"] - init["t"] < 2, _explain(log)

    gaps = []
    for prev, nxt in zip(gets, gets[1:]):
        assert prev["t_end"] is not None, f"a GET came while stream {prev['stream']} was open\n{_explain(log)}"
        assert nxt["session"] == sid and nxt["version"] == LEGACY, nxt
        assert "text/event-stream" in nxt["accept"], nxt
        assert nxt["last_event_id"] == prev["sent_ids"][-1], (
            f"GET at {nxt['t']:.3f} carried Last-Event-ID {nxt['last_event_id']!r}; the stream before it "
            f"sent {prev['sent_ids']}\n{_explain(log)}")
        gap = nxt["t"] - prev["t_end"]
        gaps.append(round(gap * 1000))
        assert 0.45 <= gap <= 0.70, (
            f"GET stream {prev['stream']} ended at {prev['t_end']:.3f}; the next GET came {gap * 1000:.0f} ms "
            f"later (retry is {GET_RETRY_S * 1000:.0f} ms)\n{_explain(log)}")
    assert len(gaps) >= 3, gaps
    print(f"GET stream reopened after {gaps} ms, Last-Event-IDs {[g['last_event_id'] for g in gets]}")


def test_a_call_whose_post_stream_was_cut_is_answered_after_a_resume(rig):
    gw, server = rig
    client_sid = legacy_session(gw.url)
    upstream_sid = _upstream_session(server.log())
    t0 = time.monotonic()
    r = legacy_post(gw.url, client_sid, {"jsonrpc": "2.0", "id": 41, "method": "tools/call",
                                         "params": {"name": TOOL, "arguments": {"text": "hello resume"}}})
    elapsed = time.monotonic() - t0
    log = server.log()
    assert r.status == 200, (r.status, r.body, _explain(log))
    msgs = r.events() if "text/event-stream" in r.headers.get("content-type", "") else [r.json()]
    answer = next((m for m in msgs if m.get("id") == 41), None)
    assert answer is not None, (r.body, _explain(log))
    assert "error" not in answer, (answer, _explain(log))
    assert answer["result"]["content"][0]["text"] == "echo: hello resume", answer
    assert not answer["result"].get("isError"), answer

    # The upstream: one POST of the call, its stream ended before the answer...
    posts = [p for p in log["posts"] if p["method"] == "tools/call"]
    assert len(posts) == 1, f"the call was POSTed {len(posts)} times\n{_explain(log)}"
    assert len(log["calls"]) == 1, _explain(log)
    call = log["calls"][0]
    assert call["sent_ids"] == [f"p{call['k']}-0", f"p{call['k']}-1"] and call["t_end"] is not None, call
    # ...resumed by one GET carrying the last id of that stream, after its retry...
    resumes = [g for g in log["gets"] if g["kind"] == "resume"]
    assert len(resumes) == 1, f"expected one resumption GET\n{_explain(log)}"
    res = resumes[0]
    assert res["last_event_id"] == call["sent_ids"][-1], (res, call)
    assert res["session"] == upstream_sid and res["version"] == LEGACY, res
    assert "text/event-stream" in res["accept"], res
    gap = res["t"] - call["t_end"]
    assert CALL_RETRY_S - 0.05 <= gap <= CALL_RETRY_S + 0.3, (
        f"the POST stream ended at {call['t_end']:.3f}; the resuming GET came {gap * 1000:.0f} ms later "
        f"(retry is {CALL_RETRY_S * 1000:.0f} ms)\n{_explain(log)}")
    # ...on which the answer (with the gateway's request id) went out; the tool ran exactly once.
    assert res["sent_ids"] == [f"p{call['k']}-2"], res
    assert call["response_id"] == posts[0]["id"] == call["request_id"], (call, posts)
    assert [(x["k"], x["request_id"]) for x in log["runs"]] == [(call["k"], call["request_id"])], log["runs"]
    # No standalone GET ever carried a call's event id, nor the resume a standalone one.
    for g in log["gets"]:
        if g["kind"] == "standalone" and g["last_event_id"]:
            assert g["last_event_id"].startswith("g-"), g
    assert elapsed >= CALL_RETRY_S, f"answered in {elapsed:.3f}s: before the resume could have happened"
    print(f"POST stream ended at {call['t_end']:.3f}, resumed {gap * 1000:.0f} ms later with "
          f"Last-Event-ID {res['last_event_id']}; client answered in {elapsed * 1000:.0f} ms")
    assert gw.alive() and "panicked" not in gw.log_text(), gw.log_tail()
