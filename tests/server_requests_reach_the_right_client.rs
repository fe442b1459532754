//! Server-to-client requests (elicitation, sampling, roots) go to the client whose call caused them,
//! and never to another user's session when that cannot be told.
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
mod common;
use common::*;
use mcp_edge_gateway::{Id, Message, UpstreamId};
use serde_json::json;

fn asked(sim: &mut Sim, s: mcp_edge_gateway::SessionId) -> Vec<Message> {
    sim.take(s).into_iter().filter(|m| m.is_request()).collect()
}

#[test]
fn with_calls_of_two_clients_in_flight_an_unattributable_request_is_refused() {
    let mut sim = Sim::with(vec![("old", FakeServer::legacy(&["ask", "slow"]))]);
    let alice = sim.legacy_client(json!({"elicitation": {}}));
    let bob = sim.legacy_client(json!({"elicitation": {}}));
    sim.send(bob, Message::request(Id::Num(1), "tools/call", json!({"name": "old__slow"})));
    sim.send(alice, Message::request(Id::Num(1), "tools/call", json!({"name": "old__ask"})));
    assert!(asked(&mut sim, alice).is_empty());
    assert!(asked(&mut sim, bob).is_empty());
    let Some(Message::Error { error, .. }) = sim.servers[0].seen.last() else {
        panic!("{:?}", sim.servers[0].seen.last())
    };
    assert!(error.message.contains("several clients"), "{}", error.message);
}

#[test]
fn the_transport_s_related_call_decides_even_with_several_clients() {
    let mut sim = Sim::with(vec![("old", FakeServer::legacy(&["slow"]))]);
    let alice = sim.legacy_client(json!({"elicitation": {}}));
    let bob = sim.legacy_client(json!({"elicitation": {}}));
    sim.send(alice, Message::request(Id::Str("a".into()), "tools/call", json!({"name": "old__slow"})));
    sim.send(bob, Message::request(Id::Str("b".into()), "tools/call", json!({"name": "old__slow"})));
    let alice_call = sim.servers[0]
        .seen
        .iter()
        .filter(|m| m.method() == Some("tools/call"))
        .find_map(|m| match m {
            Message::Request { id: Id::Num(n), .. } => Some(*n),
            _ => None,
        })
        .unwrap();
    let q = Message::request(
        Id::Num(500),
        "elicitation/create",
        json!({"message": "for alice", "requestedSchema": {"type": "object"}}),
    );
    sim.gw.handle_upstream(sim.now, UpstreamId(0), q, Some(alice_call));
    sim.settle();
    assert_eq!(asked(&mut sim, alice).len(), 1);
    assert!(asked(&mut sim, bob).is_empty());
}

#[test]
fn one_client_in_flight_is_asked_and_url_mode_needs_the_url_capability() {
    let mut sim = Sim::with(vec![("old", FakeServer::legacy(&["slow"]))]);
    let s = sim.legacy_client(json!({"elicitation": {"form": {}}}));
    sim.send(s, Message::request(Id::Num(1), "tools/call", json!({"name": "old__slow"})));
    let url = Message::request(
        Id::Num(501),
        "elicitation/create",
        json!({"mode": "url", "url": "https://x", "message": "m", "elicitationId": "e"}),
    );
    sim.gw.handle_upstream(sim.now, UpstreamId(0), url, None);
    sim.settle();
    assert!(asked(&mut sim, s).is_empty(), "form-only client is not asked a URL elicitation");
    let form = Message::request(
        Id::Num(502),
        "elicitation/create",
        json!({"message": "m", "requestedSchema": {"type": "object"}}),
    );
    sim.gw.handle_upstream(sim.now, UpstreamId(0), form, None);
    sim.settle();
    assert_eq!(asked(&mut sim, s).len(), 1);
}

#[test]
fn roots_are_asked_again_when_clients_come_and_go_and_never_guessed() {
    let mut sim = Sim::with(vec![("old", FakeServer::legacy(&["x"]))]);
    let count = |sim: &Sim| {
        sim.servers[0].seen.iter().filter(|m| m.method() == Some("notifications/roots/list_changed")).count()
    };
    let alice = sim.legacy_client(json!({"roots": {}}));
    assert_eq!(count(&sim), 1, "a client with roots arrived");
    let bob = sim.legacy_client(json!({"roots": {}}));
    assert_eq!(count(&sim), 2);
    // Two clients with roots, no call in flight: the upstream gets empty roots, not someone's.
    sim.gw.handle_upstream(sim.now, UpstreamId(0), Message::request(Id::Num(9), "roots/list", json!({})), None);
    sim.settle();
    let Some(Message::Response { result, .. }) = sim.servers[0].seen.last() else { panic!() };
    assert_eq!(result["roots"], json!([]));
    assert!(asked(&mut sim, alice).is_empty() && asked(&mut sim, bob).is_empty());
    sim.gw.close_session(sim.now, alice);
    sim.settle();
    assert_eq!(count(&sim), 3, "a client with roots left");
    // Now only bob can answer.
    sim.gw.handle_upstream(sim.now, UpstreamId(0), Message::request(Id::Num(10), "roots/list", json!({})), None);
    sim.settle();
    assert_eq!(asked(&mut sim, bob).len(), 1);
}

#[test]
fn once_a_call_is_known_to_ask_calls_of_different_clients_take_turns() {
    let mut sim = Sim::with(vec![("old", FakeServer::legacy(&["ask", "slow"]))]);
    let alice = sim.legacy_client(json!({"elicitation": {}}));
    let bob = sim.legacy_client(json!({"elicitation": {}}));
    // First time: ambiguous, refused, and `ask` is learned as interactive.
    sim.send(bob, Message::request(Id::Num(1), "tools/call", json!({"name": "old__slow"})));
    sim.send(alice, Message::request(Id::Num(1), "tools/call", json!({"name": "old__ask"})));
    let _ = (sim.take(alice), sim.take(bob));
    sim.send(bob, Message::notification("notifications/cancelled", Some(json!({"requestId": 1}))));
    // Now both ask at once: alice's goes first; bob's waits, then gets its own question.
    sim.send(alice, Message::request(Id::Num(2), "tools/call", json!({"name": "old__ask"})));
    sim.send(bob, Message::request(Id::Num(2), "tools/call", json!({"name": "old__ask"})));
    let qa = asked(&mut sim, alice);
    assert_eq!(qa.len(), 1, "alice is asked");
    assert!(asked(&mut sim, bob).is_empty(), "bob waits for his turn");
    let Message::Request { id, .. } = &qa[0] else { panic!() };
    sim.send(alice, Message::response(id.clone(), json!({"action": "accept", "content": {"name": "alice"}})));
    let got = sim.take(alice);
    assert!(
        got.iter().any(
            |m| matches!(m, Message::Response { id: Id::Num(2), result, .. } if result.to_string().contains("alice"))
        ),
        "{got:?}"
    );
    let qb = asked(&mut sim, bob);
    assert_eq!(qb.len(), 1, "then bob is asked");
    let Message::Request { id, .. } = &qb[0] else { panic!() };
    sim.send(bob, Message::response(id.clone(), json!({"action": "accept", "content": {"name": "bob"}})));
    let got = sim.take(bob);
    assert!(
        got.iter().any(
            |m| matches!(m, Message::Response { id: Id::Num(2), result, .. } if result.to_string().contains("bob"))
        ),
        "{got:?}"
    );
}
