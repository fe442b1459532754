"""Many Python clients of both eras at once, each with many calls in flight on both upstreams: every
answer reaches the client and the call that asked for it (the clients' JSON-RPC ids collide on
purpose: every client numbers its requests from the same start). Elicitation on the modern upstream
travels inside its call's own exchange, so each client must get exactly its own question and answer."""

from __future__ import annotations

import anyio
from mcp import Client
from mcp_types import ElicitResult

from conftest import client_kwargs, run_async, text_of

CLIENTS = 6  # half auto (modern), half legacy, all at once
CALLS = 6


def test_concurrent_clients_of_both_eras_get_their_own_answers(topo):
    asked: dict[int, list[str]] = {i: [] for i in range(CLIENTS)}
    results: dict[int, dict[str, str]] = {}

    def elicit_for(i: int):
        async def cb(ctx, params):
            asked[i].append(params.message)
            return ElicitResult(action="accept", content={"confirm": True, "note": f"client-{i}"})
        return cb

    async def one(i: int) -> None:
        mode = "auto" if i % 2 == 0 else "legacy"
        out: dict[str, str] = {}
        async with Client(topo.url, **client_kwargs(mode), elicitation_callback=elicit_for(i)) as c:
            async def put(key, coro):
                out[key] = text_of(await coro)

            async with anyio.create_task_group() as tg:
                for j in range(CALLS):
                    tg.start_soon(put, f"echo{j}", c.call_tool("everything__echo", {"message": f"{i}/{j}"}))
                    tg.start_soon(put, f"add{j}", c.call_tool("modern__add", {"a": i * 100, "b": j}))
                    tg.start_soon(put, f"mecho{j}", c.call_tool("modern__echo", {"text": f"m{i}/{j}"}))
                tg.start_soon(put, "delete", c.call_tool("modern__delete_thing", {"thing": f"t{i}"}))
                tg.start_soon(put, "sum", c.call_tool("everything__get-sum", {"a": i, "b": 1000}))
        results[i] = out

    async def run():
        async with anyio.create_task_group() as tg:
            for i in range(CLIENTS):
                tg.start_soon(one, i)

    run_async(run())

    for i in range(CLIENTS):
        out = results[i]
        for j in range(CALLS):
            assert out[f"echo{j}"] == f"Echo: {i}/{j}", (i, j, out)
            assert out[f"add{j}"] == str(i * 100 + j), (i, j, out)
            assert out[f"mecho{j}"] == f"m{i}/{j}", (i, j, out)
        assert str(i + 1000) in out["sum"], (i, out["sum"])
        assert asked[i] == [f"Really delete t{i}?"], (i, asked)
        assert out["delete"] == f"deleted=True note='client-{i}' thing=t{i}", (i, out["delete"])
    st = topo.gateway.status()
    assert all(u["inFlight"] == 0 for u in st["upstreams"]), st
