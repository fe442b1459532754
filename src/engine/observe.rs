//! What the engine measures for metrics and status pages (see [`crate::metrics`]): each client
//! request from its arrival to the answer that leaves for the client, and each request of ours to
//! an upstream from its sending to its answer, timeout, cancellation or lost link. Times are the
//! ones the host passed in; the answer's time is the latest of them ([`Gateway::tick`]).
//!
//! The labels are fixed when the call is routed: the upstream (the group member chosen) and, for
//! `tools/call`, the tool as the client named it, only once it resolved (so clients cannot grow
//! the series with made-up names).

use crate::prelude::*;

use super::*;
use crate::metrics::{known_method, Op, Outcome, Side};

/// A client's request in progress.
pub(super) struct ServerOp {
    start: Millis,
    method: &'static str,
    upstream: Option<usize>,
    tool: Option<String>,
    /// Its trace id, kept only when every answer is logged ([`Gateway::log_every_call`]).
    trace: Option<String>,
}

/// One of our requests to an upstream in progress.
pub(super) struct ClientOp {
    start: Millis,
    method: &'static str,
    tool: Option<String>,
}

/// Calls tracked beyond which the ones whose request is gone are dropped (they ended on a path
/// that reports nothing, as when a call is parked for its client's input).
const PRUNE_AT: usize = 4096;

fn outcome_of(answer: &Result<Value, ErrorObject>) -> Outcome {
    match answer {
        Err(e) => Outcome::Rpc(e.code),
        Ok(r) if r.get("isError").and_then(Value::as_bool) == Some(true) => Outcome::ToolError,
        Ok(_) => Outcome::Ok,
    }
}

impl Gateway {
    /// The latest time a host passed in.
    pub(super) fn tick(&mut self, now: Millis) {
        self.clock = self.clock.max(now);
    }

    /// Log every answer to a client (at debug level, with its session, upstream, method, trace id
    /// and duration). Off by default: hosts turn it on when such lines would be written.
    pub fn log_every_call(&mut self, on: bool) {
        self.call_log = on;
    }

    pub(super) fn op_arrived(&mut self, now: Millis, s: SessionId, id: &Id, m: &str, params: Option<&Value>) {
        let trace = if self.call_log { params.and_then(crate::trace::trace_id).map(str::to_string) } else { None };
        let op = ServerOp { start: now, method: known_method(m), upstream: None, tool: None, trace };
        self.serving.insert((s, id.clone()), op);
    }

    /// The call was routed to `u`, for the tool the client called `tool`. A name no upstream listed
    /// (routed by its prefix alone) is labelled `_OTHER`.
    pub(super) fn op_routed(&mut self, s: SessionId, id: &Id, u: UpstreamId, tool: &str) {
        let Some(op) = self.serving.get(&(s, id.clone())) else { return };
        let label = (op.method == method::TOOLS_CALL).then(|| {
            let known = self.catalog.knows(ListKind::Tools, tool) || self.resolve_offline_tool(tool).is_some();
            if known {
                tool.to_string()
            } else {
                "_OTHER".to_string()
            }
        });
        if let Some(op) = self.serving.get_mut(&(s, id.clone())) {
            op.upstream = Some(u.0);
            op.tool = label;
        }
    }

    /// A message is leaving for a client: if it answers a request, that operation ended.
    pub(super) fn op_answered(&mut self, s: SessionId, message: &Message) {
        let (id, outcome, text) = match message {
            Message::Response { id, result, .. } => {
                let o = if result.get("isError").and_then(Value::as_bool) == Some(true) {
                    Outcome::ToolError
                } else {
                    Outcome::Ok
                };
                (id, o, "")
            }
            Message::Error { id: Some(id), error, .. } => (id, Outcome::Rpc(error.code), error.message.as_str()),
            _ => return,
        };
        if self.serving.is_empty() {
            return;
        }
        let Some(op) = self.serving.remove(&(s, id.clone())) else { return };
        let o = Op { method: op.method, upstream: op.upstream, tool: op.tool.as_deref() };
        let ms = self.clock.saturating_sub(op.start);
        self.metrics.observe(Side::Server, o, outcome, ms);
        if self.call_log {
            let what = match (outcome, op.tool.as_deref()) {
                (Outcome::Ok, Some(t)) => format!("{} {t:?} answered in {ms} ms", op.method),
                (Outcome::Ok, None) => format!("{} answered in {ms} ms", op.method),
                (o, t) => format!(
                    "{}{} failed in {ms} ms ({})",
                    op.method,
                    t.map(|t| format!(" {t:?}")).unwrap_or_default(),
                    o.error_type()
                ),
            };
            let call = LogCall {
                session: Some(s),
                upstream: op.upstream.map(|u| self.cfg.upstreams[u].name.clone()),
                method: op.method.to_string(),
                trace_id: op.trace,
            };
            self.out.push_back(Output::Log { level: LogLevel::Debug, message: what, call: Some(Box::new(call)) });
        }
        if let Outcome::Rpc(_) = outcome {
            let wall = self.wall(self.clock);
            self.metrics.recent_error(wall, Side::Server, o, outcome, text);
        }
    }

    /// A request of ours is leaving for `u`; a cancellation of one ends it.
    pub(super) fn asked(&mut self, u: UpstreamId, message: &Message) {
        match message {
            Message::Request { id: Id::Num(gid), method: m, params, .. } => {
                let tool = (m == method::TOOLS_CALL)
                    .then(|| params.as_ref().and_then(|p| p.get("name")).and_then(Value::as_str))
                    .flatten()
                    .map(str::to_string);
                if self.asking.len() >= PRUNE_AT {
                    let ups = &self.ups;
                    self.asking.retain(|(u, g), _| ups[*u].pending.contains_key(g));
                }
                self.asking.insert((u.0, *gid), ClientOp { start: self.clock, method: known_method(m), tool });
            }
            Message::Notification { method: m, params: Some(p), .. } if m == method::CANCELLED => {
                let Some(gid) = p.get("requestId").and_then(Value::as_i64) else { return };
                let timed_out = p.get("reason").and_then(Value::as_str).is_some_and(|r| r.contains("timed out"));
                let outcome = if timed_out { Outcome::Timeout } else { Outcome::Cancelled };
                self.ask_ended(self.clock, u, gid, outcome, "");
            }
            _ => {}
        }
    }

    /// `u` answered our request `gid`.
    pub(super) fn ask_answered(&mut self, now: Millis, u: UpstreamId, gid: i64, answer: &Result<Value, ErrorObject>) {
        let text = answer.as_ref().err().map_or("", |e| e.message.as_str());
        self.ask_ended(now, u, gid, outcome_of(answer), text);
    }

    pub(super) fn ask_ended(&mut self, now: Millis, u: UpstreamId, gid: i64, outcome: Outcome, text: &str) {
        let Some(op) = self.asking.remove(&(u.0, gid)) else { return };
        let o = Op { method: op.method, upstream: Some(u.0), tool: op.tool.as_deref() };
        self.metrics.observe(Side::Client, o, outcome, now.saturating_sub(op.start));
        // A legacy upstream refusing `server/discover` is how its era is found, not an error to show.
        let era_probe = op.method == method::DISCOVER && outcome == Outcome::Rpc(code::METHOD_NOT_FOUND);
        if !era_probe && !matches!(outcome, Outcome::Ok | Outcome::ToolError | Outcome::Cancelled) {
            let wall = self.wall(now);
            let text = match outcome {
                Outcome::Timeout => "no answer in time",
                Outcome::Transport => "the link broke before the answer",
                _ => text,
            };
            self.metrics.recent_error(wall, Side::Client, o, outcome, text);
        }
    }

    /// The link to `u` went down: every request of ours on it ended without an answer.
    pub(super) fn asks_dropped(&mut self, now: Millis, u: UpstreamId) {
        let gone: Vec<i64> = self.asking.keys().filter(|(x, _)| *x == u.0).map(|(_, g)| *g).collect();
        for gid in gone {
            self.ask_ended(now, u, gid, Outcome::Transport, "");
        }
    }

    /// A session closed: its requests still in progress are no one's now.
    pub(super) fn ops_closed(&mut self, s: SessionId) {
        self.serving.retain(|(x, _), _| *x != s);
    }

    /// Every figure for metrics, as one JSON object (the same in every host): the operation
    /// histograms, sessions, cache, queue and replays, each upstream's link and breaker, the
    /// engine's counters, sampling answers and the recent errors.
    pub fn metrics(&self) -> Value {
        let names: Vec<&str> = self.cfg.upstreams.iter().map(|u| u.name.as_str()).collect();
        let st = self.cache.stats;
        let count = |s: crate::queue::State| self.queue.values().filter(|e| e.state == s).count();
        let ups: Vec<Value> = (0..self.ups.len())
            .map(|i| {
                let u = &self.ups[i];
                json!({
                    "name": names[i],
                    "state": match u.link { Link::Down => "down", Link::Probing => "probing", Link::Initializing => "initializing", Link::Ready => "ready" },
                    "group": self.member_of[i].map(|g| self.cfg.groups[g].name.clone()),
                    "breaker": self.health[i].state().name(),
                    "inFlight": u.pending.values().filter(|p| !matches!(p, Pending::Listen)).count(),
                })
            })
            .collect();
        json!({
            "operations": self.metrics.operations(&names),
            "sessions": self.sessions.len(),
            "cache": { "hits": st.hits, "misses": st.misses, "stale": st.stale, "evictions": st.evictions,
                       "entries": self.cache.len(), "bytes": self.cache.bytes() },
            "queue": { "depth": count(crate::queue::State::Queued) + count(crate::queue::State::Running),
                       "replays": { "completed": self.metrics.replays_completed, "failed": self.metrics.replays_failed,
                                    "inDoubt": self.metrics.replays_in_doubt, "requeued": self.metrics.replays_requeued } },
            "upstreams": ups,
            "stats": {
                "clientRequests": self.stats.client_requests, "upstreamRequests": self.stats.upstream_requests,
                "upstreamErrors": self.stats.upstream_errors, "timeouts": self.stats.timeouts,
                "failovers": self.stats.failovers, "retries": self.stats.retries,
                "breakerTransitions": self.stats.breaker_transitions, "inDoubt": self.stats.in_doubt },
            "sampling": { "answers": self.sampled, "failures": self.sample_failures },
            "recentErrors": self.metrics.recent_errors(&names),
        })
    }
}
