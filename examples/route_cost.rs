//! N tools/call round trips through the engine, to a plain upstream or through a group, for counting
//! instructions (`valgrind --tool=callgrind target/release/examples/route_cost plain|group N`): the
//! cost of the group's routing, breaker and budget bookkeeping, exactly and without the noise of a
//! shared machine. scripts/bench.sh runs it.
use mcp_edge_gateway::{Gateway, GatewayConfig, Id, Message, Output, UpstreamId, UpstreamSpec};
use serde_json::json;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let group = args.get(1).map(String::as_str) == Some("group");
    let n: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let mut cfg = GatewayConfig {
        upstreams: vec![UpstreamSpec::named("local"), UpstreamSpec::named("cloud")],
        ..Default::default()
    };
    if group {
        mcp_edge_gateway::config::read_groups("groups", &json!({"g": {"members": ["local", "cloud"]}}), &mut cfg)
            .unwrap();
    }
    let tool = if group { "g__echo" } else { "local__echo" };
    let mut gw = Gateway::new(cfg).unwrap();
    for u in 0..2 {
        gw.upstream_connected(0, UpstreamId(u));
    }
    while let Some(o) = gw.poll_output() {
        if let Output::ToUpstream { upstream, message: Message::Request { id, method, .. } } = o {
            let r = match method.as_str() {
                "initialize" => Message::response(
                    id,
                    json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}, "serverInfo": {"name": "u", "version": "1"}}),
                ),
                "tools/list" => {
                    Message::response(id, json!({"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}))
                }
                _ => Message::error(Some(id), mcp_edge_gateway::ErrorObject::new(-32601, "no")),
            };
            gw.handle_upstream(0, upstream, r, None);
        }
    }
    let s = gw.open_session(0);
    gw.handle_client(
        0,
        s,
        Message::request(Id::Num(0), "initialize", json!({"protocolVersion": "2025-11-25", "capabilities": {}})),
    );
    while gw.poll_output().is_some() {}
    let request = format!(
        r#"{{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{{"name":"{tool}","arguments":{{"message":"hello"}}}}}}"#
    );
    let mut out = 0usize;
    for i in 0..n {
        let now = u64::from(i);
        gw.handle_client(now, s, Message::parse(request.as_bytes()).unwrap());
        let mut up = None;
        while let Some(o) = gw.poll_output() {
            if let Output::ToUpstream { upstream, message: Message::Request { id, .. } } = o {
                up = Some((upstream, id));
            }
        }
        let (u, id) = up.expect("the call went upstream");
        let answer = format!(
            r#"{{"jsonrpc":"2.0","id":{},"result":{{"content":[{{"type":"text","text":"Echo: hello"}}]}}}}"#,
            id.to_value()
        );
        gw.handle_upstream(now, u, Message::parse(answer.as_bytes()).unwrap(), None);
        while let Some(o) = gw.poll_output() {
            if let Output::ToClient { message, .. } = o {
                out += message.to_json().len();
            }
        }
    }
    assert!(out > 0);
}
