//! What the gateway reads back after a restart: the store's records (`Gateway::restore`: cached
//! results, offline-queue entries, known tools) and the HTTP face's saved sessions
//! (`HttpServer::restore`, what a service worker keeps in IndexedDB). A damaged or hostile record is
//! refused or dropped, never a panic, then or later: the restored gateway answers a client's task
//! and list requests, replays its queue to upstreams that come up, and lets time run out.
//!
//! Input: a JSON object `{"wall": ms, "cache": [[key, record]…], "queue": […], "meta": […],
//! "http": state}`; a record is a string (used as it is) or any JSON (its text is used). Seeds are
//! records the engine wrote itself (`ENGINE_DUMP_STORE=dir` on the engine target writes them).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_edge_gateway::http_server::{HttpServer, ServerConfig};
use mcp_edge_gateway::store::{MemoryStore, Table};
use mcp_edge_gateway::{Gateway, GatewayConfig, Id, Message, Output, SessionId, Snapshot, UpstreamId, UpstreamSpec};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

fn rows(v: &Value, k: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = v
        .get(k)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let key = r.get(0)?.as_str()?.to_string();
            let rec = match r.get(1)? {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some((key, rec))
        })
        .collect();
    // A store hands its rows back in key order, each key once.
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

struct World {
    gw: Gateway,
    face: HttpServer,
    now: u64,
    store: MemoryStore,
    /// Per session: the ids it sent, and how often each was answered.
    sent: HashMap<SessionId, HashMap<Id, u32>>,
    up_ids: HashSet<(usize, i64)>,
    tasks: Vec<String>,
}

impl World {
    fn drain(&mut self) {
        for _ in 0..100_000 {
            let Some(o) = self.gw.poll_output() else {
                while self.face.poll_output().is_some() {}
                return;
            };
            match o {
                Output::ToClient { session, related, message } => {
                    if self.face.owns(session) {
                        self.face.deliver(&mut self.gw, self.now, session, related, message);
                        continue;
                    }
                    let sent = self.sent.get_mut(&session).expect("output for a session we opened");
                    if let Message::Response { id, .. } | Message::Error { id: Some(id), .. } = &message {
                        let n =
                            sent.get_mut(id).unwrap_or_else(|| panic!("an answer to {id}, never sent: {message:?}"));
                        *n += 1;
                        assert!(*n == 1, "{id} answered twice");
                    }
                    if let Message::Response { result, .. } = &message {
                        for t in result.get("tasks").and_then(Value::as_array).into_iter().flatten() {
                            if let Some(id) = t.get("taskId").and_then(Value::as_str) {
                                self.tasks.push(id.to_string());
                            }
                        }
                    }
                }
                Output::ToUpstream { upstream, message } => {
                    if let Message::Request { id: Id::Num(g), method, params, .. } = &message {
                        assert!(self.up_ids.insert((upstream.0, *g)), "id {g} used twice on a link");
                        let r = match method.as_str() {
                            "server/discover" => Err(-32601),
                            "initialize" => Ok(json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                                "serverInfo": {"name": "up", "version": "1"}})),
                            "tools/list" => Ok(json!({"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]})),
                            "tools/call" if params.as_ref().and_then(|p| p.get("name")) == Some(&json!("slow")) => {
                                continue
                            }
                            "tools/call" => Ok(json!({"content": [{"type": "text", "text": "ran"}]})),
                            _ => Ok(json!({})),
                        };
                        let reply = match r {
                            Ok(v) => Message::response(Id::Num(*g), v),
                            Err(c) => Message::error(Some(Id::Num(*g)), mcp_edge_gateway::ErrorObject::new(c, "no")),
                        };
                        self.gw.handle_upstream(self.now, upstream, reply, Some(*g));
                    }
                }
                Output::Store { ticket, ops } => {
                    let r = self.store.apply_now(ops);
                    self.gw.store_done(self.now, ticket, r);
                }
                Output::Sample { job, .. } => self.gw.sampling_done(self.now, job, Err("none".into())),
                Output::Log { .. } => {}
            }
        }
        panic!("the engine keeps producing output");
    }

    fn ask(&mut self, s: SessionId, n: &mut i64, method: &str, params: Value) {
        *n += 1;
        self.sent.entry(s).or_default().insert(Id::Num(*n), 0);
        self.gw.handle_client(self.now, s, Message::request(Id::Num(*n), method, params));
        self.drain();
    }

    fn tick(&mut self) {
        for round in 0..8 {
            match self.gw.poll_timeout() {
                Some(t) if t <= self.now => {
                    assert!(round < 7, "a deadline at {t} stays due after handle_timeout at {}", self.now);
                    self.gw.handle_timeout(self.now);
                    self.face.handle_timeout(&mut self.gw, self.now);
                    self.drain();
                }
                _ => return,
            }
        }
    }
}

fn fill(b: &mut [u8]) {
    for (i, x) in b.iter_mut().enumerate() {
        *x = i as u8;
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return };
    let mut snap = Snapshot::default();
    for (t, k) in [(Table::Cache, "cache"), (Table::Queue, "queue"), (Table::Meta, "meta")] {
        snap.set(t, rows(&v, k));
    }
    let mut cfg = GatewayConfig { request_timeout_ms: 2_000, startup_grace_ms: 100, ..Default::default() };
    for name in ["a", "b", "c"] {
        cfg.upstreams.push(UpstreamSpec {
            offline_queue: vec!["*".into()],
            cache_ttl_ms: vec![("*".into(), 60_000)],
            ..UpstreamSpec::named(name)
        });
    }
    let mut gw = Gateway::new(cfg).expect("valid config");
    let wall = v.get("wall").and_then(Value::as_u64).unwrap_or(1_700_000_000_000);
    if gw.restore(0, wall, &snap).is_err() {
        return; // the host refuses to start on a queue it cannot read, and says why
    }
    let mut w = World {
        gw,
        face: HttpServer::new(ServerConfig::new(fill)),
        now: 0,
        store: MemoryStore::default(),
        sent: HashMap::new(),
        up_ids: HashSet::new(),
        tasks: Vec::new(),
    };
    w.drain();
    if let Some(state) = v.get("http") {
        let text = state.as_str().map(str::to_string).unwrap_or_else(|| state.to_string());
        w.face.restore(&mut w.gw, 0, &text);
        w.drain();
        let _ = w.face.save();
    }
    let _ = w.gw.status();
    let _ = w.gw.queue_entries();
    // A client looks at what was restored, before and after the upstreams come back.
    let s = w.gw.open_session(0);
    w.gw.set_session_admin(s);
    w.sent.insert(s, HashMap::new());
    let mut n = 0;
    let init =
        json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "f", "version": "1"}});
    w.ask(s, &mut n, "initialize", init);
    w.ask(s, &mut n, "tasks/list", json!({}));
    for t in w.tasks.clone().iter().take(16) {
        let _ = w.gw.queue_entry(t);
        w.ask(s, &mut n, "tasks/get", json!({"taskId": t}));
        w.ask(s, &mut n, "tasks/result", json!({"taskId": t}));
    }
    w.ask(s, &mut n, "tools/list", json!({}));
    w.ask(s, &mut n, "tools/call", json!({"name": "a__echo", "arguments": {}}));
    w.ask(s, &mut n, "resources/read", json!({"uri": "file:///a.txt"}));
    for u in 0..3 {
        w.gw.upstream_connected(0, UpstreamId(u));
        w.drain();
    }
    for t in w.tasks.clone().iter().take(16) {
        w.ask(s, &mut n, "tasks/cancel", json!({"taskId": t}));
    }
    for _ in 0..64 {
        w.tick();
        // A host's clock never gets near u64::MAX: a deadline years away is "never".
        match w.gw.poll_timeout() {
            Some(t) if t < w.now + 365 * 86_400_000 => w.now = w.now.max(t),
            _ => break,
        }
    }
    let _ = w.gw.status();
});
