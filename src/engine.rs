//! The gateway engine: sessions, upstream registry, routing, id remapping and era bridging, with no
//! I/O and no clock.
//!
//! # Calling contract
//!
//! The host owns the sockets, processes and the clock. It feeds the engine what happened, with the
//! current time in milliseconds (any monotonic origin):
//!
//! - [`Gateway::upstream_connected`] / [`Gateway::upstream_disconnected`] when a link to an upstream
//!   comes up or goes down; the engine then probes and initialises it itself.
//! - [`Gateway::open_session`] / [`Gateway::close_session`] for downstream clients.
//! - [`Gateway::handle_client`] and [`Gateway::handle_upstream`] for every message received.
//! - [`Gateway::handle_timeout`] once [`Gateway::poll_timeout`]'s deadline has passed.
//! - [`Gateway::upstream_undelivered`] / [`Gateway::upstream_lost`] when a request of ours never
//!   left, or left and will never be answered (its connection broke).
//! - [`Gateway::sampling_done`] with a sampling provider's answer ([`Output::Sample`]).
//!
//! After each call it drains [`Gateway::poll_output`] and performs what comes out, in order. The engine
//! never blocks and never panics on peer input: whatever a peer sends, the answer is a message.
//!
//! # Layout
//!
//! This file holds the engine's state and its public face; each concept has a file of its own, every
//! one an `impl Gateway` block with its contract at the top:
//! `sessions` (downstream sessions), `client` (what clients send), `calls` (routing a request to one
//! upstream), `lists` (aggregated lists), `links` (what the host reports about upstream links, probe,
//! initialisation, catalogue), `answers` (what upstreams send back), `server_requests` (sampling,
//! elicitation and roots, era bridging), `groups` (which member serves a group's call, health,
//! failover), `sampling` (the provider chain), `observe` (what metrics count), `listen` (notifications outside replies:
//! `subscriptions/listen` both ways), `time` (deadlines) and `offline` (cache and queue).

use crate::prelude::*;

mod answers;
mod calls;
mod client;
mod groups;
mod guard;
mod links;
mod listen;
mod lists;
mod observe;
mod offline;
mod sampling;
mod server_requests;
mod sessions;
mod shape;
mod time;

use crate::cache::Cache;
use crate::config::{ConfigError, GatewayConfig};
use crate::cursor::{self, Position};
use crate::health::{Breaker, RetryBudget};
use crate::jsonrpc::{code, ErrorObject, Id, Message};
use crate::protocol::{self, meta, method, Era, ListKind};
use crate::queue::Queue;
use crate::routing::{item_key, Catalog, Collision};
use crate::store::StoreOp;
use crate::token::TokenSource;
use alloc::collections::VecDeque;
use groups::{Delayed, Failure, GroupCall};
use offline::{CacheSlot, Replay, StoreWait, Waiter};
use serde_json::{json, Map, Value};
use shape::check_params;

/// Milliseconds on the host's monotonic clock.
pub type Millis = u64;

/// A downstream client connection (a legacy session, a stdio peer, or one modern HTTP request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// An upstream, by its index in [`GatewayConfig::upstreams`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UpstreamId(pub usize);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// Something the host must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Deliver to a client. `related` is the client request this message belongs to, when there is
    /// one: the host sends it on that request's stream if it is still open.
    ToClient { session: SessionId, related: Option<Id>, message: Message },
    /// Send to an upstream.
    ToUpstream { upstream: UpstreamId, message: Message },
    /// Write to the log; `call` says which call a line is about, for structured logs.
    Log { level: LogLevel, message: String, call: Option<Box<LogCall>> },
    /// Apply this batch to the store (see [`crate::store::Store`]), after every earlier batch, then
    /// report the outcome with [`Gateway::store_done`] and this ticket.
    Store { ticket: u64, ops: Vec<StoreOp> },
    /// Ask a sampling provider: POST `request` as JSON to `url` (an OpenAI-compatible chat
    /// completions endpoint) with the provider's API key if it has one; or, when `url` is empty,
    /// hand `request` (the MCP sampling params) to the host's built-in provider of that name. Report
    /// the response body, or why there is none, with [`Gateway::sampling_done`].
    Sample { job: u64, provider: String, url: String, request: Value },
}

/// Which call a log line is about: hosts write these as fields of their own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogCall {
    pub session: Option<SessionId>,
    pub upstream: Option<String>,
    pub method: String,
    /// The W3C trace id of the call, when its client sent one.
    pub trace_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Down,
    Probing,
    Initializing,
    Ready,
}

struct Upstream {
    link: Link,
    era: Era,
    version: String,
    capabilities: Value,
    server_info: Value,
    next_id: i64,
    pending: HashMap<i64, Pending>,
    /// Client calls waiting to be sent (the link is not ready, or an interactive call of another
    /// client is in flight); see [`Gateway::release`].
    queued: usize,
    /// Calls (method and name) seen to make this upstream ask its client something over a link that
    /// cannot say which call asked (stdio). Such calls from different clients go one at a time.
    interactive: HashSet<String>,
    probe_deadline: Option<Millis>,
    ever_ready: bool,
    /// The host reported the link down at least once (so it is not merely still starting).
    ever_down: bool,
    /// Its first catalogue (every list) has been fetched: unprefixed names can be routed.
    listed: bool,
    /// Pages gathered so far by an internal catalogue refresh, per kind.
    gathering: HashMap<ListKind, Vec<Value>>,
    /// Our requests the host reported as never delivered (the connection was refused): when the
    /// link goes down, they are known not to have run.
    undelivered: HashSet<i64>,
}

enum Pending {
    Probe,
    Init,
    /// A catalogue refresh page (ours, not a client's).
    Catalog(ListKind),
    /// A request of ours whose answer nobody waits for (logging/setLevel fan-out and the like).
    Internal,
    /// The gateway's `subscriptions/listen` to a modern upstream (its answer ends it).
    Listen,
    /// The `ping` that decides a half-open breaker.
    Health {
        deadline: Millis,
    },
    /// A queued call being replayed.
    Replay {
        seq: u64,
        deadline: Millis,
    },
    Client(Box<ClientCall>),
}

struct ClientCall {
    /// `None` while the call is parked waiting for a modern client's retry.
    session: Option<SessionId>,
    client_id: Id,
    method: String,
    /// The params as sent upstream: needed to retry a multi-round-trip call.
    sent_params: Value,
    client_progress: Option<Value>,
    deadline: Millis,
    /// For an aggregated list page: which kind.
    list: Option<ListKind>,
    /// For a legacy client answering a modern upstream's `input_required`: answers gathered so far.
    collect: Option<Collect>,
    /// Whether the client speaks the modern era (decides how results and input requests look).
    modern_client: bool,
    /// Not sent upstream yet.
    queued: bool,
    /// Members added to `sent_params` for the next send only (a retry's `inputResponses` and
    /// `requestState`).
    round: Map<String, Value>,
    /// A cacheable request: what to cache its answer under.
    cache: Option<CacheSlot>,
    /// A call to a group member: where it has been.
    group: Option<GroupCall>,
}

impl ClientCall {
    /// What identifies the call for interactivity: method and tool/prompt name or URI.
    fn key(&self) -> String {
        let p = &self.sent_params;
        let name = p.get("name").or_else(|| p.get("uri")).and_then(Value::as_str).unwrap_or_default();
        format!("{} {name}", self.method)
    }

    /// Sent upstream, answering nobody's input, on behalf of a client.
    fn in_flight(&self) -> bool {
        !self.queued && self.collect.is_none() && self.session.is_some()
    }
}

struct Collect {
    waiting: usize,
    responses: Map<String, Value>,
    request_state: Option<Value>,
    /// For a modern client whose input requests the sampling chain answers: the upstream's result,
    /// handed over as it was if the chain falls through to the client.
    original: Option<Value>,
}

/// What a request we sent to a client is for.
enum ToClientReq {
    /// A legacy upstream's own request, forwarded; the answer goes back with the upstream's id.
    Forwarded { upstream: UpstreamId, upstream_id: Id },
    /// One input request of a modern upstream's `input_required` result.
    Input { upstream: UpstreamId, call: i64, key: String },
}

/// A legacy upstream's server-to-client request, turned into an `input_required` result for a modern
/// client; it waits here for the client's retry.
struct Parked {
    upstream: UpstreamId,
    call: i64,
    upstream_req: Id,
    key: String,
    /// The input request as the client saw it, to ask again when a retry lacks the answer.
    request: Value,
    expires: Millis,
}

impl Upstream {
    /// Not ready yet, and not known to be unreachable: its first connection is still under way.
    fn starting(&self) -> bool {
        !(self.ever_down || self.ever_ready && self.listed)
    }
}

struct Session {
    legacy_initialized: bool,
    version: String,
    capabilities: Value,
    client_info: Value,
    next_req: i64,
    subscriptions: HashSet<String>,
    last_active: Millis,
    /// Digest of the client's auth context (private cache entries and queued calls are per context).
    auth: String,
    /// Sees every queued call (admin endpoints).
    admin: bool,
    /// Who is calling, when the host authenticated the session.
    principal: Option<crate::Principal>,
}

/// Counters a host can export.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub client_requests: u64,
    pub upstream_requests: u64,
    pub upstream_errors: u64,
    pub timeouts: u64,
    /// Group calls sent to another member than the one they failed on.
    pub failovers: u64,
    /// Extra attempts of group calls (failovers included).
    pub retries: u64,
    pub breaker_transitions: u64,
    /// Group calls that failed after they may have run, reported as in doubt.
    pub in_doubt: u64,
}

/// The engine. See the module documentation for how to drive it.
pub struct Gateway {
    cfg: GatewayConfig,
    ups: Vec<Upstream>,
    catalog: Catalog,
    sessions: HashMap<SessionId, Session>,
    next_session: u64,
    /// (session, client id) → (upstream, our id), for cancellation and session close.
    by_client: HashMap<(SessionId, Id), (UpstreamId, i64)>,
    to_client: HashMap<(SessionId, i64), ToClientReq>,
    parked: HashMap<String, Parked>,
    tokens: TokenSource,
    /// Client requests that arrived while upstreams were still connecting for the first time.
    deferred: VecDeque<(SessionId, Message)>,
    started_at: Option<Millis>,
    out: VecDeque<Output>,
    stats: Stats,
    cache: Cache,
    /// The offline queue by sequence number; only what the store confirmed is here.
    queue: Queue,
    next_seq: u64,
    /// Each upstream's tools as last listed (kept while it is down, and in the store).
    known: Vec<Vec<Value>>,
    replay: Vec<Replay>,
    /// `tasks/result` requests waiting for their entry to finish.
    waiters: Vec<(u64, Waiter)>,
    /// Wall-clock milliseconds minus host milliseconds (wide: both are any `u64`).
    wall_offset: i128,
    next_ticket: u64,
    /// Store batches not reported yet, oldest first (they are reported in order).
    tickets: VecDeque<(u64, StoreWait)>,
    /// Each upstream's group, if it is a member.
    member_of: Vec<Option<usize>>,
    /// Each upstream's breaker (used for group members).
    health: Vec<Breaker>,
    /// Each group's retry budget.
    budgets: Vec<RetryBudget>,
    /// Group calls waiting out a backoff.
    delayed: Vec<Delayed>,
    /// Aggregated list requests being gathered.
    gathers: HashMap<(SessionId, Id), lists::Gather>,
    /// `subscriptions/listen`, downstream and upstream.
    listening: listen::Listening,
    /// Sampling requests going down the provider chain.
    jobs: HashMap<u64, sampling::Job>,
    next_job: u64,
    /// Sampling answers and failures per provider.
    sampled: alloc::collections::BTreeMap<String, u64>,
    sample_failures: alloc::collections::BTreeMap<String, u64>,
    /// Rate limits by principal (or session).
    buckets: crate::limits::Buckets,
    validator: Option<Box<dyn crate::validate::ArgumentValidator>>,
    /// The latest time a host passed in (when an answer leaves, see `observe`).
    clock: Millis,
    /// Log every answer (see `observe`).
    call_log: bool,
    metrics: crate::metrics::Metrics,
    /// Client requests in progress, and our requests to upstreams in progress (for the metrics).
    serving: HashMap<(SessionId, Id), observe::ServerOp>,
    asking: HashMap<(usize, i64), observe::ClientOp>,
}

fn err(code: i64, msg: impl Into<String>) -> ErrorObject {
    ErrorObject::new(code, msg)
}

impl Gateway {
    pub fn new(cfg: GatewayConfig) -> Result<Gateway, ConfigError> {
        cfg.validate()?;
        let ups = cfg
            .upstreams
            .iter()
            .map(|_| Upstream {
                link: Link::Down,
                era: Era::Legacy,
                version: String::new(),
                capabilities: Value::Null,
                server_info: Value::Null,
                next_id: 1,
                pending: HashMap::new(),
                queued: 0,
                interactive: HashSet::new(),
                probe_deadline: None,
                ever_ready: false,
                ever_down: false,
                listed: false,
                gathering: HashMap::new(),
                undelivered: HashSet::new(),
            })
            .collect();
        let n = cfg.upstreams.len();
        let mut member_of = vec![None; n];
        for (g, spec) in cfg.groups.iter().enumerate() {
            for &m in &spec.members {
                member_of[m] = Some(g);
            }
        }
        Ok(Gateway {
            member_of,
            health: vec![Breaker::default(); n],
            budgets: vec![RetryBudget::default(); cfg.groups.len()],
            delayed: Vec::new(),
            gathers: HashMap::new(),
            listening: Default::default(),
            jobs: HashMap::new(),
            next_job: 1,
            sampled: Default::default(),
            sample_failures: Default::default(),
            buckets: Default::default(),
            validator: None,
            clock: 0,
            call_log: false,
            metrics: Default::default(),
            serving: HashMap::new(),
            asking: HashMap::new(),
            catalog: Catalog::new(n),
            cache: Cache::new(cfg.cache_max_bytes),
            queue: Queue::default(),
            next_seq: 1,
            known: vec![Vec::new(); n],
            replay: (0..n).map(|_| Replay::default()).collect(),
            waiters: Vec::new(),
            wall_offset: 0,
            next_ticket: 1,
            tickets: VecDeque::new(),
            cfg,
            ups,
            sessions: HashMap::new(),
            next_session: 1,
            by_client: HashMap::new(),
            to_client: HashMap::new(),
            parked: HashMap::new(),
            tokens: TokenSource::new([0; 32]),
            deferred: VecDeque::new(),
            started_at: None,
            out: VecDeque::new(),
            stats: Stats::default(),
        })
    }

    /// Seed the generator of the `requestState` tokens the gateway mints with 32 random bytes from
    /// the platform. Hosts must call this once; unseeded tokens are unique but guessable.
    pub fn seed(&mut self, seed: [u8; 32]) {
        self.tokens = TokenSource::new(seed);
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.cfg
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The next output to perform, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        // Calls that waited for another client's interactive call may go now that things changed.
        if self.out.is_empty() && self.ups.iter().any(|u| u.queued > 0) {
            self.release_all();
        }
        let o = self.out.pop_front();
        if let Some(Output::ToClient { session, message, .. }) = &o {
            self.op_answered(*session, message);
        }
        o
    }

    /// When [`Gateway::handle_timeout`] should next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let mut t: Option<Millis> = None;
        let mut min = |x: Millis| t = Some(t.map_or(x, |y| y.min(x)));
        for u in &self.ups {
            if let Some(d) = u.probe_deadline {
                min(d);
            }
            for p in u.pending.values() {
                match p {
                    Pending::Client(c) => {
                        min(c.deadline);
                        if let Some(t) = c.group.as_ref().and_then(|g| g.first_byte) {
                            min(t);
                        }
                    }
                    Pending::Health { deadline } => min(*deadline),
                    _ => {}
                }
            }
        }
        for p in self.parked.values() {
            min(p.expires);
        }
        if let Some(d) = self.listen_deadline() {
            min(d);
        }
        for u in &self.ups {
            for p in u.pending.values() {
                if let Pending::Replay { deadline, .. } = p {
                    min(*deadline);
                }
            }
        }
        if let Some(d) = self.offline_deadline() {
            min(d);
        }
        if let Some(d) = self.health_deadline() {
            min(d);
        }
        if let Some(d) = self.sampling_deadline() {
            min(d);
        }
        if !self.deferred.is_empty() {
            if let Some(s) = self.started_at {
                min(s + self.cfg.startup_grace_ms);
            }
        }
        t
    }

    /// A snapshot for status pages: each upstream's state, era and item counts.
    pub fn status(&self) -> Value {
        let ups: Vec<Value> = self
            .cfg
            .upstreams
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let u = &self.ups[i];
                json!({
                    "name": spec.name,
                    "state": match u.link { Link::Down => "down", Link::Probing => "probing", Link::Initializing => "initializing", Link::Ready => "ready" },
                    "era": if u.link == Link::Ready { Value::from(match u.era { Era::Legacy => "legacy", Era::Modern => "modern" }) } else { Value::Null },
                    "protocolVersion": if u.version.is_empty() { Value::Null } else { Value::from(u.version.clone()) },
                    "serverInfo": u.server_info,
                    "tools": self.catalog.count(i, ListKind::Tools),
                    "prompts": self.catalog.count(i, ListKind::Prompts),
                    "resources": self.catalog.count(i, ListKind::Resources),
                    "resourceTemplates": self.catalog.count(i, ListKind::Templates),
                    // The gateway's own listen is open for as long as the link: not a call in flight.
                    "inFlight": u.pending.values().filter(|p| !matches!(p, Pending::Listen)).count(),
                })
            })
            .collect();
        let mut st = json!({ "upstreams": ups, "sessions": self.sessions.len(), "stats": {
            "clientRequests": self.stats.client_requests, "upstreamRequests": self.stats.upstream_requests,
            "upstreamErrors": self.stats.upstream_errors, "timeouts": self.stats.timeouts,
            "failovers": self.stats.failovers, "retries": self.stats.retries,
            "breakerTransitions": self.stats.breaker_transitions, "inDoubt": self.stats.in_doubt } });
        if !self.cfg.groups.is_empty() {
            st["groups"] = self.groups_status();
        }
        if self.cfg.sampling.active() {
            st["sampling"] = self.sampling_status();
        }
        let names: Vec<&str> = self.cfg.upstreams.iter().map(|u| u.name.as_str()).collect();
        st["recentErrors"] = self.metrics.recent_errors(&names);
        if let (Some(o), Value::Object(x)) = (st.as_object_mut(), self.offline_status()) {
            o.extend(x);
        }
        st
    }

    /// Whether every upstream has either become ready once or been given up on.
    pub fn upstream_ready(&self, u: UpstreamId) -> bool {
        self.ups.get(u.0).is_some_and(|x| x.link == Link::Ready)
    }

    fn log(&mut self, level: LogLevel, message: String) {
        self.out.push_back(Output::Log { level, message, call: None });
    }

    /// A log line about one call: of session `s` (if a client's), to upstream `u`, with `params` as
    /// sent (for its trace id).
    fn log_call(
        &mut self,
        level: LogLevel,
        s: Option<SessionId>,
        u: Option<UpstreamId>,
        method: &str,
        params: Option<&Value>,
        message: String,
    ) {
        let call = LogCall {
            session: s,
            upstream: u.map(|u| self.uname(u).to_string()),
            method: method.to_string(),
            trace_id: params.and_then(crate::trace::trace_id).map(str::to_string),
        };
        self.out.push_back(Output::Log { level, message, call: Some(Box::new(call)) });
    }

    fn uname(&self, u: UpstreamId) -> &str {
        &self.cfg.upstreams[u.0].name
    }
}

/// Whether declared client capabilities cover a server-to-client request (URL-mode elicitation
/// needs `elicitation.url`; form mode is what a bare `elicitation: {}` means).
fn caps_allow(caps: Option<&Value>, m: &str, params: Option<&Value>) -> bool {
    let cap = capability_for(m);
    if cap.is_empty() {
        return true;
    }
    let Some(c) = caps.and_then(|c| c.get(cap)) else { return false };
    if m == method::ELICIT && params.and_then(|p| p.get("mode")).and_then(Value::as_str) == Some("url") {
        return c.get("url").is_some();
    }
    true
}

/// The client capability a server-to-client request needs ("" when none).
fn capability_for(m: &str) -> &'static str {
    match m {
        method::ELICIT => "elicitation",
        method::SAMPLE => "sampling",
        method::ROOTS_LIST => "roots",
        _ => "",
    }
}

fn id_of(v: &Value) -> Option<Id> {
    match v {
        Value::String(s) => Some(Id::Str(s.clone())),
        Value::Number(n) => n.as_i64().map(Id::Num),
        _ => None,
    }
}
