"""Upstream questions for the user (elicitation) and for the client's LLM (sampling) reach the Python
client's callbacks through the gateway, in both client eras and from upstreams of both eras:

- legacy upstream (server-everything) sends real `elicitation/create` / `sampling/createMessage`
  requests mid-call; a legacy client gets them as requests, a modern client gets them bridged into
  `resultType: input_required` rounds;
- modern upstream (modern_server.py) answers `input_required`; a modern client resolves the rounds,
  a legacy client gets real requests from the gateway.

In every case the callback sees the upstream's question and the upstream's result has the answer."""

from __future__ import annotations


import anyio
import pytest
from mcp import Client

from conftest import (
    ELICITED_NAME,
    ELICITED_NOTE,
    LEGACY,
    MODERN,
    SAMPLED_TEXT,
    client_kwargs,
    Recorder,
    run_async,
    text_of,
)

MODES = {"auto": MODERN, "legacy": LEGACY}


@pytest.mark.parametrize("mode", list(MODES))
def test_elicitation_from_both_upstreams(topo, mode):
    rec = Recorder()

    async def run():
        async with Client(topo.url, **client_kwargs(mode, rec)) as c:
            assert c.protocol_version == MODES[mode]

            r = await c.call_tool("everything__trigger-elicitation-request", {})
            assert not r.is_error, text_of(r)
            assert len(rec.elicitations) == 1
            asked = rec.elicitations[0]
            assert asked.message == "Please provide inputs for the following fields:"
            assert "name" in asked.requested_schema["properties"]
            out = text_of(r)
            assert "User provided the requested information" in out, out
            assert f"- Name: {ELICITED_NAME}" in out, out

            r = await c.call_tool("modern__delete_thing", {"thing": "db"})
            assert not r.is_error, text_of(r)
            assert len(rec.elicitations) == 2
            assert rec.elicitations[1].message == "Really delete db?"
            assert "confirm" in rec.elicitations[1].requested_schema["properties"]
            assert text_of(r) == f"deleted=True note={ELICITED_NOTE!r} thing=db"

    run_async(run())


@pytest.mark.parametrize("mode", list(MODES))
def test_sampling_from_both_upstreams(topo, mode):
    rec = Recorder()

    async def run():
        async with Client(topo.url, **client_kwargs(mode, rec)) as c:
            assert c.protocol_version == MODES[mode]

            r = await c.call_tool("everything__trigger-sampling-request", {"prompt": "tell me a joke", "maxTokens": 20})
            assert not r.is_error, text_of(r)
            assert len(rec.samplings) == 1
            asked = rec.samplings[0]
            assert asked.max_tokens == 20
            assert "tell me a joke" in asked.messages[0].content.text
            out = text_of(r)
            assert "LLM sampling result" in out and SAMPLED_TEXT in out and "fake-llm" in out, out

            r = await c.call_tool("modern__haiku", {"topic": "rust"})
            assert not r.is_error, text_of(r)
            assert len(rec.samplings) == 2
            assert rec.samplings[1].messages[0].content.text == "Write a haiku about rust"
            assert rec.samplings[1].max_tokens == 64
            assert text_of(r) == f"[fake-llm] {SAMPLED_TEXT}"

    run_async(run())


@pytest.mark.parametrize("mode", list(MODES))
def test_a_stdio_upstreams_question_goes_to_the_client_whose_call_asked_it(topo, mode):
    """With two clients' calls in flight on the same stdio upstream, the upstream's elicitation/create
    for client A's call must never reach client B. Stdio carries no relation between a server's
    request and the call that caused it; an earlier gateway build guessed "the newest call in
    flight", so B was asked A's question and B's answer completed A's call. The race is made
    deterministic by pausing the child (SIGSTOP) while both calls are queued: A's
    trigger-elicitation-request first, then B's long-running operation; on SIGCONT the child asks
    while both are in flight. Accepted: A is asked and gets its own answer, or A's call fails
    clearly because the question cannot be attributed. Never: B is asked."""
    import os
    import signal

    from mcp_types import ElicitResult

    asked: dict[str, list[str]] = {"A": [], "B": []}

    def answering(who: str):
        async def cb(ctx, params):
            asked[who].append(params.message)
            return ElicitResult(action="accept", content={"name": f"answer from {who}"})
        return cb

    child = topo.everything_child()

    def in_flight() -> int:
        return topo.gateway.upstream("everything")["inFlight"]

    async def wait_in_flight(n: int) -> None:
        for _ in range(200):
            if await anyio.to_thread.run_sync(in_flight) >= n:
                return
            await anyio.sleep(0.025)
        raise AssertionError(f"never {n} calls in flight: {topo.gateway.status()}")

    async def run():
        async with Client(topo.url, **client_kwargs(mode), elicitation_callback=answering("A")) as a, \
                Client(topo.url, **client_kwargs(mode), elicitation_callback=answering("B")) as b:
            assert in_flight() == 0
            os.kill(child, signal.SIGSTOP)
            try:
                async with anyio.create_task_group() as tg:
                    results = {}

                    async def call_a():
                        results["A"] = await a.call_tool("everything__trigger-elicitation-request", {})

                    async def call_b():
                        results["B"] = await b.call_tool("everything__trigger-long-running-operation",
                                                         {"duration": 1, "steps": 1})

                    tg.start_soon(call_a)
                    await wait_in_flight(1)
                    tg.start_soon(call_b)
                    await wait_in_flight(2)
                    os.kill(child, signal.SIGCONT)
            finally:
                os.kill(child, signal.SIGCONT)
            assert "Long running operation completed" in text_of(results["B"])
            return results["A"]

    a = run_async(run())
    a_text = text_of(a)
    assert asked["B"] == [], f"client B was asked client A's question: {asked}; A's result: {a_text!r}"
    if asked["A"]:
        assert asked["A"] == ["Please provide inputs for the following fields:"], asked
        assert "- Name: answer from A" in a_text, a_text
    else:
        # Refused rather than guessed: the upstream got an error and says so in A's result.
        assert a.is_error or "error" in a_text.lower(), a_text
        assert "attributed" in a_text or "client" in a_text, a_text
