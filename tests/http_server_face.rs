//! The core's Streamable HTTP server face on fake time, driving the real engine with fake upstreams:
//! both eras' status codes and header rules, sessions and their expiry, JSON or SSE, event ids,
//! resumption with Last-Event-ID after a cut stream (the call goes on), a restart that keeps the
//! sessions, Origin and CORS. The hosts (axum, the service worker) only move these parts as bytes.
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
mod common;
use common::*;
use mcp_edge_gateway::http_server::{HttpServer, Part, Request, ServerConfig, StreamId, SESSION_IDLE_MS};
use mcp_edge_gateway::protocol;
use serde_json::{json, Value};
use std::collections::HashMap;

fn counter(b: &mut [u8]) {
    use std::sync::atomic::{AtomicU8, Ordering};
    static N: AtomicU8 = AtomicU8::new(1);
    b.fill(N.fetch_add(1, Ordering::Relaxed));
}

struct Face {
    sim: Sim,
    face: HttpServer,
    parts: HashMap<StreamId, Vec<Part>>,
    next: StreamId,
}

/// One response as the client sees it.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    ended: bool,
}

impl Reply {
    fn header(&self, k: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
    /// The SSE events: (id, data).
    fn events(&self) -> Vec<(Option<String>, String)> {
        self.body
            .split("\n\n")
            .filter(|e| !e.trim().is_empty() && !e.starts_with(':'))
            .map(|e| {
                let id = e.lines().find_map(|l| l.strip_prefix("id: ")).map(str::to_string);
                let data: Vec<&str> = e.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim).collect();
                (id, data.join("\n"))
            })
            .collect()
    }
}

impl Face {
    fn new(servers: Vec<(&str, FakeServer)>, tweak: impl FnOnce(&mut ServerConfig)) -> Face {
        let mut cfg = ServerConfig::new(counter);
        cfg.allowed_origins = vec!["https://app.example".into()];
        cfg.max_body_bytes = 10_000;
        tweak(&mut cfg);
        Face { sim: Sim::with(servers), face: HttpServer::new(cfg), parts: HashMap::new(), next: 1 }
    }

    /// Route what the engine has for the face's sessions until nothing moves, collecting parts.
    fn pump(&mut self) {
        loop {
            self.sim.settle();
            let (mine, rest): (Vec<_>, Vec<_>) = self.sim.inbox.drain(..).partition(|(s, _, _)| self.face.owns(*s));
            self.sim.inbox = rest;
            if mine.is_empty() {
                break;
            }
            for (s, related, m) in mine {
                self.face.deliver(&mut self.sim.gw, self.sim.now, s, related, m);
            }
        }
        while let Some((st, p)) = self.face.poll_output() {
            self.parts.entry(st).or_default().push(p);
        }
    }

    fn send(&mut self, method: &str, headers: &[(&str, &str)], body: &str) -> StreamId {
        let st = self.next;
        self.next += 1;
        let headers: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.face.request(
            &mut self.sim.gw,
            self.sim.now,
            st,
            Request { method, headers: &headers, body: body.as_bytes(), principal: None },
        );
        self.pump();
        st
    }

    fn reply(&self, st: StreamId) -> Reply {
        let mut r = Reply { status: 0, headers: vec![], body: String::new(), ended: false };
        for p in self.parts.get(&st).into_iter().flatten() {
            match p {
                Part::Head { status, headers } => (r.status, r.headers) = (*status, headers.clone()),
                Part::Data(d) => r.body.push_str(d),
                Part::End => r.ended = true,
            }
        }
        r
    }

    fn advance(&mut self, ms: u64) {
        self.sim.now += ms;
        if self.face.poll_timeout().is_some_and(|t| t <= self.sim.now) {
            self.face.handle_timeout(&mut self.sim.gw, self.sim.now);
        }
        self.sim.advance(0);
        self.pump();
    }

    fn close(&mut self, st: StreamId) {
        self.face.closed(&mut self.sim.gw, self.sim.now, st);
        self.pump();
    }

    /// A legacy session at `version`: its key.
    fn initialize(&mut self, version: &str) -> String {
        let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": version, "capabilities": {"elicitation": {}}, "clientInfo": {"name": "t", "version": "1"}}});
        let st = self.send("POST", &[ACCEPT], &body.to_string());
        let r = self.reply(st);
        assert_eq!(r.status, 200, "{r:?}");
        let key = r.header("mcp-session-id").expect("a session id").to_string();
        let st =
            self.send("POST", &[("mcp-session-id", &key)], r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!(self.reply(st).status, 202);
        key
    }

    fn post(&mut self, key: &str, body: Value) -> StreamId {
        self.send("POST", &[ACCEPT, ("mcp-session-id", key)], &body.to_string())
    }
}

const ACCEPT: (&str, &str) = ("accept", "application/json, text/event-stream");

fn call(id: i64, name: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": {}}})
}

#[test]
fn legacy_sessions_have_the_status_codes_of_the_spec() {
    let mut f = Face::new(vec![("a", FakeServer::legacy(&["echo"]))], |_| {});
    let key = f.initialize("2025-11-25");
    assert_eq!(key.len(), 32);
    let st = f.post(&key, json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    let r = f.reply(st);
    assert_eq!((r.status, r.header("content-type"), r.ended), (200, Some("application/json"), true));
    assert_eq!(r.json()["result"]["tools"][0]["name"], "a__echo");
    // No session header, an unknown session, a second request with an id still in use.
    let st = f.send("POST", &[ACCEPT], &call(2, "a__echo").to_string());
    assert_eq!(f.reply(st).status, 400);
    let st = f.send("POST", &[ACCEPT, ("mcp-session-id", "nope")], &call(2, "a__echo").to_string());
    assert_eq!(f.reply(st).status, 404);
    let st = f.send("GET", &[("accept", "application/json")], "");
    assert_eq!(f.reply(st).status, 400);
    let st = f.send("GET", &[("accept", "application/json"), ("mcp-session-id", &key)], "");
    assert_eq!(f.reply(st).status, 406, "GET needs Accept: text/event-stream");
    let st = f.send("POST", &[ACCEPT, ("mcp-session-id", &key)], "{not json");
    assert_eq!((f.reply(st).status, f.reply(st).json()["error"]["code"].clone()), (400, json!(-32700)));
    let st = f.send("PUT", &[], "");
    assert_eq!(f.reply(st).status, 405);
    let st = f.send("DELETE", &[("mcp-session-id", &key)], "");
    assert_eq!(f.reply(st).status, 200);
    let st = f.post(&key, call(3, "a__echo"));
    assert_eq!(f.reply(st).status, 404, "a deleted session is gone");
    assert_eq!(f.face.session_count(), 0);
}

#[test]
fn a_failed_initialize_makes_no_session() {
    let mut f = Face::new(vec![("a", FakeServer::legacy(&["echo"]))], |_| {});
    let st = f.send("POST", &[ACCEPT], r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}"#);
    let r = f.reply(st);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.header("mcp-session-id").is_none());
    assert_eq!(f.face.session_count(), 0);
}

#[test]
fn modern_requests_follow_the_header_rules() {
    let mut f = Face::new(vec![("a", FakeServer::legacy(&["echo"]))], |_| {});
    let v = protocol::LATEST_MODERN;
    let mut body = call(1, "a__echo");
    body["params"]["_meta"] = modern_meta(json!({}));
    let b = body.to_string();
    let h = |extra: &[(&'static str, &'static str)]| {
        let mut h = vec![ACCEPT, ("mcp-protocol-version", v)];
        h.extend_from_slice(extra);
        h
    };
    let st = f.send("POST", &h(&[("mcp-method", "tools/call"), ("mcp-name", "a__echo")]), &b);
    let r = f.reply(st);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["id"], 1);
    for (headers, code) in [
        (h(&[("mcp-name", "a__echo")]), -32020),
        (h(&[("mcp-method", "tools/list"), ("mcp-name", "a__echo")]), -32020),
        (h(&[("mcp-method", "tools/call"), ("mcp-name", "other")]), -32020),
    ] {
        let st = f.send("POST", &headers, &b);
        let r = f.reply(st);
        assert_eq!((r.status, r.json()["error"]["code"].clone()), (400, json!(code)), "{headers:?}: {r:?}");
    }
    let st = f.send("POST", &[ACCEPT, ("mcp-protocol-version", "2031-01-01")], &b);
    let r = f.reply(st);
    assert_eq!((r.status, r.json()["error"]["code"].clone()), (400, json!(-32022)));
    assert!(r.json()["error"]["data"]["supported"].as_array().is_some_and(|a| !a.is_empty()));
    let st = f.send("GET", &[("mcp-protocol-version", v)], "");
    assert_eq!((f.reply(st).status, f.reply(st).header("allow")), (405, Some("POST")));
    let st = f.send("DELETE", &[("mcp-protocol-version", v)], "");
    assert_eq!(f.reply(st).status, 405);
    assert!(!f.face.owns(mcp_edge_gateway::SessionId(1_000)), "modern requests leave no session behind");
}

#[test]
fn origins_cors_and_body_limits() {
    let mut f = Face::new(vec![("a", FakeServer::legacy(&["echo"]))], |_| {});
    let st = f.send("POST", &[ACCEPT, ("origin", "https://evil.example")], &call(1, "a__echo").to_string());
    assert_eq!(f.reply(st).status, 403);
    let st = f.send(
        "OPTIONS",
        &[("origin", "https://app.example"), ("access-control-request-headers", "mcp-session-id, mcp-param-region")],
        "",
    );
    let r = f.reply(st);
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("https://app.example"));
    assert_eq!(r.header("access-control-allow-headers"), Some("mcp-session-id, mcp-param-region"));
    let st = f.send("POST", &[ACCEPT, ("origin", "http://localhost:5173")], r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#);
    let r = f.reply(st);
    let exposed = r.header("access-control-expose-headers").unwrap_or_default();
    for h in ["mcp-session-id", "mcp-protocol-version", "www-authenticate", "retry-after"] {
        assert!(exposed.split(", ").any(|x| x == h), "{h} exposed: {exposed}");
    }
    let big =
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{"pad":"{}"}}}}"#, "x".repeat(20_000));
    let st = f.send("POST", &[ACCEPT], &big);
    assert_eq!(f.reply(st).status, 413);
}

#[test]
fn a_reply_becomes_a_stream_with_event_ids_and_a_cut_stream_is_resumed_without_cancelling_the_call() {
    let mut f = Face::new(vec![("a", FakeServer::legacy(&["ask"]))], |c| c.retry_ms = 500);
    let key = f.initialize("2025-11-25");
    // `ask` asks the client first: the reply becomes an event stream, primed with an id and retry.
    let st = f.post(&key, call(7, "a__ask"));
    let r = f.reply(st);
    assert_eq!((r.status, r.header("content-type")), (200, Some("text/event-stream")));
    assert!(r.body.starts_with("id: 1-0\nretry: 500\ndata:\n\n"), "{:?}", r.body);
    let ev = r.events();
    assert_eq!(ev[1].0.as_deref(), Some("1-1"));
    let ask: Value = serde_json::from_str(&ev[1].1).unwrap();
    assert_eq!(ask["method"], "elicitation/create");
    // The connection is cut; the client answers; the call goes on and its answer is kept.
    f.close(st);
    let answer = json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"action": "accept", "content": {"name": "Ada"}}});
    let a = f.post(&key, answer);
    assert_eq!(f.reply(a).status, 202);
    assert!(
        !f.sim.servers[0].seen.iter().any(|m| m.method() == Some("notifications/cancelled")),
        "a cut stream does not cancel its call"
    );
    // Resumed after the last event it saw: the rest of the stream, then it ends.
    let g = f.send("GET", &[("accept", "text/event-stream"), ("mcp-session-id", &key), ("last-event-id", "1-1")], "");
    let r = f.reply(g);
    assert_eq!(r.status, 200);
    let ev = r.events();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].0.as_deref(), Some("1-2"));
    let fin: Value = serde_json::from_str(&ev[0].1).unwrap();
    assert_eq!(fin["id"], 7);
    assert!(fin["result"].is_object(), "{fin}");
    assert!(r.ended);
    // Resuming from the priming event replays everything.
    let g = f.send("GET", &[("accept", "text/event-stream"), ("mcp-session-id", &key), ("last-event-id", "1-0")], "");
    assert_eq!(f.reply(g).events().iter().map(|e| e.0.clone().unwrap()).collect::<Vec<_>>(), ["1-1", "1-2"]);
}

#[test]
fn older_versions_get_no_priming_event() {
    let mut f = Face::new(vec![("a", FakeServer::legacy(&["ask"]))], |_| {});
    let key = f.initialize("2025-06-18");
    let st = f.post(&key, call(1, "a__ask"));
    let ev = f.reply(st).events();
    assert!(ev.iter().all(|(_, d)| !d.is_empty()), "no empty data for clients that predate it: {ev:?}");
}

#[test]
fn a_slow_answer_turns_into_a_stream_and_keeps_it_alive() {
    let mut f = Face::new(vec![("a", FakeServer::legacy(&["slow"]))], |c| c.sse_after_ms = 1000);
    let key = f.initialize("2025-11-25");
    let st = f.post(&key, call(1, "a__slow"));
    assert_eq!(f.reply(st).status, 0, "nothing yet");
    f.advance(1000);
    let r = f.reply(st);
    assert_eq!((r.status, r.header("content-type")), (200, Some("text/event-stream")));
    assert!(r.body.starts_with("id: 1-0\n"), "{:?}", r.body);
    f.advance(15_000);
    assert!(f.reply(st).body.contains(": keep-alive\n\n"));
    assert!(!f.reply(st).ended);
}

#[test]
fn the_hosts_stream_limit_ends_streams_that_clients_resume() {
    let mut f = Face::new(vec![("a", FakeServer::legacy(&["echo"]))], |c| c.max_stream_ms = Some(60_000));
    let key = f.initialize("2025-11-25");
    let g = f.send("GET", &[("accept", "text/event-stream"), ("mcp-session-id", &key)], "");
    let r = f.reply(g);
    assert!(r.body.starts_with("id: 0-0\nretry: 1000\ndata:\n\n"), "{:?}", r.body);
    f.advance(60_000);
    assert!(f.reply(g).ended, "ended at the limit");
    // While no stream is open, a list change is kept; the resumed stream gets it.
    f.sim.disconnect(0);
    f.pump();
    let g2 = f.send("GET", &[("accept", "text/event-stream"), ("mcp-session-id", &key), ("last-event-id", "0-0")], "");
    let ev = f.reply(g2).events();
    assert!(ev.iter().any(|(id, d)| id.as_deref() == Some("0-1") && d.contains("list_changed")), "{ev:?}");
}

#[test]
fn idle_sessions_expire_and_open_streams_keep_them() {
    let mut f = Face::new(vec![("a", FakeServer::legacy(&["echo"]))], |_| {});
    let idle = f.initialize("2025-11-25");
    let busy = f.initialize("2025-11-25");
    let g = f.send("GET", &[("accept", "text/event-stream"), ("mcp-session-id", &busy)], "");
    f.advance(SESSION_IDLE_MS + 1);
    let st = f.post(&idle, call(1, "a__echo"));
    assert_eq!(f.reply(st).status, 404, "expired");
    let st = f.post(&busy, call(1, "a__echo"));
    assert_eq!(f.reply(st).status, 200, "a session with an open stream stays");
    assert!(!f.reply(g).ended);
}

#[test]
fn sessions_survive_a_restart_and_a_call_that_was_running_is_reported_in_doubt() {
    let mut f = Face::new(vec![("a", FakeServer::legacy(&["slow", "echo"]))], |_| {});
    let key = f.initialize("2025-11-25");
    let st = f.post(&key, call(5, "a__slow"));
    f.advance(1000);
    assert!(f.reply(st).body.starts_with("id: 1-0\n"));
    let state = f.face.save().expect("something to keep");
    assert!(f.face.save().is_none(), "nothing new since");
    // A new life: a new engine and face, restored.
    let mut g = Face::new(vec![("a", FakeServer::legacy(&["slow", "echo"]))], |_| {});
    assert_eq!(g.face.restore(&mut g.sim.gw, g.sim.now, &state), 1);
    g.pump();
    let r = g.send("GET", &[("accept", "text/event-stream"), ("mcp-session-id", &key), ("last-event-id", "1-0")], "");
    let ev = g.reply(r).events();
    let fin: Value = serde_json::from_str(&ev.last().unwrap().1).unwrap();
    assert_eq!(fin["id"], 5);
    assert_eq!(fin["error"]["data"]["inDoubt"], true, "{fin}");
    assert!(g.reply(r).ended);
    // The session works as before: its capabilities came back with its own initialize.
    let st = g.post(&key, call(6, "a__echo"));
    assert_eq!(g.reply(st).json()["id"], 6);
    assert_eq!(g.sim.calls_seen(0), 1, "the slow call was not run again");
    assert_eq!(g.face.restore(&mut g.sim.gw, 0, "not json"), 0, "a state that cannot be read is ignored");
}

#[test]
fn a_modern_stream_closed_by_its_client_cancels_the_call() {
    let mut f = Face::new(vec![("a", FakeServer::legacy(&["slow"]))], |_| {});
    let mut body = call(1, "a__slow");
    body["params"]["_meta"] = modern_meta(json!({}));
    let st = f.send(
        "POST",
        &[
            ACCEPT,
            ("mcp-protocol-version", protocol::LATEST_MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", "a__slow"),
        ],
        &body.to_string(),
    );
    f.advance(1000);
    let r = f.reply(st);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert!(!r.body.contains("id:"), "no event ids in the modern era: {:?}", r.body);
    f.close(st);
    assert!(f.sim.servers[0].seen.iter().any(|m| m.method() == Some("notifications/cancelled")));
}

#[test]
fn a_long_session_keeps_a_bounded_store() {
    let mut f = Face::new(vec![("a", FakeServer::legacy(&["ask"]))], |c| c.event_store = 4);
    let key = f.initialize("2025-11-25");
    for i in 0..30 {
        let st = f.post(&key, call(100 + i, "a__ask"));
        let ev = f.reply(st).events();
        let ask: Value = serde_json::from_str(&ev.last().unwrap().1).unwrap();
        let answer = json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"action": "accept", "content": {}}});
        f.post(&key, answer);
        assert!(f.reply(st).ended, "call {i} answered on its stream");
    }
    let state: Value = serde_json::from_str(&f.face.save().unwrap()).unwrap();
    let s = &state["sessions"][0];
    assert_eq!(s["events"].as_array().unwrap().len(), 4);
    assert!(s["seqs"].as_array().unwrap().len() <= 9, "{}", s["seqs"]);
    assert!(s["finished"].as_array().unwrap().len() <= 4);
}

#[test]
fn shutting_down_ends_every_stream_and_refuses_replies_not_begun() {
    let mut f = Face::new(vec![("a", FakeServer::legacy(&["slow"]))], |_| {});
    let key = f.initialize("2025-11-25");
    let g = f.send("GET", &[("accept", "text/event-stream"), ("mcp-session-id", &key)], "");
    let pending = f.post(&key, call(1, "a__slow"));
    f.face.shutdown();
    f.pump();
    assert!(f.reply(g).ended, "the GET stream ends");
    let r = f.reply(pending);
    assert_eq!((r.status, r.ended), (503, true), "{r:?}");
    assert_eq!(r.json()["id"], 1);
}
