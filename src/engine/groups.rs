//! Upstream groups: which member a call goes to, what an outcome says about a member's health, and
//! when a call that failed may go to another member.
//!
//! - A call goes to the first member, in the group's order, that is ready, whose breaker is closed
//!   and that has the item. With none, it goes to the first member that has the item, as to a single
//!   upstream: down, the cache and the offline queue answer for it.
//! - Outcomes: a transport failure, a timeout or a server-side error (-32603, -32000..-32099) is a
//!   failure; any answer the caller's request earned (a result, `isError`, -32602, -32601, ...) is a
//!   success. They feed the member's breaker ([`crate::health`]). At the end of a cooldown the member
//!   is probed with `ping`; the probe's answer closes the breaker, its timeout opens it again.
//! - Never a double run: a call that provably never reached the member (still queued, refused
//!   connection) goes to the next member whatever it is. A call that may have run is repeated only
//!   when it is safe (lists, reads, `prompts/get`, `completion/complete`, tools annotated
//!   `readOnlyHint` or `idempotentHint`, or named in `retry.safe_tools`), within the group's
//!   attempts and retry budget; otherwise the client is told it is in doubt.

use crate::prelude::*;

use super::*;
use crate::health::{self, Transition, Why};

/// Where a group call has been.
#[derive(Debug, Clone)]
pub(super) struct GroupCall {
    pub(super) group: usize,
    /// Members tried so far, by position in the group (bit i: `members[i]`).
    tried: u128,
    extra: u32,
    /// Until the member's first sign of life for this call.
    pub(super) first_byte: Option<Millis>,
    /// The highest progress passed to the client: after a failover the next member counts from
    /// the start again, and progress must never go backwards.
    last_progress: Option<f64>,
}

/// A safe call waiting out its backoff before it goes to a member again.
pub(super) struct Delayed {
    pub(super) due: Millis,
    pub(super) from: UpstreamId,
    pub(super) call: Box<ClientCall>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// It provably never reached the member.
    NotSent,
    /// It may have run there.
    Sent,
    /// The member answered with a server-side error.
    ServerError,
}

/// Whether an error is the server's failure rather than an answer to the caller's request.
pub(super) fn server_side(e: &ErrorObject) -> bool {
    e.code == code::INTERNAL_ERROR || (-32099..=-32000).contains(&e.code) && e.code != code::RESOURCE_NOT_FOUND
}

impl Gateway {
    pub(super) fn group_of(&self, u: usize) -> Option<usize> {
        self.member_of.get(u).copied().flatten()
    }

    fn has_item(&self, m: usize, kind: ListKind, key: &str) -> bool {
        let items = self.catalog.items(m, kind);
        match kind {
            ListKind::Resources => {
                items.iter().any(|i| item_key(kind, i) == Some(key))
                    || self.catalog.items(m, ListKind::Templates).iter().any(|t| {
                        t.get("uriTemplate")
                            .and_then(Value::as_str)
                            .is_some_and(|t| crate::routing::template_matches(t, key))
                    })
            }
            _ => items.iter().any(|i| item_key(kind, i) == Some(key)),
        }
    }

    fn usable(&self, m: usize) -> bool {
        self.ups[m].link == Link::Ready && self.health[m].allows()
    }

    /// The member a group call for `key` goes to, skipping those `tried`; `None` if none can take it.
    fn pick(&self, g: usize, kind: ListKind, key: &str, tried: u128) -> Option<usize> {
        let members = &self.cfg.groups[g].members;
        (0..members.len())
            .find(|&i| tried & (1 << i) == 0 && self.usable(members[i]) && self.has_item(members[i], kind, key))
            .map(|i| members[i])
    }

    /// `u`'s bit in a group call's `tried`.
    fn bit(&self, g: usize, u: usize) -> u128 {
        self.cfg.groups[g].members.iter().position(|&m| m == u).map_or(0, |i| 1 << i)
    }

    /// Where a call routed to `u` goes when `u` is a group member: see the module documentation.
    pub(super) fn group_target(&self, u: UpstreamId, kind: ListKind, key: &str) -> UpstreamId {
        let Some(g) = self.group_of(u.0) else { return u };
        if let Some(m) = self.pick(g, kind, key, 0) {
            return UpstreamId(m);
        }
        let members = &self.cfg.groups[g].members;
        let known = |m: usize| {
            self.has_item(m, kind, key)
                || kind == ListKind::Tools && self.known[m].iter().any(|t| item_key(kind, t) == Some(key))
        };
        UpstreamId(members.iter().copied().find(|&m| known(m)).unwrap_or(u.0))
    }

    /// A group call was just forwarded to `u` as `gid`: note where it has been and set its deadlines.
    pub(super) fn group_sent(&mut self, now: Millis, u: UpstreamId, gid: i64, prior: Option<GroupCall>) {
        let Some(g) = self.group_of(u.0) else { return };
        let bit = self.bit(g, u.0);
        let spec = &self.cfg.groups[g];
        let Some(Pending::Client(c)) = self.ups[u.0].pending.get_mut(&gid) else { return };
        if prior.is_none() {
            self.budgets[g].first_attempt(now, &spec.retry);
        }
        let mut gc = prior.unwrap_or(GroupCall { group: g, tried: 0, extra: 0, first_byte: None, last_progress: None });
        gc.tried |= bit;
        gc.first_byte = spec.first_byte_for(&c.method).map(|t| now + t);
        if let Some(t) = spec.total_for(&c.method) {
            c.deadline = now + t;
        }
        c.group = Some(gc);
    }

    /// The member's first sign of life for call `gid`.
    pub(super) fn group_alive(&mut self, u: UpstreamId, gid: i64) {
        if let Some(Pending::Client(c)) = self.ups[u.0].pending.get_mut(&gid) {
            if let Some(g) = c.group.as_mut() {
                g.first_byte = None;
            }
        }
    }

    /// Whether a progress notification of group call `gid` may go to the client: only if it moves
    /// past what the client has seen (a member that took the call over starts again from zero).
    pub(super) fn group_progress_ok(&mut self, u: UpstreamId, gid: i64, progress: Option<f64>) -> bool {
        let Some(Pending::Client(c)) = self.ups[u.0].pending.get_mut(&gid) else { return true };
        let (Some(g), Some(p)) = (c.group.as_mut(), progress) else { return true };
        if g.last_progress.is_some_and(|last| p <= last) {
            return false;
        }
        g.last_progress = Some(p);
        true
    }

    pub(super) fn member_ok(&mut self, now: Millis, u: UpstreamId) {
        let Some(g) = self.group_of(u.0) else { return };
        if let Some(t) = self.health[u.0].success(now, &self.cfg.groups[g].breaker) {
            self.breaker_moved(now, u, t);
        }
    }

    pub(super) fn member_failed(&mut self, now: Millis, u: UpstreamId) {
        let Some(g) = self.group_of(u.0) else { return };
        if let Some(t) = self.health[u.0].failure(now, &self.cfg.groups[g].breaker) {
            self.breaker_moved(now, u, t);
        }
    }

    fn breaker_moved(&mut self, now: Millis, u: UpstreamId, t: Transition) {
        self.stats.breaker_transitions += 1;
        let name = self.uname(u).to_string();
        match t {
            Transition::Opened { cooldown_ms, why } => {
                let why = match why {
                    Why::Consecutive(n) => format!("{n} failures in a row"),
                    Why::Rate(f, n) => format!("{f} of its last {n} calls failed"),
                    Why::TrialFailed => "its probe failed".to_string(),
                };
                self.log(LogLevel::Warn, format!("group member {name:?} ejected for {cooldown_ms} ms: {why}"));
            }
            Transition::HalfOpened => self.send_health_probe(now, u),
            Transition::Closed => {
                self.log(LogLevel::Info, format!("group member {name:?} restored: its probe answered"))
            }
        }
    }

    /// The trial of a half-open member: a `ping`, which every server answers.
    pub(super) fn send_health_probe(&mut self, now: Millis, u: UpstreamId) {
        if self.ups[u.0].link != Link::Ready
            || self.ups[u.0].pending.values().any(|p| matches!(p, Pending::Health { .. }))
        {
            return;
        }
        let Some(g) = self.group_of(u.0) else { return };
        let deadline = now + self.cfg.groups[g].breaker.probe_timeout_ms;
        self.own_request(u, method::PING, json!({}), Pending::Health { deadline });
    }

    /// Breakers whose cooldown ended go half-open (and are probed); probes that timed out fail.
    pub(super) fn health_timeout(&mut self, now: Millis) {
        for u in 0..self.ups.len() {
            if self.group_of(u).is_none() {
                continue;
            }
            let late: Vec<i64> = self.ups[u]
                .pending
                .iter()
                .filter_map(|(g, p)| matches!(p, Pending::Health { deadline } if *deadline <= now).then_some(*g))
                .collect();
            for gid in late {
                self.ups[u].pending.remove(&gid);
                self.ask_ended(now, UpstreamId(u), gid, crate::metrics::Outcome::Timeout, "");
                self.member_failed(now, UpstreamId(u));
            }
            if let Some(t) = self.health[u].poll(now) {
                self.breaker_moved(now, UpstreamId(u), t);
            }
        }
        let due: Vec<Delayed> = {
            let (due, wait) = core::mem::take(&mut self.delayed).into_iter().partition(|d| d.due <= now);
            self.delayed = wait;
            due
        };
        for d in due {
            // A safe call: if no member can take it now, the client hears that, not "in doubt".
            if let Err(call) = self.resend(now, d.from, d.call, true) {
                self.give_up(d.from, call, Failure::NotSent, None);
            }
        }
    }

    pub(super) fn health_deadline(&self) -> Option<Millis> {
        let mut t = self.delayed.iter().map(|d| d.due).min();
        for (u, h) in self.health.iter().enumerate() {
            if self.group_of(u).is_some() {
                if let Some(d) = h.deadline() {
                    t = Some(t.map_or(d, |x| x.min(d)));
                }
            }
        }
        t
    }

    /// Whether this call may run twice.
    fn safe(&self, u: UpstreamId, call: &ClientCall, g: &GroupCall) -> bool {
        let key = super::calls::group_item(&call.method, &call.sent_params).map_or("", |(_, k)| k);
        match call.method.as_str() {
            method::RESOURCES_READ | method::PROMPTS_GET | method::COMPLETE => true,
            m if call.list.is_some() || m.ends_with("/list") => true,
            method::TOOLS_CALL => {
                self.cfg.groups[g.group].retry.safe_tools.iter().any(|t| t == key)
                    || self.catalog.items(u.0, ListKind::Tools).iter().chain(&self.known[u.0]).any(|t| {
                        item_key(ListKind::Tools, t) == Some(key)
                            && ["readOnlyHint", "idempotentHint"]
                                .iter()
                                .any(|h| t.pointer(&format!("/annotations/{h}")).and_then(Value::as_bool) == Some(true))
                    })
            }
            _ => false,
        }
    }

    /// A group call failed on `u`. `Ok` when it went elsewhere (or waits to); otherwise the call
    /// comes back for the caller's usual handling, and `in_doubt` says whether it may have run.
    pub(super) fn group_failed(
        &mut self,
        now: Millis,
        u: UpstreamId,
        call: Box<ClientCall>,
        f: Failure,
    ) -> Result<(), (Box<ClientCall>, bool)> {
        let Some(g) = call.group.clone() else { return Err((call, false)) };
        if f != Failure::NotSent {
            self.member_failed(now, u);
        }
        if !call.session.is_some_and(|s| self.sessions.contains_key(&s)) {
            return Ok(()); // Nobody waits for it any more.
        }
        if call.collect.is_some() || !call.round.is_empty() {
            // Half way through a multi-round-trip call: its state lives on that member.
            return Err((call, f == Failure::Sent));
        }
        if f == Failure::NotSent {
            return self.resend(now, u, call, false).map_err(|c| (c, false));
        }
        let safe = self.safe(u, &call, &g);
        if !safe {
            if f == Failure::Sent {
                self.stats.in_doubt += 1;
            }
            return Err((call, f == Failure::Sent));
        }
        let p = self.cfg.groups[g.group].retry.clone();
        if g.extra >= p.attempts {
            return Err((call, false));
        }
        if !self.budgets[g.group].try_spend(now, &p) {
            let name = self.cfg.groups[g.group].name.clone();
            let msg = format!("group {name:?}: retry budget spent; not repeating a failed {}", call.method);
            self.log_call(LogLevel::Warn, call.session, Some(u), &call.method, Some(&call.sent_params), msg);
            return Err((call, false));
        }
        let mut call = call;
        if let Some(gc) = call.group.as_mut() {
            gc.extra += 1;
        }
        let Some((kind, key)) = super::calls::group_item(&call.method, &call.sent_params) else {
            return Err((call, false));
        };
        match self.pick(g.group, kind, key, g.tried) {
            Some(_) => self.resend(now, u, call, true).map_err(|c| (c, false)),
            None => {
                // No other member: the same one again, after a jittered backoff.
                let n = call.group.as_ref().map_or(1, |g| g.extra);
                let wait = health::backoff(n, &p, self.tokens.next_u64());
                if let Some(gc) = call.group.as_mut() {
                    gc.tried &= !self.bit(g.group, u.0);
                }
                self.delayed.push(Delayed { due: now + wait, from: u, call });
                Ok(())
            }
        }
    }

    /// Send a group call that left `from` to the next member that can take it.
    fn resend(
        &mut self,
        now: Millis,
        from: UpstreamId,
        call: Box<ClientCall>,
        counted: bool,
    ) -> Result<(), Box<ClientCall>> {
        let Some(g) = call.group.clone() else { return Err(call) };
        let Some(s) = call.session.filter(|s| self.sessions.contains_key(s)) else { return Ok(()) };
        let Some((kind, key)) = super::calls::group_item(&call.method, &call.sent_params) else { return Err(call) };
        let Some(to) = self.pick(g.group, kind, key, g.tried) else { return Err(call) };
        let key = key.to_string();
        if counted {
            self.stats.retries += 1;
        }
        if to != from.0 {
            self.stats.failovers += 1;
            let (a, b) = (self.uname(from).to_string(), self.cfg.upstreams[to].name.clone());
            let msg = format!("{} {key:?}: failing over from {a:?} to {b:?}", call.method);
            self.log_call(
                LogLevel::Info,
                call.session,
                Some(UpstreamId(to)),
                &call.method,
                Some(&call.sent_params),
                msg,
            );
        }
        let mut params = call.sent_params.clone();
        if let Some(t) = &call.client_progress {
            params["_meta"]["progressToken"] = t.clone();
        }
        let ClientCall { client_id, method, modern_client, cache, list, .. } = *call;
        if let Some(gid) = self.forward(now, s, client_id, UpstreamId(to), method, params, list, modern_client, cache) {
            self.group_sent(now, UpstreamId(to), gid, Some(g));
        }
        Ok(())
    }

    /// A failed group call that could not go elsewhere: the client's error.
    pub(super) fn give_up(&mut self, u: UpstreamId, call: Box<ClientCall>, f: Failure, e: Option<ErrorObject>) {
        let Some(s) = call.session.filter(|s| self.sessions.contains_key(s)) else { return };
        let name = self.uname(u).to_string();
        let e = e.unwrap_or_else(|| match f {
            Failure::Sent => err(
                code::UPSTREAM_UNAVAILABLE,
                format!(
                    "{} failed on upstream {name:?} after it may have run there; it is in doubt and was not repeated",
                    call.method
                ),
            )
            .with_data(json!({"upstream": name, "inDoubt": true})),
            _ => err(
                code::UPSTREAM_UNAVAILABLE,
                format!("no member of the group could take the call (last tried: {name:?})"),
            )
            .with_data(json!({"upstream": name})),
        });
        self.reply_err(s, call.client_id, e);
    }

    /// Each group: its members with their breakers, and which one is serving.
    pub(super) fn groups_status(&self) -> Value {
        let groups: Vec<Value> = self
            .cfg
            .groups
            .iter()
            .enumerate()
            .map(|(gi, g)| {
                // The member calls go to: usable, and with its catalogue in (a member that has just
                // come back serves nothing until its lists arrive), else the first usable one.
                let listed = |m: usize| ListKind::ALL.iter().any(|&k| self.catalog.count(m, k) > 0);
                let serving = g
                    .members
                    .iter()
                    .copied()
                    .find(|&m| self.usable(m) && listed(m))
                    .or_else(|| g.members.iter().copied().find(|&m| self.usable(m)));
                json!({
                    "name": g.name,
                    "serving": serving.map(|m| self.cfg.upstreams[m].name.clone()),
                    "members": g.members.iter().map(|&m| json!({
                        "name": self.cfg.upstreams[m].name,
                        "breaker": self.health[m].state().name(),
                        "recentFailures": self.health[m].recent_failures(&g.breaker),
                        "failures": self.health[m].failures_total,
                        "ejections": self.health[m].ejections(),
                        "transitions": self.health[m].transitions,
                    })).collect::<Vec<_>>(),
                    "retryBudgetRefused": self.budgets[gi].refused,
                })
            })
            .collect();
        Value::Array(groups)
    }
}
