//! Upstream links: what the host reports about a link (up, down, session expired, a request never
//! delivered), the era probe and initialisation of each upstream, and the walk of its lists that
//! builds the routing catalogue.

use crate::prelude::*;

use super::*;

impl Gateway {
    /// The link to an upstream is up: the engine probes its era and initialises it.
    pub fn upstream_connected(&mut self, now: Millis, u: UpstreamId) {
        self.tick(now);
        if u.0 >= self.ups.len() {
            return;
        }
        self.started_at.get_or_insert(now);
        let era = self.cfg.upstreams[u.0].era;
        let up = &mut self.ups[u.0];
        up.pending.retain(|_, p| matches!(p, Pending::Client(_)));
        up.gathering.clear();
        match era {
            Some(Era::Legacy) => self.send_initialize(u),
            Some(Era::Modern) => self.send_probe(now, u, false),
            None => self.send_probe(now, u, true),
        }
    }

    /// A legacy upstream's session ended under us (HTTP 404): initialise a new one. Calls in flight
    /// are kept; the transport re-sends what the expired session refused, and requests arriving
    /// meanwhile are held until the upstream is ready again.
    pub fn upstream_session_expired(&mut self, _now: Millis, u: UpstreamId) {
        let Some(up) = self.ups.get_mut(u.0) else { return };
        up.pending.retain(|_, p| matches!(p, Pending::Client(_)));
        up.gathering.clear();
        let name = self.uname(u).to_string();
        self.log(LogLevel::Info, format!("upstream {name:?}: session expired, initialising again"));
        self.send_initialize(u);
    }

    pub(super) fn send_probe(&mut self, now: Millis, u: UpstreamId, may_fall_back: bool) {
        let name = self.cfg.server_name.clone();
        let version = self.cfg.server_version.clone();
        let up = &mut self.ups[u.0];
        up.link = Link::Probing;
        up.era = Era::Modern;
        let gid = up.next_id;
        up.next_id += 1;
        up.pending.insert(gid, Pending::Probe);
        up.probe_deadline = may_fall_back.then_some(now + self.cfg.probe_timeout_ms);
        let mut params = json!({});
        protocol::stamp_modern_meta(
            &mut params,
            protocol::LATEST_MODERN,
            &protocol::gateway_client_capabilities(),
            &json!({"name": name, "version": version}),
        );
        self.send_up(u, Message::request(Id::Num(gid), method::DISCOVER, params));
    }

    pub(super) fn send_initialize(&mut self, u: UpstreamId) {
        let up = &mut self.ups[u.0];
        up.link = Link::Initializing;
        up.era = Era::Legacy;
        up.probe_deadline = None;
        up.pending.retain(|_, p| !matches!(p, Pending::Probe));
        let gid = up.next_id;
        up.next_id += 1;
        up.pending.insert(gid, Pending::Init);
        let params = json!({
            "protocolVersion": protocol::LATEST_LEGACY,
            "capabilities": protocol::gateway_client_capabilities(),
            "clientInfo": { "name": self.cfg.server_name, "version": self.cfg.server_version },
        });
        self.send_up(u, Message::request(Id::Num(gid), method::INITIALIZE, params));
    }

    pub(super) fn became_ready(&mut self, now: Millis, u: UpstreamId) {
        let up = &mut self.ups[u.0];
        up.link = Link::Ready;
        up.ever_ready = true;
        up.probe_deadline = None;
        let era = up.era;
        let name = self.uname(u).to_string();
        self.log(
            LogLevel::Info,
            format!(
                "upstream {name:?} ready ({} {})",
                if era == Era::Modern { "modern" } else { "legacy" },
                self.ups[u.0].version
            ),
        );
        self.release(u);
        for kind in ListKind::ALL {
            if self.ups[u.0].capabilities.get(kind.capability()).is_some() {
                self.refresh_catalog(u, kind, None);
            }
        }
        self.check_listed(now, u);
        self.upstream_listen_reset(u);
        self.listen_upstream(now, u, true);
        if self.health[u.0].state() == crate::health::BreakerState::HalfOpen {
            self.send_health_probe(now, u);
        }
        // A link that is back gets its queued calls at once; backoff is for failed replays.
        self.replay[u.0].next_try = now;
        self.pump(now, u);
    }

    pub(super) fn refresh_catalog(&mut self, u: UpstreamId, kind: ListKind, cursor: Option<String>) {
        if cursor.is_none() {
            self.ups[u.0].gathering.insert(kind, Vec::new());
        }
        let mut params = json!({});
        if let Some(c) = cursor {
            params["cursor"] = Value::from(c);
        }
        self.own_request(u, kind.method(), params, Pending::Catalog(kind));
    }

    /// The link to an upstream went down. Its calls fail with a clear error, its items leave the
    /// aggregate, and everything else keeps working.
    pub fn upstream_disconnected(&mut self, now: Millis, u: UpstreamId, reason: &str) {
        self.tick(now);
        if u.0 < self.ups.len() {
            self.asks_dropped(now, u);
        }
        if u.0 >= self.ups.len() {
            return;
        }
        let name = self.uname(u).to_string();
        let was = self.ups[u.0].link;
        let up = &mut self.ups[u.0];
        up.link = Link::Down;
        up.ever_down = true;
        up.probe_deadline = None;
        up.gathering.clear();
        up.queued = 0;
        // In id order (the order they were sent). Sorting the ids rather than the pairs shares the
        // sort's code with the other id sorts (README "Lean and fast").
        let mut pending = core::mem::take(&mut up.pending);
        let mut gids: Vec<i64> = pending.keys().copied().collect();
        gids.sort_unstable();
        let undelivered = core::mem::take(&mut up.undelivered);
        if was != Link::Down {
            self.log(LogLevel::Warn, format!("upstream {name:?} is down: {reason}"));
        }
        for (gid, p) in gids.into_iter().filter_map(|g| pending.remove(&g).map(|p| (g, p))) {
            if let Pending::Replay { seq, .. } = p {
                // Not `reason`: the host's words (logged above) may hold the upstream's private
                // URL, and this one becomes the task's statusMessage, which clients see.
                self.replay_interrupted(now, u, seq, "its link went down", undelivered.contains(&gid));
                continue;
            }
            if let Pending::Client(mut call) = p {
                self.drop_client_index(u, gid, &call);
                let never_sent = call.queued || undelivered.contains(&gid);
                let mut in_doubt = false;
                if call.group.is_some() {
                    let f = if never_sent { Failure::NotSent } else { Failure::Sent };
                    match self.group_failed(now, u, call, f) {
                        Ok(()) => continue,
                        Err((c, d)) => (call, in_doubt) = (c, d),
                    }
                }
                // A call that never left (or never went out) may still be queued, as if it had
                // arrived a moment later.
                if never_sent && self.requeue_undelivered(now, u, &call) {
                    continue;
                }
                if self.stale_fallback(now, u, &call) {
                    continue;
                }
                if in_doubt {
                    self.give_up(u, call, Failure::Sent, None);
                } else if let Some(kind) = call.list {
                    self.list_fallback(now, u, *call, kind);
                } else if let Some(s) = call.session {
                    let e = err(code::UPSTREAM_UNAVAILABLE, format!("upstream {name:?} became unavailable"))
                        .with_data(json!({"upstream": name}));
                    self.reply_err(s, call.client_id, e);
                }
            }
        }
        self.parked.retain(|_, p| p.upstream != u);
        self.to_client.retain(|_, r| match r {
            ToClientReq::Forwarded { upstream, .. } | ToClientReq::Input { upstream, .. } => *upstream != u,
        });
        let had: Vec<ListKind> = ListKind::ALL.into_iter().filter(|k| self.catalog.count(u.0, *k) > 0).collect();
        self.catalog.clear(&self.cfg, u.0);
        for k in had {
            if k != ListKind::Templates {
                self.broadcast_legacy(k.list_changed(), None);
            }
        }
        if !self.ups.iter().any(Upstream::starting) {
            self.replay_deferred(now);
        }
    }

    pub(super) fn drop_client_index(&mut self, u: UpstreamId, gid: i64, call: &ClientCall) {
        if let Some(s) = call.session {
            if self.by_client.get(&(s, call.client_id.clone())) == Some(&(u, gid)) {
                self.by_client.remove(&(s, call.client_id.clone()));
            }
        }
    }

    /// Our request `gid` reached upstream `u`'s transport but its answer will never come: the
    /// connection broke after it was sent, while the link as a whole stays up (the server still
    /// accepts connections). The call may or may not have run there: a group call goes to another
    /// member only if that is safe, a replayed one is in doubt, anything else fails with -32000.
    pub fn upstream_lost(&mut self, now: Millis, u: UpstreamId, gid: i64, why: &str) {
        self.tick(now);
        if u.0 < self.ups.len() {
            self.ask_ended(now, u, gid, crate::metrics::Outcome::Transport, why);
        }
        let Some(up) = self.ups.get_mut(u.0) else { return };
        let name = self.cfg.upstreams[u.0].name.clone();
        let e =
            err(code::UPSTREAM_UNAVAILABLE, format!("upstream {name:?}: {why}")).with_data(json!({"upstream": name}));
        match up.pending.get(&gid) {
            Some(Pending::Client(c)) if c.group.is_some() => {
                let Some(Pending::Client(call)) = up.pending.remove(&gid) else { return };
                self.drop_client_index(u, gid, &call);
                if let Err((call, in_doubt)) = self.group_failed(now, u, call, Failure::Sent) {
                    if self.stale_fallback(now, u, &call) {
                        return;
                    }
                    self.give_up(u, call, Failure::Sent, (!in_doubt).then_some(e));
                }
            }
            Some(Pending::Replay { seq, .. }) => {
                let seq = *seq;
                up.pending.remove(&gid);
                self.replay_interrupted(now, u, seq, "its connection broke", false);
            }
            Some(Pending::Health { .. }) => {
                up.pending.remove(&gid);
                self.member_failed(now, u);
            }
            Some(_) => self.upstream_answer(now, u, Id::Num(gid), Err(e), Map::new()),
            None => {}
        }
    }

    /// The host could not deliver our request `gid` to upstream `u` at all (the connection was
    /// refused): report this before reporting the link down, so the engine knows the request did not
    /// run there. Such a queueable tool call is then queued, and a replayed one is not in doubt.
    pub fn upstream_undelivered(&mut self, _now: Millis, u: UpstreamId, gid: i64) {
        if let Some(up) = self.ups.get_mut(u.0) {
            if up.pending.contains_key(&gid) {
                up.undelivered.insert(gid);
            }
        }
    }
}
