//! Aggregation of several upstreams: namespacing, cursors that walk every upstream's pages, routing.
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
mod common;
use common::*;
use mcp_edge_gateway::{cursor, GatewayConfig, Id, UpstreamSpec};
use serde_json::{json, Value};

fn names(v: &Value, field: &str) -> Vec<String> {
    v[field].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
}

fn list_all(sim: &mut Sim, s: mcp_edge_gateway::SessionId, method: &str, field: &str) -> (Vec<String>, usize) {
    let (mut all, mut cursor, mut pages) = (vec![], None::<String>, 0);
    loop {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let r = sim.call(s, Id::Num(100 + pages as i64), method, params).unwrap();
        all.extend(names(&r, field));
        pages += 1;
        match r.get("nextCursor").and_then(Value::as_str) {
            Some(c) => cursor = Some(c.to_string()),
            None => return (all, pages),
        }
    }
}

#[test]
fn lists_walk_every_page_of_every_upstream_with_stable_prefixes() {
    let mut a = FakeServer::legacy(&["echo", "t1", "t2", "t3", "t4"]);
    a.page_size = 2;
    let mut sim = Sim::with(vec![("a", a), ("b", FakeServer::modern(&["echo", "add"]))]);
    let s = sim.legacy_client(json!({}));
    let (tools, pages) = list_all(&mut sim, s, "tools/list", "tools");
    assert_eq!(tools, ["a__echo", "a__t1", "a__t2", "a__t3", "a__t4", "b__echo", "b__add"]);
    assert_eq!(pages, 3, "a paginates itself: two pages end on its cursor, the third holds its last page and all of b");
    // Calls route by prefix and reach the upstream under its own name.
    let r = sim.call(s, Id::Num(1), "tools/call", json!({"name": "b__add", "arguments": {"x": 1}})).unwrap();
    assert_eq!(r["echoed"]["name"], "add");
    assert_eq!(r["echoed"]["arguments"], json!({"x": 1}));
}

#[test]
fn unknown_fields_of_listed_items_are_kept() {
    let mut sim = Sim::with(vec![("a", FakeServer::legacy(&["echo"]))]);
    let s = sim.legacy_client(json!({}));
    let r = sim.call(s, Id::Num(1), "tools/list", json!({})).unwrap();
    assert_eq!(r["tools"][0]["x-vendor"], 1);
    assert_eq!(r["tools"][0]["inputSchema"], json!({"type": "object"}));
}

#[test]
fn invalid_cursors_are_invalid_params() {
    let mut sim = Sim::with(vec![("a", FakeServer::legacy(&["echo"]))]);
    let s = sim.legacy_client(json!({}));
    for bad in
        [json!("garbage!"), json!(42), json!(cursor::encode(&cursor::Position { upstream: "zz".into(), cursor: None }))]
    {
        let e = sim.call(s, Id::Num(1), "tools/list", json!({"cursor": bad})).unwrap_err();
        assert_eq!(e.code, -32602, "{bad}");
    }
}

#[test]
fn unprefixed_collisions_are_reported_and_renamed_never_dropped() {
    let cfg = GatewayConfig {
        upstreams: vec![
            UpstreamSpec { name: "one".into(), prefix: None, ..Default::default() },
            UpstreamSpec { name: "two".into(), prefix: None, ..Default::default() },
        ],
        ..Default::default()
    };
    let mut sim = Sim::new(cfg, vec![FakeServer::legacy(&["echo", "a"]), FakeServer::legacy(&["echo", "b"])]);
    sim.connect(0);
    sim.connect(1);
    assert!(sim.logs.iter().any(|l| l.contains("collision") && l.contains("two__echo")), "{:?}", sim.logs);
    let s = sim.legacy_client(json!({}));
    let (tools, _) = list_all(&mut sim, s, "tools/list", "tools");
    assert_eq!(tools, ["echo", "a", "two__echo", "b"]);
    let r = sim.call(s, Id::Num(1), "tools/call", json!({"name": "two__echo"})).unwrap();
    assert_eq!(r["echoed"]["name"], "echo");
    assert_eq!(sim.servers[1].seen.iter().filter(|m| m.method() == Some("tools/call")).count(), 1);
    let r = sim.call(s, Id::Num(2), "tools/call", json!({"name": "b"})).unwrap();
    assert_eq!(r["echoed"]["name"], "b");
}

#[test]
fn resources_route_by_uri_and_unknown_names_get_clear_errors() {
    let mut a = FakeServer::legacy(&["echo"]);
    a.resources = vec!["file:///a.txt".into()];
    let mut b = FakeServer::legacy(&["echo"]);
    b.resources = vec!["mem://b".into()];
    let mut sim = Sim::with(vec![("a", a), ("b", b)]);
    let s = sim.legacy_client(json!({}));
    sim.call(s, Id::Num(1), "resources/read", json!({"uri": "mem://b"})).unwrap();
    assert!(sim.servers[1].seen.iter().any(|m| m.method() == Some("resources/read")));
    assert_eq!(sim.call(s, Id::Num(2), "resources/read", json!({"uri": "nope://x"})).unwrap_err().code, -32002);
    assert_eq!(sim.call(s, Id::Num(3), "tools/call", json!({"name": "zz__echo"})).unwrap_err().code, -32602);
    assert_eq!(sim.call(s, Id::Num(4), "tools/call", json!({"name": 5})).unwrap_err().code, -32602);
    assert_eq!(sim.call(s, Id::Num(5), "vendor/thing", json!({})).unwrap_err().code, -32601);
}

#[test]
fn list_changed_refreshes_and_reaches_clients() {
    let mut sim = Sim::with(vec![("a", FakeServer::legacy(&["echo"]))]);
    let s = sim.legacy_client(json!({}));
    sim.servers[0].tools.push("new".into());
    sim.gw.handle_upstream(
        sim.now,
        mcp_edge_gateway::UpstreamId(0),
        mcp_edge_gateway::Message::notification("notifications/tools/list_changed", None),
        None,
    );
    sim.settle();
    let got = sim.take(s);
    assert!(got.iter().any(|m| m.method() == Some("notifications/tools/list_changed")));
    let st = sim.gw.status();
    assert_eq!(st["upstreams"][0]["tools"], 2);
}

#[test]
fn first_requests_wait_for_upstreams_still_starting() {
    let cfg = GatewayConfig { upstreams: vec![spec("a"), spec("b")], ..Default::default() };
    let mut sim = Sim::new(cfg, vec![FakeServer::legacy(&["x"]), FakeServer::legacy(&["y"])]);
    sim.connect(0);
    // b's link is up but it has not finished its handshake: hold its replies back.
    sim.connected[1] = false;
    sim.gw.upstream_connected(sim.now, mcp_edge_gateway::UpstreamId(1));
    sim.settle();
    let s = sim.legacy_client(json!({}));
    sim.send(s, mcp_edge_gateway::Message::request(Id::Num(9), "tools/list", json!({})));
    assert!(sim.take(s).is_empty(), "held until b is ready");
    sim.connect(1);
    let got = sim.take(s);
    assert!(matches!(got.last(), Some(mcp_edge_gateway::Message::Response { .. })), "{got:?}");
}
