//! The engine with no host at all: a scripted client and upstream exchange messages through it.
//! scripts/test-wasm.sh builds this for wasm32-unknown-unknown, fails if the module imports anything
//! (from `env` or elsewhere: the core does no I/O and reads no clock), and runs it in Node's
//! WebAssembly engine; it exits non-zero (traps) if the engine misbehaves.
use mcp_edge_gateway::{Gateway, GatewayConfig, Id, Message, Output, UpstreamId, UpstreamSpec};
use serde_json::json;

fn main() {
    let cfg = GatewayConfig { upstreams: vec![UpstreamSpec::named("up")], ..Default::default() };
    let mut gw = Gateway::new(cfg).expect("config");
    gw.seed([7; 32]);
    let up = UpstreamId(0);
    gw.upstream_connected(0, up);
    // The upstream is legacy: it refuses the probe, accepts initialize, lists one tool, echoes.
    let mut to_client = Vec::new();
    let mut steps = 0;
    let s = gw.open_session(0);
    let init =
        json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}});
    gw.handle_client(0, s, Message::request(Id::Num(1), "initialize", init));
    gw.handle_client(0, s, Message::request(Id::Str("call".into()), "tools/call", json!({"name": "up__echo"})));
    while let Some(o) = gw.poll_output() {
        steps += 1;
        assert!(steps < 1000, "the engine keeps producing output");
        match o {
            Output::ToUpstream { message: Message::Request { id, method, params, .. }, .. } => {
                let reply = match method.as_str() {
                    "server/discover" => Message::error(Some(id), mcp_edge_gateway::ErrorObject::new(-32601, "no")),
                    "initialize" => Message::response(
                        id,
                        json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}, "serverInfo": {"name": "u", "version": "1"}}),
                    ),
                    "tools/list" => {
                        Message::response(id, json!({"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}))
                    }
                    "tools/call" => {
                        Message::response(id, json!({"content": [{"type": "text", "text": "ok"}], "echo": params}))
                    }
                    _ => Message::error(Some(id), mcp_edge_gateway::ErrorObject::new(-32601, "no")),
                };
                gw.handle_upstream(1, up, reply, None);
            }
            Output::ToClient { message, .. } => to_client.push(message),
            _ => {}
        }
    }
    let answer = to_client.iter().find_map(|m| match m {
        Message::Response { id: Id::Str(s), result, .. } if s == "call" => Some(result.clone()),
        _ => None,
    });
    let answer = answer.expect("the call was answered");
    assert_eq!(answer["echo"]["name"], "echo", "the prefix was stripped on the way up");
}
