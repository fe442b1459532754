//! Legacy clients with modern upstreams and modern clients with legacy upstreams, including the
//! server-to-client requests (elicitation) that the two eras carry differently.
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
mod common;
use common::*;
use mcp_edge_gateway::{Id, Message};
use serde_json::{json, Value};

fn modern_call(
    sim: &mut Sim,
    s: mcp_edge_gateway::SessionId,
    id: i64,
    method: &str,
    mut params: Value,
) -> Result<Value, mcp_edge_gateway::ErrorObject> {
    params["_meta"] = modern_meta(json!({"elicitation": {}}));
    sim.call(s, Id::Num(id), method, params)
}

#[test]
fn modern_upstream_probe_and_legacy_fallback() {
    let mut sim = Sim::with(vec![("old", FakeServer::legacy(&["x"])), ("new", FakeServer::modern(&["y"]))]);
    let st = sim.gw.status();
    assert_eq!(st["upstreams"][0]["era"], "legacy");
    assert_eq!(st["upstreams"][1]["era"], "modern");
    assert_eq!(sim.servers[0].seen[0].method(), Some("server/discover"));
    assert_eq!(sim.servers[0].seen[1].method(), Some("initialize"));
    let _ = &mut sim;
}

#[test]
fn a_silent_probe_times_out_into_initialize() {
    let mut old = FakeServer::legacy(&["x"]);
    old.answers_discover = false;
    let cfg = mcp_edge_gateway::GatewayConfig { upstreams: vec![spec("old")], ..Default::default() };
    let mut sim = Sim::new(cfg, vec![old]);
    sim.connect(0);
    assert_eq!(sim.gw.status()["upstreams"][0]["state"], "probing");
    let t = sim.gw.config().probe_timeout_ms;
    sim.advance(t);
    assert_eq!(sim.gw.status()["upstreams"][0]["state"], "ready");
}

#[test]
fn legacy_client_reaches_modern_upstream_with_meta_stamped() {
    let mut sim = Sim::with(vec![("new", FakeServer::modern(&["echo"]))]);
    let s = sim.legacy_client(json!({"sampling": {}}));
    let r = sim.call(s, Id::Num(1), "tools/call", json!({"name": "new__echo", "arguments": {}})).unwrap();
    assert_eq!(r["echoed"]["_meta"]["io.modelcontextprotocol/protocolVersion"], "2026-07-28");
    assert_eq!(r["echoed"]["_meta"]["io.modelcontextprotocol/clientCapabilities"], json!({"sampling": {}}));
}

#[test]
fn a_modern_clients_envelope_is_taken_off_for_a_legacy_upstream_and_other_meta_stays() {
    let mut sim = Sim::with(vec![("old", FakeServer::legacy(&["echo"]))]);
    let s = sim.gw.open_session(0);
    let mut params = json!({"name": "old__echo", "arguments": {}});
    params["_meta"] = modern_meta(json!({}));
    params["_meta"]["traceparent"] = json!("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    sim.call(s, Id::Num(1), "tools/call", params).unwrap();
    let sent = sim.last_params(0, "tools/call").unwrap();
    // Only the trace context stays (with the gateway's own span as the parent: see src/trace.rs).
    let meta = sent["_meta"].as_object().unwrap();
    assert_eq!(meta.keys().collect::<Vec<_>>(), ["traceparent"]);
    let tp = meta["traceparent"].as_str().unwrap();
    assert!(tp.starts_with("00-0af7651916cd43dd8448eb211c80319c-") && tp.ends_with("-01"), "{tp}");
    assert_ne!(tp, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "the gateway's span is the parent");
    modern_call(&mut sim, s, 2, "tools/call", json!({"name": "old__echo", "arguments": {}})).unwrap();
    assert!(sim.last_params(0, "tools/call").unwrap().get("_meta").is_none(), "an emptied _meta goes");
}

#[test]
fn modern_client_gets_complete_results_with_cache_hints_from_legacy_upstreams() {
    let mut sim = Sim::with(vec![("old", FakeServer::legacy(&["echo"]))]);
    let s = sim.gw.open_session(0);
    let r = modern_call(&mut sim, s, 1, "tools/list", json!({})).unwrap();
    assert_eq!(r["resultType"], "complete");
    assert_eq!(r["ttlMs"], 0);
    assert_eq!(r["cacheScope"], "private");
    let r = modern_call(&mut sim, s, 2, "server/discover", json!({})).unwrap();
    assert!(r["supportedVersions"].as_array().unwrap().iter().any(|v| v == "2026-07-28"));
    let e = sim
        .call(s, Id::Num(3), "tools/list", json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "1999-01-01", "io.modelcontextprotocol/clientCapabilities": {}}}))
        .unwrap_err();
    assert_eq!(e.code, -32022);
    assert!(e.data.unwrap()["supported"].as_array().unwrap().len() >= 2);
}

#[test]
fn legacy_upstream_elicitation_reaches_a_legacy_client_and_its_answer_goes_back() {
    let mut sim = Sim::with(vec![("old", FakeServer::legacy(&["ask"]))]);
    let s = sim.legacy_client(json!({"elicitation": {}}));
    sim.send(s, Message::request(Id::Str("q".into()), "tools/call", json!({"name": "old__ask"})));
    let got = sim.take(s);
    let Some(Message::Request { id, method, .. }) = got.iter().find(|m| m.is_request()).cloned() else {
        panic!("{got:?}")
    };
    assert_eq!(method, "elicitation/create");
    sim.send(s, Message::response(id, json!({"action": "accept", "content": {"name": "Ada"}})));
    let got = sim.take(s);
    let Some(Message::Response { id, result, .. }) = got.last() else { panic!("{got:?}") };
    assert_eq!(*id, Id::Str("q".into()));
    assert!(result["content"][0]["text"].as_str().unwrap().contains("Ada"));
}

#[test]
fn a_client_without_the_capability_is_never_asked() {
    let mut sim = Sim::with(vec![("old", FakeServer::legacy(&["ask"]))]);
    let s = sim.legacy_client(json!({}));
    sim.send(s, Message::request(Id::Num(1), "tools/call", json!({"name": "old__ask"})));
    assert!(sim.take(s).iter().all(|m| !m.is_request()));
    let Some(Message::Error { error, .. }) = sim.servers[0].seen.last() else { panic!() };
    assert_eq!(error.code, -32601);
}

#[test]
fn legacy_upstream_elicitation_becomes_input_required_for_a_modern_client() {
    let mut sim = Sim::with(vec![("old", FakeServer::legacy(&["ask"]))]);
    let s = sim.gw.open_session(0);
    let r = modern_call(&mut sim, s, 1, "tools/call", json!({"name": "old__ask"})).unwrap();
    assert_eq!(r["resultType"], "input_required");
    let (key, req) = r["inputRequests"].as_object().unwrap().iter().next().unwrap();
    assert_eq!(req["method"], "elicitation/create");
    let state = r["requestState"].clone();
    // The retry arrives as a new request, as modern clients do (possibly a new HTTP exchange).
    sim.gw.close_session(sim.now, s);
    let s2 = sim.gw.open_session(sim.now);
    let r = modern_call(
        &mut sim,
        s2,
        2,
        "tools/call",
        json!({"name": "old__ask", "inputResponses": {key: {"action": "accept", "content": {"name": "Ada"}}}, "requestState": state}),
    )
    .unwrap();
    assert_eq!(r["resultType"], "complete");
    assert!(r["content"][0]["text"].as_str().unwrap().contains("Ada"), "{r}");
    // A replayed state is refused, not silently re-run.
    let e = modern_call(
        &mut sim,
        s2,
        3,
        "tools/call",
        json!({"name": "old__ask", "inputResponses": {}, "requestState": state}),
    )
    .unwrap_err();
    assert_eq!(e.code, -32602);
}

#[test]
fn modern_upstream_input_required_becomes_requests_to_a_legacy_client() {
    let mut sim = Sim::with(vec![("new", FakeServer::modern(&["ask"]))]);
    let s = sim.legacy_client(json!({"elicitation": {}}));
    sim.send(s, Message::request(Id::Num(7), "tools/call", json!({"name": "new__ask", "arguments": {"a": 1}})));
    let got = sim.take(s);
    let Some(Message::Request { id, method, params, .. }) = got.iter().find(|m| m.is_request()).cloned() else {
        panic!("{got:?}")
    };
    assert_eq!(method, "elicitation/create");
    assert_eq!(params.unwrap()["message"], "Your name?");
    sim.send(s, Message::response(id, json!({"action": "accept", "content": {"name": "Grace"}})));
    let got = sim.take(s);
    let Some(Message::Response { id, result, .. }) = got.last() else { panic!("{got:?}") };
    assert_eq!(*id, Id::Num(7));
    assert!(result["content"][0]["text"].as_str().unwrap().contains("Grace"));
    // The retry kept name, arguments and requestState (the fake server asserts the state).
    let retry = sim.servers[0].seen.iter().rev().find(|m| m.method() == Some("tools/call")).unwrap();
    let Message::Request { params: Some(p), .. } = retry else { panic!() };
    assert_eq!(p["arguments"], json!({"a": 1}));
    assert_eq!(p["name"], "ask");
}

#[test]
fn modern_to_modern_passes_input_required_through_verbatim() {
    let mut sim = Sim::with(vec![("new", FakeServer::modern(&["ask"]))]);
    let s = sim.gw.open_session(0);
    let r = modern_call(&mut sim, s, 1, "tools/call", json!({"name": "new__ask"})).unwrap();
    assert_eq!(r["requestState"], "opaque-state-1");
    let r = modern_call(
        &mut sim,
        s,
        2,
        "tools/call",
        json!({"name": "new__ask", "inputResponses": {"who": {"action": "accept"}}, "requestState": "opaque-state-1"}),
    )
    .unwrap();
    assert_eq!(r["resultType"], "complete");
}
