"""The real Python `mcp` 2.3.0 Client, in both eras, sees and uses everything both upstreams offer
through the gateway: lists (following cursors across upstream pages), tools, resources, prompts."""

from __future__ import annotations


import pytest
from mcp import Client

from conftest import LEGACY, MODERN, client_kwargs, list_all, run_async, text_of

EXPECTED_VERSION = {"auto": MODERN, "legacy": LEGACY}


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_lists_calls_reads_and_prompts_of_both_upstreams(topo, mode):
    async def run():
        async with Client(topo.url, **client_kwargs(mode)) as c:
            assert c.protocol_version == EXPECTED_VERSION[mode]

            tools, tool_pages = await list_all(c.list_tools, "tools")
            prompts, prompt_pages = await list_all(c.list_prompts, "prompts")
            resources, _ = await list_all(c.list_resources, "resources")
            templates, _ = await list_all(c.list_resource_templates, "resource_templates")

            tool_names = {t.name for t in tools}
            assert {"everything__echo", "everything__get-sum", "modern__add", "modern__echo",
                    "modern__delete_thing", "modern__haiku"} <= tool_names, tool_names
            assert all(n.startswith(("everything__", "modern__")) for n in tool_names), tool_names
            assert len(tool_names) == len(tools), "duplicate tools across pages"

            prompt_names = {p.name for p in prompts}
            assert {"modern__greet", "everything__args-prompt"} <= prompt_names, prompt_names

            uris = {r.uri for r in resources}
            assert "demo://hello" in uris, uris
            assert any(u.startswith("demo://resource/") for u in uris), uris

            uri_templates = {t.uri_template for t in templates}
            assert "demo://users/{user_id}" in uri_templates, uri_templates
            assert any(t.startswith("demo://resource/dynamic/") for t in uri_templates), uri_templates

            # Both upstreams' tools and prompts fit the default page size: one merged page each, so a
            # client that never follows nextCursor still sees every one.
            for what, pages in [("tools", tool_pages), ("prompts", prompt_pages)]:
                assert pages == 1, f"{what}: expected both upstreams merged into one page, got {pages}"

            # Tools of each upstream.
            r = await c.call_tool("everything__echo", {"message": f"hello {mode}"})
            assert not r.is_error and text_of(r) == f"Echo: hello {mode}"
            r = await c.call_tool("everything__get-sum", {"a": 19, "b": 23})
            assert not r.is_error and "42" in text_of(r)
            r = await c.call_tool("modern__add", {"a": 2, "b": 3})
            assert not r.is_error and text_of(r) == "5"
            assert r.structured_content == {"result": 5}

            # Resources of each upstream (URIs are not renamed).
            r = await c.read_resource("demo://hello")
            assert r.contents[0].text == "hello from the modern upstream"
            r = await c.read_resource("demo://users/42")
            assert '"user-42"' in r.contents[0].text
            r = await c.read_resource("demo://resource/dynamic/text/1")
            assert r.contents[0].uri == "demo://resource/dynamic/text/1"
            assert r.contents[0].text

            # Prompts of each upstream.
            r = await c.get_prompt("modern__greet", {"name": "Bob"})
            assert "Please greet Bob warmly." in r.messages[0].content.text
            r = await c.get_prompt("everything__args-prompt", {"city": "Paris"})
            assert "Paris" in r.messages[0].content.text

    run_async(run())


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_server_identity_and_instructions_describe_this_gateway(topo, mode):
    """The gateway names itself, and with a JSON (`mcpServers`) config and no built-in edge upstream
    its `instructions` (initialize and server/discover) say nothing about edge device tools:
    clients put them in the model's context. (Regression: the embedded default's text leaked into
    JSON configs.)"""

    async def run():
        async with Client(topo.url, **client_kwargs(mode)) as c:
            assert c.server_info is not None and c.server_info.name == "mcp-edge-gateway"
            caps = c.server_capabilities
            assert caps.tools is not None and caps.prompts is not None and caps.resources is not None
            tools, _ = await list_all(c.list_tools, "tools")
            assert not any(t.name.startswith("edge__") for t in tools)
            assert "Edge device tools" not in (c.instructions or ""), c.instructions

    run_async(run())
