"""A real MCP upstream over stdio (Python `mcp` SDK, MCPServer) with one slow tool that reports
progress, for the downstream resumption tests.

- tool `countdown(steps, interval_ms, tag="")`: `steps` times, sleeps `interval_ms` and then sends
  `notifications/progress` (progress i of `steps`, message "step i") when the request carries a
  `_meta.progressToken`; then returns "finished <steps> steps (<tag>)". Each call appends
  `{"tag", "phase": "start"}` to the `--log` file when it begins, `{"tag", "phase": "progress", "i"}`
  once it has sent progress i, and `{"tag", "phase": "end", "finished": <bool>}` when it ends, however
  it ends (in a `finally`: also when the SDK cancelled it), each line flushed and fsynced, so a test
  can count how many times the tool ran, how far it got and whether it ran to the end.

Usage: python progress_server.py --log FILE   (serves MCP on stdin/stdout)
"""

from __future__ import annotations

import argparse
import json
import os

import anyio
from mcp.server.mcpserver import Context, MCPServer

LOG = {"path": ""}


def append_line(entry: dict) -> None:
    with open(LOG["path"], "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")
        f.flush()
        os.fsync(f.fileno())


mcp = MCPServer("progress-upstream", version="1.0.0", instructions="A slow tool with progress, for resumption tests")


@mcp.tool()
async def countdown(steps: int, interval_ms: int, ctx: Context, tag: str = "") -> str:
    """Sleep interval_ms, then report progress i/steps, `steps` times; then answer."""
    append_line({"tag": tag, "phase": "start"})
    finished = False
    try:
        for i in range(1, steps + 1):
            await anyio.sleep(interval_ms / 1000)
            await ctx.report_progress(i, steps, f"step {i}")
            append_line({"tag": tag, "phase": "progress", "i": i})
        finished = True
        return f"finished {steps} steps ({tag})"
    finally:
        append_line({"tag": tag, "phase": "end", "finished": finished})


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--log", required=True, help="file that countdown() appends its start and end to")
    LOG["path"] = p.parse_args().log
    mcp.run("stdio")


if __name__ == "__main__":
    main()
