//! The Streamable HTTP server face (`http_server::HttpServer`) in front of the real engine, fed
//! arbitrary requests: POST, GET, DELETE and others, with any `Mcp-Session-Id`,
//! `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` (plain or in the `=?base64?…?=` sentinel),
//! `Accept`, `Origin` and `Last-Event-ID`, and bodies that are real requests of both eras, garbage or
//! anything in between; exchanges cut by the client; time passing. Behind it one upstream answers
//! like a plain legacy server (and never answers `slow`).
//!
//! Checked: no panic; every exchange gets exactly one head first, then data, then at most one end,
//! and nothing after its end; statuses are HTTP statuses; a finished `application/json` body is
//! JSON; after time runs out every exchange the client did not cut has ended, except GET streams
//! (they stay open while the session lives).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mcp_edge_gateway::http_server::{HttpServer, Part, Request, ServerConfig, StreamId};
use mcp_edge_gateway::protocol::{self, meta};
use mcp_edge_gateway::{Gateway, GatewayConfig, Id, Message, Output, UpstreamId, UpstreamSpec};
use serde_json::{json, Value};
use std::collections::HashMap;

#[derive(Arbitrary, Debug)]
enum Act {
    Post { session: Pick, version: Pick, body: Body, name: NameHeader, method_header: bool, accept: u8, origin: u8 },
    Get { session: Pick, last_event: Option<(u8, u8)>, accept: u8 },
    Delete { session: Pick },
    Other { method: String, session: Pick },
    Raw { method: u8, headers: Vec<(String, String)>, body: Vec<u8> },
    Cut(u8),
    Advance(u16),
    Timeout,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Pick {
    None,
    Known(u8),
    Junk,
}

#[derive(Arbitrary, Debug)]
enum Body {
    Initialize,
    Initialized,
    ToolsList,
    Call { tool: u8, progress: bool },
    Modern { method: u8, tool: u8 },
    Response(u8),
    Json(String),
    Bytes(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum NameHeader {
    Absent,
    Same,
    Base64,
    Other(String),
}

const TOOLS: [&str; 3] = ["echo", "slow", "missing"];

#[derive(Default)]
struct Exchange {
    head: Option<(u16, Vec<(String, String)>)>,
    body: String,
    ended: bool,
    cut: bool,
    /// A GET stream or a `subscriptions/listen`: open for as long as the client wants.
    lasts: bool,
}

struct World {
    gw: Gateway,
    face: HttpServer,
    now: u64,
    next: StreamId,
    ex: HashMap<StreamId, Exchange>,
    sessions: Vec<String>,
    next_id: i64,
}

fn fill(b: &mut [u8]) {
    use std::sync::atomic::{AtomicU8, Ordering};
    static N: AtomicU8 = AtomicU8::new(1);
    b.fill(N.fetch_add(1, Ordering::Relaxed));
}

impl World {
    fn pump(&mut self) {
        for _ in 0..100_000 {
            if let Some(o) = self.gw.poll_output() {
                match o {
                    Output::ToClient { session, related, message } => {
                        if self.face.owns(session) {
                            self.face.deliver(&mut self.gw, self.now, session, related, message);
                        }
                    }
                    Output::ToUpstream { upstream, message: Message::Request { id, method, params, .. } } => {
                        self.upstream(upstream, id, &method, params)
                    }
                    Output::Store { ticket, .. } => self.gw.store_done(self.now, ticket, Ok(())),
                    Output::Sample { job, .. } => self.gw.sampling_done(self.now, job, Err("none".into())),
                    _ => {}
                }
                continue;
            }
            let Some((st, part)) = self.face.poll_output() else { return };
            let e = self.ex.get_mut(&st).unwrap_or_else(|| panic!("a part for exchange {st}, never opened: {part:?}"));
            assert!(!e.ended, "exchange {st}: {part:?} after its end");
            match part {
                Part::Head { status, headers } => {
                    assert!(e.head.is_none(), "exchange {st}: a second head");
                    assert!((100..600).contains(&status), "exchange {st}: status {status}");
                    if let Some((_, v)) = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("mcp-session-id")) {
                        if !self.sessions.contains(v) {
                            self.sessions.push(v.clone());
                        }
                    }
                    e.head = Some((status, headers));
                }
                Part::Data(d) => {
                    assert!(e.head.is_some(), "exchange {st}: data before the head");
                    if e.body.len() < 1 << 20 {
                        e.body.push_str(&d);
                    }
                }
                Part::End => {
                    assert!(e.head.is_some(), "exchange {st}: the end before the head");
                    e.ended = true;
                    let json = e.head.as_ref().is_some_and(|(_, h)| {
                        h.iter()
                            .any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v.starts_with("application/json"))
                    });
                    if json && !e.body.is_empty() {
                        assert!(
                            serde_json::from_str::<Value>(&e.body).is_ok(),
                            "exchange {st}: JSON body {:?}",
                            e.body
                        );
                    }
                }
            }
        }
        panic!("the face or the engine keeps producing output");
    }

    fn upstream(&mut self, u: UpstreamId, id: Id, method: &str, params: Option<Value>) {
        let name = params.as_ref().and_then(|p| p.get("name")).and_then(Value::as_str).unwrap_or_default();
        let r = match method {
            "server/discover" => None,
            "initialize" => Some(json!({"protocolVersion": "2025-11-25",
                "capabilities": {"tools": {"listChanged": true}}, "serverInfo": {"name": "up", "version": "1"}})),
            "tools/list" => Some(json!({"tools": [{"name": "echo", "inputSchema": {"type": "object"}},
                {"name": "slow", "inputSchema": {"type": "object"}}]})),
            "tools/call" if name == "slow" => return,
            "tools/call" => {
                if let Some(t) = params.as_ref().and_then(|p| p.pointer("/_meta/progressToken")) {
                    let n = Message::notification(
                        "notifications/progress",
                        Some(json!({"progressToken": t, "progress": 1})),
                    );
                    self.gw.handle_upstream(self.now, u, n, None);
                }
                Some(json!({"content": [{"type": "text", "text": "echo"}]}))
            }
            _ => Some(json!({})),
        };
        let m = match r {
            Some(v) => Message::response(id, v),
            None => Message::error(Some(id), mcp_edge_gateway::ErrorObject::new(-32601, "Method not found")),
        };
        self.gw.handle_upstream(self.now, u, m, None);
    }

    fn session(&self, p: Pick) -> Option<String> {
        match p {
            Pick::None => None,
            Pick::Known(i) if !self.sessions.is_empty() => {
                Some(self.sessions[i as usize % self.sessions.len()].clone())
            }
            _ => Some("0123456789abcdef0123456789abcdef".into()),
        }
    }

    fn send(&mut self, method: &str, headers: Vec<(String, String)>, body: &[u8]) {
        let st = self.next;
        self.next += 1;
        let lasts = method.eq_ignore_ascii_case("GET")
            || Message::parse(body).is_ok_and(|m| m.method() == Some("subscriptions/listen"));
        self.ex.insert(st, Exchange { lasts, ..Default::default() });
        self.face.request(&mut self.gw, self.now, st, Request { method, headers: &headers, body, principal: None });
        self.pump();
    }

    fn body(&mut self, b: &Body) -> (Vec<u8>, Option<(String, String)>) {
        self.next_id += 1;
        let id = self.next_id;
        let m = |method: &str, params: Value| Message::request(Id::Num(id), method, params).to_json().into_bytes();
        match b {
            Body::Initialize => (
                m(
                    "initialize",
                    json!({"protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "f", "version": "1"}}),
                ),
                None,
            ),
            Body::Initialized => {
                (Message::notification("notifications/initialized", None).to_json().into_bytes(), None)
            }
            Body::ToolsList => (m("tools/list", json!({})), Some(("tools/list".into(), String::new()))),
            Body::Call { tool, progress } => {
                let name = format!("a__{}", TOOLS[*tool as usize % 3]);
                let mut p = json!({"name": name, "arguments": {"x": "héllo"}});
                if *progress {
                    p["_meta"] = json!({"progressToken": id});
                }
                (m("tools/call", p), Some(("tools/call".into(), name)))
            }
            Body::Modern { method, tool } => {
                let name = format!("a__{}", TOOLS[*tool as usize % 3]);
                let meta = json!({meta::PROTOCOL_VERSION: protocol::LATEST_MODERN, meta::CLIENT_CAPABILITIES: {},
                    meta::CLIENT_INFO: {"name": "m", "version": "1"}});
                let (method, p) = match method % 4 {
                    0 => ("server/discover", json!({"_meta": meta})),
                    1 => ("tools/list", json!({"_meta": meta})),
                    2 => ("tools/call", json!({"name": name, "arguments": {}, "_meta": meta})),
                    _ => ("subscriptions/listen", json!({"notifications": {"toolsListChanged": true}, "_meta": meta})),
                };
                (m(method, p), Some((method.to_string(), name)))
            }
            Body::Response(n) => (Message::response(Id::Num(i64::from(*n)), json!({})).to_json().into_bytes(), None),
            Body::Json(s) => (s.clone().into_bytes(), None),
            Body::Bytes(b) => (b.clone(), None),
        }
    }

    fn act(&mut self, a: Act) {
        let accept = |a: u8| match a % 4 {
            0 => Some("application/json, text/event-stream"),
            1 => Some("text/event-stream"),
            2 => Some("application/json"),
            _ => None,
        };
        match a {
            Act::Post { session, version, body, name, method_header, accept: acc, origin } => {
                let (bytes, route) = self.body(&body);
                let mut h = vec![("content-type".to_string(), "application/json".to_string())];
                if let Some(a) = accept(acc) {
                    h.push(("accept".into(), a.into()));
                }
                if let Some(s) = self.session(session) {
                    h.push(("mcp-session-id".into(), s));
                }
                let modern = matches!(body, Body::Modern { .. });
                match (version, modern) {
                    (Pick::None, false) => {}
                    (Pick::Junk, _) => h.push(("mcp-protocol-version".into(), "1999-01-01".into())),
                    (_, true) => h.push(("mcp-protocol-version".into(), protocol::LATEST_MODERN.into())),
                    (Pick::Known(i), false) => {
                        let v = protocol::LEGACY_VERSIONS[i as usize % protocol::LEGACY_VERSIONS.len()];
                        h.push(("mcp-protocol-version".into(), v.into()));
                    }
                }
                if let Some((method, target)) = route {
                    if method_header || modern {
                        h.push(("mcp-method".into(), method));
                    }
                    match name {
                        NameHeader::Absent => {}
                        NameHeader::Same => h.push(("mcp-name".into(), protocol::header_value(&target))),
                        NameHeader::Base64 => h.push((
                            "mcp-name".into(),
                            format!("=?base64?{}?=", mcp_edge_gateway::cursor::base64url_encode(target.as_bytes())),
                        )),
                        NameHeader::Other(s) => h.push(("mcp-name".into(), s)),
                    }
                }
                match origin % 4 {
                    1 => h.push(("origin".into(), "http://127.0.0.1:8787".into())),
                    2 => h.push(("origin".into(), "https://evil.example".into())),
                    3 => h.push(("origin".into(), "https://app.example".into())),
                    _ => {}
                }
                self.send("POST", h, &bytes);
            }
            Act::Get { session, last_event, accept: acc } => {
                let mut h = Vec::new();
                if let Some(a) = accept(acc) {
                    h.push(("accept".into(), a.into()));
                }
                if let Some(s) = self.session(session) {
                    h.push(("mcp-session-id".into(), s));
                }
                if let Some((n, s)) = last_event {
                    h.push(("last-event-id".into(), format!("{n}-{s}")));
                }
                self.send("GET", h, b"");
            }
            Act::Delete { session } => {
                let h = self.session(session).map(|s| vec![("mcp-session-id".to_string(), s)]).unwrap_or_default();
                self.send("DELETE", h, b"");
            }
            Act::Other { method, session } => {
                let h = self.session(session).map(|s| vec![("mcp-session-id".to_string(), s)]).unwrap_or_default();
                self.send(&method, h, b"");
            }
            Act::Raw { method, headers, body } => {
                let m = ["POST", "GET", "DELETE", "OPTIONS", "PUT"][method as usize % 5];
                self.send(m, headers.into_iter().take(16).collect(), &body);
            }
            Act::Cut(i) => {
                let open: Vec<StreamId> = self.ex.iter().filter(|(_, e)| !e.ended && !e.cut).map(|(k, _)| *k).collect();
                if let Some(&st) = open.get(i as usize % open.len().max(1)) {
                    self.ex.get_mut(&st).expect("listed").cut = true;
                    self.face.closed(&mut self.gw, self.now, st);
                    self.pump();
                }
            }
            Act::Advance(ms) => {
                self.now += u64::from(ms) * 10;
                self.timeouts();
            }
            Act::Timeout => {
                self.gw.handle_timeout(self.now);
                self.face.handle_timeout(&mut self.gw, self.now);
                self.pump();
            }
        }
    }

    fn timeouts(&mut self) {
        for _ in 0..8 {
            let due = |t: Option<u64>| t.is_some_and(|t| t <= self.now);
            if !due(self.gw.poll_timeout()) && !due(self.face.poll_timeout()) {
                return;
            }
            self.gw.handle_timeout(self.now);
            self.face.handle_timeout(&mut self.gw, self.now);
            self.pump();
        }
    }
}

fuzz_target!(|acts: Vec<Act>| {
    let cfg = GatewayConfig {
        upstreams: vec![UpstreamSpec::named("a")],
        request_timeout_ms: 5_000,
        startup_grace_ms: 0,
        ..Default::default()
    };
    let mut scfg = ServerConfig::new(fill);
    scfg.allowed_origins = vec!["https://app.example".into()];
    scfg.max_body_bytes = 2_000;
    scfg.max_stream_ms = Some(30_000);
    let mut w = World {
        gw: Gateway::new(cfg).expect("valid config"),
        face: HttpServer::new(scfg),
        now: 0,
        next: 1,
        ex: HashMap::new(),
        sessions: Vec::new(),
        next_id: 0,
    };
    w.gw.upstream_connected(0, UpstreamId(0));
    w.pump();
    for a in acts.into_iter().take(200) {
        w.act(a);
    }
    let _ = w.face.save();
    // Time runs out: every call is answered or timed out, so every exchange but GET streams ends.
    for _ in 0..64 {
        let next = [w.gw.poll_timeout(), w.face.poll_timeout()].into_iter().flatten().min();
        match next {
            Some(t) if t < w.now + 86_400_000 => {
                w.now = w.now.max(t);
                w.timeouts();
            }
            _ => break,
        }
    }
    if std::env::var_os("HTTP_TRACE").is_some() {
        let statuses: Vec<u16> = w.ex.values().filter_map(|e| e.head.as_ref().map(|h| h.0)).collect();
        eprintln!("sessions {}, statuses {statuses:?}", w.sessions.len());
    }
    for (st, e) in &w.ex {
        assert!(e.ended || e.cut || e.lasts, "exchange {st} never ended: {:?} {:?}", e.head, e.body);
    }
});
