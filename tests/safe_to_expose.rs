//! What a caller may do, decided in the engine before anything goes upstream: tool policy per
//! principal (lists filtered, calls refused), rate and in-flight limits on the engine's clock,
//! arguments checked against `inputSchema`, and request shapes the MCP schema rules out answered
//! -32602 at once in both eras.
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
mod common;
use common::*;
use mcp_edge_gateway::jsonrpc::code;
use mcp_edge_gateway::limits::read_limits;
use mcp_edge_gateway::policy::read_policy;
use mcp_edge_gateway::{GatewayConfig, Id, Message, Principal};
use serde_json::{json, Value};

fn sim_with(policy: Value, limits: Value) -> Sim {
    let cfg = GatewayConfig {
        upstreams: vec![spec("notes"), spec("edge")],
        policy: read_policy(Some(&policy)).unwrap(),
        limits: read_limits(Some(&limits)).unwrap(),
        ..Default::default()
    };
    let mut sim = Sim::new(
        cfg,
        vec![FakeServer::legacy(&["read_note", "delete_note", "strict_add"]), FakeServer::legacy(&["load", "memory"])],
    );
    sim.connect(0);
    sim.connect(1);
    sim
}

fn as_principal(sim: &mut Sim, name: &str, scopes: &[&str]) -> mcp_edge_gateway::SessionId {
    let s = sim.legacy_client(json!({}));
    sim.gw.set_session_principal(s, Principal::new(name, scopes.iter().map(|x| x.to_string()).collect()));
    s
}

fn names(r: &Value) -> Vec<String> {
    r["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn two_principals_list_what_their_rules_allow_and_a_denied_call_never_arrives() {
    let mut sim = sim_with(
        json!({"rules": [
            {"principals": ["kitchen-agent"], "allow": ["edge__*", "notes__read_*"], "deny": ["notes__delete_*"]},
            {"scopes": ["notes:admin"], "allow": ["notes__*"]},
        ]}),
        json!({}),
    );
    let kitchen = as_principal(&mut sim, "kitchen-agent", &["mcp"]);
    let admin = as_principal(&mut sim, "notes-admin", &["mcp", "notes:admin"]);
    let k = sim.call(kitchen, Id::Num(1), "tools/list", json!({})).unwrap();
    assert_eq!(names(&k), ["notes__read_note", "edge__load", "edge__memory"]);
    let a = sim.call(admin, Id::Num(1), "tools/list", json!({})).unwrap();
    assert_eq!(names(&a), ["notes__read_note", "notes__delete_note", "notes__strict_add"]);
    let e = sim.call(kitchen, Id::Num(2), "tools/call", json!({"name": "notes__delete_note"})).unwrap_err();
    assert_eq!(e.code, code::FORBIDDEN);
    assert!(e.message.contains("kitchen-agent") && e.message.contains("notes__delete_note"), "{}", e.message);
    assert_eq!(sim.calls_seen(0), 0, "the denied call never reached the upstream");
    sim.call(kitchen, Id::Num(3), "tools/call", json!({"name": "notes__read_note"})).unwrap();
    sim.call(admin, Id::Num(3), "tools/call", json!({"name": "notes__delete_note"})).unwrap();
    assert_eq!(sim.calls_seen(0), 2);
    // An unauthenticated session is matched by no rule here: nothing holds it to an allow-list.
    let anon = sim.legacy_client(json!({}));
    assert_eq!(names(&sim.call(anon, Id::Num(1), "tools/list", json!({})).unwrap()).len(), 5);
}

#[test]
fn a_burst_over_the_rate_waits_and_another_principal_is_unaffected() {
    let mut sim = sim_with(json!({}), json!({"requests_per_minute": 60, "burst": 3}));
    let a = as_principal(&mut sim, "a", &["mcp"]);
    let a2 = as_principal(&mut sim, "a", &["mcp"]);
    let b = as_principal(&mut sim, "b", &["mcp"]);
    for i in 0..2 {
        sim.call(a, Id::Num(i), "tools/list", json!({})).unwrap();
    }
    sim.call(a2, Id::Num(9), "tools/list", json!({})).unwrap();
    let e = sim.call(a, Id::Num(3), "tools/list", json!({})).unwrap_err();
    assert_eq!(e.code, code::RATE_LIMITED, "two sessions of one principal share its bucket");
    let wait = e.data.as_ref().unwrap()["retryAfterMs"].as_u64().unwrap();
    assert!((1..=1000).contains(&wait), "{wait}");
    sim.call(b, Id::Num(1), "tools/list", json!({})).unwrap();
    sim.advance(wait);
    sim.call(a, Id::Num(4), "tools/list", json!({})).unwrap();
}

#[test]
fn sessions_per_principal_are_bounded() {
    let mut sim = sim_with(json!({}), json!({"max_sessions_per_principal": 2}));
    let init =
        json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}});
    let mut open = Vec::new();
    for i in 0..3 {
        let s = sim.gw.open_session(0);
        sim.gw.set_session_principal(s, Principal::new("a", vec![]));
        open.push((s, sim.call(s, Id::Num(i), "initialize", init.clone())));
    }
    assert!(open[0].1.is_ok() && open[1].1.is_ok());
    assert_eq!(open[2].1.as_ref().unwrap_err().code, code::RATE_LIMITED);
    let b = sim.gw.open_session(0);
    sim.gw.set_session_principal(b, Principal::new("b", vec![]));
    sim.call(b, Id::Num(1), "initialize", init.clone()).unwrap();
    sim.gw.close_session(0, open[0].0);
    let again = sim.gw.open_session(0);
    sim.gw.set_session_principal(again, Principal::new("a", vec![]));
    sim.call(again, Id::Num(1), "initialize", init).unwrap();
}

#[test]
fn calls_in_flight_per_session_are_bounded() {
    let mut sim = sim_with(json!({}), json!({"max_in_flight_per_session": 2}));
    sim.servers[0].hung = true;
    let s = sim.legacy_client(json!({}));
    for i in 0..2 {
        sim.send(s, Message::request(Id::Num(i), "tools/call", json!({"name": "notes__read_note"})));
    }
    let e = sim.call(s, Id::Num(5), "tools/call", json!({"name": "notes__read_note"})).unwrap_err();
    assert_eq!(e.code, code::RATE_LIMITED);
    let other = sim.legacy_client(json!({}));
    sim.call(other, Id::Num(1), "tools/call", json!({"name": "edge__load"})).unwrap();
}

#[test]
fn shapes_the_schema_rules_out_get_invalid_params_at_once_in_both_eras() {
    let mut sim = sim_with(json!({}), json!({}));
    let legacy = sim.legacy_client(json!({}));
    let modern = sim.gw.open_session(0);
    let seen_before: usize = sim.servers.iter().map(|s| s.seen.len()).sum();
    for (n, (m, p)) in [
        ("tools/list", json!({"_meta": 1})),
        ("tools/list", json!({"_meta": "x"})),
        ("tools/list", json!({"_meta": []})),
        ("tools/call", json!({"name": "notes__read_note", "arguments": null})),
        ("tools/call", json!({"name": "notes__read_note", "arguments": "x"})),
        ("resources/read", json!({"uri": 7})),
        ("prompts/get", json!({"name": ["x"]})),
    ]
    .into_iter()
    .enumerate()
    {
        let e = sim.call(legacy, Id::Num(n as i64), m, p.clone()).unwrap_err();
        assert_eq!(e.code, code::INVALID_PARAMS, "legacy {m} {p}");
        let mut mp = p.clone();
        if mp.get("_meta").is_none_or(Value::is_object) {
            mp["_meta"] = modern_meta(json!({}));
        }
        let e = sim.call(modern, Id::Num(100 + n as i64), m, mp.clone()).unwrap_err();
        assert_eq!(e.code, code::INVALID_PARAMS, "modern {m} {mp}");
    }
    let seen_after: usize = sim.servers.iter().map(|s| s.seen.len()).sum();
    assert_eq!(seen_before, seen_after, "nothing reached an upstream");
}

#[cfg(feature = "validate")]
#[test]
fn invalid_arguments_name_the_failing_path_and_never_arrive() {
    let mut sim = sim_with(json!({}), json!({}));
    sim.gw.set_validator(Box::new(mcp_edge_gateway::validate::SchemaValidator::new()));
    let s = sim.legacy_client(json!({}));
    let e = sim
        .call(s, Id::Num(1), "tools/call", json!({"name": "notes__strict_add", "arguments": {"n": "one"}}))
        .unwrap_err();
    assert_eq!(e.code, code::INVALID_PARAMS);
    assert_eq!(e.data.as_ref().unwrap()["path"], "/n");
    let e = sim.call(s, Id::Num(2), "tools/call", json!({"name": "notes__strict_add"})).unwrap_err();
    assert!(e.message.contains("missing properties 'n'"), "{}", e.message);
    assert_eq!(sim.calls_seen(0), 0);
    sim.call(s, Id::Num(3), "tools/call", json!({"name": "notes__strict_add", "arguments": {"n": 1}})).unwrap();
    assert_eq!(sim.calls_seen(0), 1);
}
