"""What an operator sees: `/metrics` parsed by PyPI prometheus-client's OpenMetrics parser, with the
exact counts of known traffic per method, upstream and tool in both histograms; machine-readable
logs (`--log-format json`); and a client's W3C trace context reaching the upstream with the same
trace id and the gateway's own span as its parent.

    Python mcp Client / raw HTTP ──► mcp-edge-gateway ──► rec (servers/header_recorder.py, HTTP)
                                                     └──► edge (built in)
"""

from __future__ import annotations

import json
import re
import urllib.request

import pytest
from mcp import Client
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from auth_support import HeaderRecorder
from conftest import (Gateway, auth_headers, client_kwargs, legacy_post, legacy_session, run_async, text_of,
                      wait_until)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"


@pytest.fixture
def rig(tmp_path):
    rec = HeaderRecorder(tmp_path, "rec")
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f'[upstreams.rec]\nurl = "{rec.url}"\n[upstreams.edge]\nbuiltin = "edge"\n')
    gw = Gateway(cfg, tmp_path / "gateway.log", extra_args=["--log-format", "json"],
                 env={"RUST_LOG": "info,mcp_edge_gateway=debug"}).start()
    try:
        gw.wait_state({"rec", "edge"})
        yield gw, rec
    finally:
        gw.stop()
        rec.stop()


def scrape(gw: Gateway) -> tuple[str, dict]:
    req = urllib.request.Request(f"{gw.base}/metrics", headers=auth_headers(gw.port))
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.headers["content-type"].startswith("application/openmetrics-text"), r.headers["content-type"]
        text = r.read().decode()
    return text, {f.name: f for f in text_string_to_metric_families(text)}


def hist_count(families: dict, name: str, **labels) -> int:
    """The `_count` of the series whose labels include `labels` (summed over the rest)."""
    fam = families[name]
    assert fam.type == "histogram", fam.type
    return int(sum(s.value for s in fam.samples
                   if s.name == f"{name}_count" and all(s.labels.get(k) == v for k, v in labels.items())))


def test_metrics_count_known_traffic_per_method_upstream_and_tool(rig):
    gw, rec = rig

    async def traffic():
        async with Client(gw.url, **client_kwargs("legacy")) as c:
            tools = await c.list_tools()
            assert {"rec__echo", "edge__system_info"} <= {t.name for t in tools.tools}
            for i in range(3):
                assert text_of(await c.call_tool("rec__echo", {"text": f"hi {i}"})) == f"hi {i}"
            for _ in range(2):
                await c.call_tool("edge__system_info", {})
            with pytest.raises(Exception):
                await c.call_tool("no_such_tool_xyz", {})

    run_async(traffic())
    text, fam = scrape(gw)
    server, client = "mcp_server_operation_duration_seconds", "mcp_client_operation_duration_seconds"
    assert hist_count(fam, server, mcp_method_name="tools/call", gen_ai_tool_name="rec__echo", upstream="rec",
                      outcome="ok") == 3, text
    assert hist_count(fam, server, mcp_method_name="tools/call", gen_ai_tool_name="edge__system_info",
                      upstream="edge", outcome="ok") == 2, text
    # Towards the upstream the tool has the upstream's own name.
    assert hist_count(fam, client, mcp_method_name="tools/call", gen_ai_tool_name="echo", upstream="rec",
                      outcome="ok") == 3, text
    assert hist_count(fam, client, mcp_method_name="tools/call", gen_ai_tool_name="system_info",
                      upstream="edge") == 2, text
    # A call to an unknown tool is an error of its own type and never names the made-up tool.
    assert hist_count(fam, server, mcp_method_name="tools/call", outcome="error", error_type="-32602") == 1, text
    assert "no_such_tool_xyz" not in text
    assert hist_count(fam, server, mcp_method_name="tools/list") == 1, text
    assert hist_count(fam, server, mcp_method_name="initialize") == 1, text
    # rec speaks 2026-07-28: the gateway discovered it (no initialize); edge was initialised.
    assert hist_count(fam, client, mcp_method_name="server/discover", upstream="rec") == 1, text
    assert hist_count(fam, client, mcp_method_name="initialize", upstream="rec") == 0, text
    assert hist_count(fam, client, mcp_method_name="initialize", upstream="edge") == 1, text
    # Buckets are cumulative and end in +Inf = count.
    for s in fam[server].samples:
        if s.name.endswith("_bucket") and s.labels["le"] == "+Inf":
            same = {k: v for k, v in s.labels.items() if k != "le"}
            assert s.value == hist_count(fam, server, **same)
    # The rest of the figures are there, with the values this traffic gives.
    assert fam["mcp_gateway_sessions"].samples[0].value >= 0
    up = {s.labels["upstream"]: s.value for s in fam["mcp_gateway_upstream_up"].samples}
    assert up == {"rec": 1.0, "edge": 1.0}
    b = {(s.labels["side"], s.labels["direction"]): s.value for s in fam["mcp_gateway_bytes"].samples}
    assert b[("client", "in")] > 0 and b[("client", "out")] > 0 and b[("upstream", "out")] > 0, b
    assert fam["process_resident_memory_bytes"].samples[0].value > 1_000_000
    assert fam["mcp_gateway_uptime_seconds"].samples[0].value > 0
    for name in ["mcp_gateway_cache_hits", "mcp_gateway_queue_depth", "mcp_gateway_queue_replays",
                 "mcp_gateway_failovers", "mcp_gateway_breaker_state"]:
        assert name in fam, name
    # The same figures as JSON, and the recent error on /status.
    req = urllib.request.Request(f"{gw.base}/metrics", headers=auth_headers(gw.port) | {"Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        js = json.load(r)
    calls = [s for s in js["operations"]["server"] if s["tool"] == "rec__echo"]
    assert sum(s["count"] for s in calls) == 3
    errors = gw.status()["recentErrors"]
    assert any(e["method"] == "tools/call" and e["errorType"] == "-32602" for e in errors), errors


def test_json_logs_parse_and_call_lines_carry_session_upstream_method_and_trace(rig):
    gw, rec = rig
    sid = legacy_session(gw.url)
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "rec__echo", "arguments": {"text": "traced"}, "_meta": {"traceparent": TRACEPARENT}}}
    r = legacy_post(gw.url, sid, call)
    assert r.status == 200 and r.rpc()["result"]["content"][0]["text"] == "traced", r.body

    def answered():
        lines = [json.loads(ln) for ln in gw.log_text().splitlines() if ln.strip()]
        return [ln for ln in lines if ln.get("method") == "tools/call" and "answered" in ln.get("message", "")] or None

    hits = wait_until(answered, 10, "the call's log line", detail=gw.log_tail)
    for ln in gw.log_text().splitlines():
        if ln.strip():
            obj = json.loads(ln)  # every line is one JSON object
            assert {"timestamp", "level", "message"} <= obj.keys(), obj
    line = hits[-1]
    assert line["upstream"] == "rec" and isinstance(line["session"], int), line
    assert line["trace_id"] == TRACE_ID, line
    assert "rec__echo" in line["message"]
    assert "Bearer" not in gw.log_text()


def test_a_clients_traceparent_reaches_the_upstream_with_the_gateways_span(rig):
    gw, rec = rig
    sid = legacy_session(gw.url)
    # In _meta (MCP's place), with tracestate; then in headers only.
    for i, (meta, headers) in enumerate([
        ({"traceparent": TRACEPARENT, "tracestate": "vendor=abc"}, {}),
        (None, {"traceparent": TRACEPARENT, "tracestate": "vendor=hdr"}),
    ]):
        params = {"name": "rec__echo", "arguments": {"text": f"t{i}"}}
        if meta:
            params["_meta"] = meta
        r = legacy_post(gw.url, sid, {"jsonrpc": "2.0", "id": 10 + i, "method": "tools/call", "params": params},
                        headers)
        assert r.status == 200, r.body
    calls = rec.tool_calls("echo")
    assert len(calls) == 2, calls
    spans = set()
    for c, state in zip(calls, ["vendor=abc", "vendor=hdr"]):
        tp = c["traceparent"]
        m = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-01", tp or "")
        assert m, c
        assert m.group(1) == TRACE_ID, tp
        assert m.group(2) not in (CLIENT_SPAN, "0" * 16), f"the gateway added no span of its own: {tp}"
        spans.add(m.group(2))
        assert c["tracestate"] == state, c
        # An HTTP upstream gets the same context as headers.
        assert c["headers"].get("traceparent") == tp, c["headers"]
        assert c["headers"].get("tracestate") == state, c["headers"]
    assert len(spans) == 2, "each call is a span of its own"
    # A call without trace context gets none.
    r = legacy_post(gw.url, sid, {"jsonrpc": "2.0", "id": 20, "method": "tools/call",
                                  "params": {"name": "rec__echo", "arguments": {"text": "plain"}}})
    assert r.status == 200
    plain = rec.tool_calls("echo")[-1]
    assert plain.get("traceparent") is None and "traceparent" not in plain["headers"], plain
