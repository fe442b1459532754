//! Upstream → gateway: an upstream's messages. Responses go back to the call they answer (a client's,
//! the catalogue walk's, or the gateway's own); notifications are remapped (progress, cancellation)
//! and passed to the clients they concern.

use crate::prelude::*;

use super::*;

impl Gateway {
    /// A message from an upstream. `related` is our request id whose response stream carried it, when
    /// the transport knows (HTTP SSE); it decides which client a server-to-client request is for.
    pub fn handle_upstream(&mut self, now: Millis, u: UpstreamId, msg: Message, related: Option<i64>) {
        self.tick(now);
        if u.0 >= self.ups.len() {
            return;
        }
        match msg {
            Message::Response { id, result, rest } => self.upstream_answer(now, u, id, Ok(result), rest),
            Message::Error { id: Some(id), error, rest } => self.upstream_answer(now, u, id, Err(error), rest),
            Message::Error { id: None, error, .. } => {
                let name = self.uname(u).to_string();
                self.log(LogLevel::Warn, format!("upstream {name:?} reported: {} ({})", error.message, error.code))
            }
            Message::Notification { method, params, .. } => self.upstream_notification(u, &method, params),
            Message::Request { id, method, params, .. } => self.upstream_request(now, u, id, method, params, related),
        }
    }

    pub(super) fn upstream_answer(
        &mut self,
        now: Millis,
        u: UpstreamId,
        id: Id,
        answer: Result<Value, ErrorObject>,
        rest: Map<String, Value>,
    ) {
        let Id::Num(gid) = id else {
            let name = self.uname(u).to_string();
            return self.log(LogLevel::Warn, format!("upstream {name:?} answered an id we never sent: {id}"));
        };
        self.ask_answered(now, u, gid, &answer);
        let Some(p) = self.ups[u.0].pending.remove(&gid) else {
            return;
        };
        if answer.is_err() {
            self.stats.upstream_errors += 1;
        }
        match p {
            Pending::Probe => match answer {
                Ok(r)
                    if r.get("supportedVersions")
                        .and_then(Value::as_array)
                        .is_some_and(|v| v.iter().any(|x| x.as_str() == Some(protocol::LATEST_MODERN))) =>
                {
                    let up = &mut self.ups[u.0];
                    up.era = Era::Modern;
                    up.version = protocol::LATEST_MODERN.into();
                    up.capabilities = r.get("capabilities").cloned().unwrap_or(json!({}));
                    up.server_info = r
                        .pointer(&format!("/_meta/{}", meta::SERVER_INFO.replace('/', "~1")))
                        .cloned()
                        .unwrap_or(Value::Null);
                    self.became_ready(now, u);
                }
                _ if self.cfg.upstreams[u.0].era.is_none() => self.send_initialize(u),
                other => {
                    let name = self.uname(u).to_string();
                    self.log(
                        LogLevel::Error,
                        format!("upstream {name:?} is configured modern but server/discover failed: {other:?}"),
                    );
                    self.ups[u.0].link = Link::Down;
                    self.ups[u.0].ever_down = true;
                }
            },
            Pending::Init => match answer {
                Ok(r) => {
                    let v = r.get("protocolVersion").and_then(Value::as_str).unwrap_or_default().to_string();
                    if !protocol::LEGACY_VERSIONS.contains(&v.as_str()) {
                        let name = self.uname(u).to_string();
                        self.log(
                            LogLevel::Warn,
                            format!(
                                "upstream {name:?} chose protocol version {v:?}; continuing as {}",
                                protocol::LATEST_LEGACY
                            ),
                        );
                    }
                    let up = &mut self.ups[u.0];
                    up.version = v;
                    up.capabilities = r.get("capabilities").cloned().filter(Value::is_object).unwrap_or(json!({}));
                    up.server_info = r.get("serverInfo").cloned().unwrap_or(Value::Null);
                    self.send_up(u, Message::notification(method::INITIALIZED, None));
                    self.became_ready(now, u);
                }
                Err(e) => {
                    let name = self.uname(u).to_string();
                    self.log(
                        LogLevel::Error,
                        format!("upstream {name:?} refused initialize: {} ({})", e.message, e.code),
                    );
                    self.upstream_disconnected(now, u, "initialize failed");
                }
            },
            Pending::Catalog(kind) => {
                self.catalog_page(u, kind, answer);
                self.check_listed(now, u);
            }
            Pending::Internal => {}
            Pending::Listen => self.upstream_listen_ended(now, u, gid, &answer),
            // An answer to the probe shows the member is alive, even an error about the method;
            // a server-side error (or one the host made up for a broken exchange) does not.
            Pending::Health { .. } => match &answer {
                Err(e) if groups::server_side(e) => self.member_failed(now, u),
                _ => self.member_ok(now, u),
            },
            Pending::Replay { seq, .. } => self.replay_answered(now, u, seq, answer),
            Pending::Client(call) => self.call_answered(now, u, gid, *call, answer, rest),
        }
    }

    /// Requests held at start-up wait until every upstream has its first catalogue.
    pub(super) fn check_listed(&mut self, now: Millis, u: UpstreamId) {
        if !self.ups[u.0].listed && self.ups[u.0].gathering.is_empty() {
            self.ups[u.0].listed = true;
            if !self.ups.iter().any(Upstream::starting) {
                self.replay_deferred(now);
            }
        }
    }

    pub(super) fn catalog_page(&mut self, u: UpstreamId, kind: ListKind, answer: Result<Value, ErrorObject>) {
        let name = self.uname(u).to_string();
        let r = match answer {
            Ok(r) => r,
            Err(e) => {
                self.ups[u.0].gathering.remove(&kind);
                return self.log(LogLevel::Warn, format!("upstream {name:?}: {} failed: {}", kind.method(), e.message));
            }
        };
        let items = r.get(kind.field()).and_then(Value::as_array).cloned().unwrap_or_default();
        let Some(acc) = self.ups[u.0].gathering.get_mut(&kind) else {
            return;
        };
        acc.extend(items);
        // A misbehaving upstream could page forever; 10,000 items is far beyond any real server.
        match r.get("nextCursor").and_then(Value::as_str) {
            Some(c) if acc.len() < 10_000 => self.refresh_catalog(u, kind, Some(c.to_string())),
            _ => {
                let items = self.ups[u.0].gathering.remove(&kind).unwrap_or_default();
                if kind == ListKind::Tools {
                    self.remember_tools(u, &items);
                }
                let n = items.len();
                let collisions = self.catalog.set(&self.cfg, u.0, kind, items);
                self.log(LogLevel::Debug, format!("upstream {name:?}: {n} {}", kind.field()));
                for c in collisions {
                    self.report_collision(c);
                }
            }
        }
    }

    pub(super) fn report_collision(&mut self, c: Collision) {
        let what = match c.kind {
            ListKind::Tools => "tool",
            ListKind::Prompts => "prompt",
            ListKind::Resources => "resource",
            ListKind::Templates => "resource template",
        };
        let msg = if c.renamed_to.is_empty() {
            format!(
                "{what} {:?} is offered by {:?} and {:?}; requests go to {:?}",
                c.name, c.kept_by, c.renamed_upstream, c.kept_by
            )
        } else {
            format!(
                "{what} name collision: {:?} is offered by {:?} and {:?}; {:?}'s is exposed as {:?}",
                c.name, c.kept_by, c.renamed_upstream, c.renamed_upstream, c.renamed_to
            )
        };
        self.log(LogLevel::Warn, msg);
    }

    pub(super) fn call_answered(
        &mut self,
        now: Millis,
        u: UpstreamId,
        gid: i64,
        call: ClientCall,
        answer: Result<Value, ErrorObject>,
        rest: Map<String, Value>,
    ) {
        self.drop_client_index(u, gid, &call);
        let mut call = call;
        if call.group.is_some() {
            match &answer {
                Err(e) if groups::server_side(e) => {
                    match self.group_failed(now, u, Box::new(call), Failure::ServerError) {
                        Ok(()) => return,
                        Err((c, _)) => call = *c,
                    }
                }
                _ => self.member_ok(now, u),
            }
        }
        // A modern upstream asks for input: a modern client gets the result as is; a legacy client
        // is asked each question as a request of its own, and we retry for it.
        if let Ok(r) = &answer {
            if protocol::is_input_required(r) && (!call.modern_client || self.chain_takes(r)) {
                return self.start_collect(now, u, call, r.clone());
            }
        }
        let Some(s) = call.session else { return };
        if !self.sessions.contains_key(&s) {
            return;
        }
        match answer {
            Ok(mut r) => {
                self.cache_store(now, u, &call, &r);
                if let Some(kind) = call.list {
                    r = self.finish_page(u, kind, r);
                }
                if call.modern_client && r.is_object() {
                    if r.get("resultType").is_none() {
                        r["resultType"] = json!("complete");
                    }
                    let cacheable = call.list.is_some() || call.method == method::RESOURCES_READ;
                    if cacheable && !protocol::is_input_required(&r) && r.get("ttlMs").is_none() {
                        r["ttlMs"] = json!(0);
                        r["cacheScope"] = json!("private");
                    }
                }
                if let Some(kind) = call.list {
                    return self.list_page_done(now, s, call.client_id, u, kind, r, call.modern_client);
                }
                self.out.push_back(Output::ToClient {
                    session: s,
                    related: Some(call.client_id.clone()),
                    message: Message::Response { id: call.client_id, result: r, rest },
                });
            }
            Err(e) => {
                if let Some(kind) = call.list {
                    let name = self.uname(u).to_string();
                    self.log(
                        LogLevel::Warn,
                        format!("upstream {name:?}: {} failed ({}); skipping it", kind.method(), e.message),
                    );
                    return self.list_fallback(now, u, call, kind);
                }
                self.out.push_back(Output::ToClient {
                    session: s,
                    related: Some(call.client_id.clone()),
                    message: Message::Error { id: Some(call.client_id), error: e, rest },
                });
            }
        }
    }

    pub(super) fn upstream_notification(&mut self, u: UpstreamId, m: &str, params: Option<Value>) {
        match m {
            method::PROGRESS => {
                let Some(tok) = params.as_ref().and_then(|p| p.get("progressToken")).and_then(Value::as_i64) else {
                    return;
                };
                self.group_alive(u, tok);
                let value = params.as_ref().and_then(|p| p.get("progress")).and_then(Value::as_f64);
                if !self.group_progress_ok(u, tok, value) {
                    return;
                }
                let Some(Pending::Client(c)) = self.ups[u.0].pending.get(&tok) else {
                    return;
                };
                let (Some(s), Some(orig)) = (c.session, c.client_progress.clone()) else {
                    return;
                };
                let related = Some(c.client_id.clone());
                let mut p = params.filter(Value::is_object).unwrap_or(json!({}));
                p["progressToken"] = orig;
                self.notify_client(s, related, m, Some(p));
            }
            method::CANCELLED => {
                // The upstream withdrew a request it sent us: tell the client it was forwarded to.
                let Some(rid) = params.as_ref().and_then(|p| p.get("requestId")).and_then(id_of) else {
                    return;
                };
                let hit = self.to_client.iter().find_map(|(k, r)| match r {
                    ToClientReq::Forwarded { upstream, upstream_id } if *upstream == u && *upstream_id == rid => {
                        Some(*k)
                    }
                    _ => None,
                });
                if let Some((s, sid)) = hit {
                    self.to_client.remove(&(s, sid));
                    let mut p = params.filter(Value::is_object).unwrap_or(json!({}));
                    p["requestId"] = Value::from(sid);
                    self.notify_client(s, None, m, Some(p));
                }
                // A parked call waiting on this request cannot be resumed any more.
                self.parked.retain(|_, p| !(p.upstream == u && p.upstream_req == rid));
            }
            method::TOOLS_LIST_CHANGED | method::PROMPTS_LIST_CHANGED | method::RESOURCES_LIST_CHANGED => {
                let kinds: &[ListKind] = match m {
                    method::TOOLS_LIST_CHANGED => &[ListKind::Tools],
                    method::PROMPTS_LIST_CHANGED => &[ListKind::Prompts],
                    _ => &[ListKind::Resources, ListKind::Templates],
                };
                let methods: Vec<&str> = kinds.iter().map(|k| k.method()).collect();
                self.invalidate(u, &methods, None);
                if self.ups[u.0].link == Link::Ready {
                    for k in kinds {
                        if self.ups[u.0].capabilities.get(k.capability()).is_some() {
                            self.refresh_catalog(u, *k, None);
                        }
                    }
                }
                self.broadcast_legacy(m, None);
            }
            method::RESOURCES_UPDATED => {
                let Some(uri) = params.as_ref().and_then(|p| p.get("uri")).and_then(Value::as_str) else {
                    return;
                };
                self.invalidate(u, &[method::RESOURCES_READ], Some(uri));
                let mut ids: Vec<SessionId> =
                    self.sessions.iter().filter(|(_, x)| x.subscriptions.contains(uri)).map(|(k, _)| *k).collect();
                ids.sort_unstable();
                // A modern upstream stamps its listen's id; our clients get their own.
                let mut params = params;
                if let Some(meta) = params.as_mut().and_then(|p| p.get_mut("_meta")).and_then(Value::as_object_mut) {
                    meta.remove(protocol::meta::SUBSCRIPTION_ID);
                }
                for s in ids {
                    self.notify_client(s, None, m, params.clone());
                }
                self.notify_listeners(m, params.as_ref());
            }
            method::MESSAGE => {
                let mut p = params.filter(Value::is_object).unwrap_or(json!({}));
                if p.get("logger").is_none() {
                    p["logger"] = Value::from(self.uname(u).to_string());
                }
                self.broadcast_legacy(m, Some(p));
            }
            // The upstream took the gateway's listen: nothing for clients.
            listen::SUBSCRIPTIONS_ACKNOWLEDGED => {}
            _ => self.broadcast_legacy(m, params),
        }
    }
}
