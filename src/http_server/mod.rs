//! The downstream Streamable HTTP face, both eras, with no I/O: the protocol half of what the native
//! host's axum handlers and the browser's service worker serve on `/mcp`.
//!
//! # Contract
//!
//! A host owns sockets (or `FetchEvent`s) and moves bytes; this module decides everything else. For
//! each HTTP request on the MCP endpoint the host picks a fresh [`StreamId`] and calls
//! [`HttpServer::request`]. The response comes back as [`Part`]s from [`HttpServer::poll_output`]:
//! one [`Part::Head`] (status and headers), then [`Part::Data`] chunks, then [`Part::End`]. A JSON
//! answer is Head, one Data, End; an event stream is Head, then events as they arrive. When the
//! client goes away before End, the host calls [`HttpServer::closed`]. Engine outputs for sessions
//! this face opened go to [`HttpServer::deliver`] (see [`HttpServer::owns`]); timers through
//! [`HttpServer::poll_timeout`] / [`HttpServer::handle_timeout`], on the engine's clock.
//!
//! # What it implements
//!
//! - Era per request: an `MCP-Protocol-Version` header naming a modern version makes the request
//!   modern (stateless: one engine session per request, closed when its answer is sent or its stream
//!   is closed, which cancels the call upstream). Anything else is legacy: `initialize` creates a
//!   session (`Mcp-Session-Id`, only if it succeeds), later requests must carry it (400 without, 404
//!   when unknown), GET opens the session's standalone stream, DELETE ends it, and a session with no
//!   request and no open stream for [`SESSION_IDLE_MS`] is ended.
//! - Modern header rules: `params._meta` version equal to the header, `Mcp-Method` and `Mcp-Name`
//!   equal to the body (-32020 and 400 otherwise), -32022 for an unknown version; GET and DELETE 405.
//! - JSON or SSE: the answer is JSON when it is the first thing the engine has for the request; if
//!   anything comes first (progress, sampling, elicitation), or nothing has come after
//!   [`ServerConfig::sse_after_ms`], the reply becomes an event stream that ends with the answer. A
//!   client that does not accept `text/event-stream` always gets JSON.
//! - Resumability (legacy sessions, 2025-11-25): every event carries an id `<stream>-<seq>`; each
//!   stream opens with a priming event (an id and empty data) and the `retry` delay when the
//!   session's version has them; events are kept in a bounded per-session store, so a client whose
//!   stream was cut (or ended by the host's [`ServerConfig::max_stream_ms`]) resumes it with GET and
//!   `Last-Event-ID`, and gets what it missed, then the rest. A cut stream does not cancel its call.
//!   The modern era has no resumability: a broken stream loses the request.
//! - Origin and CORS: [`origin_allowed`] (loopback origins and the configured list) and
//!   [`cors_headers`], used here and by hosts for their other endpoints.

//!
//! # Parts
//!
//! - [`origin`]: the Origin and CORS decision (hosts use it for their other endpoints too).
//! - [`modern`]: 2026-07-28 header values and error statuses.
//! - [`events`]: event ids, priming events and the SSE wire format.
//! - [`persist`]: the sessions and their events kept across a restart of the host.
//! - [`limit`]: a rate-limited answer as HTTP 429 with `Retry-After` and `RateLimit` headers.

use crate::prelude::*;

mod events;
mod limit;
mod modern;
mod origin;
mod persist;

pub use modern::decode_header_value;
pub use origin::{cors_headers, origin_allowed};

use crate::jsonrpc::code;
use crate::protocol::{self, method, Era};
use crate::{ErrorObject, Gateway, Id, Message, Millis, SessionId};
use alloc::collections::VecDeque;
use events::{event_text, parse_event_id, priming, resumable_version, Stored, STANDALONE};
use modern::modern_status;
use serde_json::Value;

/// The host's name for one HTTP exchange, unique while it lasts.
pub type StreamId = u64;

/// A legacy session with no request for this long, and no open stream, is ended.
pub const SESSION_IDLE_MS: Millis = 30 * 60 * 1000;
/// Keep-alive comment interval on open event streams.
pub const KEEP_ALIVE_MS: Millis = 15_000;

/// What the host configures.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Origins allowed besides loopback ones (`*` for any).
    pub allowed_origins: Vec<String>,
    /// Larger request bodies are refused with 413.
    pub max_body_bytes: usize,
    /// The `retry` field sent with priming events, in ms.
    pub retry_ms: Millis,
    /// End resumable event streams after this long (the client resumes them); `None`: never.
    pub max_stream_ms: Option<Millis>,
    /// Turn a reply into an event stream when no answer has come for this long.
    pub sse_after_ms: Millis,
    /// Events kept per legacy session for resumption.
    pub event_store: usize,
    /// Fills a new session key with random bytes (the host's CSPRNG).
    pub random: fn(&mut [u8]),
    /// Turns a client's `Authorization` header into the auth context the engine keeps (a digest);
    /// `None`: the header is not used.
    pub auth_context: Option<fn(&str) -> String>,
}

impl ServerConfig {
    pub fn new(random: fn(&mut [u8])) -> Self {
        ServerConfig {
            allowed_origins: Vec::new(),
            max_body_bytes: 4 * 1024 * 1024,
            retry_ms: 1000,
            max_stream_ms: None,
            sse_after_ms: 1000,
            event_store: 1000,
            random,
            auth_context: None,
        }
    }
}

/// One HTTP request on the MCP endpoint. Header names are matched case-insensitively.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    /// Who sent it, when the host authenticated it (see [`crate::auth`]). A legacy session belongs
    /// to the principal that opened it: another one's request on it is answered 404.
    pub principal: Option<&'a crate::Principal>,
}

impl Request<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A piece of one response, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Head { status: u16, headers: Vec<(String, String)> },
    Data(String),
    End,
}

fn final_id(m: &Message) -> Option<&Id> {
    match m {
        Message::Response { id, .. } | Message::Error { id: Some(id), .. } => Some(id),
        _ => None,
    }
}

/// What a live HTTP exchange is waiting for.
#[derive(Debug)]
enum Waits {
    /// A legacy `initialize`: becomes a session if it succeeds.
    Initialize { engine: SessionId, id: Id, init: String },
    /// A request's answer (legacy: in session `key`, on its stream number; modern: in its own
    /// engine session).
    Answer { engine: SessionId, key: Option<String>, id: Id, number: u64, sse_ok: bool, modern: bool },
    /// A legacy session's standalone stream, or a resumed stream (`number`).
    Stream { key: String, number: u64 },
}

#[derive(Debug)]
struct Live {
    waits: Waits,
    /// Headers every response part starts with (CORS).
    cors: Vec<(String, String)>,
    /// `Some(true)` once the head of an event stream is sent (a JSON reply is written at once).
    started: Option<bool>,
    opened_at: Millis,
    last_write: Millis,
}

/// A legacy session.
#[derive(Debug)]
struct Session {
    engine: SessionId,
    version: String,
    /// The `initialize` request that opened it (to open it again after a restart, see
    /// [`HttpServer::restore`]).
    init: String,
    last_seen: Millis,
    /// Requests whose answer is due, by id: their stream number.
    posts: HashMap<Id, u64>,
    /// Which live exchange carries each stream number.
    carriers: HashMap<u64, StreamId>,
    next_number: u64,
    /// Per stream number, the last sequence number used.
    seqs: HashMap<u64, u64>,
    /// Stream numbers whose last event (the answer) has been stored: nothing more will come on them.
    finished: Vec<u64>,
    events: VecDeque<Stored>,
    /// The standalone stream's events not yet written to any carrier.
    undelivered_from: u64,
    /// The principal that opened it (not kept across a restart: hosts that persist sessions serve
    /// no authenticated clients).
    principal: Option<String>,
}

/// The server face. See the module documentation.
#[derive(Debug)]
pub struct HttpServer {
    cfg: ServerConfig,
    sessions: HashMap<String, Session>,
    by_engine: HashMap<SessionId, Owner>,
    live: HashMap<StreamId, Live>,
    out: VecDeque<(StreamId, Part)>,
    /// Something [`HttpServer::save`] keeps has changed.
    dirty: bool,
}

#[derive(Debug, Clone)]
enum Owner {
    Legacy(String),
    /// A modern request's (or a not yet initialized legacy) session: the exchange carrying it.
    Exchange(StreamId),
}

impl HttpServer {
    pub fn new(cfg: ServerConfig) -> Self {
        HttpServer {
            cfg,
            sessions: HashMap::new(),
            by_engine: HashMap::new(),
            live: HashMap::new(),
            out: VecDeque::new(),
            dirty: false,
        }
    }

    pub fn config(&self) -> &ServerConfig {
        &self.cfg
    }

    /// Whether engine session `s` is one of this face's (its outputs go to [`HttpServer::deliver`]).
    pub fn owns(&self, s: SessionId) -> bool {
        self.by_engine.contains_key(&s)
    }

    /// Open legacy sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    pub fn poll_output(&mut self) -> Option<(StreamId, Part)> {
        self.out.pop_front()
    }

    // --------------------------------------------------------------------------------------------
    // Writing responses
    // --------------------------------------------------------------------------------------------

    fn respond(
        &mut self,
        st: StreamId,
        status: u16,
        mut headers: Vec<(String, String)>,
        body: Option<String>,
        cors: &[(String, String)],
    ) {
        headers.extend(cors.iter().cloned());
        self.out.push_back((st, Part::Head { status, headers }));
        if let Some(b) = body {
            self.out.push_back((st, Part::Data(b)));
        }
        self.out.push_back((st, Part::End));
    }

    fn json(
        &mut self,
        st: StreamId,
        status: u16,
        m: &Message,
        extra: Vec<(String, String)>,
        cors: &[(String, String)],
    ) {
        let mut h = vec![("content-type".to_string(), "application/json".to_string())];
        h.extend(extra);
        self.respond(st, status, h, Some(m.to_json()), cors);
    }

    fn error(&mut self, st: StreamId, status: u16, id: Option<Id>, code: i64, msg: &str, cors: &[(String, String)]) {
        self.json(st, status, &Message::error(id, ErrorObject::new(code, msg)), Vec::new(), cors);
    }

    fn no_session_header(&mut self, st: StreamId, cors: &[(String, String)]) {
        let msg = "Bad Request: Mcp-Session-Id header is required";
        self.error(st, 400, None, code::INVALID_REQUEST, msg, cors)
    }

    fn sse_head(&mut self, st: StreamId, cors: &[(String, String)]) {
        let mut headers = vec![
            ("content-type".to_string(), "text/event-stream".to_string()),
            ("cache-control".into(), "no-cache".into()),
            ("x-accel-buffering".into(), "no".into()),
        ];
        headers.extend(cors.iter().cloned());
        self.out.push_back((st, Part::Head { status: 200, headers }));
    }

    // --------------------------------------------------------------------------------------------
    // Requests
    // --------------------------------------------------------------------------------------------

    /// One HTTP request on the MCP endpoint, as exchange `st`.
    pub fn request(&mut self, gw: &mut Gateway, now: Millis, st: StreamId, req: Request<'_>) {
        let cors = match req.header("origin") {
            None => Vec::new(),
            Some(o) if origin_allowed(&self.cfg.allowed_origins, o) => {
                if req.method.eq_ignore_ascii_case("OPTIONS") {
                    let h = cors_headers(o, Some(req.header("access-control-request-headers")));
                    return self.respond(st, 204, h, None, &[]);
                }
                cors_headers(o, None)
            }
            Some(_) => return self.error(st, 403, None, code::INVALID_REQUEST, "Forbidden: Origin not allowed", &[]),
        };
        let modern = req.header("mcp-protocol-version").and_then(protocol::era_of) == Some(Era::Modern);
        match req.method.to_ascii_uppercase().as_str() {
            "POST" => self.post(gw, now, st, req, cors),
            "GET" if modern => self.respond(st, 405, vec![("allow".into(), "POST".into())], None, &cors),
            "DELETE" if modern => self.respond(st, 405, vec![("allow".into(), "POST".into())], None, &cors),
            "GET" => self.get(now, st, req, cors),
            "DELETE" => self.delete(gw, now, st, req, cors),
            _ => self.respond(st, 405, vec![("allow".into(), "GET, POST, DELETE".into())], None, &cors),
        }
    }

    fn post(&mut self, gw: &mut Gateway, now: Millis, st: StreamId, req: Request<'_>, cors: Vec<(String, String)>) {
        if req.body.len() > self.cfg.max_body_bytes {
            let msg = format!("Payload Too Large: the body is over {} bytes", self.cfg.max_body_bytes);
            return self.error(st, 413, None, code::INVALID_REQUEST, &msg, &cors);
        }
        let mut msg = match Message::parse(req.body) {
            Ok(m) => m,
            Err(e) => return self.json(st, 400, &Message::error(None, e.to_error()), Vec::new(), &cors),
        };
        // A trace context in headers joins the request's `_meta` (where the engine looks for it).
        if let (Message::Request { params, .. }, Some(tp)) = (&mut msg, req.header(crate::trace::TRACEPARENT)) {
            let p = params.get_or_insert_with(|| Value::Object(Default::default()));
            crate::trace::from_headers(p, Some(tp), req.header(crate::trace::TRACESTATE));
        }
        let version = req.header("mcp-protocol-version").map(str::to_string);
        match version.as_deref().map(|v| (v, protocol::era_of(v))) {
            Some((_, Some(Era::Modern))) => self.post_modern(gw, now, st, req, msg, version.unwrap_or_default(), cors),
            Some((v, None)) => {
                let e =
                    ErrorObject::new(code::UNSUPPORTED_PROTOCOL_VERSION, format!("Unsupported protocol version: {v}"))
                        .with_data(serde_json::json!({"supported": protocol::supported_versions(), "requested": v}));
                self.json(st, 400, &Message::error(request_id(&msg), e), Vec::new(), &cors)
            }
            _ => self.post_legacy(gw, now, st, req, msg, cors),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn post_modern(
        &mut self,
        gw: &mut Gateway,
        now: Millis,
        st: StreamId,
        req: Request<'_>,
        msg: Message,
        version: String,
        cors: Vec<(String, String)>,
    ) {
        let Message::Request { id, method: m, params, .. } = &msg else {
            // The modern era defines no client notifications over HTTP; accept and drop them.
            return self.respond(st, 202, Vec::new(), None, &cors);
        };
        let id = id.clone();
        let mismatch = format!("MCP-Protocol-Version header {version:?} does not match params._meta version");
        match protocol::request_version(params.as_ref()) {
            Some(v) if v == version => {}
            Some(v) => {
                return self.error(st, 400, Some(id), code::HEADER_MISMATCH, &format!("{mismatch} {v:?}"), &cors)
            }
            None => {
                let e = format!("params._meta[\"{}\"] is required", protocol::meta::PROTOCOL_VERSION);
                return self.error(st, 400, Some(id), code::INVALID_PARAMS, &e, &cors);
            }
        }
        match req.header("mcp-method") {
            Some(h) if h == m => {}
            Some(h) => {
                let e = format!("Mcp-Method header {h:?} does not match the body's method {m:?}");
                return self.error(st, 400, Some(id), code::HEADER_MISMATCH, &e, &cors);
            }
            None => {
                return self.error(st, 400, Some(id), code::HEADER_MISMATCH, "the Mcp-Method header is required", &cors)
            }
        }
        let field = match m.as_str() {
            method::TOOLS_CALL | method::PROMPTS_GET => Some("name"),
            method::RESOURCES_READ => Some("uri"),
            _ => None,
        };
        if let Some(f) = field {
            let body = params.as_ref().and_then(|p| p.get(f)).and_then(Value::as_str);
            let hdr = req.header("mcp-name").and_then(decode_header_value);
            if hdr.as_deref() != body {
                let e = format!("Mcp-Name header {hdr:?} does not match params.{f} {body:?}");
                return self.error(st, 400, Some(id), code::HEADER_MISMATCH, &e, &cors);
            }
        }
        let engine = gw.open_session(now);
        self.set_auth(gw, engine, &req);
        self.by_engine.insert(engine, Owner::Exchange(st));
        let sse_ok = accepts_sse(&req);
        self.live.insert(st, live(Waits::Answer { engine, key: None, id, number: 0, sse_ok, modern: true }, cors, now));
        gw.handle_client(now, engine, msg);
    }

    fn set_auth(&self, gw: &mut Gateway, s: SessionId, req: &Request<'_>) {
        if let Some(p) = req.principal {
            gw.set_session_principal(s, p.clone());
        } else if let (Some(f), Some(a)) = (self.cfg.auth_context, req.header("authorization")) {
            gw.set_session_auth(s, &f(a));
        }
    }

    /// The legacy session `key`, if it exists and belongs to the request's principal.
    fn session_of(&mut self, key: &str, req: &Request<'_>) -> Option<&mut Session> {
        self.sessions.get_mut(key).filter(|s| s.principal.as_deref() == req.principal.map(|p| p.name.as_str()))
    }

    fn post_legacy(
        &mut self,
        gw: &mut Gateway,
        now: Millis,
        st: StreamId,
        req: Request<'_>,
        msg: Message,
        cors: Vec<(String, String)>,
    ) {
        if let Message::Request { id, method: m, .. } = &msg {
            if m == method::INITIALIZE {
                let engine = gw.open_session(now);
                self.set_auth(gw, engine, &req);
                self.by_engine.insert(engine, Owner::Exchange(st));
                let init = msg.to_json();
                self.live.insert(st, live(Waits::Initialize { engine, id: id.clone(), init }, cors, now));
                return gw.handle_client(now, engine, msg);
            }
        }
        let Some(key) = req.header("mcp-session-id").map(str::to_string) else {
            let e = "Bad Request: Mcp-Session-Id header is required (start with initialize)";
            return self.error(st, 400, request_id(&msg), code::INVALID_REQUEST, e, &cors);
        };
        let Some(session) = self.session_of(&key, &req) else {
            return self.error(st, 404, request_id(&msg), code::INVALID_REQUEST, "Session not found", &cors);
        };
        session.last_seen = now;
        let engine = session.engine;
        match msg {
            Message::Request { ref id, .. } => {
                if session.posts.contains_key(id) {
                    let e = format!("request id {id} is already in use in this session");
                    return self.error(st, 400, Some(id.clone()), code::INVALID_REQUEST, &e, &cors);
                }
                let number = session.next_number;
                session.next_number += 1;
                session.posts.insert(id.clone(), number);
                session.carriers.insert(number, st);
                self.dirty = true;
                let sse_ok = accepts_sse(&req);
                let waits = Waits::Answer { engine, key: Some(key), id: id.clone(), number, sse_ok, modern: false };
                self.live.insert(st, live(waits, cors, now));
                gw.handle_client(now, engine, msg);
            }
            other => {
                // A cancelled request gets no answer: end the stream that waits for it.
                if let Message::Notification { method: m, params: Some(p), .. } = &other {
                    if m == method::CANCELLED {
                        if let Some(rid) = p.get("requestId").and_then(id_of) {
                            if let Some(number) = session.posts.remove(&rid) {
                                session.finished.push(number);
                                if let Some(c) = session.carriers.remove(&number) {
                                    self.end(c);
                                }
                            }
                        }
                    }
                }
                self.respond(st, 202, Vec::new(), None, &cors);
                gw.handle_client(now, engine, other);
            }
        }
    }

    fn get(&mut self, now: Millis, st: StreamId, req: Request<'_>, cors: Vec<(String, String)>) {
        let Some(key) = req.header("mcp-session-id").map(str::to_string) else {
            return self.no_session_header(st, &cors);
        };
        let Some(session) = self.session_of(&key, &req) else {
            return self.error(st, 404, None, code::INVALID_REQUEST, "Session not found", &cors);
        };
        if !accepts_sse(&req) {
            let h = vec![("content-type".into(), "text/plain".into())];
            return self.respond(st, 406, h, Some("GET /mcp needs Accept: text/event-stream\n".into()), &cors);
        }
        session.last_seen = now;
        // Resume the stream the last event belongs to, or open the standalone one.
        let (number, after) = match req.header("last-event-id").and_then(parse_event_id) {
            Some((n, s)) if n < session.next_number => (n, Some(s)),
            _ => (STANDALONE, None),
        };
        let finished = session.finished.contains(&number);
        let old = if finished { None } else { session.carriers.insert(number, st) };
        let resumable = resumable_version(&session.version);
        let after = after.unwrap_or(if number == STANDALONE { session.undelivered_from.saturating_sub(1) } else { 0 });
        let replay: Vec<(u64, String)> = session
            .events
            .iter()
            .filter(|e| e.stream == number && e.seq > after)
            .map(|e| (e.seq, e.data.clone()))
            .collect();
        if number == STANDALONE {
            session.undelivered_from = session.seqs.get(&STANDALONE).copied().unwrap_or(0).saturating_add(1);
        }
        let retry = self.cfg.retry_ms;
        if let Some(old) = old {
            // The stream has a new carrier; the old one (if still open) ends.
            self.end(old);
        }
        self.live.insert(st, Live { started: Some(true), ..live(Waits::Stream { key, number }, cors.clone(), now) });
        self.sse_head(st, &cors);
        if resumable && replay.is_empty() && !finished {
            self.out.push_back((st, Part::Data(priming(number, after, retry))));
        }
        for (seq, data) in replay {
            self.out.push_back((st, Part::Data(event_text(Some((number, seq)), &data))));
        }
        if finished {
            self.end(st);
        }
    }

    fn delete(&mut self, gw: &mut Gateway, now: Millis, st: StreamId, req: Request<'_>, cors: Vec<(String, String)>) {
        let Some(key) = req.header("mcp-session-id") else {
            return self.no_session_header(st, &cors);
        };
        if self.session_of(key, &req).is_none() {
            return self.error(st, 404, None, code::INVALID_REQUEST, "Session not found", &cors);
        }
        let Some(session) = self.sessions.remove(key) else { return };
        self.drop_session(gw, now, session);
        self.respond(st, 200, Vec::new(), None, &cors);
    }

    fn drop_session(&mut self, gw: &mut Gateway, now: Millis, session: Session) {
        self.dirty = true;
        self.by_engine.remove(&session.engine);
        for c in session.carriers.values() {
            self.end(*c);
        }
        gw.close_session(now, session.engine);
    }

    /// End a live exchange (its Head, if not sent yet, is a 200 event stream with nothing in it).
    fn end(&mut self, st: StreamId) {
        if let Some(l) = self.live.remove(&st) {
            if l.started.is_none() {
                self.sse_head(st, &l.cors);
            }
            self.out.push_back((st, Part::End));
        }
    }

    /// The host is stopping: every open stream ends (legacy clients resume them elsewhere or later,
    /// their events are kept by [`HttpServer::save`]), and replies not begun get 503. Nothing of the
    /// engine is touched: the host stops it next.
    pub fn shutdown(&mut self) {
        let open: Vec<(StreamId, Option<Id>, bool)> = self
            .live
            .iter()
            .map(|(st, l)| {
                let id = match &l.waits {
                    Waits::Initialize { id, .. } | Waits::Answer { id, .. } => Some(id.clone()),
                    Waits::Stream { .. } => None,
                };
                (*st, id, l.started.is_some())
            })
            .collect();
        for (st, id, started) in open {
            if started {
                self.end(st);
            } else if let Some(l) = self.live.remove(&st) {
                self.error(st, 503, id, code::INTERNAL_ERROR, "the gateway is shutting down", &l.cors);
            }
        }
    }

    /// The client went away from exchange `st` (before its End).
    pub fn closed(&mut self, gw: &mut Gateway, now: Millis, st: StreamId) {
        let Some(l) = self.live.remove(&st) else { return };
        match l.waits {
            // A modern request's stream closing cancels it; an initialize that nobody waits for
            // will not become a session.
            Waits::Answer { engine, modern: true, .. } | Waits::Initialize { engine, .. } => {
                self.by_engine.remove(&engine);
                gw.close_session(now, engine);
            }
            // Legacy: the stream is cut, the call goes on; its events wait for a resumption.
            Waits::Answer { key: Some(key), number, .. } | Waits::Stream { key, number } => {
                if let Some(s) = self.sessions.get_mut(&key) {
                    if s.carriers.get(&number) == Some(&st) {
                        s.carriers.remove(&number);
                    }
                    s.last_seen = now;
                }
            }
            Waits::Answer { key: None, .. } => {}
        }
    }

    // --------------------------------------------------------------------------------------------
    // Engine output
    // --------------------------------------------------------------------------------------------

    /// An engine message for session `s` (one [`HttpServer::owns`]); `related` is the client request
    /// it belongs to, if any.
    pub fn deliver(&mut self, gw: &mut Gateway, now: Millis, s: SessionId, related: Option<Id>, message: Message) {
        match self.by_engine.get(&s).cloned() {
            Some(Owner::Exchange(st)) => self.deliver_exchange(gw, now, st, message),
            Some(Owner::Legacy(key)) => self.deliver_legacy(now, &key, related, message),
            None => {}
        }
    }

    fn deliver_exchange(&mut self, gw: &mut Gateway, now: Millis, st: StreamId, message: Message) {
        let Some(l) = self.live.get_mut(&st) else { return };
        match &l.waits {
            Waits::Initialize { engine, id, init } => {
                if final_id(&message) != Some(id) {
                    return;
                }
                let (engine, init) = (*engine, init.clone());
                let cors = core::mem::take(&mut l.cors);
                self.live.remove(&st);
                if matches!(message, Message::Error { .. }) {
                    self.by_engine.remove(&engine);
                    gw.close_session(now, engine);
                    let (status, extra) = limit::rate_limited(&message).map_or((400, Vec::new()), |h| (429, h));
                    return self.json(st, status, &message, extra, &cors);
                }
                let key = self.new_key();
                let version = gw.session_version(engine).unwrap_or(protocol::HTTP_DEFAULT_LEGACY).to_string();
                self.sessions.insert(
                    key.clone(),
                    Session {
                        engine,
                        version,
                        init,
                        last_seen: now,
                        posts: HashMap::new(),
                        carriers: HashMap::new(),
                        next_number: 1,
                        seqs: HashMap::new(),
                        finished: Vec::new(),
                        events: VecDeque::new(),
                        undelivered_from: 1,
                        principal: gw.session_principal(engine).map(|p| p.name.clone()),
                    },
                );
                self.by_engine.insert(engine, Owner::Legacy(key.clone()));
                self.dirty = true;
                self.json(st, 200, &message, vec![("mcp-session-id".into(), key)], &cors);
            }
            Waits::Answer { engine, id, sse_ok, .. } => {
                let (engine, fin, sse_ok) = (*engine, final_id(&message) == Some(id), *sse_ok);
                if fin {
                    self.by_engine.remove(&engine);
                    gw.close_session(now, engine);
                }
                self.write(now, st, None, message, fin, sse_ok);
            }
            Waits::Stream { .. } => {}
        }
    }

    /// Write `message` on live exchange `st` (JSON if it is the answer and nothing came before, or
    /// if the client takes no stream; an event otherwise); `fin` ends the exchange.
    fn write(
        &mut self,
        now: Millis,
        st: StreamId,
        event_id: Option<(u64, u64)>,
        message: Message,
        fin: bool,
        sse_ok: bool,
    ) {
        let Some(l) = self.live.get_mut(&st) else { return };
        match l.started {
            None if fin => {
                let status = match &l.waits {
                    Waits::Answer { modern: true, .. } => modern_status(&message),
                    _ => 200,
                };
                let cors = core::mem::take(&mut l.cors);
                self.live.remove(&st);
                let (status, extra) = match limit::rate_limited(&message) {
                    Some(h) => (429, h),
                    None => (status, Vec::new()),
                };
                return self.json(st, status, &message, extra, &cors);
            }
            None if !sse_ok => return, // the client takes no stream (see deliver_legacy)
            None => self.open_stream(now, st),
            Some(_) => {}
        }
        if let Some(l) = self.live.get_mut(&st) {
            l.last_write = now;
        }
        self.out.push_back((st, Part::Data(event_text(event_id, &message.to_json()))));
        if fin {
            self.live.remove(&st);
            self.out.push_back((st, Part::End));
        }
    }

    fn deliver_legacy(&mut self, now: Millis, key: &str, related: Option<Id>, message: Message) {
        let Some(session) = self.sessions.get_mut(key) else { return };
        // Which stream: the answer's, a message related to a pending request's, else the standalone.
        let (number, fin) = match final_id(&message) {
            Some(id) => match session.posts.remove(id) {
                Some(n) => (n, true),
                None => return, // an answer nobody waits for (cancelled)
            },
            None => match related.as_ref().and_then(|r| session.posts.get(r)) {
                Some(&n) => (n, false),
                None => (STANDALONE, false),
            },
        };
        let carrier = session.carriers.get(&number).copied();
        // A request whose exchange cannot take a stream: what comes before the answer goes to the
        // standalone stream instead.
        let (number, carrier) = match carrier.and_then(|c| self.live.get(&c)) {
            Some(Live { started: None, waits: Waits::Answer { sse_ok: false, .. }, .. }) if !fin => {
                (STANDALONE, session.carriers.get(&STANDALONE).copied())
            }
            _ => (number, carrier),
        };
        let data = message.to_json();
        // A JSON answer needs no id; everything on a stream is stored for resumption.
        let json_answer = fin && carrier.is_some_and(|c| self.live.get(&c).is_some_and(|l| l.started.is_none()));
        let event_id = if json_answer {
            None
        } else {
            let seq = session.seqs.entry(number).or_insert(0);
            *seq = seq.saturating_add(1); // a restored state may hold any number
            let seq = *seq;
            session.events.push_back(Stored { stream: number, seq, data: data.clone() });
            self.dirty = true;
            while session.events.len() > self.cfg.event_store {
                session.events.pop_front();
            }
            // Streams whose every event is gone and whose answer came need no sequence any more.
            if session.seqs.len() > 2 * self.cfg.event_store {
                let live: crate::prelude::HashSet<u64> = session.events.iter().map(|e| e.stream).collect();
                let (posts, events) = (&session.posts, &live);
                session.seqs.retain(|n, _| {
                    *n == STANDALONE || *n == number || events.contains(n) || posts.values().any(|p| p == n)
                });
            }
            Some((number, seq))
        };
        if fin {
            session.finished.push(number);
            if session.finished.len() > self.cfg.event_store {
                session.finished.remove(0);
            }
            session.carriers.remove(&number);
        }
        // Without a carrier it stays stored: the client resumes, or the next GET gets it.
        if let Some(c) = carrier {
            if number == STANDALONE {
                session.undelivered_from = event_id.map_or(session.undelivered_from, |(_, s)| s + 1);
            }
            let sse_ok = match self.live.get(&c).map(|l| &l.waits) {
                Some(Waits::Answer { sse_ok, .. }) => *sse_ok,
                _ => true,
            };
            self.write(now, c, event_id, message, fin, sse_ok);
        }
    }

    fn new_key(&self) -> String {
        let mut b = [0u8; 16];
        (self.cfg.random)(&mut b);
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    // --------------------------------------------------------------------------------------------
    // Time
    // --------------------------------------------------------------------------------------------

    /// When [`HttpServer::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let mut next: Option<Millis> = None;
        let mut at = |t: Millis| next = Some(next.map_or(t, |n| n.min(t)));
        for l in self.live.values() {
            match l.started {
                None => {
                    if let Waits::Answer { sse_ok: true, .. } = l.waits {
                        at(l.opened_at + self.cfg.sse_after_ms);
                    }
                }
                Some(_) => {
                    at(l.last_write + KEEP_ALIVE_MS);
                    if let (Some(max), Waits::Answer { modern: false, .. } | Waits::Stream { .. }) =
                        (self.cfg.max_stream_ms, &l.waits)
                    {
                        at(l.opened_at + max);
                    }
                }
            }
        }
        for s in self.sessions.values() {
            if s.carriers.is_empty() {
                at(s.last_seen + SESSION_IDLE_MS);
            }
        }
        next
    }

    pub fn handle_timeout(&mut self, gw: &mut Gateway, now: Millis) {
        let mut ends = Vec::new();
        let mut opens = Vec::new();
        for (&st, l) in self.live.iter_mut() {
            match l.started {
                None => {
                    if let Waits::Answer { sse_ok: true, .. } = l.waits {
                        if now >= l.opened_at + self.cfg.sse_after_ms {
                            opens.push(st);
                        }
                    }
                }
                Some(_) => {
                    let resumable = matches!(l.waits, Waits::Answer { modern: false, .. } | Waits::Stream { .. });
                    if resumable && self.cfg.max_stream_ms.is_some_and(|m| now >= l.opened_at + m) {
                        ends.push(st);
                    } else if now >= l.last_write + KEEP_ALIVE_MS {
                        l.last_write = now;
                        self.out.push_back((st, Part::Data(": keep-alive\n\n".into())));
                    }
                }
            }
        }
        for st in opens {
            self.open_stream(now, st);
        }
        for st in ends {
            // The host's limit: end the stream; the client resumes it with Last-Event-ID.
            if let Some(l) = self.live.get(&st) {
                if let Waits::Answer { key: Some(key), number, .. } | Waits::Stream { key, number } = &l.waits {
                    if let Some(s) = self.sessions.get_mut(key) {
                        if s.carriers.get(number) == Some(&st) {
                            s.carriers.remove(number);
                        }
                    }
                }
            }
            self.end(st);
        }
        let idle: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.carriers.is_empty() && now >= s.last_seen + SESSION_IDLE_MS)
            .map(|(k, _)| k.clone())
            .collect();
        for key in idle {
            if let Some(s) = self.sessions.remove(&key) {
                self.drop_session(gw, now, s);
            }
        }
    }

    /// A reply that has waited long enough becomes an event stream (resumable for legacy sessions:
    /// the priming event goes first).
    fn open_stream(&mut self, now: Millis, st: StreamId) {
        let Some(l) = self.live.get_mut(&st) else { return };
        l.started = Some(true);
        l.last_write = now;
        let cors = l.cors.clone();
        // A request's stream has had no event on it yet: its events are numbered from 1.
        let primed = match &l.waits {
            Waits::Answer { key: Some(key), number, .. } => {
                self.sessions.get(key).filter(|s| resumable_version(&s.version)).map(|_| *number)
            }
            _ => None,
        };
        self.sse_head(st, &cors);
        if let Some(n) = primed {
            let retry = self.cfg.retry_ms;
            self.out.push_back((st, Part::Data(priming(n, 0, retry))));
        }
    }
}

fn live(waits: Waits, cors: Vec<(String, String)>, now: Millis) -> Live {
    Live { waits, cors, started: None, opened_at: now, last_write: now }
}

fn accepts_sse(req: &Request<'_>) -> bool {
    req.header("accept").is_some_and(|a| a.contains("text/event-stream") || a.contains("*/*"))
}

fn request_id(m: &Message) -> Option<Id> {
    match m {
        Message::Request { id, .. } => Some(id.clone()),
        _ => None,
    }
}

fn id_of(v: &Value) -> Option<Id> {
    match v {
        Value::String(s) => Some(Id::Str(s.clone())),
        v => v.as_i64().map(Id::Num),
    }
}
