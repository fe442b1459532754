//! Ids and progress tokens are remapped both ways and come back exactly; cancellation follows.
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
mod common;
use common::*;
use mcp_edge_gateway::{Id, Message, UpstreamId};
use serde_json::json;

#[test]
fn ids_come_back_with_their_exact_type() {
    let mut sim = Sim::with(vec![("a", FakeServer::legacy(&["echo"]))]);
    let s1 = sim.legacy_client(json!({}));
    let s2 = sim.legacy_client(json!({}));
    // Two clients use the same id; the upstream must see two distinct ids.
    for (s, id) in [(s1, Id::Str("1".into())), (s2, Id::Num(1)), (s1, Id::Num(1)), (s2, Id::Str("x-ü".into()))] {
        let r = sim.call(s, id, "tools/call", json!({"name": "a__echo"})).unwrap();
        assert_eq!(r["x-unknown"], json!({"kept": true}));
    }
    let ids: Vec<Id> = sim.servers[0]
        .seen
        .iter()
        .filter_map(|m| match m {
            Message::Request { id, method, .. } if method == "tools/call" => Some(id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 4);
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), 4, "upstream ids are unique: {ids:?}");
}

#[test]
fn progress_tokens_are_remapped_and_restored() {
    let mut sim = Sim::with(vec![("a", FakeServer::legacy(&["echo"]))]);
    let s = sim.legacy_client(json!({}));
    sim.send(
        s,
        Message::request(Id::Num(5), "tools/call", json!({"name": "a__echo", "_meta": {"progressToken": "tok-A"}})),
    );
    let got = sim.take(s);
    let progress = got.iter().find(|m| m.method() == Some("notifications/progress")).expect("progress");
    let Message::Notification { params: Some(p), .. } = progress else { panic!() };
    assert_eq!(p["progressToken"], "tok-A");
    let Some(Message::Request { params: Some(up), .. }) =
        sim.servers[0].seen.iter().rev().find(|m| m.method() == Some("tools/call"))
    else {
        panic!()
    };
    assert_ne!(up["_meta"]["progressToken"], "tok-A", "the upstream sees our token, not the client's");
}

#[test]
fn client_cancellation_reaches_the_upstream_under_its_id() {
    let mut sim = Sim::with(vec![("a", FakeServer::legacy(&["slow"]))]);
    let s = sim.legacy_client(json!({}));
    sim.send(s, Message::request(Id::Str("c1".into()), "tools/call", json!({"name": "a__slow"})));
    let Some(Message::Request { id: up_id, .. }) =
        sim.servers[0].seen.iter().rev().find(|m| m.method() == Some("tools/call")).cloned()
    else {
        panic!()
    };
    sim.send(s, Message::notification("notifications/cancelled", Some(json!({"requestId": "c1", "reason": "user"}))));
    let Some(Message::Notification { params: Some(p), .. }) = sim.servers[0].seen.last().cloned() else { panic!() };
    assert_eq!(p["requestId"], up_id.to_value());
    assert_eq!(p["reason"], "user");
}

#[test]
fn requests_time_out_with_a_clear_error_and_are_cancelled_upstream() {
    let mut sim = Sim::with(vec![("a", FakeServer::legacy(&["slow"]))]);
    let s = sim.legacy_client(json!({}));
    sim.send(s, Message::request(Id::Num(1), "tools/call", json!({"name": "a__slow"})));
    assert!(sim.take(s).is_empty());
    let timeout = sim.gw.config().request_timeout_ms;
    sim.advance(timeout + 1);
    let got = sim.take(s);
    let Some(Message::Error { error, .. }) = got.last() else { panic!("{got:?}") };
    assert_eq!(error.code, -32001);
    assert_eq!(sim.servers[0].seen.last().unwrap().method(), Some("notifications/cancelled"));
}

#[test]
fn closing_a_session_cancels_its_calls() {
    let mut sim = Sim::with(vec![("a", FakeServer::legacy(&["slow"]))]);
    let s = sim.legacy_client(json!({}));
    sim.send(s, Message::request(Id::Num(1), "tools/call", json!({"name": "a__slow"})));
    sim.gw.close_session(sim.now, s);
    sim.settle();
    assert_eq!(sim.servers[0].seen.last().unwrap().method(), Some("notifications/cancelled"));
    assert_eq!(sim.gw.status()["upstreams"][0]["inFlight"], 0);
    let _ = UpstreamId(0);
}
