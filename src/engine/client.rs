//! Client → gateway: every message a downstream client sends. What the gateway answers itself
//! (`initialize`, `server/discover`, `ping`, tasks) is answered here; the rest is routed (see `calls`),
//! and a retry carrying our `requestState` resumes its parked call (see `server_requests`).

use crate::prelude::*;

use super::*;

impl Gateway {
    /// A message from a downstream client.
    pub fn handle_client(&mut self, now: Millis, s: SessionId, msg: Message) {
        self.tick(now);
        let Some(sess) = self.sessions.get_mut(&s) else {
            return;
        };
        sess.last_active = now;
        match msg {
            Message::Request { id, method, params, rest } => {
                self.stats.client_requests += 1;
                self.op_arrived(now, s, &id, &method, params.as_ref());
                if let Some(e) = self.over_rate(now, s) {
                    return self.reply_err(s, id, e);
                }
                if self.should_defer(&method) {
                    self.deferred.push_back((s, Message::Request { id, method, params, rest }));
                    return;
                }
                self.client_request(now, s, id, method, params);
            }
            Message::Notification { method, params, .. } => self.client_notification(s, &method, params),
            Message::Response { id, result, .. } => self.client_answer(now, s, id, Ok(result)),
            Message::Error { id: Some(id), error, .. } => self.client_answer(now, s, id, Err(error)),
            Message::Error { id: None, error, .. } => {
                self.log(LogLevel::Warn, format!("client sent an error without id: {}", error.message))
            }
        }
    }

    pub(super) fn should_defer(&self, m: &str) -> bool {
        if matches!(
            m,
            method::INITIALIZE
                | method::PING
                | method::DISCOVER
                | method::TASKS_GET
                | method::TASKS_RESULT
                | method::TASKS_LIST
                | method::TASKS_CANCEL
        ) {
            return false;
        }
        self.ups.iter().any(|u| u.starting())
    }

    pub(super) fn replay_deferred(&mut self, now: Millis) {
        while let Some((s, m)) = self.deferred.pop_front() {
            if let Message::Request { id, method, params, .. } = m {
                if self.sessions.contains_key(&s) {
                    self.client_request(now, s, id, method, params);
                }
            }
        }
    }

    pub(super) fn client_request(&mut self, now: Millis, s: SessionId, id: Id, m: String, params: Option<Value>) {
        // Era of this request: a modern version in `_meta` makes it modern, whatever came before.
        let version = protocol::request_version(params.as_ref()).map(str::to_string);
        let modern = match &version {
            Some(v) => match protocol::era_of(v) {
                Some(Era::Modern) => true,
                Some(Era::Legacy) => false,
                None => {
                    let e = err(code::UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version")
                        .with_data(json!({"supported": protocol::supported_versions(), "requested": v}));
                    return self.reply_err(s, id, e);
                }
            },
            None if m == method::DISCOVER => {
                return self.reply_err(
                    s,
                    id,
                    err(
                        code::INVALID_PARAMS,
                        format!("server/discover needs params._meta[\"{}\"]", meta::PROTOCOL_VERSION),
                    ),
                )
            }
            None => false,
        };
        if params.as_ref().is_some_and(|p| !p.is_object()) {
            return self.reply_err(s, id, err(code::INVALID_PARAMS, "params must be an object"));
        }
        if modern {
            let p = params.as_ref().and_then(|p| p.get("_meta"));
            match p.and_then(|m| m.get(meta::CLIENT_CAPABILITIES)) {
                Some(c) if c.is_object() => {}
                Some(_) => {
                    let e = format!("params._meta[\"{}\"] must be an object", meta::CLIENT_CAPABILITIES);
                    return self.reply_err(s, id, err(code::INVALID_PARAMS, e));
                }
                None => {
                    let e = format!("missing params._meta[\"{}\"]", meta::CLIENT_CAPABILITIES);
                    return self.reply_err(s, id, err(code::INVALID_PARAMS, e));
                }
            }
            // Gone in 2026-07-28: the modern era has no handshake, ping, log level or subscribe.
            if matches!(
                m.as_str(),
                method::INITIALIZE
                    | method::PING
                    | method::SET_LEVEL
                    | method::RESOURCES_SUBSCRIBE
                    | method::RESOURCES_UNSUBSCRIBE
            ) {
                return self.reply_err(
                    s,
                    id,
                    err(code::METHOD_NOT_FOUND, format!("Method not found: {m} (not in 2026-07-28)")),
                );
            }
        }
        if let Some(e) = check_params(&m, params.as_ref()) {
            return self.reply_err(s, id, e);
        }
        match m.as_str() {
            method::INITIALIZE => self.initialize(s, id, params),
            method::DISCOVER => {
                let r = self.discover_result();
                self.reply(s, id, r)
            }
            method::PING => self.reply(s, id, json!({})),
            method::SET_LEVEL => {
                // `check_params` made sure `level` is one of the eight levels.
                let level = params.as_ref().and_then(|p| p.get("level")).cloned();
                for u in 0..self.ups.len() {
                    let up = &self.ups[u];
                    if up.link == Link::Ready && up.era == Era::Legacy && up.capabilities.get("logging").is_some() {
                        self.internal_request(UpstreamId(u), method::SET_LEVEL, json!({"level": level}));
                    }
                }
                self.reply(s, id, json!({}))
            }
            method::TASKS_GET | method::TASKS_RESULT | method::TASKS_LIST | method::TASKS_CANCEL => {
                self.task_request(now, s, id, &m, params.as_ref(), modern)
            }
            _ => {
                if let Some(kind) = ListKind::from_method(&m) {
                    return self.list_request(now, s, id, kind, params, modern);
                }
                self.continue_or_route(now, s, id, m, params, modern)
            }
        }
    }

    pub(super) fn initialize(&mut self, s: SessionId, id: Id, params: Option<Value>) {
        if let Some(e) = self.over_sessions(s) {
            return self.reply_err(s, id, e);
        }
        let p = params.unwrap_or(json!({}));
        // `check_params` made sure `protocolVersion` is a string.
        let requested = p.get("protocolVersion").and_then(Value::as_str).unwrap_or_default();
        let version = if protocol::LEGACY_VERSIONS.contains(&requested) { requested } else { protocol::LATEST_LEGACY };
        let sess = self.sessions.get_mut(&s).expect("caller checked");
        sess.version = version.to_string();
        sess.capabilities = p.get("capabilities").cloned().filter(Value::is_object).unwrap_or(json!({}));
        if let Some(ci) = p.get("clientInfo").filter(|v| v.is_object()) {
            sess.client_info = ci.clone();
        }
        sess.legacy_initialized = true;
        let mut r = json!({
            "protocolVersion": version,
            "capabilities": self.server_capabilities(),
            "serverInfo": { "name": self.cfg.server_name, "version": self.cfg.server_version },
        });
        if let Some(i) = &self.cfg.instructions {
            r["instructions"] = Value::from(i.clone());
        }
        self.reply(s, id, r)
    }

    pub(super) fn server_capabilities(&self) -> Value {
        json!({
            "tools": { "listChanged": true },
            "prompts": { "listChanged": true },
            "resources": { "subscribe": true, "listChanged": true },
            "completions": {},
            "logging": {},
            // Queued tool calls are tasks (2025-11-25 shape; the modern extension is in `discover`).
            "tasks": { "list": {}, "cancel": {}, "requests": { "tools": { "call": {} } } },
        })
    }

    pub(super) fn discover_result(&self) -> Value {
        let mut caps = self.server_capabilities();
        if let Some(o) = caps.as_object_mut() {
            o.remove("tasks");
            o.insert("extensions".into(), json!({ meta::TASKS_EXTENSION: {} }));
        }
        let mut r = json!({
            "resultType": "complete",
            "supportedVersions": protocol::supported_versions(),
            "capabilities": caps,
            "ttlMs": 0,
            "cacheScope": "public",
            "_meta": { meta::SERVER_INFO: { "name": self.cfg.server_name, "version": self.cfg.server_version } },
        });
        if let Some(i) = &self.cfg.instructions {
            r["instructions"] = Value::from(i.clone());
        }
        r
    }

    pub(super) fn client_notification(&mut self, s: SessionId, m: &str, params: Option<Value>) {
        match m {
            method::INITIALIZED => {
                // Shared legacy upstreams may have asked an earlier client for its roots.
                if self.sessions.get(&s).is_some_and(|x| x.capabilities.get("roots").is_some()) {
                    self.roots_changed();
                }
            }
            method::CANCELLED => {
                let Some(rid) = params.as_ref().and_then(|p| p.get("requestId")).and_then(id_of) else {
                    return;
                };
                if let Some((u, gid)) = self.by_client.remove(&(s, rid)) {
                    if matches!(self.ups[u.0].pending.remove(&gid), Some(Pending::Client(c)) if c.collect.is_none() && !c.queued)
                    {
                        let mut p = params.filter(Value::is_object).unwrap_or(json!({}));
                        p["requestId"] = Value::from(gid);
                        self.send_up(u, Message::notification(method::CANCELLED, Some(p)));
                    }
                }
            }
            method::ROOTS_LIST_CHANGED => self.roots_changed(),
            _ => self.log(LogLevel::Debug, format!("ignoring client notification {m}")),
        }
    }

    /// Tell legacy upstreams that roots may have changed, so they ask again.
    pub(super) fn roots_changed(&mut self) {
        for u in 0..self.ups.len() {
            if self.ups[u].link == Link::Ready && self.ups[u].era == Era::Legacy {
                self.send_up(UpstreamId(u), Message::notification(method::ROOTS_LIST_CHANGED, None));
            }
        }
    }

    /// The client answered a request we sent it.
    pub(super) fn client_answer(&mut self, now: Millis, s: SessionId, id: Id, answer: Result<Value, ErrorObject>) {
        let Id::Num(n) = id else {
            return self.log(LogLevel::Warn, format!("client answered unknown request {id}"));
        };
        match self.to_client.remove(&(s, n)) {
            Some(ToClientReq::Forwarded { upstream, upstream_id }) => {
                let msg = match answer {
                    Ok(r) => Message::response(upstream_id, r),
                    Err(e) => Message::error(Some(upstream_id), e),
                };
                self.send_up(upstream, msg)
            }
            Some(ToClientReq::Input { upstream, call, key }) => self.input_answered(now, upstream, call, key, answer),
            None => self.log(LogLevel::Warn, format!("client answered unknown request {n}")),
        }
    }

    /// Entry point used by `handle_client` for calls that may continue a parked multi-round-trip call.
    pub(super) fn continue_or_route(
        &mut self,
        now: Millis,
        s: SessionId,
        id: Id,
        m: String,
        params: Option<Value>,
        modern: bool,
    ) {
        if let Some(p) = params.as_ref() {
            if protocol::may_require_input(&m) {
                match self.resume_parked(s, &id, &m, p) {
                    Some(Ok(())) => return,
                    Some(Err(e)) => return self.reply_err(s, id, e),
                    None => {}
                }
            }
        }
        self.routed_request(now, s, id, m, params, modern)
    }
}
