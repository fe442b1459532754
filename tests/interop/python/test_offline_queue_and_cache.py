"""The gateway's durable store against a real upstream (servers/counter_server.py, Python `mcp` SDK):

- offline queue: calls to a queueable tool while its upstream is down are written to SQLite and
  answered at once ("Queued:" results, or a task for task-aware clients); they survive kill -9 of the
  gateway, replay in order once the upstream is back, each carrying its taskId as idempotency key, and
  never run twice, even when the gateway dies during replay; queued calls can be cancelled; a full store
  refuses to queue instead of pretending;
- durable cache: reads and lists are served stale while the upstream is down, but a `cacheScope:
  "private"` result only to the auth context that fetched it, stale or fresh (with the upstream up,
  another context's read goes to the upstream);
- a corrupt store stops the gateway at startup with a clear error, leaving the file alone.

Every test builds its own gateway (with its own --data-dir) and counter server on free ports and kills
them by PID at the end. The counter server logs each record() call (n and idempotency key) to a file,
which is the ground truth for "ran exactly once", and each call's start and end to another, so a test
can wait until no call is still running instead of sleeping.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from conftest import (
    LEGACY,
    CounterServer,
    Gateway,
    _connectable,
    bearer,
    free_port,
    modern_post,
    raw_request,
    wait_no_connections,
    wait_until,
)

QUEUED = "io.github.mcp-edge-gateway/queued"
CACHE = "io.github.mcp-edge-gateway/cache"
TOOL = "counter__record"
TTL_MS = 1000  # ttlMs of the counter server's cacheable results (unless a test gives its own)
REPLAY_TIMEOUT = 60

_ids = itertools.count(100)


# ------------------------------------------------------------------------------------------------
# Processes
# ------------------------------------------------------------------------------------------------

class Rig:
    """One test's counter server and gateways (and their shared data dir); torn down by PID."""

    def __init__(self, tmp: Path, delay_ms: int = 0, ttl_ms: int = TTL_MS) -> None:
        self.tmp = tmp
        self.counter = CounterServer(tmp, delay_ms, ttl_ms)
        self.data_dir = tmp / "data"
        self.gateways: list[Gateway] = []

    def config(self, offline_queue: list[str] | None = None, max_bytes: int | None = None) -> Path:
        server: dict[str, Any] = {"url": self.counter.url}
        if offline_queue is not None:
            server["offlineQueue"] = offline_queue
        cfg: dict[str, Any] = {"mcpServers": {"counter": server}}
        if max_bytes is not None:
            cfg["gateway"] = {"storage": {"maxBytes": max_bytes}}
        path = self.tmp / "gateway.json"
        path.write_text(json.dumps(cfg, indent=1))
        return path

    def gateway(self, config: Path, name: str) -> Gateway:
        """A gateway on the rig's data dir, answering /status."""
        gw = Gateway(config, self.tmp / f"{name}.log", data_dir=self.data_dir).start()
        self.gateways.append(gw)

        def up():
            if not gw.alive():
                raise _Fatal(f"the gateway exited with {gw.proc.returncode}\n{gw.log_tail()}")
            return gw.status()

        _wait(up, 20, f"{name} to answer /status", gw)
        return gw

    def close(self) -> None:
        for gw in self.gateways:
            gw.stop()
        self.counter.kill9()


class _Fatal(Exception):
    """Raised by a polled predicate to stop waiting at once."""


def _wait(pred, timeout: float, what: str, gw: Gateway, interval: float = 0.05):
    """wait_until, but a _Fatal from pred fails at once, and the failure shows the gateway's state."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except _Fatal as e:
            raise AssertionError(str(e)) from None
        except Exception as e:  # noqa: BLE001 - polling
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last!r})\n{gw._detail()}")


def kill9(gw: Gateway) -> None:
    gw.proc.kill()
    gw.proc.wait(10)


def _rig(tmp_path, **kw):
    r = Rig(tmp_path, **kw)
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def rig(tmp_path):
    yield from _rig(tmp_path)


@pytest.fixture
def long_ttl_rig(tmp_path):
    """The counter server's results live for ten minutes: a second read within a test is a cache hit."""
    yield from _rig(tmp_path, ttl_ms=600_000)


@pytest.fixture
def slow_rig(tmp_path):
    """Each record() takes 100 ms, so a replay of 50 calls takes seconds: long enough to kill into."""
    yield from _rig(tmp_path, delay_ms=100)


# ------------------------------------------------------------------------------------------------
# Talking to the gateway (raw HTTP, legacy era unless said otherwise)
# ------------------------------------------------------------------------------------------------

class Session:
    """A legacy (2025-11-25) session opened by hand; `headers` go on every request (Authorization).
    In auth mode (MCP_GW_TEST_AUTH=1) a session without headers of its own carries the main test
    principal's token (raw_request adds it): "an anonymous client" below is that principal there."""

    def __init__(self, gw: Gateway, headers: dict[str, str] | None = None, capabilities: dict | None = None):
        self.gw = gw
        self.headers = dict(headers or {})
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": LEGACY, "capabilities": capabilities or {},
                           "clientInfo": {"name": "offline-queue-test", "version": "1"}}}
        r = raw_request(gw.url, json.dumps(init).encode(), self.headers)
        assert r.status == 200, f"initialize: HTTP {r.status} {r.body[:500]!r}\n{gw.log_tail()}"
        self.sid = r.headers.get("mcp-session-id")
        assert self.sid, f"no Mcp-Session-Id: {r.headers}"
        self.init_result = r.rpc()["result"]
        r = raw_request(gw.url, json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode(),
                        self._h())
        assert r.status == 202, f"initialized: HTTP {r.status} {r.body[:500]!r}"

    def _h(self) -> dict[str, str]:
        return {"Mcp-Session-Id": self.sid, "MCP-Protocol-Version": LEGACY} | self.headers

    def request(self, method: str, params: dict, timeout: float = 30) -> dict:
        """The JSON-RPC response message (result or error)."""
        body = json.dumps({"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params}).encode()
        r = raw_request(self.gw.url, body, self._h(), timeout=timeout)
        assert r.status == 200, f"{method}: HTTP {r.status} {r.body[:500]!r}\n{self.gw.log_tail()}"
        return r.rpc()

    def result(self, method: str, params: dict, timeout: float = 30) -> dict:
        msg = self.request(method, params, timeout)
        assert "result" in msg, f"{method} {params}: expected a result, got {msg}\n{self.gw.log_tail()}"
        return msg["result"]

    def record(self, n: int, **extra: Any) -> dict:
        """tools/call counter__record; the response message."""
        return self.request("tools/call", {"name": TOOL, "arguments": {"n": n}} | extra)


def text(result: dict) -> str:
    return "\n".join(c.get("text", "") for c in result.get("content") or result.get("contents") or [])


def queued_task_id(msg: dict, n: int, gw: Gateway) -> tuple[str, dict]:
    """Checks a "Queued:" answer to a non-task client; returns its taskId and _meta entry."""
    assert "result" in msg, f"call n={n}: expected a Queued: result, got {msg}\n{gw.log_tail()}"
    res = msg["result"]
    assert res.get("isError", False) is False, f"call n={n}: {res}"
    assert text(res).startswith("Queued:"), f"call n={n}: {res}"
    q = (res.get("_meta") or {}).get(QUEUED)
    assert isinstance(q, dict) and isinstance(q.get("taskId"), str) and q["taskId"], \
        f"call n={n}: no _meta[{QUEUED!r}].taskId in {res}"
    assert q.get("upstream") == "counter" and q.get("tool") == "record", f"call n={n}: {q}"
    assert isinstance(q.get("position"), int), f"call n={n}: no position in {q}"
    return q["taskId"], q


def queue_entries(gw: Gateway) -> list[dict]:
    r = raw_request(f"{gw.base}/admin/queue", method="GET")
    assert r.status == 200, f"GET /admin/queue: HTTP {r.status} {r.body[:500]!r}"
    return r.json()["entries"]


def statuses(gw: Gateway, ids: list[str]) -> dict[str, str]:
    """taskId -> status, for the given ids (an id missing from the queue maps to "missing")."""
    by_id = {e["taskId"]: e["status"] for e in queue_entries(gw)}
    return {t: by_id.get(t, "missing") for t in ids}


def queue_calls(s: Session, ns, **extra: Any) -> list[str]:
    """Calls record(n) for each n with the upstream down; each must be queued. Returns the taskIds."""
    ids, positions = [], []
    for n in ns:
        task_id, q = queued_task_id(s.record(n, **extra), n, s.gw)
        ids.append(task_id)
        positions.append(q["position"])
    assert len(set(ids)) == len(ids), f"taskIds are not unique: {ids}"
    assert positions == sorted(set(positions)), f"queue positions do not increase: {positions}"
    return ids


def assert_all_queued(gw: Gateway, ids: list[str], ns: list[int]) -> None:
    by_id = {e["taskId"]: e for e in queue_entries(gw)}
    for task_id, n in zip(ids, ns):
        e = by_id.get(task_id)
        assert e is not None, f"{task_id} (n={n}) is not in GET /admin/queue: {sorted(by_id)}"
        assert e["status"] == "queued", f"n={n}: {e}"
        assert e["upstream"] == "counter" and e["tool"] == "record", e
        assert e["arguments"].get("n") == n, e
        assert "createdAt" in e and "attempts" in e, e


def wait_terminal(gw: Gateway, ids: list[str], timeout: float = REPLAY_TIMEOUT) -> dict[str, str]:
    def done():
        if not gw.alive():
            raise _Fatal(f"the gateway exited with {gw.proc.returncode}\n{gw.log_tail()}")
        st = statuses(gw, ids)
        return st if not any(v in ("queued", "running") for v in st.values()) else None

    return _wait(done, timeout, "the queue to drain (no entry queued or running)", gw, 0.2)


def assert_healthy(gw: Gateway) -> None:
    assert gw.alive(), f"the gateway died\n{gw._detail()}"
    assert "panicked" not in gw.log_text(), f"the gateway panicked\n{gw.log_tail()}"


# ------------------------------------------------------------------------------------------------
# Offline queue
# ------------------------------------------------------------------------------------------------

@pytest.mark.timeout(240)
def test_fifty_queued_calls_survive_kill9_and_run_exactly_once(rig):
    cfg = rig.config(offline_queue=["record"])
    gw = rig.gateway(cfg, "gateway1")
    gw.wait_state({"counter"}, ready=False)

    s = Session(gw)
    ns = list(range(50))
    ids = queue_calls(s, ns)
    assert_all_queued(gw, ids, ns)

    kill9(gw)
    gw2 = rig.gateway(cfg, "gateway2")
    # The restarted gateway found them on disk (the upstream is still down).
    assert_all_queued(gw2, ids, ns)

    rig.counter.start()
    st = wait_terminal(gw2, ids)
    assert set(st.values()) == {"completed"}, st

    records = rig.counter.records()
    assert [r["n"] for r in records] == ns, f"the upstream saw these calls, in this order: {records}"
    assert [r["key"] for r in records] == ids, "each replayed call must carry its taskId as idempotency key"

    by_id = {e["taskId"]: e for e in queue_entries(gw2)}
    s2 = Session(gw2)
    for task_id, n in zip(ids, ns):
        assert task_id in by_id, f"n={n} ({task_id}) is missing from GET /admin/queue once completed"
        assert text(by_id[task_id].get("result") or {}) == f"recorded {n}", by_id[task_id]
        res = s2.result("tasks/result", {"taskId": task_id}, timeout=60)
        assert text(res) == f"recorded {n}", f"tasks/result {task_id}: {res}"
        assert res.get("isError", False) is False, res
    queue_stats = gw2.status()["queue"]
    assert queue_stats["completed"] == 50 and queue_stats["queued"] == 0, queue_stats
    assert_healthy(gw2)


@pytest.mark.timeout(240)
def test_kill9_during_replay_never_runs_a_call_twice(slow_rig):
    rig = slow_rig
    cfg = rig.config(offline_queue=["record"])
    gw = rig.gateway(cfg, "gateway1")
    gw.wait_state({"counter"}, ready=False)
    ns = list(range(50))
    ids = queue_calls(Session(gw), ns)
    assert_all_queued(gw, ids, ns)

    rig.counter.start()
    _wait(lambda: len(rig.counter.records()) >= 10, REPLAY_TIMEOUT, "replay to reach 10 calls", gw, 0.01)
    kill9(gw)
    at_kill = len(rig.counter.records())
    assert at_kill < 50, "replay finished before the kill: the test proved nothing (make record() slower)"

    gw2 = rig.gateway(cfg, "gateway2")
    st = wait_terminal(gw2, ids)
    # A call the dead gateway left in flight may still land in the upstream's log: wait until every
    # record() call that started has ended (ran, or was cancelled when its connection went away).
    _wait(lambda: not rig.counter.unfinished(), 30, "every started record() call to end", gw2, 0.05)

    records = rig.counter.records()
    seen = Counter(r["n"] for r in records)
    twice = sorted(n for n, k in seen.items() if k > 1)
    assert not twice, f"calls ran twice: {twice}\nlog: {records}"
    assert [r["n"] for r in records] == sorted(seen), f"replay out of order: {records}"
    key_of = {r["n"]: r["key"] for r in records}

    by_id = {e["taskId"]: e for e in queue_entries(gw2)}
    failed = []
    for task_id, n in zip(ids, ns):
        e = by_id.get(task_id)
        assert e is not None, f"n={n} ({task_id}) is missing from GET /admin/queue after the restart"
        assert e["status"] in ("completed", "failed"), f"n={n}: {e}"
        if e["status"] == "completed":
            assert seen[n] == 1, f"n={n} completed but the upstream ran it {seen[n]} times"
            assert key_of[n] == task_id, f"n={n}: idempotency key {key_of[n]!r}, taskId {task_id!r}"
        else:
            failed.append(n)
            msg = (e.get("error") or {}).get("message", "")
            assert "in doubt" in msg.lower(), f"n={n} failed without saying it is in doubt: {e}"
    # Replay runs one call at a time, so at most the one in flight at the kill is in doubt.
    assert len(failed) <= 1, f"more than one call in doubt: {failed}"
    assert set(seen) <= set(ns)
    assert_healthy(gw2)


def test_queue_entries_can_be_cancelled(rig):
    cfg = rig.config(offline_queue=["record"])
    gw = rig.gateway(cfg, "gateway")
    gw.wait_state({"counter"}, ready=False)
    ids = queue_calls(Session(gw), [0, 1, 2])

    r = raw_request(f"{gw.base}/admin/queue/{ids[1]}", method="DELETE")
    assert r.status == 200, f"DELETE: HTTP {r.status} {r.body[:500]!r}\n{gw.log_tail()}"
    if r.body.strip():
        body = r.json()
        assert body.get("status", "cancelled") == "cancelled", body
    r = raw_request(f"{gw.base}/admin/queue/{ids[1]}", method="GET")
    assert r.status == 200 and r.json()["status"] == "cancelled", (r.status, r.body)
    r = raw_request(f"{gw.base}/admin/queue/no-such-task", method="DELETE")
    assert r.status == 404, f"DELETE of an unknown id: HTTP {r.status} {r.body[:500]!r}"

    rig.counter.start()
    st = wait_terminal(gw, ids)
    assert st == {ids[0]: "completed", ids[1]: "cancelled", ids[2]: "completed"}, st
    records = rig.counter.records()
    assert [(r["n"], r["key"]) for r in records] == [(0, ids[0]), (2, ids[2])], records
    r = raw_request(f"{gw.base}/admin/queue/{ids[0]}", method="DELETE")
    assert r.status == 409, f"DELETE of a completed entry: HTTP {r.status} {r.body[:500]!r}"
    assert_healthy(gw)


def test_task_clients_get_a_task(rig):
    cfg = rig.config(offline_queue=["record"])
    gw = rig.gateway(cfg, "gateway")
    gw.wait_state({"counter"}, ready=False)

    s = Session(gw, capabilities={"tasks": {"requests": {"tools": {"call": {}}}}})
    server_tasks = (s.init_result.get("capabilities") or {}).get("tasks") or {}
    assert "call" in ((server_tasks.get("requests") or {}).get("tools") or {}), \
        f"the gateway does not declare tasks.requests.tools.call: {s.init_result.get('capabilities')}"

    msg = s.record(7, task={"ttl": 60000})
    assert "result" in msg, f"expected a CreateTaskResult, got {msg}\n{gw.log_tail()}"
    task = msg["result"].get("task")
    assert isinstance(task, dict) and task.get("taskId"), f"no task in {msg['result']}"
    assert task["status"] == "working", task
    task_id = task["taskId"]

    got = s.result("tasks/get", {"taskId": task_id})
    assert got.get("taskId") == task_id and got.get("status") == "working", got
    listed = s.result("tasks/list", {})
    assert task_id in [t.get("taskId") for t in listed.get("tasks", [])], listed

    rig.counter.start()
    res = s.result("tasks/result", {"taskId": task_id}, timeout=REPLAY_TIMEOUT + 10)
    assert text(res) == "recorded 7", res
    assert res.get("isError", False) is False, res
    got = s.result("tasks/get", {"taskId": task_id})
    assert got.get("status") == "completed", got
    assert rig.counter.records() == [{"n": 7, "key": task_id}], rig.counter.records()
    assert_healthy(gw)


def fill_until_refused(gw: Gateway, room: str) -> None:
    """With the upstream down, queue 20 KiB calls until the store is full: the refused call gets a clear
    error and is not queued, the ones before it are, and the gateway keeps serving."""
    gw.wait_state({"counter"}, ready=False)
    s = Session(gw)
    pad = "x" * (20 * 1024)
    queued: list[str] = []
    refused = None
    for n in range(50):  # 50 × 20 KiB is far beyond the room the tests give
        msg = s.record(n, arguments={"n": n, "pad": pad})
        if "error" in msg:
            refused = (n, msg["error"])
            break
        queued.append(queued_task_id(msg, n, gw)[0])
    assert refused is not None, f"50 calls of 20 KiB were all queued in {room}\n{gw.log_tail()}"
    n_refused, err = refused
    assert err.get("code") == -32000, f"call n={n_refused}: {err}\n{gw.log_tail()}"
    assert "could not be queued: storage is full" in err.get("message", ""), f"call n={n_refused}: {err}"
    assert queued, f"even the first call was refused (is {room} too small for this test?): {err}"
    entries = queue_entries(gw)
    assert sorted(e["taskId"] for e in entries) == sorted(queued), entries
    assert all(e["arguments"].get("n") != n_refused for e in entries), "the refused call is in the queue"
    assert all(e["status"] == "queued" for e in entries), entries
    assert gw.status()["queue"]["queued"] == len(queued)
    assert_healthy(gw)


@pytest.mark.timeout(180)
def test_full_store_refuses_to_queue(rig):
    cfg = rig.config(offline_queue=["record"], max_bytes=128 * 1024)
    gw = rig.gateway(cfg, "gateway")
    fill_until_refused(gw, "a 128 KiB cap")


# ------------------------------------------------------------------------------------------------
# Durable cache
# ------------------------------------------------------------------------------------------------

def _cache_meta(res: dict) -> dict:
    return (res.get("_meta") or {}).get(CACHE) or {}


def _go_down(rig: Rig, fetched_at: float) -> None:
    """Kill the upstream and wait until the cached entries are past ttlMs, so the next read must ask the
    upstream. Not waiting for /status to say "not ready": an idle HTTP upstream's death is only seen by
    the next request to it, and that request is the read under test."""
    rig.counter.kill9()
    time.sleep(max(0.0, fetched_at + TTL_MS / 1000 + 0.2 - time.monotonic()))


def test_reads_are_served_stale_while_the_upstream_is_down(rig):
    rig.counter.start()
    gw = rig.gateway(rig.config(), "gateway")
    gw.wait_state({"counter"}, ready=True, timeout=30)
    s = Session(gw)

    fresh = s.result("resources/read", {"uri": "counter://public"})
    fetched_at = time.monotonic()
    assert text(fresh).startswith("public v"), fresh
    tools = s.result("tools/list", {})
    assert TOOL in [t["name"] for t in tools["tools"]], tools

    _go_down(rig, fetched_at)

    stale = s.result("resources/read", {"uri": "counter://public"})
    assert text(stale) == text(fresh), f"stale read: {stale}\nfresh read: {fresh}"
    meta = _cache_meta(stale)
    assert meta.get("stale") is True, f"no stale marker in {stale}"
    assert isinstance(meta.get("ageMs"), int) and meta["ageMs"] >= TTL_MS, meta

    # The same entry for a 2026-07-28 client.
    r = modern_post(gw.url, "resources/read", {"uri": "counter://public"})
    msg = r.rpc()
    assert "result" in msg, f"modern read while down: {msg}\n{gw.log_tail()}"
    assert text(msg["result"]) == text(fresh) and _cache_meta(msg["result"]).get("stale") is True, msg

    tools = s.result("tools/list", {})
    assert TOOL in [t["name"] for t in tools["tools"]], f"tools/list while down: {tools}"
    assert _cache_meta(tools).get("stale") is True, f"tools/list while down has no stale marker: {tools}"

    cache = gw.status()["cache"]
    assert cache["stale"] >= 2 and cache["entries"] >= 2, cache
    assert {"hits", "misses", "bytes", "evictions"} <= cache.keys(), cache
    assert_healthy(gw)


def test_private_entries_are_not_served_to_another_auth_context(rig):
    rig.counter.start()
    gw = rig.gateway(rig.config(), "gateway")
    gw.wait_state({"counter"}, ready=True, timeout=30)
    alice = Session(gw, bearer("alice"))

    mine = alice.result("resources/read", {"uri": "counter://private"})
    public = alice.result("resources/read", {"uri": "counter://public"})
    fetched_at = time.monotonic()
    assert text(mine).startswith("private v"), mine

    _go_down(rig, fetched_at)

    again = alice.result("resources/read", {"uri": "counter://private"})
    assert text(again) == text(mine) and _cache_meta(again).get("stale") is True, again

    for who, headers in (("bob", bearer("bob")), ("an anonymous client", {})):
        other = Session(gw, headers)
        # A public entry is shared: the gateway can route and serve for this context...
        shared = other.result("resources/read", {"uri": "counter://public"})
        assert text(shared) == text(public) and _cache_meta(shared).get("stale") is True, (who, shared)
        # ...but alice's private one is not served to it.
        msg = other.request("resources/read", {"uri": "counter://private"})
        assert "error" in msg, f"{who} got a result for alice's private resource: {msg}"
        assert "private v" not in json.dumps(msg), f"{who} saw alice's content: {msg}"
    assert_healthy(gw)


def _version(res: dict) -> int:
    """K of the counter server's "private vK" / "public vK": how many reads the upstream had served."""
    t = text(res)
    assert t.startswith(("private v", "public v")), res
    return int(t.rsplit("v", 1)[1])


def test_fresh_private_entries_are_served_only_to_their_own_auth_context(long_ttl_rig):
    """With the upstream up and a long ttlMs, alice's second read of counter://private is a fresh
    cache hit (the same "private vK", no stale marker, one more hit in /status). Bob and an anonymous
    client reading it meanwhile are not served alice's entry: each gets a fresh value from the
    upstream (a new K), and from then on each is served its own entry. The upstream saw exactly three
    reads, one per auth context, which a fourth context's read (v4) confirms."""
    rig = long_ttl_rig
    rig.counter.start()
    gw = rig.gateway(rig.config(), "gateway")
    gw.wait_state({"counter"}, ready=True, timeout=30)
    read = {"uri": "counter://private"}

    alice = Session(gw, bearer("alice"))
    first = alice.result("resources/read", read)
    assert _version(first) == 1, f"the first read of counter://private: {first}"
    hits = gw.status()["cache"]["hits"]
    second = alice.result("resources/read", read)
    assert text(second) == text(first), f"alice's second read was not served from the cache: {second}"
    assert not _cache_meta(second), f"a fresh hit, with the upstream up, is marked: {second}"
    assert gw.status()["cache"]["hits"] == hits + 1, gw.status()["cache"]

    sessions = {"alice": alice}
    got = {"alice": text(first)}
    for who, headers in (("bob", bearer("bob")), ("an anonymous client", {})):
        s = sessions[who] = Session(gw, headers)
        res = s.result("resources/read", read)
        assert text(res) not in got.values(), (
            f"{who} was served another context's private entry: {text(res)!r} (so far: {got})")
        assert _version(res) == len(got) + 1, f"{who} did not get a fresh value from the upstream: {res}"
        assert not _cache_meta(res), f"{who}'s fresh read is marked as cached: {res}"
        got[who] = text(res)

    # Each context is now served its own entry, in a new session too; the modern era shares it.
    for who, headers in (("alice", bearer("alice")), ("bob", bearer("bob")),
                         ("an anonymous client", {})):
        again = sessions[who].result("resources/read", read)
        assert text(again) == got[who], f"{who} was not served its own entry: {again} (entries: {got})"
        again = Session(gw, headers).result("resources/read", read)
        assert text(again) == got[who], f"{who}, in a new session: {again} (entries: {got})"
        msg = modern_post(gw.url, "resources/read", read, headers=headers).rpc()
        assert "result" in msg and text(msg["result"]) == got[who], f"{who}, 2026-07-28: {msg} (entries: {got})"

    carol = Session(gw, bearer("carol")).result("resources/read", read)
    assert _version(carol) == 4, f"the upstream served other reads than one per context: {carol} after {got}"
    assert_healthy(gw)


# ------------------------------------------------------------------------------------------------
# Store integrity
# ------------------------------------------------------------------------------------------------

def test_corrupt_store_is_reported_at_startup(rig):
    rig.data_dir.mkdir()
    store = rig.data_dir / "gateway.sqlite3"
    garbage = os.urandom(4096)
    store.write_bytes(garbage)

    gw = Gateway(rig.config(offline_queue=["record"]), rig.tmp / "gateway.log", data_dir=rig.data_dir).start()
    rig.gateways.append(gw)
    try:
        rc = gw.proc.wait(10)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the gateway kept running on a corrupt store\n{gw.log_tail()}") from None
    err = gw.log_text()
    assert rc != 0, f"exit code {rc}\n{err}"
    assert str(store) in err, f"the error does not name {store}:\n{err}"
    assert "corrupt" in err.lower(), f"the error does not say the store is corrupt:\n{err}"
    assert "panicked" not in err, err
    assert store.read_bytes() == garbage, "the gateway modified the corrupt store"


def test_a_really_full_disk_refuses_to_queue_and_loses_nothing(rig, monkeypatch):
    """The same on a real full filesystem: the data dir is a 256 KiB tmpfs of the gateway's own (a
    mount namespace, so no root is needed where user namespaces are allowed), and SQLite meets ENOSPC.
    (The tmpfs ends with the process, so restarts on a full disk are not covered here.)"""
    import conftest

    # A user namespace where the kernel allows one; as root a plain mount namespace does.
    unshare = next((u for u in (["unshare", "--mount", "--map-root-user"], ["unshare", "--mount"])
                    if subprocess.run(u + ["true"], capture_output=True).returncode == 0), None)
    assert unshare, "cannot make a small filesystem here: unshare --mount fails (no user namespaces, not root)"
    wrapper = rig.tmp / "on-tiny-fs.sh"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'exec {" ".join(unshare)} sh -c \'mount -t tmpfs -o size=256k tmpfs "$0" && exec "$@"\' '
        f'"{rig.data_dir}" "{conftest.GATEWAY_BIN}" "$@"\n'
    )
    wrapper.chmod(0o755)
    rig.data_dir.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(conftest, "GATEWAY_BIN", str(wrapper))
    gw = rig.gateway(rig.config(offline_queue=["record"]), "gateway")
    fill_until_refused(gw, "a 256 KiB filesystem")


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_the_official_python_client_gets_queued_calls_when_the_upstream_dies(rig, mode):
    """What a user sees: the real `mcp` Client lists the tools (so it knows `record`'s output schema),
    the upstream is killed, and its next calls are queued, not failed, including the first one, which
    meets the refused connection. The queued result is marked `isError` (a tool with an output schema
    has no structured result yet, and the SDK would reject an unmarked one) and says `Queued:`.
    When the upstream is back, each runs once."""
    from mcp import Client

    from conftest import client_kwargs, run_async

    rig.counter.start()
    gw = rig.gateway(rig.config(offline_queue=["record"]), "gateway")
    gw.wait_state({"counter"}, ready=True)

    async def run():
        async with Client(gw.url, **client_kwargs(mode)) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            assert tools[TOOL].output_schema, "the test needs a tool with an output schema"
            r = await c.call_tool(TOOL, {"n": 100})
            assert not r.is_error and text(r.model_dump(by_alias=True)) == "recorded 100", r
            rig.counter.kill9()
            # A call that races the death itself (written to a connection the upstream is dropping
            # that very moment) may have reached it: it fails rather than risk running twice. Once
            # the gateway holds no connection to the upstream any more, the next call must open one,
            # is refused, and that proves it never arrived.
            await anyio.to_thread.run_sync(wait_no_connections, gw.pid, rig.counter.port)
            texts = []
            for n in (101, 102):
                r = await c.call_tool(TOOL, {"n": n})
                assert r.is_error, f"a queued call to a tool with an output schema: {r}"
                texts.append(r.content[0].text)
            return texts

    texts = run_async(run())
    assert all(t.startswith("Queued:") for t in texts), texts
    rig.counter.start()
    def both_ran():
        done = [e for e in queue_entries(gw) if e["status"] == "completed"]
        return done if len(done) == 2 else None

    _wait(both_ran, REPLAY_TIMEOUT, "both queued calls to run", gw)
    ns = [r["n"] for r in rig.counter.records()]
    assert ns == [100, 101, 102], ns


def test_the_default_store_is_one_gateways_and_stdio_gateways_make_do_without(tmp_path):
    """The default data dir ($XDG_DATA_HOME/mcp-edge-gateway) holds one gateway's store. A second
    `serve` on it refuses to start, clearly; a second `stdio` gateway (desktop apps may launch several)
    starts anyway with its cache and queue in memory, and says so."""
    import conftest

    env = os.environ | {"XDG_DATA_HOME": str(tmp_path / "xdg")}
    port = free_port()
    first = subprocess.Popen([conftest.GATEWAY_BIN, "serve", "--listen", f"127.0.0.1:{port}"], env=env,
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: _connectable(port), 20, "the first gateway")
        assert (tmp_path / "xdg/mcp-edge-gateway/gateway.sqlite3").exists()
        second = subprocess.run([conftest.GATEWAY_BIN, "serve", "--listen", f"127.0.0.1:{free_port()}"], env=env,
                                capture_output=True, text=True, timeout=20)
        assert second.returncode != 0, second.stderr
        assert "in use by another" in second.stderr and "gateway.sqlite3" in second.stderr, second.stderr
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
        stdio = subprocess.run([conftest.GATEWAY_BIN, "stdio"], env=env, input=json.dumps(init) + "\n",
                               capture_output=True, text=True, timeout=20)
        answer = json.loads(stdio.stdout.splitlines()[0])
        assert answer["result"]["serverInfo"]["name"] == "mcp-edge-gateway", stdio.stdout
        assert "in memory only" in stdio.stderr, stdio.stderr
        assert "panicked" not in stdio.stderr + second.stderr
    finally:
        first.terminate()
        first.wait(10)
