//! The upstreams' side: scripted servers that answer by themselves when the scenario says so (a
//! handshake, two-page lists, calls), and answers, requests and notifications the actions choose:
//! good, bad, junk or none.

use super::*;

impl H {
    pub(super) fn up(&self, u: u8) -> UpstreamId {
        UpstreamId(u as usize % self.n)
    }

    pub(super) fn outstanding(&self, u: UpstreamId, which: u8) -> Option<usize> {
        let l = &self.up_reqs[u.0];
        (!l.is_empty()).then(|| which as usize % l.len())
    }

    pub(super) fn related(&self, u: UpstreamId, r: Option<u8>) -> Option<i64> {
        let r = r?;
        match self.outstanding(u, r) {
            Some(k) => Some(self.up_reqs[u.0][k].0),
            None => Some(i64::from(r)),
        }
    }

    pub(super) fn from_upstream(&mut self, u: UpstreamId, m: Message, related: Option<i64>) {
        if let Message::Request { id, .. } = &m {
            self.up_asked[u.0].entry(id.clone()).or_default().0 += 1;
        }
        self.gw.handle_upstream(self.now, u, m, related);
        self.drain();
    }

    pub(super) fn items(list: &[u8], kind: &str) -> Vec<Value> {
        list.iter()
            .take(8)
            .map(|&b| {
                let t = TOOLS[(b & 0x0f) as usize % TOOLS.len()];
                match kind {
                    "tools" => {
                        let mut tool = json!({"name": t, "inputSchema": {"type": "object"}});
                        if b & 0x10 != 0 {
                            tool["annotations"] = json!({"idempotentHint": true, "readOnlyHint": b & 0x20 != 0});
                        }
                        if b & 0x40 != 0 {
                            tool["inputSchema"] = json!({"type": "object", "properties": {"n": {"type": "integer"}},
                                "required": ["n"]});
                        }
                        tool
                    }
                    "prompts" => json!({"name": t}),
                    "resources" => json!({"uri": URIS[b as usize % URIS.len()], "name": t}),
                    _ => json!({"uriTemplate": format!("file:///{t}/{{x}}"), "name": t}),
                }
            })
            .collect()
    }

    pub(super) fn good_result(
        &self,
        method: &str,
        params: &Option<Value>,
        items: &[u8],
        next: Option<u8>,
        flags: u8,
    ) -> Value {
        use protocol::method as m;
        let modern = protocol::request_version(params.as_ref()).is_some_and(|v| v == protocol::LATEST_MODERN);
        let caps = {
            let mut c = json!({"tools": {"listChanged": true}, "prompts": {"listChanged": true},
                "resources": {"subscribe": true, "listChanged": true}});
            if flags & 1 != 0 {
                c["logging"] = json!({});
            }
            if flags & 2 != 0 {
                c["completions"] = json!({});
            }
            c
        };
        let mut r = match method {
            m::DISCOVER => json!({"resultType": "complete", "supportedVersions": [protocol::LATEST_MODERN],
                "capabilities": caps, "ttlMs": 0, "cacheScope": "public",
                "_meta": {meta::SERVER_INFO: {"name": "fuzz-up", "version": "1"}}}),
            m::INITIALIZE => json!({"protocolVersion": VERSIONS[flags as usize % 4], "capabilities": caps,
                "serverInfo": {"name": "fuzz-up", "version": "1"}}),
            m::TOOLS_LIST => json!({"tools": Self::items(items, "tools")}),
            m::PROMPTS_LIST => json!({"prompts": Self::items(items, "prompts")}),
            m::RESOURCES_LIST => json!({"resources": Self::items(items, "resources")}),
            m::RESOURCE_TEMPLATES_LIST => json!({"resourceTemplates": Self::items(items, "templates")}),
            m::TOOLS_CALL => {
                let mut r = json!({"content": [{"type": "text", "text": "done"}]});
                if flags & 4 != 0 {
                    r["isError"] = json!(true);
                }
                r
            }
            m::PROMPTS_GET => json!({"messages": [{"role": "user", "content": {"type": "text", "text": "p"}}]}),
            m::RESOURCES_READ => {
                let uri = params.as_ref().and_then(|p| p.get("uri")).cloned().unwrap_or(json!("x:"));
                let mut r = json!({"contents": [{"uri": uri, "text": "content"}]});
                if flags & 8 != 0 {
                    r["cacheScope"] = json!("private");
                }
                r
            }
            m::COMPLETE => json!({"completion": {"values": ["a", "b"], "hasMore": false}}),
            _ => json!({}),
        };
        if let Some(c) = next {
            if method.ends_with("/list") {
                r["nextCursor"] = json!(format!("c{c}"));
            }
        }
        if modern && method != m::DISCOVER {
            r["resultType"] = json!("complete");
            r["ttlMs"] = json!(u64::from(flags) * 100);
            r["cacheScope"] = json!(if flags & 16 != 0 { "private" } else { "public" });
        }
        r
    }

    pub(super) fn input_required(methods: &[u8], state: bool) -> Value {
        let mut reqs = Map::new();
        for (k, &b) in methods.iter().take(4).enumerate() {
            let q = match b % 4 {
                0 => json!({"method": protocol::method::ELICIT, "params": {"message": "name?",
                    "requestedSchema": {"type": "object"}}}),
                1 => json!({"method": protocol::method::SAMPLE, "params": {"messages": [{"role": "user",
                    "content": {"type": "text", "text": "hi"}}], "maxTokens": 10}}),
                2 => json!({"method": protocol::method::ROOTS_LIST}),
                _ => json!({"method": "vendor/ask", "params": {}}),
            };
            reqs.insert(format!("k{k}"), q);
        }
        let mut r = json!({"resultType": "input_required", "inputRequests": reqs});
        if state {
            r["requestState"] = json!("upstream-state");
        }
        r
    }

    /// Whether the scripted server behind link `u` answers this request by itself (cheap: checked
    /// against every request outstanding after every step).
    pub(super) fn answers(&self, u: usize, method: &str, params: &Option<Value>) -> bool {
        use protocol::method as m;
        let auto = self.auto[u];
        match method {
            m::DISCOVER
            | m::INITIALIZE
            | m::PING
            | m::SET_LEVEL
            | m::RESOURCES_SUBSCRIBE
            | m::RESOURCES_UNSUBSCRIBE => auto & 1 != 0,
            m::TOOLS_LIST | m::PROMPTS_LIST | m::RESOURCES_LIST | m::RESOURCE_TEMPLATES_LIST => auto & 2 != 0,
            m::TOOLS_CALL | m::PROMPTS_GET | m::RESOURCES_READ | m::COMPLETE => {
                auto & 4 != 0 && params.as_ref().and_then(|p| p.get("name")).and_then(Value::as_str) != Some("slow")
            }
            _ => false,
        }
    }

    /// What the scripted server behind link `u` answers to `method`, if it answers by itself.
    pub(super) fn auto_reply(
        &self,
        u: usize,
        method: &str,
        params: &Option<Value>,
    ) -> Option<Result<Value, ErrorObject>> {
        use protocol::method as m;
        let (auto, modern) = (self.auto[u], self.modern_server[u]);
        let not_found = || Some(Err(ErrorObject::new(-32601, "Method not found")));
        let tagged = |mut r: Value| {
            if modern {
                r["resultType"] = json!("complete");
                r["ttlMs"] = json!(1_000);
                r["cacheScope"] = json!("public");
            }
            Some(Ok(r))
        };
        let empty = json!({});
        let p = params.as_ref().unwrap_or(&empty);
        match method {
            m::DISCOVER | m::INITIALIZE | m::PING if auto & 1 != 0 => match (method, modern) {
                (m::DISCOVER, true) | (m::INITIALIZE, false) | (m::PING, _) => {
                    Some(Ok(self.good_result(method, params, &[], None, 3)))
                }
                _ => not_found(),
            },
            m::TOOLS_LIST | m::PROMPTS_LIST | m::RESOURCES_LIST | m::RESOURCE_TEMPLATES_LIST if auto & 2 != 0 => {
                let second = p.get("cursor").and_then(Value::as_str) == Some("page2");
                let all: Vec<u8> = (0..TOOLS.len() as u8).map(|i| i | if i == 3 { 0x10 } else { 0 }).collect();
                let (half, next) = if second { (&all[3..], None) } else { (&all[..3], Some(())) };
                let mut r = self.good_result(method, &None, half, None, 0);
                if next.is_some() {
                    r["nextCursor"] = json!("page2");
                }
                tagged(r)
            }
            m::SET_LEVEL | m::RESOURCES_SUBSCRIBE | m::RESOURCES_UNSUBSCRIBE if auto & 1 != 0 => tagged(json!({})),
            m::TOOLS_CALL | m::PROMPTS_GET | m::RESOURCES_READ | m::COMPLETE if auto & 4 != 0 => {
                let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
                if name == "slow" {
                    return None;
                }
                if method == m::TOOLS_CALL && !TOOLS.contains(&name) {
                    return Some(Err(ErrorObject::new(-32602, format!("Unknown tool: {name}"))));
                }
                if modern && name == "ask" && p.get("inputResponses").is_none() {
                    return Some(Ok(Self::input_required(&[(u as u8) % 2, 1], true)));
                }
                let mut r = self.good_result(method, params, &[], None, 0);
                if method == m::TOOLS_CALL {
                    r["echoed"] = p.get("arguments").cloned().unwrap_or(Value::Null);
                }
                tagged(r)
            }
            _ => None,
        }
    }

    /// Let the scripted servers answer what they answer by themselves, until none has more to say.
    pub(super) fn auto(&mut self) {
        for _ in 0..256 {
            let mut found = None;
            'up: for u in 0..self.n {
                if !self.connected[u] || self.auto[u] & 7 == 0 {
                    continue;
                }
                for (k, (_, method, params)) in self.up_reqs[u].iter().enumerate() {
                    if self.answers(u, method, params) {
                        found = Some((u, k));
                        break 'up;
                    }
                }
            }
            let Some((u, k)) = found else { return };
            let (_, method, params) = &self.up_reqs[u][k];
            let Some(r) = self.auto_reply(u, method, params) else { return };
            let (gid, _, params) = self.up_reqs[u].remove(k);
            // Progress first, for calls that asked for it.
            if let Some(tok) = params.as_ref().and_then(|p| p.pointer("/_meta/progressToken")).cloned() {
                let n = Message::notification(
                    protocol::method::PROGRESS,
                    Some(json!({"progressToken": tok, "progress": 1})),
                );
                self.from_upstream(UpstreamId(u), n, Some(gid));
            }
            let m = match r {
                Ok(v) => Message::response(Id::Num(gid), v),
                Err(e) => Message::error(Some(Id::Num(gid)), e),
            };
            self.from_upstream(UpstreamId(u), m, Some(gid));
        }
    }

    pub(super) fn up_answer(&mut self, u: UpstreamId, which: u8, a: UpReply, keep: bool, related: bool) {
        let Some(k) = self.outstanding(u, which) else { return };
        let (gid, method, params) = if keep { self.up_reqs[u.0][k].clone() } else { self.up_reqs[u.0].remove(k) };
        let id = Id::Num(gid);
        let msg = match a {
            UpReply::Good { items, next, flags } => {
                Message::response(id, self.good_result(&method, &params, &items, next, flags))
            }
            UpReply::Input { methods, state } => Message::response(id, Self::input_required(&methods, state)),
            UpReply::Error(c) => {
                let code = CODES.get(c.unsigned_abs() as usize).copied().unwrap_or(i64::from(c));
                Message::error(Some(id), ErrorObject::new(code, "upstream says no"))
            }
            UpReply::Empty => Message::response(id, json!({})),
            UpReply::Any(v) => Message::response(id, v.0),
            UpReply::Mutated { items, spot, v } => {
                let mut r = self.good_result(&method, &params, &items, Some(1), 0);
                set_at(&mut r, spot, v.0);
                Message::response(id, r)
            }
        };
        self.from_upstream(u, msg, related.then_some(gid));
    }

    pub(super) fn up_request(&mut self, u: UpstreamId, r: UpReq, related: Option<u8>) {
        use protocol::method as m;
        let id = Id::Num(1_000 + self.next_up_req);
        self.next_up_req += 1;
        let (method, params) = match r {
            UpReq::Elicit { url } => (
                m::ELICIT,
                if url {
                    json!({"mode": "url", "message": "go", "url": "https://x.example/a", "elicitationId": "e1"})
                } else {
                    json!({"message": "Your name?", "requestedSchema": {"type": "object"}})
                },
            ),
            UpReq::Sample { image, hint } => {
                let content = if image {
                    json!({"type": "image", "data": "AAAA", "mimeType": "image/png"})
                } else {
                    json!({"type": "text", "text": "Say hi"})
                };
                (
                    m::SAMPLE,
                    json!({"messages": [{"role": "user", "content": content}], "maxTokens": 20,
                        "systemPrompt": "Be brief.",
                        "modelPreferences": {"hints": [{"name": (["big", "m", "other"][hint as usize % 3])}]}}),
                )
            }
            UpReq::Roots => (m::ROOTS_LIST, json!({})),
            UpReq::Ping => (m::PING, json!({})),
            UpReq::Other => ("vendor/ask", json!({})),
            UpReq::Any(v) => {
                let method = [m::ELICIT, m::SAMPLE, m::ROOTS_LIST][self.next_up_req as usize % 3];
                (method, v.0)
            }
        };
        let params = Some(params).filter(|p| p.is_object() || p.is_array());
        let rel = self.related(u, related);
        self.from_upstream(u, Message::Request { id, method: method.into(), params, rest: Map::new() }, rel);
    }

    pub(super) fn up_notify(&mut self, u: UpstreamId, n: UpNote) {
        use protocol::method as m;
        let msg = match n {
            UpNote::Progress { which, progress, total } => {
                let tok = match self.outstanding(u, which) {
                    Some(k) => json!(self.up_reqs[u.0][k].0),
                    None => json!(which),
                };
                let mut p = json!({"progressToken": tok, "progress": progress});
                if let Some(t) = total {
                    p["total"] = json!(t);
                }
                Message::notification(m::PROGRESS, Some(p))
            }
            UpNote::Cancelled(r) => {
                let rid = if r >= 0 { 1_000 + self.next_up_req - 1 - i64::from(r) } else { i64::from(r) };
                Message::notification(m::CANCELLED, Some(json!({"requestId": rid, "reason": "upstream"})))
            }
            UpNote::ListChanged(k) => Message::notification(
                [m::TOOLS_LIST_CHANGED, m::PROMPTS_LIST_CHANGED, m::RESOURCES_LIST_CHANGED][k as usize % 3],
                None,
            ),
            UpNote::Updated(t) => {
                Message::notification(m::RESOURCES_UPDATED, Some(json!({"uri": URIS[t as usize % URIS.len()]})))
            }
            UpNote::Log => Message::notification(m::MESSAGE, Some(json!({"level": "info", "data": "log"}))),
            UpNote::Acknowledged => {
                Message::notification(m::SUBSCRIPTIONS_ACKNOWLEDGED, Some(json!({"notifications": {}})))
            }
            UpNote::Other(v) => {
                Message::notification("notifications/vendor", Some(v.0).filter(|p| p.is_object() || p.is_array()))
            }
        };
        self.from_upstream(u, msg, None);
    }

    pub(super) fn raw_up(&mut self, u: UpstreamId, bytes: &[u8], related: Option<u8>) {
        if let Ok(m) = Message::parse(bytes) {
            let rel = self.related(u, related);
            self.from_upstream(u, m, rel);
        }
    }
}
