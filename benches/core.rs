//! Criterion micro-benchmarks of the core's hot paths (`cargo bench --bench core`):
//! - a tools/call round trip through the engine: parse the client's bytes, route, remap the id,
//!   serialise for the upstream; parse the upstream's answer, map it back, serialise for the client;
//!   to a plain upstream and to a group of two members, side by side;
//! - merging the catalogues of 5 upstreams with 200 tools each (1,000 tools) into exposed names;
//! - `resources/read` answered from the cache (a hit) next to the same read forwarded, answered and
//!   cached (a miss), parse to serialised answer;
//! - putting a `tools/call` in the offline queue (engine side, the store write excluded).
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
        engine_with(|_| {})
    }

    fn tools_call_round_trip(c: &mut Criterion) {
        let (gw, s) = ready_engine();
        let mut g =
            c.benchmark_group("tools/call round trip through the engine (parse, route, remap, serialise, both ways)");
        round_trip(&mut g, "plain upstream", gw, s, "up__echo", 0);
        // The same through a group of two members that both have the tool: routing, breaker and
        // budget bookkeeping on every call.
        let (mut gw, s) = engine_with(|_| {});
        let mut cfg = gw.config().clone();
        cfg.upstreams = vec![UpstreamSpec::named("local"), UpstreamSpec::named("cloud")];
        mcp_edge_gateway::config::read_groups("groups", &json!({"g": {"members": ["local", "cloud"]}}), &mut cfg)
            .unwrap();
        gw = ready(cfg);
        let s2 = gw.open_session(0);
        init(&mut gw, s2);
        let _ = s;
        round_trip(&mut g, "group of two members", gw, s2, "g__echo", 0);
        g.finish();
    }

    fn round_trip(
        g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
        label: &str,
        mut gw: Gateway,
        s: mcp_edge_gateway::SessionId,
        tool: &str,
        upstream: usize,
    ) {
        let request = format!(
            r#"{{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{{"name":"{tool}","arguments":{{"message":"hello","n":[1,2,3]}},"_meta":{{"progressToken":"p"}}}}}}"#
        );
        let request = request.as_bytes();
        let mut n = 0i64;
        g.bench_function(label, |b| {
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
                gw.handle_upstream(0, UpstreamId(upstream), reply, None);
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

    /// The client's bytes in, the client's bytes out, playing the upstream (and the store) when asked.
    fn read_once(gw: &mut Gateway, s: mcp_edge_gateway::SessionId, n: i64, uri: &str) -> String {
        let req = format!(r#"{{"jsonrpc":"2.0","id":{n},"method":"resources/read","params":{{"uri":"{uri}"}}}}"#);
        gw.handle_client(0, s, Message::parse(req.as_bytes()).unwrap());
        let mut out = String::new();
        loop {
            let mut answered = false;
            while let Some(o) = gw.poll_output() {
                match o {
                    Output::ToUpstream { message: Message::Request { id, .. }, .. } => {
                        let body = format!(
                            r#"{{"jsonrpc":"2.0","id":{},"result":{{"contents":[{{"uri":"{uri}","mimeType":"text/plain","text":"{}"}}]}}}}"#,
                            id.to_value(),
                            "x".repeat(512)
                        );
                        gw.handle_upstream(0, UpstreamId(0), Message::parse(body.as_bytes()).unwrap(), None);
                        answered = true;
                    }
                    Output::Store { ticket, .. } => gw.store_done(0, ticket, Ok(())),
                    Output::ToClient { message, .. } => out = message.to_json(),
                    _ => {}
                }
            }
            if !answered {
                return out;
            }
        }
    }

    fn cache_hit_vs_miss(c: &mut Criterion) {
        let mut g = c.benchmark_group("resources/read through the engine (512-byte text)");
        // A 60 s TTL: after the first read every read of the same URI is a hit.
        let (mut hit, s) = engine_with(|u| {
            u.cache_ttl_ms.push(("*".into(), 60_000));
        });
        read_once(&mut hit, s, 0, "demo://hit");
        let mut n = 1;
        g.bench_function("cache hit", |b| {
            b.iter(|| {
                n += 1;
                black_box(read_once(&mut hit, s, n, "demo://hit"))
            })
        });
        // No TTL: every read goes upstream, and its answer is stored (kept for offline use).
        let (mut miss, s) = engine_with(|_| {});
        g.bench_function("cache miss (forwarded, answered, cached)", |b| {
            b.iter(|| {
                n += 1;
                black_box(read_once(&mut miss, s, n, "demo://miss"))
            })
        });
        g.finish();
    }

    fn enqueue(c: &mut Criterion) {
        let fresh = || {
            let cfg = GatewayConfig {
                upstreams: vec![UpstreamSpec { offline_queue: vec!["*".into()], ..UpstreamSpec::named("up") }],
                ..Default::default()
            };
            let mut gw = Gateway::new(cfg).unwrap();
            gw.upstream_disconnected(0, UpstreamId(0), "unreachable");
            let s = gw.open_session(0);
            (gw, s)
        };
        let req = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"up__note","arguments":{"text":"buy milk"}}}"#;
        c.bench_function("tools/call put in the offline queue (engine; store write excluded)", |b| {
            b.iter_batched_ref(
                fresh,
                |(gw, s)| {
                    gw.handle_client(0, *s, Message::parse(req).unwrap());
                    let mut out = String::new();
                    while let Some(o) = gw.poll_output() {
                        match o {
                            Output::Store { ticket, .. } => gw.store_done(0, ticket, Ok(())),
                            Output::ToClient { message, .. } => out = message.to_json(),
                            _ => {}
                        }
                    }
                    black_box(out)
                },
                BatchSize::SmallInput,
            )
        });
    }

    /// An engine with one ready legacy upstream (tools: `echo`; resources: none listed, any read
    /// answered), its spec tweaked, and one initialised client session.
    fn engine_with(tweak: impl Fn(&mut UpstreamSpec)) -> (Gateway, mcp_edge_gateway::SessionId) {
        let mut spec = UpstreamSpec::named("up");
        tweak(&mut spec);
        let cfg = GatewayConfig { upstreams: vec![spec], ..Default::default() };
        let mut gw = ready(cfg);
        let s = gw.open_session(0);
        init(&mut gw, s);
        (gw, s)
    }

    fn init(gw: &mut Gateway, s: mcp_edge_gateway::SessionId) {
        gw.handle_client(
            0,
            s,
            Message::request(Id::Num(0), "initialize", json!({"protocolVersion": "2025-11-25", "capabilities": {}})),
        );
        while gw.poll_output().is_some() {}
    }

    /// An engine whose upstreams (legacy; tools: `echo`; resources: none listed, any read answered)
    /// are all connected and ready.
    fn ready(cfg: GatewayConfig) -> Gateway {
        let n = cfg.upstreams.len();
        let mut gw = Gateway::new(cfg).unwrap();
        for u in 0..n {
            gw.upstream_connected(0, UpstreamId(u));
        }
        while let Some(o) = gw.poll_output() {
            match o {
                Output::ToUpstream { upstream: u, message: Message::Request { id, method, .. } } => {
                    let r = match method.as_str() {
                        "initialize" => Message::response(
                            id,
                            json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}, "resources": {}}, "serverInfo": {"name": "u", "version": "1"}}),
                        ),
                        "tools/list" => Message::response(
                            id,
                            json!({"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}),
                        ),
                        "resources/list" => Message::response(id, json!({"resources": []})),
                        "resources/templates/list" => Message::response(id, json!({"resourceTemplates": []})),
                        _ => Message::error(Some(id), mcp_edge_gateway::ErrorObject::new(-32601, "no")),
                    };
                    gw.handle_upstream(0, u, r, None);
                }
                Output::Store { ticket, .. } => gw.store_done(0, ticket, Ok(())),
                _ => {}
            }
        }
        gw
    }

    criterion_group!(benches, tools_call_round_trip, merge_1000_tools, cache_hit_vs_miss, enqueue);
}

#[cfg(not(target_family = "wasm"))]
criterion::criterion_main!(bench::benches);

/// Criterion does not run in wasm32-unknown-unknown; the benchmarks are native only.
#[cfg(target_family = "wasm")]
fn main() {}
