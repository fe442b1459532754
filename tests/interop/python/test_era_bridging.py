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
import random
import re
import urllib.request

import pytest
from mcp import Client
from mcp_types import CallToolResult, ElicitResult, InputRequiredResult

from conftest import (
    ELICITED_NAME,
    ELICITED_NOTE,
    LEGACY,
    MODERN,
    auth_headers,
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
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream", **auth_headers(url)})
    with urllib.request.urlopen(req, timeout=10) as r:
        sid = r.headers["mcp-session-id"]
        r.read()
    assert legacy_post(url, sid, {"jsonrpc": "2.0", "method": "notifications/initialized"}).status == 202

    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "modern__delete_thing", "arguments": {"thing": "raw"}}}
    req = urllib.request.Request(url, json.dumps(call).encode(), method="POST", headers={
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
        "Mcp-Session-Id": sid, "MCP-Protocol-Version": LEGACY, **auth_headers(url)})
    with urllib.request.urlopen(req, timeout=30) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")

        def next_message():
            while True:
                line = stream.readline()
                assert line, "SSE stream ended early"
                if line.startswith(b"data:") and line[5:].strip():  # empty data: a priming event
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
    urllib.request.urlopen(urllib.request.Request(url, method="DELETE", headers={"Mcp-Session-Id": sid, **auth_headers(url)}),
                           timeout=5)


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


VICTIM_ARGS = {"who": "victim"}
ATTACKER_ARGS = {"who": "attacker"}


def _park_with(url: str, args: dict, req_id: int) -> tuple[str, str]:
    """Like _park, for a call with these arguments (server-everything ignores them; the gateway binds
    the requestState it mints to them)."""
    res = modern_post(url, "tools/call", {"name": ELICIT_TOOL, "arguments": args}, req_id=req_id).rpc()["result"]
    assert res["resultType"] == "input_required", res
    (key, _), = res["inputRequests"].items()
    return res["requestState"], key


def _one_char_changed(token: str) -> list[str]:
    """The token with one character changed, at every position: a hex or decimal digit becomes the
    next one of its kind, a letter the next letter, anything else '_'."""
    out = []
    for i, c in enumerate(token):
        if c.isdigit():
            d = str((int(c) + 1) % 10)
        elif c in "abcdef":
            d = "0123456789abcdef"[(int(c, 16) + 1) % 16]
        elif c in "ABCDEF":
            d = "0123456789ABCDEF"[(int(c, 16) + 1) % 16]
        elif c.isalpha():
            d = chr((ord(c.lower()) - ord("a") + 1) % 26 + ord("a"))
        else:
            d = "_"
        out.append(token[:i] + d + token[i + 1:])
    return out


def _neighbours(token: str, spread: int = 3) -> list[str]:
    """Tokens "next to" this one: its trailing run of digits read as a number (hex, and decimal too
    if it is all decimal), plus and minus 1..spread, at the same width. This is what a sequential
    minting scheme would hand the previous and next callers."""
    m = re.search(r"[0-9a-fA-F]+$", token)
    if not m:
        return []
    run, head = m.group(0), token[:m.start()]
    out = []
    for base in (16, 10) if run.isdigit() else (16,):
        n = int(run, base)
        for d in range(1, spread + 1):
            for v in (n - d, n + d):
                if v < 0:
                    continue
                s = format(v, "x" if base == 16 else "d").zfill(len(run))
                out.append(head + (s.upper() if run.isupper() else s))
    return out


def _same_shape(token: str, rng: random.Random) -> str:
    """A random string of the token's shape: each digit (hex, or decimal if the token has no hex
    letters) replaced by a random one, everything else kept."""
    digits = "0123456789abcdef" if re.search(r"[a-f]", token) else "0123456789"
    return "".join(rng.choice(digits) if c in digits else c for c in token)


def test_request_state_cannot_be_guessed_by_another_client(topo):
    """requestState tokens cannot be forged. A victim parks an elicitation; an attacker parks one of
    its own (same tool, other arguments) and so learns what a token looks like, then tries to
    resume the victim's call with the victim's arguments and "Mallory" as the answer, using: its
    own token; its own token with one character changed, at every position; the tokens next to
    its own (what a counter would have minted just before and after); its own token with the
    arguments changed; and random strings of the same shape. Every attempt is refused (-32602 for
    a token in the gateway's `gw-` namespace; anything else goes upstream as a new call and must
    not come back completed), and afterwards the victim's own retry still completes with the
    victim's answer, so no attempt reached the victim's call."""
    url = topo.url
    victim_token, victim_key = _park_with(url, VICTIM_ARGS, req_id=1)  # the attacker never sees this
    own_token, own_key = _park_with(url, ATTACKER_ARGS, req_id=2)
    assert own_token != victim_token
    mallory = {"action": "accept", "content": {"name": "Mallory"}}

    rng = random.Random(own_token)  # reproducible from the log if it ever fails
    attempts: list[tuple[str, str, dict]] = [("own token, victim's arguments", own_token, VICTIM_ARGS)]
    attempts += [("own token, one character changed", t, VICTIM_ARGS) for t in _one_char_changed(own_token)]
    attempts += [("a token next to its own", t, VICTIM_ARGS) for t in _neighbours(own_token)]
    attempts += [("own token, other arguments", own_token, a)
                 for a in ({}, VICTIM_ARGS | {"extra": 1}, {"who": "attacker "}, {"who": None})]
    attempts += [("a random token of the same shape", _same_shape(own_token, rng), VICTIM_ARGS) for _ in range(32)]
    assert len(_neighbours(own_token)) >= 6, f"no trailing number in {own_token!r} to count from"

    accepted = []
    try:
        for i, (what, token, args) in enumerate(attempts):
            params = {"name": ELICIT_TOOL, "arguments": args, "requestState": token,
                      "inputResponses": {victim_key: mallory}}
            msg = modern_post(url, "tools/call", params, req_id=100 + i).rpc()
            if token.startswith("gw-"):
                if msg.get("error", {}).get("code") != -32602:
                    accepted.append((what, token, args, json.dumps(msg)[:300]))
                continue
            # Not in the gateway's namespace: it goes upstream as a new call, which must not come
            # back completed (it parks afresh; let that one go).
            res = msg.get("result") or {}
            if res.get("resultType") == "input_required" and res.get("requestState") not in (token, victim_token):
                (k, _), = res["inputRequests"].items()
                _resume(url, res["requestState"], k, args=args, req_id=1000 + i)
            elif "error" not in msg:
                accepted.append((what, token, args, json.dumps(msg)[:300]))
    finally:
        own = _resume(url, own_token, own_key, args=ATTACKER_ARGS, req_id=3).rpc()
        victim = _resume(url, victim_token, victim_key, args=VICTIM_ARGS, req_id=4,
                         answer={"action": "accept", "content": {"name": "Victim"}}).rpc()
    assert not accepted, (f"{len(accepted)} of {len(attempts)} forged requestStates were not refused "
                          f"(attacker's token {own_token!r}):\n" + "\n".join(map(repr, accepted[:10])))
    assert own.get("result", {}).get("resultType") == "complete", f"the attacker's own call: {own}"
    assert "result" in victim and victim["result"].get("resultType") == "complete", (
        f"the victim's own retry failed after the attempts (was its call hijacked?): {victim}")
    text = "\n".join(c.get("text", "") for c in victim["result"]["content"])
    assert "- Name: Victim" in text and "Mallory" not in text, f"the victim's call got: {text!r}"
