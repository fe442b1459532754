"""A real modern-era (2026-07-28) MCP upstream for the interop tests, built on the Python `mcp` SDK's
MCPServer. It serves both eras on one endpoint (the SDK routes on the MCP-Protocol-Version header), so
the gateway's probe finds it modern.

Tools: add, echo, delete_thing (asks for confirmation by elicitation), haiku (asks the client's LLM by
sampling), slow (reports progress). Resource demo://hello, template demo://users/{user_id}, prompt greet.

Usage: python modern_server.py --port PORT [--host 127.0.0.1] [--path /mcp]
Prints "READY <port>" on stdout once listening.
"""

from __future__ import annotations

import argparse
import json
from typing import Annotated

from mcp.server.mcpserver import AcceptedElicitation, Context, Elicit, ElicitationResult, MCPServer, Resolve, Sample
from mcp_types import CreateMessageResult, SamplingMessage, TextContent
from pydantic import BaseModel

from serve_http import serve  # a sibling module: Python puts the script's folder on sys.path

mcp = MCPServer("modern-upstream", version="1.0.0", instructions="Modern (2026-07-28) upstream for gateway tests")


@mcp.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@mcp.tool()
def echo(text: str) -> str:
    """Echo text back."""
    return text


class Confirm(BaseModel):
    confirm: bool
    note: str = ""


def ask_confirm(thing: str) -> Elicit[Confirm]:
    return Elicit(f"Really delete {thing}?", Confirm)


@mcp.tool()
def delete_thing(thing: str, answer: Annotated[ElicitationResult[Confirm], Resolve(ask_confirm)]) -> str:
    """Delete something after asking the user (elicitation)."""
    if isinstance(answer, AcceptedElicitation):
        return f"deleted={answer.data.confirm} note={answer.data.note!r} thing={thing}"
    return f"not deleted ({answer.action})"


def ask_llm(topic: str) -> Sample:
    return Sample(
        [SamplingMessage(role="user", content=TextContent(type="text", text=f"Write a haiku about {topic}"))],
        max_tokens=64,
    )


@mcp.tool()
def haiku(topic: str, sampled: Annotated[CreateMessageResult, Resolve(ask_llm)]) -> str:
    """Ask the client's LLM for a haiku (sampling)."""
    assert isinstance(sampled.content, TextContent)
    return f"[{sampled.model}] {sampled.content.text}"


@mcp.tool()
async def slow(steps: int, ctx: Context) -> str:
    """Reports progress, one step every 50 ms."""
    import anyio

    for i in range(steps):
        await ctx.report_progress(i + 1, steps, f"step {i + 1}")
        await anyio.sleep(0.05)
    return "done"


@mcp.resource("demo://hello", name="hello", mime_type="text/plain")
def hello() -> str:
    return "hello from the modern upstream"


@mcp.resource("demo://users/{user_id}", name="user")
def user(user_id: str) -> str:
    return json.dumps({"id": user_id, "name": f"user-{user_id}"})


@mcp.prompt()
def greet(name: str) -> str:
    """Greeting prompt."""
    return f"Please greet {name} warmly."


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--path", default="/mcp")
    a = p.parse_args()
    serve(mcp, a.host, a.port, a.path)


if __name__ == "__main__":
    main()
