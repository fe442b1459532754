//! One dead or misbehaving upstream degrades the aggregate; the rest keeps working.
mod common;
use common::*;
use mcp_edge_gateway::{Id, Message, UpstreamId};
use serde_json::json;

#[test]
fn a_dead_upstream_fails_its_calls_clearly_and_vanishes_from_lists() {
    let mut sim = Sim::with(vec![("a", FakeServer::legacy(&["slow", "echo"])), ("b", FakeServer::legacy(&["echo"]))]);
    let s = sim.legacy_client(json!({}));
    sim.send(s, Message::request(Id::Num(1), "tools/call", json!({"name": "a__slow"})));
    sim.disconnect(0);
    let got = sim.take(s);
    let err = got.iter().find_map(|m| match m {
        Message::Error { id: Some(Id::Num(1)), error, .. } => Some(error.clone()),
        _ => None,
    });
    let err = err.expect("the in-flight call fails");
    assert_eq!(err.code, -32000);
    assert!(err.message.contains("\"a\""), "{}", err.message);
    assert!(got.iter().any(|m| m.method() == Some("notifications/tools/list_changed")));
    let r = sim.call(s, Id::Num(2), "tools/list", json!({})).unwrap();
    let names: Vec<_> = r["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["b__echo"]);
    assert_eq!(sim.call(s, Id::Num(3), "tools/call", json!({"name": "a__echo"})).unwrap_err().code, -32000);
    sim.call(s, Id::Num(4), "tools/call", json!({"name": "b__echo"})).unwrap();
    // It comes back: re-initialised, listed again.
    sim.connect(0);
    let r = sim.call(s, Id::Num(5), "tools/list", json!({})).unwrap();
    assert_eq!(r["tools"].as_array().unwrap().len(), 2, "first page is a's again");
    sim.call(s, Id::Num(6), "tools/call", json!({"name": "a__echo"})).unwrap();
}

#[test]
fn an_upstream_failing_a_list_is_skipped() {
    let mut sim = Sim::with(vec![("a", FakeServer::legacy(&["echo"])), ("b", FakeServer::legacy(&["echo"]))]);
    let s = sim.legacy_client(json!({}));
    sim.servers[0].era = mcp_edge_gateway::Era::Modern; // now refuses requests without modern _meta
    let r = sim.call(s, Id::Num(1), "tools/list", json!({})).unwrap();
    let names: Vec<_> = r["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["b__echo"]);
}

#[test]
fn garbage_from_an_upstream_never_reaches_clients_or_panics() {
    let mut sim = Sim::with(vec![("a", FakeServer::legacy(&["echo"]))]);
    let s = sim.legacy_client(json!({}));
    let u = UpstreamId(0);
    for m in [
        Message::response(Id::Num(999_999), json!({})),
        Message::response(Id::Str("never-sent".into()), json!({})),
        Message::error(None, mcp_edge_gateway::ErrorObject::new(-1, "boom")),
        Message::notification("notifications/progress", Some(json!({"progressToken": "nope"}))),
        Message::notification("notifications/cancelled", Some(json!({"requestId": {"x": 1}}))),
        Message::request(Id::Num(1), "roots/list", json!({})),
    ] {
        sim.gw.handle_upstream(sim.now, u, m, Some(12345));
        sim.settle();
    }
    sim.gw.handle_upstream(sim.now, UpstreamId(7), Message::notification("x", None), None);
    assert!(sim.take(s).iter().all(|m| !matches!(m, Message::Response { .. })));
    sim.call(s, Id::Num(1), "tools/call", json!({"name": "a__echo"})).unwrap();
}
