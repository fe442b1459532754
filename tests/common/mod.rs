//! Deterministic simulation harness: the engine with fake time and scripted fake peers, no sockets.
#![allow(dead_code)]

use mcp_edge_gateway::protocol::{self, meta};
use mcp_edge_gateway::{Era, Gateway, GatewayConfig, Id, Message, Output, SessionId, UpstreamId, UpstreamSpec};
use serde_json::{json, Value};
use std::collections::VecDeque;

/// A scripted MCP server. Legacy servers answer `initialize` and refuse `server/discover`; modern
/// ones answer `server/discover`. Tools `echo` (returns its args), `ask` (legacy: sends an
/// elicitation request first; modern: answers `input_required`), `slow` (never answers).
pub struct FakeServer {
    pub era: Era,
    pub tools: Vec<String>,
    pub prompts: Vec<String>,
    pub resources: Vec<String>,
    pub page_size: usize,
    /// Every message the server received, in order.
    pub seen: Vec<Message>,
    /// Whether the server answers at all (a hung server does not).
    pub answers_discover: bool,
    /// Accepts every message and answers none (a hanging server).
    pub hung: bool,
    /// Answers every tools/call with a server-side error (-32603).
    pub failing: bool,
    next_id: i64,
    /// Legacy `ask`: our elicitation request id → the tools/call id waiting for it.
    waiting: Vec<(i64, Id)>,
}

impl FakeServer {
    pub fn legacy(tools: &[&str]) -> Self {
        FakeServer {
            era: Era::Legacy,
            tools: tools.iter().map(|s| s.to_string()).collect(),
            prompts: vec![],
            resources: vec![],
            page_size: 100,
            seen: vec![],
            answers_discover: true,
            hung: false,
            failing: false,
            next_id: 1000,
            waiting: vec![],
        }
    }

    pub fn modern(tools: &[&str]) -> Self {
        FakeServer { era: Era::Modern, ..FakeServer::legacy(tools) }
    }

    fn page(&self, items: &[Value], params: &Option<Value>, field: &str) -> Value {
        let start: usize = params
            .as_ref()
            .and_then(|p| p.get("cursor"))
            .and_then(Value::as_str)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let end = (start + self.page_size).min(items.len());
        let mut r = json!({ field: items[start..end].to_vec() });
        if end < items.len() {
            r["nextCursor"] = json!(end.to_string());
        }
        if self.era == Era::Modern {
            r["resultType"] = json!("complete");
            r["ttlMs"] = json!(1000);
            r["cacheScope"] = json!("public");
        }
        r
    }

    /// React to one message; returns what the server sends back.
    pub fn on(&mut self, m: Message) -> Vec<Message> {
        self.seen.push(m.clone());
        if self.hung {
            return vec![];
        }
        match m {
            Message::Request { id, method, params, .. } => self.request(id, &method, params),
            Message::Response { id: Id::Num(n), result, .. } => {
                // The answer to our elicitation: finish the waiting call with it.
                let Some(pos) = self.waiting.iter().position(|(x, _)| *x == n) else { return vec![] };
                let (_, call) = self.waiting.remove(pos);
                vec![Message::response(
                    call,
                    json!({"content": [{"type": "text", "text": format!("answer: {result}")}]}),
                )]
            }
            Message::Error { id: Some(Id::Num(n)), error, .. } => {
                // Our elicitation was refused: the waiting call fails as a tool error.
                let Some(pos) = self.waiting.iter().position(|(x, _)| *x == n) else { return vec![] };
                let (_, call) = self.waiting.remove(pos);
                vec![Message::response(
                    call,
                    json!({"content": [{"type": "text", "text": error.message}], "isError": true}),
                )]
            }
            _ => vec![],
        }
    }

    fn request(&mut self, id: Id, method: &str, params: Option<Value>) -> Vec<Message> {
        let err =
            |c: i64, msg: &str| vec![Message::error(Some(id.clone()), mcp_edge_gateway::ErrorObject::new(c, msg))];
        if self.era == Era::Modern
            && method != "server/discover"
            && protocol::request_version(params.as_ref()).is_none()
        {
            return err(-32602, "missing _meta protocolVersion");
        }
        let caps = json!({"tools": {"listChanged": true}, "prompts": {}, "resources": {"subscribe": true}});
        match (self.era, method) {
            (Era::Legacy, "server/discover") => {
                if self.answers_discover {
                    err(-32601, "Method not found")
                } else {
                    vec![]
                }
            }
            (Era::Modern, "server/discover") => vec![Message::response(
                id,
                json!({"resultType": "complete", "supportedVersions": ["2026-07-28"], "capabilities": caps,
                       "ttlMs": 0, "cacheScope": "public", "_meta": {meta::SERVER_INFO: {"name": "fake", "version": "1"}}}),
            )],
            (Era::Legacy, "initialize") => vec![Message::response(
                id,
                json!({"protocolVersion": "2025-11-25", "capabilities": caps, "serverInfo": {"name": "fake", "version": "1"}}),
            )],
            (Era::Modern, "initialize") => err(-32601, "Method not found"),
            (_, "tools/list") => {
                let items: Vec<Value> = self
                    .tools
                    .iter()
                    .map(|t| {
                        let mut tool = json!({"name": t, "inputSchema": {"type": "object"}, "x-vendor": 1});
                        // Tools named idem* say repeating them is harmless.
                        if t.starts_with("idem") {
                            tool["annotations"] = json!({"idempotentHint": true});
                        }
                        // Tools named strict* take exactly one integer `n`.
                        if t.starts_with("strict") {
                            tool["inputSchema"] = json!({"type": "object", "properties": {"n": {"type": "integer"}},
                                "required": ["n"], "additionalProperties": false});
                        }
                        // Tools named read* only read.
                        if t.starts_with("read") {
                            tool["annotations"] = json!({"readOnlyHint": true});
                        }
                        tool
                    })
                    .collect();
                vec![Message::response(id, self.page(&items, &params, "tools"))]
            }
            (_, "prompts/list") => {
                let items: Vec<Value> = self.prompts.iter().map(|t| json!({"name": t})).collect();
                vec![Message::response(id, self.page(&items, &params, "prompts"))]
            }
            (_, "resources/list") => {
                let items: Vec<Value> = self.resources.iter().map(|t| json!({"uri": t, "name": t})).collect();
                vec![Message::response(id, self.page(&items, &params, "resources"))]
            }
            (_, "resources/templates/list") => {
                vec![Message::response(id, self.page(&[], &params, "resourceTemplates"))]
            }
            (_, "resources/read") => {
                let uri = params.as_ref().and_then(|p| p.get("uri")).cloned().unwrap_or_default();
                let mut r = json!({"contents": [{"uri": uri, "text": "content"}]});
                if uri.as_str().is_some_and(|u| u.starts_with("private:")) {
                    r["cacheScope"] = json!("private");
                }
                vec![Message::response(id, r)]
            }
            (_, "tools/call") => {
                let p = params.unwrap_or_default();
                let name = p["name"].as_str().unwrap_or_default().to_string();
                if !self.tools.contains(&name) {
                    return err(-32602, &format!("Unknown tool: {name}"));
                }
                if self.failing {
                    return err(-32603, "internal error");
                }
                match name.as_str() {
                    "slow" | "idem_slow" => vec![],
                    "ask" if self.era == Era::Legacy => {
                        let rid = self.next_id;
                        self.next_id += 1;
                        self.waiting.push((rid, id));
                        vec![Message::request(
                            Id::Num(rid),
                            "elicitation/create",
                            json!({"message": "Your name?", "requestedSchema": {"type": "object"}}),
                        )]
                    }
                    "sample" if self.era == Era::Legacy => {
                        let rid = self.next_id;
                        self.next_id += 1;
                        self.waiting.push((rid, id));
                        // `"image": true` in the arguments asks about a picture instead of in words.
                        let content = if p.pointer("/arguments/image") == Some(&json!(true)) {
                            json!({"type": "image", "data": "AAAA", "mimeType": "image/png"})
                        } else {
                            json!({"type": "text", "text": "Say hi"})
                        };
                        vec![Message::request(
                            Id::Num(rid),
                            "sampling/createMessage",
                            json!({"messages": [{"role": "user", "content": content}],
                                   "systemPrompt": "Be brief.", "maxTokens": 20,
                                   "modelPreferences": {"hints": [{"name": p.pointer("/arguments/hint").and_then(Value::as_str).unwrap_or("smol")}]}}),
                        )]
                    }
                    "sample" => match p.get("inputResponses") {
                        None => vec![Message::response(
                            id,
                            json!({"resultType": "input_required",
                                   "inputRequests": {"llm": {"method": "sampling/createMessage", "params": {
                                       "messages": [{"role": "user", "content": {"type": "text", "text": "Say hi"}}], "maxTokens": 20}}},
                                   "requestState": "opaque-state-2"}),
                        )],
                        Some(r) => vec![Message::response(
                            id,
                            json!({"resultType": "complete", "content": [{"type": "text", "text": format!("answer: {}", r["llm"])}]}),
                        )],
                    },
                    "ask" => match p.get("inputResponses") {
                        None => vec![Message::response(
                            id,
                            json!({"resultType": "input_required",
                                   "inputRequests": {"who": {"method": "elicitation/create", "params": {"message": "Your name?", "requestedSchema": {"type": "object"}}}},
                                   "requestState": "opaque-state-1"}),
                        )],
                        Some(r) => {
                            assert_eq!(
                                p["requestState"],
                                json!("opaque-state-1"),
                                "requestState must come back verbatim"
                            );
                            vec![Message::response(
                                id,
                                json!({"resultType": "complete", "content": [{"type": "text", "text": format!("answer: {}", r["who"])}]}),
                            )]
                        }
                    },
                    _ => {
                        let mut out = vec![];
                        if let Some(tok) = p.pointer("/_meta/progressToken") {
                            out.push(Message::notification(
                                "notifications/progress",
                                Some(json!({"progressToken": tok, "progress": 1, "total": 2})),
                            ));
                        }
                        out.push(Message::response(
                            id,
                            json!({"content": [{"type": "text", "text": "echo"}], "echoed": p, "x-unknown": {"kept": true}}),
                        ));
                        out
                    }
                }
            }
            (_, "ping") => vec![Message::response(id, json!({}))],
            (_, m) => err(-32601, &format!("Method not found: {m}")),
        }
    }
}

/// The engine plus fake upstreams and a fake clock.
pub struct Sim {
    pub gw: Gateway,
    pub now: u64,
    pub servers: Vec<FakeServer>,
    pub connected: Vec<bool>,
    pub inbox: Vec<(SessionId, Option<Id>, Message)>,
    pub logs: Vec<String>,
    queue: VecDeque<(UpstreamId, Message)>,
    /// Where the engine's store batches go, applied at once (like a store that is always quick).
    pub store: mcp_edge_gateway::MemoryStore,
    /// Hold store batches instead of applying them (to look between "written" and "acknowledged").
    pub hold_store: bool,
    pub held: Vec<(u64, Vec<mcp_edge_gateway::StoreOp>)>,
    /// Sampling requests the engine gave its host: (job, provider, url, request).
    pub samples: Vec<(u64, String, String, Value)>,
}

pub fn spec(name: &str) -> UpstreamSpec {
    UpstreamSpec::named(name)
}

impl Sim {
    pub fn new(cfg: GatewayConfig, servers: Vec<FakeServer>) -> Sim {
        let n = servers.len();
        Sim {
            gw: Gateway::new(cfg).expect("valid config"),
            now: 0,
            servers,
            connected: vec![false; n],
            inbox: vec![],
            logs: vec![],
            queue: VecDeque::new(),
            store: Default::default(),
            hold_store: false,
            held: vec![],
            samples: vec![],
        }
    }

    /// Two upstreams, `a` (legacy) and `b` (modern) by default, both connected and ready.
    pub fn with(servers: Vec<(&str, FakeServer)>) -> Sim {
        let cfg = GatewayConfig { upstreams: servers.iter().map(|(n, _)| spec(n)).collect(), ..Default::default() };
        let mut sim = Sim::new(cfg, servers.into_iter().map(|(_, s)| s).collect());
        for u in 0..sim.servers.len() {
            sim.connect(u);
        }
        sim
    }

    pub fn connect(&mut self, u: usize) {
        self.connected[u] = true;
        self.gw.upstream_connected(self.now, UpstreamId(u));
        self.settle();
    }

    pub fn disconnect(&mut self, u: usize) {
        self.connected[u] = false;
        self.gw.upstream_disconnected(self.now, UpstreamId(u), "test killed it");
        self.settle();
    }

    /// Run until nothing more happens: upstream traffic is answered by the fake servers.
    pub fn settle(&mut self) {
        loop {
            while let Some(o) = self.gw.poll_output() {
                match o {
                    Output::ToClient { session, related, message } => self.inbox.push((session, related, message)),
                    Output::ToUpstream { upstream, message } => self.queue.push_back((upstream, message)),
                    Output::Log { message, .. } => self.logs.push(message),
                    Output::Sample { job, provider, url, request } => self.samples.push((job, provider, url, request)),
                    Output::Store { ticket, ops } => {
                        if self.hold_store {
                            self.held.push((ticket, ops));
                        } else {
                            let r = self.store.apply_now(ops);
                            self.gw.store_done(self.now, ticket, r);
                        }
                    }
                }
            }
            let Some((u, m)) = self.queue.pop_front() else { break };
            if !self.connected[u.0] {
                continue;
            }
            for reply in self.servers[u.0].on(m) {
                self.gw.handle_upstream(self.now, u, reply, None);
            }
        }
    }

    /// Apply the held store batches, in order.
    pub fn release_store(&mut self) {
        for (ticket, ops) in std::mem::take(&mut self.held) {
            let r = self.store.apply_now(ops);
            self.gw.store_done(self.now, ticket, r);
        }
        self.settle();
    }

    /// The gateway "crashes" and starts again on the same store: a new engine restored from it.
    pub fn restart(&mut self, cfg: GatewayConfig) -> String {
        self.gw = Gateway::new(cfg).expect("valid config");
        self.connected = vec![false; self.servers.len()];
        self.queue.clear();
        self.held.clear();
        let snap = self.store.load_now();
        let summary = self.gw.restore(self.now, self.now, &snap).expect("restore");
        self.settle();
        summary
    }

    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
        if self.gw.poll_timeout().is_some_and(|t| t <= self.now) {
            self.gw.handle_timeout(self.now);
        }
        self.settle();
    }

    /// A legacy session that completed initialize with these capabilities.
    pub fn legacy_client(&mut self, caps: Value) -> SessionId {
        let s = self.gw.open_session(self.now);
        self.send(
            s,
            Message::request(
                Id::Num(0),
                "initialize",
                json!({"protocolVersion": "2025-06-18", "capabilities": caps, "clientInfo": {"name": "t", "version": "1"}}),
            ),
        );
        let r = self.take(s);
        assert!(matches!(r.last(), Some(Message::Response { .. })), "initialize failed: {r:?}");
        self.send(s, Message::notification("notifications/initialized", None));
        s
    }

    pub fn send(&mut self, s: SessionId, m: Message) {
        self.gw.handle_client(self.now, s, m);
        self.settle();
    }

    /// Everything delivered to session `s` so far (and forget it).
    pub fn take(&mut self, s: SessionId) -> Vec<Message> {
        let (mine, rest): (Vec<_>, Vec<_>) = self.inbox.drain(..).partition(|(x, _, _)| *x == s);
        self.inbox = rest;
        mine.into_iter().map(|(_, _, m)| m).collect()
    }

    /// Send a request and return its final answer (result or error), asserting there is one.
    /// The params of the last `method` request upstream `u` received.
    pub fn last_params(&self, u: usize, method: &str) -> Option<Value> {
        self.servers[u].seen.iter().rev().find_map(|m| match m {
            Message::Request { method: x, params, .. } if x == method => params.clone(),
            _ => None,
        })
    }

    /// How many `tools/call` requests upstream `u` received.
    pub fn calls_seen(&self, u: usize) -> usize {
        self.servers[u]
            .seen
            .iter()
            .filter(|m| matches!(m, Message::Request { method, .. } if method == "tools/call"))
            .count()
    }

    pub fn call(
        &mut self,
        s: SessionId,
        id: Id,
        method: &str,
        params: Value,
    ) -> Result<Value, mcp_edge_gateway::ErrorObject> {
        self.send(s, Message::request(id.clone(), method, params));
        let msgs = self.take(s);
        for m in msgs.iter().rev() {
            match m {
                Message::Response { id: x, result, .. } if *x == id => return Ok(result.clone()),
                Message::Error { id: Some(x), error, .. } if *x == id => return Err(error.clone()),
                _ => {}
            }
        }
        panic!("no answer to {id} ({method}); got {msgs:?}");
    }
}

/// Modern `_meta` for a request from a modern client.
pub fn modern_meta(caps: Value) -> Value {
    json!({
        meta::PROTOCOL_VERSION: protocol::LATEST_MODERN,
        meta::CLIENT_CAPABILITIES: caps,
        meta::CLIENT_INFO: {"name": "modern-test", "version": "1"},
    })
}
