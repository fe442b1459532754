//! Routing one client request to one upstream: by exposed name, URI or completion reference. Ids are
//! remapped to the gateway's own per upstream; calls to tools known to ask their client take turns
//! across clients; the gateway's own requests (catalogue, replay) go out the same way.

use crate::prelude::*;

use super::*;

impl Gateway {
    pub(super) fn routed_request(
        &mut self,
        now: Millis,
        s: SessionId,
        id: Id,
        m: String,
        params: Option<Value>,
        modern: bool,
    ) {
        let mut params = params.unwrap_or(json!({}));
        if m == method::SUBSCRIPTIONS_LISTEN {
            return self.listen(now, s, id, &params);
        }
        if let Some(e) = self.forbidden(s, &m, &params) {
            return self.reply_err(s, id, e);
        }
        let exposed = params.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        let target: Result<UpstreamId, ErrorObject> = match m.as_str() {
            method::TOOLS_CALL | method::PROMPTS_GET => {
                let kind = if m == method::TOOLS_CALL { ListKind::Tools } else { ListKind::Prompts };
                match params.get("name").and_then(Value::as_str) {
                    None => Err(err(code::INVALID_PARAMS, format!("{m} needs a string `name`"))),
                    Some(name) => match self.catalog.resolve_name(&self.cfg, kind, name).or_else(|| {
                        (kind == ListKind::Tools)
                            .then(|| self.resolve_offline_tool(name).map(|(u, t)| (u.0, t)))
                            .flatten()
                    }) {
                        Some((u, orig)) => {
                            params["name"] = Value::from(orig);
                            Ok(UpstreamId(u))
                        }
                        None => Err(err(
                            code::INVALID_PARAMS,
                            format!("Unknown {}: {name}", if kind == ListKind::Tools { "tool" } else { "prompt" }),
                        )),
                    },
                }
            }
            method::RESOURCES_READ | method::RESOURCES_SUBSCRIBE | method::RESOURCES_UNSUBSCRIBE => {
                match params.get("uri").and_then(Value::as_str) {
                    None => Err(err(code::INVALID_PARAMS, format!("{m} needs a string `uri`"))),
                    Some(uri) => self.route_uri(uri, modern).or_else(|e| {
                        // Down upstreams leave the catalogue; the cache still knows who served a URI.
                        if m == method::RESOURCES_READ {
                            self.cached_reader(uri, s).ok_or(e)
                        } else {
                            Err(e)
                        }
                    }),
                }
            }
            method::COMPLETE => self.route_completion(&mut params),
            _ => {
                // A method we do not know: forward it when exactly one upstream could have meant it.
                let ready: Vec<usize> = (0..self.ups.len()).filter(|&u| self.ups[u].link == Link::Ready).collect();
                if self.cfg.upstreams.len() == 1 && ready.len() == 1 {
                    Ok(UpstreamId(ready[0]))
                } else {
                    Err(err(code::METHOD_NOT_FOUND, format!("Method not found: {m}")))
                }
            }
        };
        let u = match target {
            Ok(u) => u,
            Err(e) => return self.reply_err(s, id, e),
        };
        let refused = self
            .over_in_flight(s)
            .or_else(|| (m == method::TOOLS_CALL).then(|| self.invalid_arguments(u, &params)).flatten());
        if let Some(e) = refused {
            return self.reply_err(s, id, e);
        }
        // A group member: the group decides which member serves the item.
        let u = match self.group_of(u.0).and_then(|_| group_item(&m, &params)) {
            Some((kind, key)) => self.group_target(u, kind, key),
            None => u,
        };
        self.op_routed(s, &id, u, &exposed);
        if m == method::TOOLS_CALL && self.maybe_enqueue(now, s, &id, u, &exposed, &mut params, modern) {
            return;
        }
        let mut slot = None;
        if m == method::RESOURCES_READ && params.get("inputResponses").is_none() && params.get("requestState").is_none()
        {
            let uri = params["uri"].as_str().unwrap_or_default().to_string();
            if self.try_cache(now, s, &id, u, &m, &uri, None, modern) {
                return;
            }
            slot = Some(CacheSlot { method: m.clone(), arg: uri });
        }
        if m == method::RESOURCES_SUBSCRIBE || m == method::RESOURCES_UNSUBSCRIBE {
            let uri = params["uri"].as_str().unwrap_or_default().to_string();
            let sess = self.sessions.get_mut(&s).expect("caller checked");
            if m == method::RESOURCES_SUBSCRIBE {
                sess.subscriptions.insert(uri);
            } else {
                sess.subscriptions.remove(&uri);
            }
            // A modern upstream learns the URIs through the gateway's listen to it.
            if self.ups[u.0].era == Era::Modern {
                self.relisten_all(now);
                return self.reply(s, id, json!({}));
            }
            let up = &self.ups[u.0];
            let can = up.link == Link::Ready
                && up.era == Era::Legacy
                && up.capabilities.pointer("/resources/subscribe").and_then(Value::as_bool) == Some(true);
            if !can {
                return self.reply(s, id, json!({}));
            }
        }
        if let Some(gid) = self.forward(now, s, id, u, m, params, None, modern, slot) {
            if self.group_of(u.0).is_some() {
                self.group_sent(now, u, gid, None);
            }
        }
    }

    pub(super) fn route_uri(&self, uri: &str, modern: bool) -> Result<UpstreamId, ErrorObject> {
        if let Some(u) = self.catalog.resolve_uri(uri) {
            return Ok(UpstreamId(u));
        }
        // Only one upstream serves resources at all: it is the only one that can know this URI.
        let with: Vec<usize> = (0..self.ups.len())
            .filter(|&u| self.ups[u].link == Link::Ready && self.ups[u].capabilities.get("resources").is_some())
            .collect();
        if with.len() == 1 {
            return Ok(UpstreamId(with[0]));
        }
        let c = if modern { code::INVALID_PARAMS } else { code::RESOURCE_NOT_FOUND };
        Err(err(c, format!("Resource not found: {uri}")).with_data(json!({"uri": uri})))
    }

    pub(super) fn route_completion(&self, params: &mut Value) -> Result<UpstreamId, ErrorObject> {
        let r = params.get("ref").cloned().unwrap_or(Value::Null);
        match r.get("type").and_then(Value::as_str) {
            Some("ref/prompt") => {
                let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
                match self.catalog.resolve_name(&self.cfg, ListKind::Prompts, name) {
                    Some((u, orig)) => {
                        params["ref"]["name"] = Value::from(orig);
                        Ok(UpstreamId(u))
                    }
                    None => Err(err(code::INVALID_PARAMS, format!("Unknown prompt: {name}"))),
                }
            }
            Some("ref/resource") => {
                let uri = r.get("uri").and_then(Value::as_str).unwrap_or_default();
                if let Some(u) = (0..self.ups.len()).find(|&u| {
                    self.catalog
                        .items(u, ListKind::Templates)
                        .iter()
                        .any(|t| t.get("uriTemplate").and_then(Value::as_str) == Some(uri))
                }) {
                    return Ok(UpstreamId(u));
                }
                self.route_uri(uri, true)
            }
            _ => Err(err(code::INVALID_PARAMS, "completion/complete needs ref.type ref/prompt or ref/resource")),
        }
    }

    /// Send a client's request to an upstream under a fresh id, remembering how to answer.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward(
        &mut self,
        now: Millis,
        s: SessionId,
        id: Id,
        u: UpstreamId,
        m: String,
        mut params: Value,
        list: Option<ListKind>,
        modern: bool,
        cache: Option<CacheSlot>,
    ) -> Option<i64> {
        let link = self.ups[u.0].link;
        if link == Link::Down {
            let e = err(code::UPSTREAM_UNAVAILABLE, format!("upstream {:?} is unavailable", self.uname(u)))
                .with_data(json!({"upstream": self.uname(u)}));
            self.reply_err(s, id, e);
            return None;
        }
        let gid = self.ups[u.0].next_id;
        self.ups[u.0].next_id += 1;
        // Progress tokens are remapped like ids: our token is our request id, unique on this link.
        let client_progress = params.pointer("/_meta/progressToken").cloned();
        if client_progress.is_some() {
            params["_meta"]["progressToken"] = Value::from(gid);
        }
        // The gateway is a span of the client's trace: the upstream sees it as the parent.
        crate::trace::join(&mut params, self.tokens.next_u64());
        let call = ClientCall {
            session: Some(s),
            client_id: id.clone(),
            method: m.clone(),
            sent_params: params,
            client_progress,
            deadline: now + self.cfg.request_timeout_ms,
            list,
            collect: None,
            modern_client: modern,
            queued: false,
            round: Map::new(),
            cache,
            group: None,
        };
        self.by_client.insert((s, id), (u, gid));
        self.dispatch(u, gid, call);
        Some(gid)
    }

    pub(super) fn dispatch(&mut self, u: UpstreamId, gid: i64, mut call: ClientCall) {
        call.queued = true;
        self.ups[u.0].pending.insert(gid, Pending::Client(Box::new(call)));
        self.ups[u.0].queued += 1;
        self.stats.upstream_requests += 1;
        self.release(u);
    }

    /// Send the queued calls of `u` that may go now, oldest first. A call may go when the link is
    /// ready and, if it is interactive, no other client's interactive call is in flight there.
    pub(super) fn release(&mut self, u: UpstreamId) {
        let up = &self.ups[u.0];
        if up.queued == 0 || up.link != Link::Ready {
            return;
        }
        let mut waiting: Vec<i64> =
            up.pending.iter().filter_map(|(g, p)| matches!(p, Pending::Client(c) if c.queued).then_some(*g)).collect();
        waiting.sort_unstable();
        for gid in waiting {
            let up = &self.ups[u.0];
            let Some(Pending::Client(call)) = up.pending.get(&gid) else { continue };
            if up.interactive.contains(&call.key()) {
                let busy = up.pending.values().any(|p| {
                    matches!(p, Pending::Client(c) if c.in_flight() && c.session != call.session && up.interactive.contains(&c.key()))
                });
                if busy {
                    continue;
                }
            }
            let mut params = call.sent_params.clone();
            if up.era == Era::Modern {
                let (caps, info) = match call.session.and_then(|s| self.sessions.get(&s)) {
                    Some(s) => (s.capabilities.clone(), s.client_info.clone()),
                    None => (protocol::gateway_client_capabilities(), self.client_info()),
                };
                protocol::stamp_modern_meta(&mut params, protocol::LATEST_MODERN, &caps, &info);
                // The sampling chain answers for a client that cannot: tell the upstream it may ask.
                if self.cfg.sampling.active() {
                    if let Some(c) = params
                        .pointer_mut(&format!("/_meta/{}", meta::CLIENT_CAPABILITIES.replace('/', "~1")))
                        .and_then(Value::as_object_mut)
                    {
                        c.entry("sampling").or_insert_with(|| json!({}));
                    }
                }
            } else {
                protocol::strip_modern_meta(&mut params);
            }
            if let Some(o) = params.as_object_mut() {
                for (k, v) in &call.round {
                    o.insert(k.clone(), v.clone());
                }
            }
            let msg = Message::request(Id::Num(gid), &call.method, params);
            if let Some(Pending::Client(c)) = self.ups[u.0].pending.get_mut(&gid) {
                c.queued = false;
                c.round.clear();
            }
            self.send_up(u, msg);
        }
        let still = self.ups[u.0].pending.values().filter(|p| matches!(p, Pending::Client(c) if c.queued)).count();
        self.ups[u.0].queued = still;
    }

    pub(super) fn release_all(&mut self) {
        for u in 0..self.ups.len() {
            self.release(UpstreamId(u));
        }
    }

    pub(super) fn client_info(&self) -> Value {
        json!({"name": self.cfg.server_name, "version": self.cfg.server_version})
    }

    pub(super) fn send_up(&mut self, u: UpstreamId, message: Message) {
        self.asked(u, &message);
        self.out.push_back(Output::ToUpstream { upstream: u, message });
    }

    pub(super) fn internal_request(&mut self, u: UpstreamId, m: &str, params: Value) -> i64 {
        self.own_request(u, m, params, Pending::Internal)
    }

    /// A request of the gateway's own (not a client's) to `u`: a fresh id, the modern `_meta` with
    /// the gateway's capabilities when the link is modern, and `p` to remember what it is for.
    pub(super) fn own_request(&mut self, u: UpstreamId, m: &str, mut params: Value, p: Pending) -> i64 {
        let up = &mut self.ups[u.0];
        let gid = up.next_id;
        up.next_id += 1;
        if up.era == Era::Modern {
            protocol::stamp_modern_meta(
                &mut params,
                protocol::LATEST_MODERN,
                &protocol::gateway_client_capabilities(),
                &json!({"name": self.cfg.server_name, "version": self.cfg.server_version}),
            );
        }
        up.pending.insert(gid, p);
        self.send_up(u, Message::request(Id::Num(gid), m, params));
        gid
    }
}

/// What a group routes a request on: the kind of item and the member's own name or URI.
pub(super) fn group_item<'a>(m: &str, params: &'a Value) -> Option<(ListKind, &'a str)> {
    let field = |v: &'a Value, k: &str| v.get(k).and_then(Value::as_str);
    match m {
        method::TOOLS_CALL => Some((ListKind::Tools, field(params, "name")?)),
        method::PROMPTS_GET => Some((ListKind::Prompts, field(params, "name")?)),
        method::RESOURCES_READ | method::RESOURCES_SUBSCRIBE | method::RESOURCES_UNSUBSCRIBE => {
            Some((ListKind::Resources, field(params, "uri")?))
        }
        method::COMPLETE => {
            let r = params.get("ref")?;
            match r.get("type").and_then(Value::as_str)? {
                "ref/prompt" => Some((ListKind::Prompts, field(r, "name")?)),
                _ => Some((ListKind::Resources, field(r, "uri")?)),
            }
        }
        _ => None,
    }
}
