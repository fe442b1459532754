"""Upstreams crashing (kill -9) never take the gateway or the other upstream down:

- the modern HTTP upstream dies: everything__* keeps working, modern__* fails fast with a clear
  error (no hang), in-flight calls to it fail too; when it is back on its port the gateway uses it again;
- the stdio child dies: the gateway restarts it (new PID, ready again), calls work again, also on a
  client session that was opened before the crash; in-flight calls to it fail instead of hanging.

This module builds its own gateway + upstreams, so the shared topology of other tests is untouched.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from conftest import (
    assert_gateway_healthy,
    client_kwargs,
    kill_pid,
    run_async,
    start_topology,
    stop_topology,
    text_of,
    wait_until,
)

FAIL_FAST = 15  # seconds a call to a dead upstream may take before we call it a hang


@pytest.fixture(scope="module")
def crash_topo(tmp_path_factory):
    t = start_topology(tmp_path_factory.mktemp("crash"))
    try:
        yield t
    finally:
        stop_topology(t)


def _error_text(outcome, upstream: str) -> str:
    if isinstance(outcome, MCPError):
        return f"{outcome.error.code} {outcome.error.message} {outcome.error.data}".lower()
    assert outcome.is_error, f"a call to the dead upstream {upstream} succeeded: {outcome}"
    return text_of(outcome).lower()


def _assert_unavailable_error(outcome, upstream: str) -> None:
    """A JSON-RPC error, or an isError result, that names the upstream and says it is unavailable."""
    msg = _error_text(outcome, upstream)
    assert upstream in msg and any(w in msg for w in ("unavailable", "not ready", "down", "closed", "lost")), msg


def _assert_upstream_failure(outcome, upstream: str) -> None:
    """For a call that was already in flight: any error that blames the upstream side is fine."""
    msg = _error_text(outcome, upstream)
    assert upstream in msg or "upstream" in msg, msg


async def _call(c: Client, name: str, args: dict):
    """The call's result, or its MCPError; a call that takes FAIL_FAST seconds is a hang."""
    try:
        return await asyncio.wait_for(c.call_tool(name, args), FAIL_FAST)
    except MCPError as e:
        return e
    except TimeoutError:
        raise AssertionError(f"{name} hung for {FAIL_FAST}s") from None


async def _wait_in_flight(topo, upstream: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        u = await asyncio.to_thread(topo.gateway.upstream, upstream)
        if u and u.get("inFlight", 0) >= 1:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no call in flight on {upstream}: {await asyncio.to_thread(topo.gateway.status)}")


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_killed_http_upstream_fails_fast_while_stdio_upstream_keeps_working(crash_topo, mode):
    topo = crash_topo
    topo.gateway.wait_state({"everything", "modern"})

    async def run():
        async with Client(topo.url, **client_kwargs(mode)) as c:
            assert text_of(await c.call_tool("modern__add", {"a": 1, "b": 1})) == "2"

            topo.modern.kill9()

            for _ in range(3):  # repeatedly, and the first one included
                t0 = time.monotonic()
                outcome = await _call(c, "modern__add", {"a": 1, "b": 2})
                assert time.monotonic() - t0 < FAIL_FAST
                _assert_unavailable_error(outcome, "modern")
                r = await c.call_tool("everything__echo", {"message": "still here"})
                assert text_of(r) == "Echo: still here"
            assert_gateway_healthy(topo)

            # The upstream comes back on the same port: the gateway reconnects and uses it again.
            topo.modern.start()
            await asyncio.to_thread(topo.gateway.wait_state, {"modern"}, True, 30)
            assert text_of(await c.call_tool("modern__add", {"a": 20, "b": 22})) == "42"

    run_async(run())
    assert_gateway_healthy(topo)


def test_killed_stdio_child_is_restarted_and_sessions_survive(crash_topo):
    topo = crash_topo
    topo.gateway.wait_state({"everything", "modern"})
    old_pid = topo.everything_child()

    async def run():
        async with Client(topo.url, **client_kwargs("legacy")) as legacy, \
                Client(topo.url, **client_kwargs("auto")) as modern:
            assert text_of(await legacy.call_tool("everything__echo", {"message": "before"})) == "Echo: before"

            kill_pid(old_pid)

            # Meanwhile the other upstream is unaffected, and everything__* fails fast, not hangs.
            assert text_of(await modern.call_tool("modern__add", {"a": 3, "b": 4})) == "7"
            outcome = await _call(legacy, "everything__echo", {"message": "during"})
            if not isinstance(outcome, MCPError) and not outcome.is_error:
                # The restart may already have happened; then the call simply worked.
                assert text_of(outcome) == "Echo: during"

            # Restarted: a new child PID and ready again, within ~15 s.
            def restarted():
                u = topo.gateway.upstream("everything")
                if u["state"] != "ready":
                    return None
                try:
                    return topo.everything_child() != old_pid
                except AssertionError:
                    return None

            await asyncio.to_thread(wait_until, restarted, 15, "the stdio child to be restarted",
                                    0.05, topo.gateway._detail)
            new_pid = topo.everything_child()
            assert new_pid != old_pid

            # Sessions opened before the crash keep working, in both eras.
            assert text_of(await legacy.call_tool("everything__echo", {"message": "after"})) == "Echo: after"
            assert text_of(await modern.call_tool("everything__echo", {"message": "after"})) == "Echo: after"
            tools = (await legacy.list_tools()).tools + (await modern.list_tools()).tools
            assert any(t.name == "everything__echo" for t in tools)

        # A fresh client too.
        async with Client(topo.url, **client_kwargs("auto")) as c:
            assert text_of(await c.call_tool("everything__echo", {"message": "fresh"})) == "Echo: fresh"

    run_async(run())
    assert_gateway_healthy(topo)


def test_in_flight_calls_fail_instead_of_hanging_when_an_upstream_dies(crash_topo):
    topo = crash_topo
    topo.gateway.wait_state({"everything", "modern"})

    async def run():
        async with Client(topo.url, **client_kwargs("auto")) as c:
            # stdio child dies during a 30 s operation.
            old_pid = topo.everything_child()
            task = asyncio.create_task(_call(c, "everything__trigger-long-running-operation",
                                             {"duration": 30, "steps": 30}))
            await _wait_in_flight(topo, "everything")
            t0 = time.monotonic()
            kill_pid(old_pid)
            outcome = await task
            assert time.monotonic() - t0 < FAIL_FAST
            _assert_unavailable_error(outcome, "everything")

            # modern HTTP upstream dies during a ~20 s call.
            task = asyncio.create_task(_call(c, "modern__slow", {"steps": 400}))
            await _wait_in_flight(topo, "modern")
            t0 = time.monotonic()
            topo.modern.kill9()
            outcome = await task
            assert time.monotonic() - t0 < FAIL_FAST
            _assert_upstream_failure(outcome, "modern")

        topo.modern.start()
        await asyncio.to_thread(topo.gateway.wait_state, {"everything", "modern"}, True, 30)
        async with Client(topo.url, **client_kwargs("legacy")) as c:
            assert text_of(await c.call_tool("everything__echo", {"message": "ok"})) == "Echo: ok"
            assert text_of(await c.call_tool("modern__add", {"a": 1, "b": 2})) == "3"

    run_async(run())
    assert_gateway_healthy(topo)


def test_in_flight_call_on_a_dying_http_upstream_gets_the_same_clear_error_as_stdio(crash_topo):
    """A call in flight when its HTTP upstream's connection drops gets the same clear error as with a
    dying stdio upstream: -32000 naming the upstream, with data.upstream, and not the upstream's
    private URL (nor its host:port) in the message or the data. Two paths lead there, and which one
    a death takes is a race: the connector finds the server unreachable and the link goes down
    ("became unavailable"), or the server still accepted a connection while dying ("transport
    error"). Three deaths, each outcome checked, so both paths are likely to be seen."""
    topo = crash_topo
    outcomes = []
    for _ in range(3):
        topo.gateway.wait_state({"everything", "modern"})

        async def run():
            async with Client(topo.url, **client_kwargs("auto")) as c:
                task = asyncio.create_task(_call(c, "modern__slow", {"steps": 400}))
                await _wait_in_flight(topo, "modern")
                topo.modern.kill9()
                return await task

        try:
            outcomes.append(run_async(run()))
        finally:
            topo.modern.start()
            topo.gateway.wait_state({"modern"}, True, 30)

    port = topo.modern.port
    for outcome in outcomes:
        assert isinstance(outcome, MCPError), outcome
        err = outcome.error
        assert err.code == -32000, f"{err.code} {err.message}"
        assert "modern" in err.message, err.message
        assert isinstance(err.data, dict) and err.data.get("upstream") == "modern", \
            f"error.data does not name the upstream: {err.data!r} ({err.message})"
        said = f"{err.message} {json.dumps(err.data)}"
        for private in (topo.modern.url, f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "http://"):
            assert private not in said, f"the error shows the upstream's private address ({private!r}): {said}"
