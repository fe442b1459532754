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
//!
//! After each call it drains [`Gateway::poll_output`] and performs what comes out, in order. The engine
//! never blocks and never panics on peer input: whatever a peer sends, the answer is a message.

mod offline;

use crate::cache::Cache;
use crate::config::{ConfigError, GatewayConfig};
use crate::cursor::{self, Position};
use crate::jsonrpc::{code, ErrorObject, Id, Message};
use crate::protocol::{self, meta, method, Era, ListKind};
use crate::queue::Queue;
use crate::routing::{item_key, Catalog, Collision};
use crate::store::StoreOp;
use crate::token::TokenSource;
use offline::{CacheSlot, Replay, StoreWait, Waiter};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet, VecDeque};

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
    /// Write to the log.
    Log { level: LogLevel, message: String },
    /// Apply this batch to the store (see [`crate::store::Store`]), after every earlier batch, then
    /// report the outcome with [`Gateway::store_done`] and this ticket.
    Store { ticket: u64, ops: Vec<StoreOp> },
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
}

/// Counters a host can export.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub client_requests: u64,
    pub upstream_requests: u64,
    pub upstream_errors: u64,
    pub timeouts: u64,
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
    /// Wall-clock milliseconds minus host milliseconds.
    wall_offset: i64,
    next_ticket: u64,
    /// Store batches not reported yet, oldest first (they are reported in order).
    tickets: VecDeque<(u64, StoreWait)>,
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
        Ok(Gateway {
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
        self.out.pop_front()
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
                if let Pending::Client(c) = p {
                    min(c.deadline);
                }
            }
        }
        for p in self.parked.values() {
            min(p.expires);
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
                    "inFlight": u.pending.len(),
                })
            })
            .collect();
        let mut st = json!({ "upstreams": ups, "sessions": self.sessions.len(), "stats": {
            "clientRequests": self.stats.client_requests, "upstreamRequests": self.stats.upstream_requests,
            "upstreamErrors": self.stats.upstream_errors, "timeouts": self.stats.timeouts } });
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
        self.out.push_back(Output::Log { level, message });
    }

    fn uname(&self, u: UpstreamId) -> &str {
        &self.cfg.upstreams[u.0].name
    }

    // ---------------------------------------------------------------------------------------------
    // Sessions
    // ---------------------------------------------------------------------------------------------

    pub fn open_session(&mut self, now: Millis) -> SessionId {
        self.started_at.get_or_insert(now);
        let id = SessionId(self.next_session);
        self.next_session += 1;
        self.sessions.insert(
            id,
            Session {
                legacy_initialized: false,
                version: String::new(),
                capabilities: json!({}),
                client_info: json!({"name": "unknown", "version": "0"}),
                next_req: 1,
                subscriptions: HashSet::new(),
                last_active: now,
                auth: String::new(),
                admin: false,
            },
        );
        id
    }

    /// Whether the session completed a legacy `initialize`.
    pub fn session_initialized(&self, s: SessionId) -> bool {
        self.sessions.get(&s).is_some_and(|x| x.legacy_initialized)
    }

    /// The protocol version a legacy session negotiated.
    pub fn session_version(&self, s: SessionId) -> Option<&str> {
        self.sessions.get(&s).filter(|x| x.legacy_initialized).map(|x| x.version.as_str())
    }

    pub fn has_session(&self, s: SessionId) -> bool {
        self.sessions.contains_key(&s)
    }

    /// End a session: its in-flight upstream requests are cancelled (parked multi-round-trip calls
    /// survive; they belong to no session), and requests it was asked to answer fail upstream.
    pub fn close_session(&mut self, _now: Millis, s: SessionId) {
        let Some(closed) = self.sessions.remove(&s) else { return };
        let mine: Vec<_> = self.by_client.keys().filter(|(x, _)| *x == s).cloned().collect();
        for key in mine {
            if let Some((u, gid)) = self.by_client.remove(&key) {
                // A call gathering its client's answers has no request upstream to cancel.
                if matches!(self.ups[u.0].pending.remove(&gid), Some(Pending::Client(c)) if c.collect.is_none() && !c.queued)
                {
                    self.send_up(
                        u,
                        Message::notification(
                            method::CANCELLED,
                            Some(json!({"requestId": gid, "reason": "client went away"})),
                        ),
                    );
                }
            }
        }
        if closed.legacy_initialized && closed.capabilities.get("roots").is_some() {
            self.roots_changed();
        }
        let asked: Vec<_> = self.to_client.keys().filter(|(x, _)| *x == s).cloned().collect();
        for key in asked {
            if let Some(ToClientReq::Forwarded { upstream, upstream_id }) = self.to_client.remove(&key) {
                self.send_up(
                    upstream,
                    Message::error(Some(upstream_id), err(code::INTERNAL_ERROR, "the client went away")),
                );
            }
        }
        self.deferred.retain(|(x, _)| *x != s);
        self.waiters.retain(|(_, w)| w.session != s);
    }

    fn reply(&mut self, s: SessionId, id: Id, result: Value) {
        self.out.push_back(Output::ToClient {
            session: s,
            related: Some(id.clone()),
            message: Message::response(id, result),
        });
    }

    fn reply_err(&mut self, s: SessionId, id: Id, e: ErrorObject) {
        self.out.push_back(Output::ToClient {
            session: s,
            related: Some(id.clone()),
            message: Message::error(Some(id), e),
        });
    }

    fn notify_client(&mut self, s: SessionId, related: Option<Id>, method: &str, params: Option<Value>) {
        self.out.push_back(Output::ToClient { session: s, related, message: Message::notification(method, params) });
    }

    fn broadcast_legacy(&mut self, method: &str, params: Option<Value>) {
        let mut ids: Vec<SessionId> =
            self.sessions.iter().filter(|(_, x)| x.legacy_initialized).map(|(k, _)| *k).collect();
        ids.sort();
        for s in ids {
            self.notify_client(s, None, method, params.clone());
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Client → gateway
    // ---------------------------------------------------------------------------------------------

    /// A message from a downstream client.
    pub fn handle_client(&mut self, now: Millis, s: SessionId, msg: Message) {
        let Some(sess) = self.sessions.get_mut(&s) else {
            return;
        };
        sess.last_active = now;
        match msg {
            Message::Request { id, method, params, rest } => {
                self.stats.client_requests += 1;
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

    fn should_defer(&self, m: &str) -> bool {
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

    fn replay_deferred(&mut self, now: Millis) {
        while let Some((s, m)) = self.deferred.pop_front() {
            if let Message::Request { id, method, params, .. } = m {
                if self.sessions.contains_key(&s) {
                    self.client_request(now, s, id, method, params);
                }
            }
        }
    }

    fn client_request(&mut self, now: Millis, s: SessionId, id: Id, m: String, params: Option<Value>) {
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

    fn initialize(&mut self, s: SessionId, id: Id, params: Option<Value>) {
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

    fn server_capabilities(&self) -> Value {
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

    fn discover_result(&self) -> Value {
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

    fn client_notification(&mut self, s: SessionId, m: &str, params: Option<Value>) {
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
    fn roots_changed(&mut self) {
        for u in 0..self.ups.len() {
            if self.ups[u].link == Link::Ready && self.ups[u].era == Era::Legacy {
                self.send_up(UpstreamId(u), Message::notification(method::ROOTS_LIST_CHANGED, None));
            }
        }
    }

    /// The client answered a request we sent it.
    fn client_answer(&mut self, now: Millis, s: SessionId, id: Id, answer: Result<Value, ErrorObject>) {
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

    // ---------------------------------------------------------------------------------------------
    // Routing
    // ---------------------------------------------------------------------------------------------

    fn routed_request(&mut self, now: Millis, s: SessionId, id: Id, m: String, params: Option<Value>, modern: bool) {
        let mut params = params.unwrap_or(json!({}));
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
            method::SUBSCRIPTIONS_LISTEN => Err(err(
                code::METHOD_NOT_FOUND,
                "subscriptions/listen is not supported by this gateway yet; use a legacy session for notifications",
            )),
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
            let up = &self.ups[u.0];
            let can = up.link == Link::Ready
                && up.era == Era::Legacy
                && up.capabilities.pointer("/resources/subscribe").and_then(Value::as_bool) == Some(true);
            if !can {
                return self.reply(s, id, json!({}));
            }
        }
        self.forward(now, s, id, u, m, params, None, modern, slot);
    }

    fn route_uri(&self, uri: &str, modern: bool) -> Result<UpstreamId, ErrorObject> {
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

    fn route_completion(&self, params: &mut Value) -> Result<UpstreamId, ErrorObject> {
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
    fn forward(
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
    ) {
        let link = self.ups[u.0].link;
        if link == Link::Down {
            let e = err(code::UPSTREAM_UNAVAILABLE, format!("upstream {:?} is unavailable", self.uname(u)))
                .with_data(json!({"upstream": self.uname(u)}));
            return self.reply_err(s, id, e);
        }
        let gid = self.ups[u.0].next_id;
        self.ups[u.0].next_id += 1;
        // Progress tokens are remapped like ids: our token is our request id, unique on this link.
        let client_progress = params.pointer("/_meta/progressToken").cloned();
        if client_progress.is_some() {
            params["_meta"]["progressToken"] = Value::from(gid);
        }
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
        };
        self.by_client.insert((s, id), (u, gid));
        self.dispatch(u, gid, call);
    }

    fn dispatch(&mut self, u: UpstreamId, gid: i64, mut call: ClientCall) {
        call.queued = true;
        self.ups[u.0].pending.insert(gid, Pending::Client(Box::new(call)));
        self.ups[u.0].queued += 1;
        self.stats.upstream_requests += 1;
        self.release(u);
    }

    /// Send the queued calls of `u` that may go now, oldest first. A call may go when the link is
    /// ready and, if it is interactive, no other client's interactive call is in flight there.
    fn release(&mut self, u: UpstreamId) {
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

    fn release_all(&mut self) {
        for u in 0..self.ups.len() {
            self.release(UpstreamId(u));
        }
    }

    fn client_info(&self) -> Value {
        json!({"name": self.cfg.server_name, "version": self.cfg.server_version})
    }

    fn send_up(&mut self, u: UpstreamId, message: Message) {
        self.out.push_back(Output::ToUpstream { upstream: u, message });
    }

    fn internal_request(&mut self, u: UpstreamId, m: &str, params: Value) -> i64 {
        self.own_request(u, m, params, Pending::Internal)
    }

    /// A request of the gateway's own (not a client's) to `u`: a fresh id, the modern `_meta` with
    /// the gateway's capabilities when the link is modern, and `p` to remember what it is for.
    fn own_request(&mut self, u: UpstreamId, m: &str, mut params: Value, p: Pending) -> i64 {
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

    // ---------------------------------------------------------------------------------------------
    // Aggregated lists
    // ---------------------------------------------------------------------------------------------

    fn list_request(&mut self, now: Millis, s: SessionId, id: Id, kind: ListKind, params: Option<Value>, modern: bool) {
        let mut params = params.unwrap_or(json!({}));
        let start = match params.get("cursor") {
            None | Some(Value::Null) => None,
            Some(Value::String(c)) => match cursor::decode(c) {
                Some(p) => match self.cfg.upstreams.iter().position(|x| x.name == p.upstream) {
                    Some(u) => Some((u, p.cursor)),
                    None => return self.reply_err(s, id, err(code::INVALID_PARAMS, "Invalid cursor")),
                },
                None => return self.reply_err(s, id, err(code::INVALID_PARAMS, "Invalid cursor")),
            },
            Some(_) => return self.reply_err(s, id, err(code::INVALID_PARAMS, "Invalid cursor: must be a string")),
        };
        if let Some(o) = params.as_object_mut() {
            o.remove("cursor");
        }
        let (first, upstream_cursor) = match start {
            Some((u, c)) => (u, c),
            None => (0, None),
        };
        let from = if upstream_cursor.is_some() { Some(first) } else { self.next_lister(kind, first, Some(s)) };
        match from {
            None => self.reply(s, id, self.empty_list(kind, modern)),
            Some(u) => {
                let arg = upstream_cursor.clone().unwrap_or_default();
                if self.try_cache(now, s, &id, UpstreamId(u), kind.method(), &arg, Some(kind), modern) {
                    return;
                }
                if let Some(c) = upstream_cursor {
                    params["cursor"] = Value::from(c);
                }
                let slot = CacheSlot { method: kind.method().to_string(), arg };
                self.forward(
                    now,
                    s,
                    id,
                    UpstreamId(u),
                    kind.method().to_string(),
                    params,
                    Some(kind),
                    modern,
                    Some(slot),
                );
            }
        }
    }

    /// The first upstream at or after `from` that can serve a list of this kind now: a ready one
    /// that has such items, or one that cannot be asked but whose first page session `s` may be
    /// served from the cache.
    fn next_lister(&self, kind: ListKind, from: usize, s: Option<SessionId>) -> Option<usize> {
        (from..self.ups.len()).find(|&u| {
            let up = &self.ups[u];
            if up.link == Link::Ready {
                up.capabilities.get(kind.capability()).is_some()
            } else {
                s.is_some_and(|s| self.cached_for(u, kind.method(), "", s))
            }
        })
    }

    fn empty_list(&self, kind: ListKind, modern: bool) -> Value {
        let mut r = json!({ kind.field(): [] });
        if modern {
            r["resultType"] = json!("complete");
            r["ttlMs"] = json!(0);
            r["cacheScope"] = json!("private");
        }
        r
    }

    /// Rewrite one upstream's page for the client: exposed names and our cursor.
    fn finish_page(&mut self, u: UpstreamId, kind: ListKind, mut result: Value, s: Option<SessionId>) -> Value {
        if !result.is_object() {
            let name = self.uname(u).to_string();
            self.log(LogLevel::Warn, format!("upstream {name:?} answered {} with a non-object", kind.method()));
            result = json!({});
        }
        if let Some(items) = result.get_mut(kind.field()).and_then(Value::as_array_mut) {
            if kind.named() {
                for item in items.iter_mut() {
                    if let Some(orig) = item_key(kind, item).map(str::to_string) {
                        item["name"] = Value::from(self.catalog.exposed(&self.cfg, u.0, kind, &orig));
                    }
                }
            }
        } else {
            result[kind.field()] = json!([]);
        }
        let next = match result.get("nextCursor").and_then(Value::as_str) {
            Some(c) => Some(Position { upstream: self.uname(u).to_string(), cursor: Some(c.to_string()) }),
            None => self
                .next_lister(kind, u.0 + 1, s)
                .map(|n| Position { upstream: self.cfg.upstreams[n].name.clone(), cursor: None }),
        };
        match next {
            Some(p) => result["nextCursor"] = Value::from(cursor::encode(&p)),
            None => {
                if let Some(o) = result.as_object_mut() {
                    o.remove("nextCursor");
                }
            }
        }
        result
    }

    /// A page could not be had from `u`: serve the next upstream's first page instead.
    fn list_fallback(&mut self, now: Millis, u: UpstreamId, call: ClientCall, kind: ListKind) {
        let Some(s) = call.session else { return };
        if !self.sessions.contains_key(&s) {
            return;
        }
        let mut params = call.sent_params;
        if let Some(o) = params.as_object_mut() {
            o.remove("cursor");
            if let Some(m) = o.get_mut("_meta").and_then(Value::as_object_mut) {
                if let Some(t) = &call.client_progress {
                    m.insert("progressToken".into(), t.clone());
                }
            }
        }
        match self.next_lister(kind, u.0 + 1, Some(s)) {
            Some(n) => {
                let slot = CacheSlot { method: call.method.clone(), arg: String::new() };
                if self.try_cache(
                    now,
                    s,
                    &call.client_id,
                    UpstreamId(n),
                    &call.method,
                    "",
                    Some(kind),
                    call.modern_client,
                ) {
                    return;
                }
                self.forward(
                    now,
                    s,
                    call.client_id,
                    UpstreamId(n),
                    call.method,
                    params,
                    Some(kind),
                    call.modern_client,
                    Some(slot),
                )
            }
            None => {
                let r = self.empty_list(kind, call.modern_client);
                self.reply(s, call.client_id, r)
            }
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Upstream links
    // ---------------------------------------------------------------------------------------------

    /// The link to an upstream is up: the engine probes its era and initialises it.
    pub fn upstream_connected(&mut self, now: Millis, u: UpstreamId) {
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

    fn send_probe(&mut self, now: Millis, u: UpstreamId, may_fall_back: bool) {
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

    fn send_initialize(&mut self, u: UpstreamId) {
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

    fn became_ready(&mut self, now: Millis, u: UpstreamId) {
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
        // A link that is back gets its queued calls at once; backoff is for failed replays.
        self.replay[u.0].next_try = now;
        self.pump(now, u);
    }

    fn refresh_catalog(&mut self, u: UpstreamId, kind: ListKind, cursor: Option<String>) {
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
        let mut pending: Vec<(i64, Pending)> = up.pending.drain().collect();
        pending.sort_by_key(|(gid, _)| *gid);
        let undelivered = std::mem::take(&mut up.undelivered);
        if was != Link::Down {
            self.log(LogLevel::Warn, format!("upstream {name:?} is down: {reason}"));
        }
        for (gid, p) in pending {
            if let Pending::Replay { seq, .. } = p {
                // Not `reason`: the host's words (logged above) may hold the upstream's private
                // URL, and this one becomes the task's statusMessage, which clients see.
                self.replay_interrupted(now, u, seq, "its link went down", undelivered.contains(&gid));
                continue;
            }
            if let Pending::Client(call) = p {
                self.drop_client_index(u, gid, &call);
                // A call that never left (or never went out) may still be queued, as if it had
                // arrived a moment later.
                if (call.queued || undelivered.contains(&gid)) && self.requeue_undelivered(now, u, &call) {
                    continue;
                }
                if self.stale_fallback(now, u, &call) {
                    continue;
                }
                if let Some(kind) = call.list {
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

    fn drop_client_index(&mut self, u: UpstreamId, gid: i64, call: &ClientCall) {
        if let Some(s) = call.session {
            if self.by_client.get(&(s, call.client_id.clone())) == Some(&(u, gid)) {
                self.by_client.remove(&(s, call.client_id.clone()));
            }
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Upstream → gateway
    // ---------------------------------------------------------------------------------------------

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

    /// A message from an upstream. `related` is our request id whose response stream carried it, when
    /// the transport knows (HTTP SSE); it decides which client a server-to-client request is for.
    pub fn handle_upstream(&mut self, now: Millis, u: UpstreamId, msg: Message, related: Option<i64>) {
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

    fn upstream_answer(
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
            Pending::Replay { seq, .. } => self.replay_answered(now, u, seq, answer),
            Pending::Client(call) => self.call_answered(now, u, gid, *call, answer, rest),
        }
    }

    /// Requests held at start-up wait until every upstream has its first catalogue.
    fn check_listed(&mut self, now: Millis, u: UpstreamId) {
        if !self.ups[u.0].listed && self.ups[u.0].gathering.is_empty() {
            self.ups[u.0].listed = true;
            if !self.ups.iter().any(Upstream::starting) {
                self.replay_deferred(now);
            }
        }
    }

    fn catalog_page(&mut self, u: UpstreamId, kind: ListKind, answer: Result<Value, ErrorObject>) {
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

    fn report_collision(&mut self, c: Collision) {
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

    fn call_answered(
        &mut self,
        now: Millis,
        u: UpstreamId,
        gid: i64,
        call: ClientCall,
        answer: Result<Value, ErrorObject>,
        rest: Map<String, Value>,
    ) {
        self.drop_client_index(u, gid, &call);
        // A modern upstream asks for input: a modern client gets the result as is; a legacy client
        // is asked each question as a request of its own, and we retry for it.
        if let Ok(r) = &answer {
            if protocol::is_input_required(r) && !call.modern_client {
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
                    r = self.finish_page(u, kind, r, Some(s));
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

    /// Legacy client, modern upstream: ask the client each input request, then retry upstream.
    fn start_collect(&mut self, now: Millis, u: UpstreamId, mut call: ClientCall, r: Value) {
        let Some(s) = call.session.filter(|s| self.sessions.contains_key(s)) else {
            return;
        };
        let requests = r.get("inputRequests").and_then(Value::as_object).cloned().unwrap_or_default();
        let gid = self.ups[u.0].next_id;
        self.ups[u.0].next_id += 1;
        call.collect = Some(Collect {
            waiting: requests.len(),
            responses: Map::new(),
            request_state: r.get("requestState").cloned(),
        });
        call.deadline = now + self.cfg.request_timeout_ms;
        let client_id = call.client_id.clone();
        self.by_client.insert((s, client_id.clone()), (u, gid));
        self.ups[u.0].pending.insert(gid, Pending::Client(Box::new(call)));
        if requests.is_empty() {
            return self.retry_with_inputs(now, u, gid);
        }
        for (key, req) in requests {
            let m = req.get("method").and_then(Value::as_str).unwrap_or_default().to_string();
            let params = req.get("params").cloned();
            if !self.client_can(s, &m, params.as_ref()) {
                // The client cannot answer this kind of question: the call fails clearly.
                if let Some(Pending::Client(c)) = self.ups[u.0].pending.remove(&gid) {
                    self.drop_client_index(u, gid, &c);
                }
                self.to_client.retain(|_, r| !matches!(r, ToClientReq::Input { call, .. } if *call == gid));
                let e =
                    err(code::INVALID_REQUEST, format!("the upstream needs {m}, which this client did not declare"));
                return self.reply_err(s, client_id, e);
            }
            let sid = self.next_client_req(s);
            self.to_client.insert((s, sid), ToClientReq::Input { upstream: u, call: gid, key });
            self.out.push_back(Output::ToClient {
                session: s,
                related: Some(client_id.clone()),
                message: Message::Request { id: Id::Num(sid), method: m, params, rest: Map::new() },
            });
        }
    }

    fn next_client_req(&mut self, s: SessionId) -> i64 {
        // Unknown sessions cannot receive anything; the id is then never used.
        let Some(sess) = self.sessions.get_mut(&s) else { return 0 };
        let n = sess.next_req;
        sess.next_req += 1;
        n
    }

    fn client_can(&self, s: SessionId, m: &str, params: Option<&Value>) -> bool {
        self.sessions.get(&s).is_some_and(|x| caps_allow(Some(&x.capabilities), m, params))
    }

    fn input_answered(
        &mut self,
        now: Millis,
        u: UpstreamId,
        gid: i64,
        key: String,
        answer: Result<Value, ErrorObject>,
    ) {
        let Some(Pending::Client(call)) = self.ups[u.0].pending.get_mut(&gid) else {
            return;
        };
        let Some(col) = call.collect.as_mut() else {
            return;
        };
        match answer {
            Ok(r) => {
                col.responses.insert(key, r);
                col.waiting = col.waiting.saturating_sub(1);
                if col.waiting == 0 {
                    self.retry_with_inputs(now, u, gid);
                }
            }
            Err(e) => {
                if let Some(Pending::Client(c)) = self.ups[u.0].pending.remove(&gid) {
                    self.drop_client_index(u, gid, &c);
                    self.to_client.retain(|_, r| !matches!(r, ToClientReq::Input { call, .. } if *call == gid));
                    if let Some(s) = c.session {
                        self.reply_err(s, c.client_id, e);
                    }
                }
            }
        }
    }

    fn retry_with_inputs(&mut self, now: Millis, u: UpstreamId, gid: i64) {
        let Some(Pending::Client(mut call)) = self.ups[u.0].pending.remove(&gid) else {
            return;
        };
        let Some(col) = call.collect.take() else { return };
        // This round's answers ride along once; `sent_params` stays the original request so a
        // further round starts from it again.
        call.round.insert("inputResponses".into(), Value::Object(col.responses));
        if let Some(st) = col.request_state {
            call.round.insert("requestState".into(), st);
        }
        let retry = self.ups[u.0].next_id;
        self.ups[u.0].next_id += 1;
        if call.client_progress.is_some() {
            if let Some(m) = call.sent_params.get_mut("_meta").and_then(Value::as_object_mut) {
                m.insert("progressToken".into(), Value::from(retry));
            }
        }
        call.deadline = now + self.cfg.request_timeout_ms;
        if let Some(s) = call.session {
            self.by_client.insert((s, call.client_id.clone()), (u, retry));
        }
        self.dispatch(u, retry, *call);
    }

    fn upstream_notification(&mut self, u: UpstreamId, m: &str, params: Option<Value>) {
        match m {
            method::PROGRESS => {
                let Some(tok) = params.as_ref().and_then(|p| p.get("progressToken")).and_then(Value::as_i64) else {
                    return;
                };
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
                ids.sort();
                for s in ids {
                    self.notify_client(s, None, m, params.clone());
                }
            }
            method::MESSAGE => {
                let mut p = params.filter(Value::is_object).unwrap_or(json!({}));
                if p.get("logger").is_none() {
                    p["logger"] = Value::from(self.uname(u).to_string());
                }
                self.broadcast_legacy(m, Some(p));
            }
            _ => self.broadcast_legacy(m, params),
        }
    }

    /// A legacy upstream asks something of a client (sampling, elicitation, roots, ping).
    fn upstream_request(
        &mut self,
        now: Millis,
        u: UpstreamId,
        id: Id,
        m: String,
        params: Option<Value>,
        related: Option<i64>,
    ) {
        if m == method::PING {
            return self.send_up(u, Message::response(id, json!({})));
        }
        // Which client. Over HTTP the request comes on the stream of the call that caused it
        // (`related`). Over stdio nothing links the two: it goes to the one session with calls in
        // flight on this upstream. If calls of several sessions are in flight, asking any of them
        // could show one user's prompt to another, so the upstream gets an error instead. With no
        // call in flight (roots after list_changed), the only session that declared the capability
        // is asked; with none or several, roots are empty and anything else is refused.
        let pending = &self.ups[u.0].pending;
        let related = related.filter(|g| matches!(pending.get(g), Some(Pending::Client(c)) if c.session.is_some()));
        let call_gid = match related {
            Some(g) => Some(g),
            None => {
                // Calls known to ask first (later calls of theirs from other clients wait, so at
                // most one client has such calls in flight), else every call in flight.
                let up = &self.ups[u.0];
                let calls: Vec<(i64, SessionId, bool)> = up
                    .pending
                    .iter()
                    .filter_map(|(g, p)| match p {
                        Pending::Client(c) if c.in_flight() && c.list.is_none() => {
                            c.session.map(|s| (*g, s, up.interactive.contains(&c.key())))
                        }
                        _ => None,
                    })
                    .collect();
                let known: Vec<(i64, SessionId, bool)> = calls.iter().copied().filter(|c| c.2).collect();
                let candidates = if known.is_empty() { calls } else { known };
                let owners: HashSet<SessionId> = candidates.iter().map(|c| c.1).collect();
                // Learn: every call that may have asked is interactive from now on.
                let keys: Vec<String> = candidates
                    .iter()
                    .filter_map(|c| match up.pending.get(&c.0) {
                        Some(Pending::Client(call)) => Some(call.key()),
                        _ => None,
                    })
                    .collect();
                self.ups[u.0].interactive.extend(keys);
                if owners.len() > 1 {
                    let name = self.uname(u).to_string();
                    self.log(
                        LogLevel::Warn,
                        format!(
                            "upstream {name:?} sent {m} while calls of {} clients were in flight; refused because it cannot be attributed (such calls now go one client at a time)",
                            owners.len()
                        ),
                    );
                    let e = err(
                        code::INTERNAL_ERROR,
                        format!("{m} cannot be attributed to one client: calls of several clients are in flight on this link"),
                    );
                    return self.send_up(u, Message::error(Some(id), e));
                }
                candidates.iter().map(|c| c.0).max()
            }
        };
        let target = match call_gid {
            Some(g) => match self.ups[u.0].pending.get(&g) {
                Some(Pending::Client(c)) => c.session.map(|s| (s, Some(g), c.modern_client, c.client_id.clone())),
                _ => None,
            },
            None => {
                let able: Vec<SessionId> = self
                    .sessions
                    .iter()
                    .filter(|(k, x)| x.legacy_initialized && self.client_can(**k, &m, params.as_ref()))
                    .map(|(k, _)| *k)
                    .collect();
                (able.len() == 1).then(|| (able[0], None, false, Id::Num(0)))
            }
        };
        let Some((s, gid, modern, client_id)) = target else {
            if m == method::ROOTS_LIST {
                // No one (or several) to ask: empty roots leak nothing.
                return self.send_up(u, Message::response(id, json!({"roots": []})));
            }
            let e = err(code::METHOD_NOT_FOUND, format!("no single connected client could answer {m}"));
            return self.send_up(u, Message::error(Some(id), e));
        };
        let can = match gid.and_then(|g| self.ups[u.0].pending.get(&g)) {
            // A modern client declares its capabilities on each request, not in a session.
            Some(Pending::Client(c)) if modern => caps_allow(
                c.sent_params.pointer("/_meta").and_then(|m| m.get(meta::CLIENT_CAPABILITIES)),
                &m,
                params.as_ref(),
            ),
            _ => self.client_can(s, &m, params.as_ref()),
        };
        if !can {
            let e = err(code::METHOD_NOT_FOUND, format!("the client did not declare support for {m}"));
            return self.send_up(u, Message::error(Some(id), e));
        }
        if !modern {
            let sid = self.next_client_req(s);
            self.to_client.insert((s, sid), ToClientReq::Forwarded { upstream: u, upstream_id: id });
            let related = gid.map(|_| client_id);
            return self.out.push_back(Output::ToClient {
                session: s,
                related,
                message: Message::Request { id: Id::Num(sid), method: m, params, rest: Map::new() },
            });
        }
        // Modern client: answer its call with `input_required` and park the upstream call.
        let gid = gid.expect("modern targets come from a call");
        let Some(Pending::Client(call)) = self.ups[u.0].pending.get_mut(&gid) else {
            return;
        };
        if !protocol::may_require_input(&call.method) {
            let e =
                err(code::METHOD_NOT_FOUND, format!("{m} cannot be bridged to a modern client during {}", call.method));
            return self.send_up(u, Message::error(Some(id), e));
        }
        let token = format!("gw-{}", self.tokens.next_hex());
        let key = match m.as_str() {
            method::ELICIT => "elicitation",
            method::SAMPLE => "sampling",
            method::ROOTS_LIST => "roots",
            _ => "input",
        }
        .to_string();
        let client_id = call.client_id.clone();
        call.session = None;
        call.deadline = now + self.cfg.input_wait_ms;
        let expires = now + self.cfg.input_wait_ms;
        self.by_client.remove(&(s, client_id.clone()));
        let mut req = json!({ "method": m });
        if let Some(mut p) = params {
            if let Some(o) = p.as_object_mut() {
                o.remove("_meta");
            }
            req["params"] = p;
        }
        self.parked.insert(
            token.clone(),
            Parked { upstream: u, call: gid, upstream_req: id, key: key.clone(), request: req.clone(), expires },
        );
        let r = json!({
            "resultType": "input_required",
            "inputRequests": { key: req },
            "requestState": token,
        });
        self.reply(s, client_id, r);
    }

    /// A modern client retried a call with `requestState` we minted: resume the parked call.
    /// `None` when the state is not ours (the request then goes upstream as usual). The state only
    /// resumes the call it was issued for: same method, same target, same arguments.
    fn resume_parked(&mut self, s: SessionId, id: &Id, m: &str, params: &Value) -> Option<Result<(), ErrorObject>> {
        let token = params.get("requestState")?.as_str()?;
        if !token.starts_with("gw-") {
            return None;
        }
        let invalid = || Some(Err(err(code::INVALID_PARAMS, "Invalid or expired requestState; call again without it")));
        let Some(p) = self.parked.get(token) else { return invalid() };
        let Some(Pending::Client(call)) = self.ups[p.upstream.0].pending.get(&p.call) else {
            self.parked.remove(token);
            return invalid();
        };
        let target_ok = match m {
            method::TOOLS_CALL | method::PROMPTS_GET => {
                let kind = if m == method::TOOLS_CALL { ListKind::Tools } else { ListKind::Prompts };
                let name = params.get("name").and_then(Value::as_str).unwrap_or_default();
                self.catalog.resolve_name(&self.cfg, kind, name).is_some_and(|(u, orig)| {
                    u == p.upstream.0 && call.sent_params.get("name").and_then(Value::as_str) == Some(orig.as_str())
                })
            }
            _ => params.get("uri").is_some() && params.get("uri") == call.sent_params.get("uri"),
        };
        if call.method != m || !target_ok || params.get("arguments") != call.sent_params.get("arguments") {
            return invalid();
        }
        let Some(answer) = params.get("inputResponses").and_then(|r| r.get(&p.key)).cloned() else {
            // No answer: ask again, as the spec prefers to an error.
            let r = json!({
                "resultType": "input_required",
                "inputRequests": { p.key.clone(): p.request.clone() },
                "requestState": token,
            });
            self.reply(s, id.clone(), r);
            return Some(Ok(()));
        };
        let p = self.parked.remove(token).expect("looked up above");
        if let Some(Pending::Client(call)) = self.ups[p.upstream.0].pending.get_mut(&p.call) {
            call.session = Some(s);
            call.client_id = id.clone();
        }
        self.by_client.insert((s, id.clone()), (p.upstream, p.call));
        self.send_up(p.upstream, Message::response(p.upstream_req, answer));
        Some(Ok(()))
    }

    // ---------------------------------------------------------------------------------------------
    // Time
    // ---------------------------------------------------------------------------------------------

    /// Expire what is due at `now`.
    pub fn handle_timeout(&mut self, now: Millis) {
        for u in 0..self.ups.len() {
            let uid = UpstreamId(u);
            if self.ups[u].probe_deadline.is_some_and(|d| d <= now) {
                let name = self.uname(uid).to_string();
                self.log(LogLevel::Info, format!("upstream {name:?}: server/discover timed out; using initialize"));
                self.send_initialize(uid);
            }
            let due: Vec<i64> = self.ups[u]
                .pending
                .iter()
                .filter_map(|(g, p)| match p {
                    Pending::Client(c) if c.deadline <= now => Some(*g),
                    _ => None,
                })
                .collect();
            for gid in due {
                let Some(Pending::Client(call)) = self.ups[u].pending.remove(&gid) else {
                    continue;
                };
                self.stats.timeouts += 1;
                self.drop_client_index(uid, gid, &call);
                if !call.queued && call.collect.is_none() {
                    self.send_up(
                        uid,
                        Message::notification(
                            method::CANCELLED,
                            Some(json!({"requestId": gid, "reason": "timed out at the gateway"})),
                        ),
                    );
                }
                if self.stale_fallback(now, uid, &call) {
                    continue;
                }
                if let Some(kind) = call.list {
                    self.list_fallback(now, uid, *call, kind);
                } else if let Some(s) = call.session {
                    let name = self.uname(uid).to_string();
                    let e = err(
                        code::REQUEST_TIMEOUT,
                        format!("upstream {name:?} did not answer within {} ms", self.cfg.request_timeout_ms),
                    );
                    self.reply_err(s, call.client_id, e);
                }
            }
        }
        for u in 0..self.ups.len() {
            let due: Vec<(i64, u64)> = self.ups[u]
                .pending
                .iter()
                .filter_map(|(g, p)| match p {
                    Pending::Replay { seq, deadline } if *deadline <= now => Some((*g, *seq)),
                    _ => None,
                })
                .collect();
            for (gid, seq) in due {
                self.ups[u].pending.remove(&gid);
                self.stats.timeouts += 1;
                let cancel = json!({"requestId": gid, "reason": "timed out at the gateway"});
                self.send_up(UpstreamId(u), Message::notification(method::CANCELLED, Some(cancel)));
                self.replay_interrupted(now, UpstreamId(u), seq, "timed out", false);
            }
        }
        self.offline_timeout(now);
        self.parked.retain(|_, p| p.expires > now);
        if let Some(s) = self.started_at {
            if !self.deferred.is_empty() && s + self.cfg.startup_grace_ms <= now {
                self.replay_deferred(now);
            }
        }
    }
}

impl Gateway {
    /// Entry point used by `handle_client` for calls that may continue a parked multi-round-trip call.
    fn continue_or_route(&mut self, now: Millis, s: SessionId, id: Id, m: String, params: Option<Value>, modern: bool) {
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

/// Shape checks for the params of requests the gateway handles itself or routes on.
fn check_params(m: &str, params: Option<&Value>) -> Option<ErrorObject> {
    let get = |k: &str| params.and_then(|p| p.get(k));
    let bad = |what: &str| Some(err(code::INVALID_PARAMS, format!("{m}: {what}")));
    match m {
        method::INITIALIZE => {
            if !get("protocolVersion").is_some_and(Value::is_string) {
                return bad("`protocolVersion` must be a string");
            }
            if get("capabilities").is_some_and(|c| !c.is_object()) {
                return bad("`capabilities` must be an object");
            }
            if let Some(c) = get("capabilities").and_then(Value::as_object) {
                for k in ["roots", "sampling", "elicitation", "experimental", "tasks"] {
                    if c.get(k).is_some_and(|v| !v.is_object()) {
                        return bad(&format!("`capabilities.{k}` must be an object"));
                    }
                }
            }
            if get("clientInfo").is_some_and(|c| !c.is_object()) {
                return bad("`clientInfo` must be an object");
            }
        }
        method::SET_LEVEL => {
            const LEVELS: [&str; 8] = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"];
            if !get("level").and_then(Value::as_str).is_some_and(|l| LEVELS.contains(&l)) {
                return bad("`level` must be one of debug, info, notice, warning, error, critical, alert, emergency");
            }
        }
        method::TOOLS_CALL | method::PROMPTS_GET
            if get("arguments").is_some_and(|a| !a.is_object() && !a.is_null()) =>
        {
            return bad("`arguments` must be an object");
        }
        _ => {}
    }
    None
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
