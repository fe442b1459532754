//! Criterion micro-benchmarks of the core's hot paths (`cargo bench --bench core`):
//! - a tools/call round trip through the engine: parse the client's bytes, route, remap the id,
//!   serialise for the upstream; parse the upstream's answer, map it back, serialise for the client;
//! - merging the catalogues of 5 upstreams with 200 tools each (1,000 tools) into exposed names.
//!
//! The cache lookup benchmark comes with the cache.
#[cfg(not(target_family = "wasm"))]
mod bench {
    use criterion::{criterion_group, BatchSize, Criterion};
    use mcp_edge_gateway::protocol::ListKind;
    use mcp_edge_gateway::routing::Catalog;
    use mcp_edge_gateway::{Gateway, GatewayConfig, Id, Message, Output, UpstreamId, UpstreamSpec};
    use serde_json::{json, Value};
    use std::hint::black_box;

    /// An engine with one ready legacy upstream offering `echo`, and one initialised client session.
    fn ready_engine() -> (Gateway, mcp_edge_gateway::SessionId) {
        let cfg = GatewayConfig { upstreams: vec![UpstreamSpec::named("up")], ..Default::default() };
        let mut gw = Gateway::new(cfg).unwrap();
        let u = UpstreamId(0);
        gw.upstream_connected(0, u);
        let s = gw.open_session(0);
        gw.handle_client(
            0,
            s,
            Message::request(Id::Num(0), "initialize", json!({"protocolVersion": "2025-11-25", "capabilities": {}})),
        );
        // Play the upstream until quiet.
        while let Some(o) = gw.poll_output() {
            if let Output::ToUpstream { message: Message::Request { id, method, .. }, .. } = o {
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
                gw.handle_upstream(0, u, r, None);
            }
        }
        (gw, s)
    }

    fn tools_call_round_trip(c: &mut Criterion) {
        let (mut gw, s) = ready_engine();
        let request = br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"up__echo","arguments":{"message":"hello","n":[1,2,3]},"_meta":{"progressToken":"p"}}}"#;
        let mut n = 0i64;
        c.bench_function("tools/call round trip through the engine (parse, route, remap, serialise, both ways)", |b| {
            b.iter(|| {
                let m = Message::parse(black_box(request)).unwrap();
                gw.handle_client(0, s, m);
                let mut up_json = String::new();
                let mut up_id = Id::Num(0);
                while let Some(o) = gw.poll_output() {
                    if let Output::ToUpstream { message, .. } = o {
                        up_json = message.to_json();
                        if let Message::Request { id, .. } = message {
                            up_id = id;
                        }
                    }
                }
                n += 1;
                let answer = format!(
                    r#"{{"jsonrpc":"2.0","id":{},"result":{{"content":[{{"type":"text","text":"Echo: hello"}}]}}}}"#,
                    up_id.to_value()
                );
                let reply = Message::parse(answer.as_bytes()).unwrap();
                gw.handle_upstream(0, UpstreamId(0), reply, None);
                let mut out = String::new();
                while let Some(o) = gw.poll_output() {
                    if let Output::ToClient { message, .. } = o {
                        out = message.to_json();
                    }
                }
                black_box((up_json, out))
            })
        });
    }

    fn merge_1000_tools(c: &mut Criterion) {
        let cfg = GatewayConfig {
            upstreams: (0..5).map(|i| UpstreamSpec::named(&format!("u{i}"))).collect(),
            ..Default::default()
        };
        let lists: Vec<Vec<Value>> = (0..5)
        .map(|u| {
            (0..200)
                .map(|t| json!({"name": format!("tool_{t}"), "description": format!("tool {t} of upstream {u}"), "inputSchema": {"type": "object"}}))
                .collect()
        })
        .collect();
        c.bench_function("merge 1,000 tools from 5 upstreams into the catalogue", |b| {
            b.iter_batched(
                || (Catalog::new(5), lists.clone()),
                |(mut cat, lists)| {
                    for (u, items) in lists.into_iter().enumerate() {
                        black_box(cat.set(&cfg, u, ListKind::Tools, items));
                    }
                    black_box(cat.resolve_name(&cfg, ListKind::Tools, "u4__tool_199"))
                },
                BatchSize::SmallInput,
            )
        });
    }

    criterion_group!(benches, tools_call_round_trip, merge_1000_tools);
}

#[cfg(not(target_family = "wasm"))]
criterion::criterion_main!(bench::benches);

/// Criterion does not run in wasm32-unknown-unknown; the benchmarks are native only.
#[cfg(target_family = "wasm")]
fn main() {}
