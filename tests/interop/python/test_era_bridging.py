"""The gateway bridges the two protocol eras in both directions:

(a) a modern client (auto mode → 2026-07-28, stateless) uses a legacy upstream (server-everything,
    initialize-based): tools, prompts, resources, and a mid-call elicitation request, which reaches
    the modern client as an `input_required` result and is resumed with `inputResponses`;
(b) a legacy client (initialize, session) uses a modern upstream (modern_server.py): tools, prompts,
    resources, and the upstream's `input_required` elicitation, which reaches the legacy client as a
    real `elicitation/create` request on the call's SSE stream.
"""

from __future__ import annotations

import json
import urllib.request

import pytest
from mcp import Client
from mcp_types import CallToolResult, ElicitResult, InputRequiredResult

from conftest import (
    ELICITED_NAME,
    ELICITED_NOTE,
    LEGACY,
    MODERN,
    client_kwargs,
    legacy_post,
    legacy_session,
    list_all,
    modern_post,
    Recorder,
    run_async,
    text_of,
)


def test_upstream_eras_as_the_gateway_sees_them(topo):
    st = topo.gateway.status()
    era = {u["name"]: (u["era"], u["protocolVersion"]) for u in st["upstreams"]}
    assert era["everything"][0] == "legacy" and era["everything"][1] < MODERN, era
    assert era["modern"] == ("modern", MODERN), era


def test_modern_client_uses_legacy_upstream(topo):
    rec = Recorder()

    async def run():
        async with Client(topo.url, **client_kwargs("auto", rec)) as c:
            assert c.protocol_version == MODERN

            tools, _ = await list_all(c.list_tools, "tools")
            assert "everything__echo" in {t.name for t in tools}
            r = await c.call_tool("everything__echo", {"message": "modern→legacy"})
            assert text_of(r) == "Echo: modern→legacy"

            prompts, _ = await list_all(c.list_prompts, "prompts")
            assert "everything__simple-prompt" in {p.name for p in prompts}
            r = await c.get_prompt("everything__args-prompt", {"city": "Lyon", "state": "Rhône"})
            assert "Lyon" in r.messages[0].content.text and "Rhône" in r.messages[0].content.text

            resources, _ = await list_all(c.list_resources, "resources")
            ev_uris = [r.uri for r in resources if r.uri.startswith("demo://resource/")]
            assert ev_uris, [r.uri for r in resources]
            r = await c.read_resource(ev_uris[0])
            assert r.contents[0].uri == ev_uris[0]
            r = await c.read_resource("demo://resource/dynamic/text/3")
            assert r.contents[0].text and r.contents[0].uri == "demo://resource/dynamic/text/3"

            # Elicitation, one round at a time: the legacy upstream's mid-call request comes back
            # to this modern client as input_required...
            first = await c.session.call_tool("everything__trigger-elicitation-request", {},
                                              allow_input_required=True)
            assert isinstance(first, InputRequiredResult), first
            assert first.input_requests, first
            assert first.request_state, "the gateway needs requestState to find the pending upstream call"
            (key, req), = first.input_requests.items()
            assert req.method == "elicitation/create"
            assert req.params.message == "Please provide inputs for the following fields:"
            # ...and the retry with the answer completes the upstream's call.
            answer = ElicitResult(action="accept", content={"name": ELICITED_NAME})
            done = await c.session.call_tool("everything__trigger-elicitation-request", {},
                                             input_responses={key: answer}, request_state=first.request_state,
                                             allow_input_required=True)
            assert isinstance(done, CallToolResult), done
            assert f"- Name: {ELICITED_NAME}" in text_of(done)

            # The high-level API does the same rounds by itself.
            r = await c.call_tool("everything__trigger-elicitation-request", {})
            assert f"- Name: {ELICITED_NAME}" in text_of(r)
            assert len(rec.elicitations) == 1

    run_async(run())


def test_legacy_client_uses_modern_upstream(topo):
    rec = Recorder()

    async def run():
        async with Client(topo.url, **client_kwargs("legacy", rec)) as c:
            assert c.protocol_version == LEGACY

            tools, _ = await list_all(c.list_tools, "tools")
            modern_tools = {t.name for t in tools if t.name.startswith("modern__")}
            assert {"modern__add", "modern__echo", "modern__delete_thing", "modern__haiku"} <= modern_tools
            r = await c.call_tool("modern__add", {"a": 40, "b": 2})
            assert text_of(r) == "42" and r.structured_content == {"result": 42}
            r = await c.call_tool("modern__echo", {"text": "legacy→modern"})
            assert text_of(r) == "legacy→modern"

            prompts, _ = await list_all(c.list_prompts, "prompts")
            assert "modern__greet" in {p.name for p in prompts}
            r = await c.get_prompt("modern__greet", {"name": "Grace"})
            assert "Please greet Grace warmly." in r.messages[0].content.text

            r = await c.read_resource("demo://hello")
            assert r.contents[0].text == "hello from the modern upstream"
            r = await c.read_resource("demo://users/7")
            assert json.loads(r.contents[0].text) == {"id": "7", "name": "user-7"}

            r = await c.call_tool("modern__delete_thing", {"thing": "cache"})
            assert text_of(r) == f"deleted=True note={ELICITED_NOTE!r} thing=cache"
            assert [e.message for e in rec.elicitations] == ["Really delete cache?"]

    run_async(run())


def test_legacy_client_gets_a_real_elicitation_request_for_a_modern_upstream(topo):
    """Raw legacy HTTP: the modern upstream's input_required arrives as a JSON-RPC request on the
    tools/call SSE stream; a POSTed JSON-RPC response resumes it."""
    url = topo.url
    caps_init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                 "params": {"protocolVersion": LEGACY, "capabilities": {"elicitation": {}},
                            "clientInfo": {"name": "raw-legacy", "version": "1"}}}
    req = urllib.request.Request(url, json.dumps(caps_init).encode(), method="POST", headers={
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
    with urllib.request.urlopen(req, timeout=10) as r:
        sid = r.headers["mcp-session-id"]
        r.read()
    assert legacy_post(url, sid, {"jsonrpc": "2.0", "method": "notifications/initialized"}).status == 202

    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "modern__delete_thing", "arguments": {"thing": "raw"}}}
    req = urllib.request.Request(url, json.dumps(call).encode(), method="POST", headers={
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
        "Mcp-Session-Id": sid, "MCP-Protocol-Version": LEGACY})
    with urllib.request.urlopen(req, timeout=30) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")

        def next_message():
            while True:
                line = stream.readline()
                assert line, "SSE stream ended early"
                if line.startswith(b"data:"):
                    return json.loads(line[5:])

        m = next_message()
        assert m.get("method") == "elicitation/create", m
        assert m["params"]["message"] == "Really delete raw?"
        answer = {"jsonrpc": "2.0", "id": m["id"],
                  "result": {"action": "accept", "content": {"confirm": False, "note": "raw"}}}
        assert legacy_post(url, sid, answer).status == 202
        final = next_message()
    assert final["id"] == 2, final
    assert final["result"]["content"][0]["text"] == "deleted=False note='raw' thing=raw", final
    urllib.request.urlopen(urllib.request.Request(url, method="DELETE", headers={"Mcp-Session-Id": sid}), timeout=5)


def test_raw_modern_post_gets_input_required_for_legacy_elicitation(topo):
    url = topo.url
    tool = "everything__trigger-elicitation-request"
    r = modern_post(url, "tools/call", {"name": tool, "arguments": {}}, req_id=11)
    assert r.status == 200, (r.status, r.body)
    msg = r.rpc()
    assert msg["id"] == 11, msg
    res = msg["result"]
    assert res["resultType"] == "input_required", res
    assert isinstance(res["requestState"], str) and res["requestState"], res
    (key, ask), = res["inputRequests"].items()
    assert ask["method"] == "elicitation/create", ask
    assert ask["params"]["message"] == "Please provide inputs for the following fields:"
    assert "name" in ask["params"]["requestedSchema"]["properties"]

    retry = {"name": tool, "arguments": {}, "requestState": res["requestState"],
             "inputResponses": {key: {"action": "accept", "content": {"name": "Raw Client", "check": True}}}}
    r2 = modern_post(url, "tools/call", retry, req_id=12)
    assert r2.status == 200, (r2.status, r2.body)
    msg2 = r2.rpc()
    assert msg2["id"] == 12, msg2
    res2 = msg2["result"]
    assert res2.get("resultType") == "complete", res2
    text = "\n".join(c["text"] for c in res2["content"])
    assert "- Name: Raw Client" in text and "- Agreed to terms: true" in text, text


@pytest.mark.parametrize("decision", ["decline", "cancel"])
def test_raw_modern_declined_elicitation_reaches_legacy_upstream(topo, decision):
    url = topo.url
    tool = "everything__trigger-elicitation-request"
    res = modern_post(url, "tools/call", {"name": tool, "arguments": {}}).rpc()["result"]
    (key, _), = res["inputRequests"].items()
    retry = {"name": tool, "arguments": {}, "requestState": res["requestState"],
             "inputResponses": {key: {"action": decision}}}
    res2 = modern_post(url, "tools/call", retry, req_id=2).rpc()["result"]
    text = "\n".join(c["text"] for c in res2["content"])
    assert {"decline": "declined", "cancel": "cancelled"}[decision] in text, text


ELICIT_TOOL = "everything__trigger-elicitation-request"


def _park(url: str, req_id: int = 1) -> tuple[str, str]:
    """Start a bridged elicitation for a modern client; returns (requestState, inputRequests key)."""
    res = modern_post(url, "tools/call", {"name": ELICIT_TOOL, "arguments": {}}, req_id=req_id).rpc()["result"]
    assert res["resultType"] == "input_required", res
    (key, _), = res["inputRequests"].items()
    return res["requestState"], key


def _resume(url: str, token: str, key: str, name: str = ELICIT_TOOL, method: str = "tools/call",
            args: dict | None = None, req_id: int = 2, answer: dict | None = None):
    params = {"name": name, "arguments": args or {}, "requestState": token,
              "inputResponses": {key: answer or {"action": "decline"}}}
    return modern_post(url, method, params, req_id=req_id)


@pytest.mark.parametrize("method,name,args", [
    ("tools/call", "everything__echo", {"message": "not the parked call"}),
    ("tools/call", ELICIT_TOOL, {"extra": "different arguments"}),
    ("prompts/get", "modern__greet", {"name": "x"}),
], ids=["other_tool", "other_arguments", "prompts_get"])
def test_request_state_resumes_only_the_call_it_was_issued_for(topo, method, name, args):
    """The requestState the gateway mints for a bridged legacy elicitation resumes only the call it
    was issued for: a retry of a different request (another tool, other arguments, prompts/get)
    carrying it gets -32602, and the parked call stays resumable by its own retry."""
    url = topo.url
    token, key = _park(url)
    r = _resume(url, token, key, name=name, method=method, args=args,
                answer={"action": "accept", "content": {"name": "Mallory"}})
    msg = r.rpc()
    # Whatever happens, let the parked call finish so nothing dangles upstream.
    own = _resume(url, token, key, req_id=3).rpc()
    assert "error" in msg and msg["error"]["code"] == -32602, (
        f"a {method} {name} retry with another call's requestState was accepted: {json.dumps(msg)[:400]}")
    assert own["result"]["resultType"] == "complete", own


def test_request_state_replay_and_unknown_state_are_refused(topo):
    url = topo.url
    token, key = _park(url)
    first = _resume(url, token, key).rpc()
    assert "declined" in first["result"]["content"][0]["text"], first
    again = _resume(url, token, key, req_id=3)
    rpc = again.rpc()
    assert again.status == 400 and rpc["error"]["code"] == -32602, rpc
    r = _resume(url, "gw-999999-1", key, req_id=4)
    assert r.status == 400 and r.rpc()["error"]["code"] == -32602
    # A missing answer is asked for again (the spec prefers a new input_required result to an
    # error) and keeps the call parked; the proper retry then works.
    token, key = _park(url, req_id=5)
    r = modern_post(url, "tools/call", {"name": ELICIT_TOOL, "arguments": {}, "requestState": token,
                                        "inputResponses": {}}, req_id=6)
    again = r.rpc()["result"]
    assert r.status == 200 and again["resultType"] == "input_required", r.body
    assert again["requestState"] == token and key in again["inputRequests"], again
    assert "declined" in _resume(url, token, key, req_id=7).rpc()["result"]["content"][0]["text"]


def test_request_state_cannot_be_guessed_by_another_client(topo):
    """requestState tokens cannot be guessed: a second client that parks calls of its own learns
    nothing that leads to the victim's token, so it can neither answer the victim's elicitation nor
    read the victim's tool result."""
    import re
    import time

    url = topo.url
    victim_token, key = _park(url, req_id=1)  # the attacker never sees this
    own_token, _ = _park(url, req_id=2)
    hijacked = None
    try:
        m = re.fullmatch(r"gw-(\d+)-(\d+)", own_token)
        if m:
            n, t = int(m.group(1)), int(m.group(2))
            deadline = time.monotonic() + 20
            for counter in (n - 1, n + 1):
                for ms in range(t, max(t - 3000, -1), -1):
                    if time.monotonic() > deadline:
                        break
                    guess = f"gw-{counter}-{ms}"
                    r = _resume(url, guess, key, req_id=9,
                                answer={"action": "accept", "content": {"name": "Mallory"}})
                    if r.status == 200 and "result" in r.rpc():
                        hijacked = (guess, r.rpc()["result"]["content"][1]["text"])
                        break
                if hijacked:
                    break
    finally:
        _resume(url, own_token, key, req_id=10)
        if not hijacked:
            _resume(url, victim_token, key, req_id=11)
    assert hijacked is None, f"another client guessed the requestState {hijacked[0]!r} and got: {hijacked[1]!r}"
