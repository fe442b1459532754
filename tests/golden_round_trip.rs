//! Golden wire fixtures: what goes in comes out, unknown fields, `_meta`, vendor methods and unknown
//! content types included. `UPDATE_GOLDEN=1 cargo test --test golden_round_trip` rewrites the
//! expected forwarding fixtures after an intended change (review the diff).
// The fixtures are files: wasm32-unknown-unknown has no file system, so these run natively only.
#![cfg(not(target_family = "wasm"))]
mod common;
use common::*;
use mcp_edge_gateway::{Id, Message};
use serde_json::{json, Value};
use std::path::Path;

#[test]
fn every_fixture_round_trips_unchanged() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/messages");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let original: Value = serde_json::from_str(&text).unwrap();
        let msg = Message::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(msg.to_value(), original, "{}", path.display());
        // Member order is kept too, so the bytes match after normalising whitespace.
        assert_eq!(msg.to_json(), original.to_string(), "{}", path.display());
        n += 1;
    }
    assert!(n >= 5);
}

/// A tools/call with unknown members everywhere, forwarded through the engine and answered.
#[test]
fn forwarding_changes_only_what_the_gateway_owns() {
    let mut sim = Sim::with(vec![("a", FakeServer::legacy(&["echo"]))]);
    let s = sim.legacy_client(json!({}));
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/messages/request_with_unknowns.json");
    let mut req: Value = serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    req["params"]["name"] = json!("a__echo");
    sim.send(s, Message::from_value(req.clone()).unwrap());
    let upstream_saw = sim.servers[0].seen.iter().rev().find(|m| m.method() == Some("tools/call")).unwrap().to_value();
    let client_got: Vec<Value> = sim.take(s).iter().map(Message::to_value).collect();
    let actual = json!({ "client_sent": req, "upstream_saw": upstream_saw, "client_got": client_got });
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/forward_tools_call.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
    }
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("run with UPDATE_GOLDEN=1 once")).unwrap();
    assert_eq!(actual, expected, "forwarding changed; if intended, re-run with UPDATE_GOLDEN=1 and review");
    // The invariants behind the fixture, spelled out.
    let up = &actual["upstream_saw"]["params"];
    assert_eq!(up["name"], "echo");
    assert_eq!(up["x-extra"], json!({"kept": true}));
    // The same trace, with the gateway's own span as the parent (src/trace.rs).
    let (sent_tp, up_tp) =
        (req["params"]["_meta"]["traceparent"].as_str().unwrap(), up["_meta"]["traceparent"].as_str().unwrap());
    assert_eq!(sent_tp[..36], up_tp[..36]);
    assert_ne!(sent_tp, up_tp);
    assert_eq!(up["arguments"], req["params"]["arguments"]);
    assert_eq!(actual["upstream_saw"]["x-envelope"], Value::Null, "envelope extras are per hop");
    let last = actual["client_got"].as_array().unwrap().last().unwrap();
    assert_eq!(last["id"], "req-ü-1");
    assert_eq!(last["result"]["x-unknown"], json!({"kept": true}));
    let _ = Id::Num(0);
}

#[test]
fn malformed_envelopes_get_the_right_codes() {
    let cases: &[(&[u8], i64)] = &[
        (b"{", -32700),
        (b"\xff\xfe{}", -32700),
        (b"[]", -32600),
        (b"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", -32600),
        (b"{}", -32600),
        (b"null", -32600),
        (b"\"str\"", -32600),
        (b"{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}", -32600),
        (b"{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"ping\"}", -32600),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}", -32600),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":5}", -32600),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":\"s\"}", -32600),
        (b"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"x\"}", -32600),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"error\":5}", -32600),
    ];
    for (bytes, code) in cases {
        let e = Message::parse(bytes).expect_err(&String::from_utf8_lossy(bytes));
        assert_eq!(e.to_error().code, *code, "{}", String::from_utf8_lossy(bytes));
    }
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    assert_eq!(Message::parse(deep.as_bytes()).unwrap_err().to_error().code, -32700);
}
