//! The downstream Streamable HTTP face on `/mcp`, both eras.
//!
//! Era per request, as the spec and the SDKs do it: an `MCP-Protocol-Version` header naming a
//! modern version makes the request modern (stateless: one engine session per request, closed when
//! its answer is sent or the client hangs up, which cancels it upstream). Anything else is legacy:
//! `initialize` creates a session (`Mcp-Session-Id`), later requests must carry it, GET opens the
//! session's notification stream, DELETE ends it.
//!
//! A request's answer is JSON when nothing else comes first; if the engine has notifications or
//! requests for the client before the answer (progress, sampling, elicitation), the reply becomes an
//! SSE stream that carries them and ends with the answer.

use crate::driver::{ClientSink, Cmd, Handle};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::stream::{self, StreamExt};
use mcp_edge_gateway::jsonrpc::code;
use mcp_edge_gateway::protocol::{self, method, Era};
use mcp_edge_gateway::{ErrorObject, Id, Message, SessionId};
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Shared state of the HTTP face.
pub struct App {
    pub handle: Handle,
    pub allowed_origins: Vec<String>,
    pub max_body_bytes: usize,
    sessions: Mutex<HashMap<String, Arc<HttpSession>>>,
}

impl App {
    pub fn new(handle: Handle, allowed_origins: Vec<String>, max_body_bytes: usize) -> Arc<App> {
        Arc::new(App { handle, allowed_origins, max_body_bytes, sessions: Mutex::new(HashMap::new()) })
    }
}

/// Routes one engine session's messages to the HTTP streams that are open for it.
pub struct HttpSession {
    id: Mutex<Option<SessionId>>,
    routes: Mutex<Routes>,
    last_seen: Mutex<std::time::Instant>,
}

impl Default for HttpSession {
    fn default() -> Self {
        HttpSession { id: Mutex::new(None), routes: Mutex::default(), last_seen: Mutex::new(std::time::Instant::now()) }
    }
}

/// A legacy session with no request for this long, and no open GET stream, is ended (clients that
/// never send DELETE would otherwise leak sessions).
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);

/// End idle legacy sessions, checking once a minute. Runs until the process ends.
pub async fn expire_idle_sessions(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let idle: Vec<(String, Arc<HttpSession>)> = {
            let sessions = app.sessions.lock().expect("poisoned");
            sessions
                .iter()
                .filter(|(_, s)| {
                    let open_get = s.routes.lock().expect("poisoned").get.as_ref().is_some_and(|g| !g.is_closed());
                    !open_get && s.last_seen.lock().expect("poisoned").elapsed() > SESSION_IDLE
                })
                .map(|(k, s)| (k.clone(), s.clone()))
                .collect()
        };
        for (key, s) in idle {
            app.sessions.lock().expect("poisoned").remove(&key);
            if let Some(sid) = *s.id.lock().expect("poisoned") {
                tracing::info!("ending legacy session idle for over {} minutes", SESSION_IDLE.as_secs() / 60);
                app.handle.send(Cmd::CloseSession(sid));
            }
        }
    }
}

#[derive(Default)]
struct Routes {
    posts: HashMap<Id, mpsc::UnboundedSender<Message>>,
    get: Option<mpsc::UnboundedSender<Message>>,
    backlog: VecDeque<Message>,
}

const BACKLOG: usize = 1000;

impl ClientSink for HttpSession {
    fn deliver(&self, related: Option<Id>, message: Message) {
        let mut r = self.routes.lock().expect("poisoned");
        let final_for = match &message {
            Message::Response { id, .. } | Message::Error { id: Some(id), .. } => Some(id.clone()),
            _ => None,
        };
        let mut message = message;
        if let Some(id) = final_for {
            if let Some(tx) = r.posts.remove(&id) {
                match tx.send(message) {
                    Ok(()) => return,
                    Err(e) => message = e.0,
                }
            }
        } else if let Some(rel) = related {
            if let Some(tx) = r.posts.get(&rel) {
                match tx.send(message) {
                    Ok(()) => return,
                    Err(e) => message = e.0,
                }
            }
        }
        if let Some(g) = &r.get {
            match g.send(message) {
                Ok(()) => return,
                Err(e) => {
                    message = e.0;
                    r.get = None;
                }
            }
        }
        if r.backlog.len() < BACKLOG {
            r.backlog.push_back(message);
        }
    }
}

pub fn router(app: Arc<App>) -> Router {
    let limit = app.max_body_bytes;
    Router::new()
        .route("/mcp", get(get_mcp).post(post_mcp).delete(delete_mcp))
        .route("/ws", get(crate::ws::upgrade))
        .route("/status", get(status))
        .route("/admin/queue", get(crate::admin::list))
        .route("/admin/queue/{id}", get(crate::admin::get).delete(crate::admin::cancel))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(middleware::from_fn_with_state(app.clone(), origin_and_cors))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(app)
}

// ------------------------------------------------------------------------------------------------
// Origin validation and CORS
// ------------------------------------------------------------------------------------------------

fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) else {
        return false;
    };
    let host = if rest.starts_with('[') {
        rest.split(']').next().map(|h| format!("{h}]"))
    } else {
        rest.split(':').next().map(str::to_string)
    };
    matches!(host.as_deref(), Some("localhost" | "127.0.0.1" | "[::1]"))
}

fn origin_allowed(app: &App, origin: &str) -> bool {
    is_loopback_origin(origin) || app.allowed_origins.iter().any(|o| o == origin || o == "*")
}

const ALLOW_HEADERS: &str =
    "content-type, accept, authorization, mcp-session-id, mcp-protocol-version, last-event-id, mcp-method, mcp-name";

async fn origin_and_cors(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_string);
    let Some(origin) = origin else {
        return next.run(req).await;
    };
    if !origin_allowed(&app, &origin) {
        tracing::warn!("refused a request from foreign Origin {origin:?}");
        return (
            StatusCode::FORBIDDEN,
            axum::Json(error_body(None, code::INVALID_REQUEST, "Forbidden: Origin not allowed")),
        )
            .into_response();
    }
    let preflight = req.method() == Method::OPTIONS;
    let requested = req.headers().get("access-control-request-headers").cloned();
    let mut resp = if preflight { StatusCode::NO_CONTENT.into_response() } else { next.run(req).await };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&origin) {
        h.insert("access-control-allow-origin", v);
    }
    h.insert("vary", HeaderValue::from_static("Origin"));
    h.insert("access-control-expose-headers", HeaderValue::from_static("mcp-session-id, mcp-protocol-version"));
    if preflight {
        h.insert("access-control-allow-methods", HeaderValue::from_static("GET, POST, DELETE, OPTIONS"));
        // Mcp-Param-* names are open-ended: echo what was asked when every name is one we accept.
        let allow = requested
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .filter(|v| {
                v.split(',')
                    .map(|s| s.trim().to_ascii_lowercase())
                    .all(|n| n.is_empty() || ALLOW_HEADERS.split(", ").any(|a| a == n) || n.starts_with("mcp-param-"))
            })
            .map(str::to_string)
            .unwrap_or_else(|| ALLOW_HEADERS.to_string());
        if let Ok(v) = HeaderValue::from_str(&allow) {
            h.insert("access-control-allow-headers", v);
        }
        h.insert("access-control-max-age", HeaderValue::from_static("600"));
    }
    resp
}

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

fn error_body(id: Option<Id>, c: i64, msg: &str) -> serde_json::Value {
    Message::error(id, ErrorObject::new(c, msg)).to_value()
}

fn json_response(status: StatusCode, m: &Message) -> Response {
    let mut r = Response::new(Body::from(m.to_json()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn rpc_error(status: StatusCode, id: Option<Id>, e: ErrorObject) -> Response {
    json_response(status, &Message::error(id, e))
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn accepts_sse(h: &HeaderMap) -> bool {
    header_str(h, "accept").is_some_and(|a| a.contains("text/event-stream") || a.contains("*/*"))
}

/// Decode the `=?base64?…?=` sentinel of modern header values.
fn decode_header_value(v: &str) -> Option<String> {
    match v.strip_prefix("=?base64?").and_then(|r| r.strip_suffix("?=")) {
        Some(b) => {
            let url = b.trim_end_matches('=').replace('+', "-").replace('/', "_");
            String::from_utf8(mcp_edge_gateway::cursor::base64url_decode(&url)?).ok()
        }
        None => Some(v.to_string()),
    }
}

/// HTTP status for a modern error answer (the 2026-07-28 mapping).
fn modern_status(m: &Message) -> StatusCode {
    match m {
        Message::Error { error, .. } => match error.code {
            code::PARSE_ERROR
            | code::INVALID_REQUEST
            | code::INVALID_PARAMS
            | code::HEADER_MISMATCH
            | -32021
            | code::UNSUPPORTED_PROTOCOL_VERSION => StatusCode::BAD_REQUEST,
            code::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
            _ => StatusCode::OK,
        },
        _ => StatusCode::OK,
    }
}

fn new_session_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // No OS randomness: fall back to a hash of time and address; still unique per process.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        b.copy_from_slice(&t.to_le_bytes()[..16]);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Closes a modern request's engine session when its HTTP exchange ends, however it ends.
struct CloseOnDrop {
    handle: Handle,
    session: SessionId,
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.handle.send(Cmd::CloseSession(self.session));
    }
}

/// Removes a POST route when its stream is dropped (the client hung up).
struct RouteGuard {
    session: Arc<HttpSession>,
    id: Id,
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        self.session.routes.lock().expect("poisoned").posts.remove(&self.id);
    }
}

// ------------------------------------------------------------------------------------------------
// Handlers
// ------------------------------------------------------------------------------------------------

async fn status(State(app): State<Arc<App>>) -> Response {
    axum::Json(app.handle.status().await).into_response()
}

async fn post_mcp(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let msg = match Message::parse(&body) {
        Ok(m) => m,
        Err(e) => return rpc_error(StatusCode::BAD_REQUEST, None, e.to_error()),
    };
    let header_version = header_str(&headers, "mcp-protocol-version").map(str::to_string);
    let era = match header_version.as_deref() {
        None => Era::Legacy,
        Some(v) => match protocol::era_of(v) {
            Some(e) => e,
            None => {
                let e =
                    ErrorObject::new(code::UNSUPPORTED_PROTOCOL_VERSION, format!("Unsupported protocol version: {v}"))
                        .with_data(serde_json::json!({"supported": protocol::supported_versions(), "requested": v}));
                return rpc_error(StatusCode::BAD_REQUEST, request_id(&msg), e);
            }
        },
    };
    match era {
        Era::Modern => post_modern(app, headers, msg, header_version.unwrap_or_default()).await,
        Era::Legacy => post_legacy(app, headers, msg).await,
    }
}

fn request_id(m: &Message) -> Option<Id> {
    match m {
        Message::Request { id, .. } => Some(id.clone()),
        _ => None,
    }
}

async fn post_modern(app: Arc<App>, headers: HeaderMap, msg: Message, version: String) -> Response {
    let Message::Request { id, method: m, params, .. } = &msg else {
        // The modern era defines no client notifications over HTTP; accept and drop them.
        return StatusCode::ACCEPTED.into_response();
    };
    let mismatch = |what: String| {
        rpc_error(StatusCode::BAD_REQUEST, Some(id.clone()), ErrorObject::new(code::HEADER_MISMATCH, what))
    };
    match protocol::request_version(params.as_ref()) {
        Some(v) if v == version => {}
        Some(v) => {
            return mismatch(format!(
                "MCP-Protocol-Version header {version:?} does not match params._meta version {v:?}"
            ))
        }
        None => {
            let e = ErrorObject::new(
                code::INVALID_PARAMS,
                format!("params._meta[\"{}\"] is required", protocol::meta::PROTOCOL_VERSION),
            );
            return rpc_error(StatusCode::BAD_REQUEST, Some(id.clone()), e);
        }
    }
    match header_str(&headers, "mcp-method") {
        Some(h) if h == m => {}
        Some(h) => return mismatch(format!("Mcp-Method header {h:?} does not match the body's method {m:?}")),
        None => return mismatch("the Mcp-Method header is required".into()),
    }
    let name_field = match m.as_str() {
        method::TOOLS_CALL | method::PROMPTS_GET => Some("name"),
        method::RESOURCES_READ => Some("uri"),
        _ => None,
    };
    if let Some(f) = name_field {
        let body_name = params.as_ref().and_then(|p| p.get(f)).and_then(|v| v.as_str());
        let hdr = header_str(&headers, "mcp-name").and_then(decode_header_value);
        if hdr.as_deref() != body_name {
            return mismatch(format!("Mcp-Name header {hdr:?} does not match params.{f} {body_name:?}"));
        }
    }
    let session = Arc::new(HttpSession::default());
    let Some(sid) = app.handle.open_session(session.clone()).await else {
        return rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(id.clone()),
            ErrorObject::new(code::INTERNAL_ERROR, "shutting down"),
        );
    };
    *session.id.lock().expect("poisoned") = Some(sid);
    set_auth(&app, sid, &headers);
    let guard = CloseOnDrop { handle: app.handle.clone(), session: sid };
    exchange(&app, session, sid, msg, &headers, true, Some(guard)).await
}

async fn post_legacy(app: Arc<App>, headers: HeaderMap, msg: Message) -> Response {
    let sid_header = header_str(&headers, "mcp-session-id").map(str::to_string);
    if let Message::Request { method: m, .. } = &msg {
        if m == method::INITIALIZE {
            return initialize(&app, msg, &headers).await;
        }
    }
    let Some(key) = sid_header else {
        let e = ErrorObject::new(
            code::INVALID_REQUEST,
            "Bad Request: Mcp-Session-Id header is required (start with initialize)",
        );
        return rpc_error(StatusCode::BAD_REQUEST, request_id(&msg), e);
    };
    let Some(session) = app.sessions.lock().expect("poisoned").get(&key).cloned() else {
        return rpc_error(
            StatusCode::NOT_FOUND,
            request_id(&msg),
            ErrorObject::new(code::INVALID_REQUEST, "Session not found"),
        );
    };
    let sid = session.id.lock().expect("poisoned").expect("set at creation");
    *session.last_seen.lock().expect("poisoned") = std::time::Instant::now();
    match msg {
        Message::Request { .. } => exchange(&app, session, sid, msg, &headers, false, None).await,
        other => {
            // A cancelled request gets no answer: end the stream that waits for it.
            if other.method() == Some(method::CANCELLED) {
                if let Message::Notification { params: Some(p), .. } = &other {
                    let rid = match p.get("requestId") {
                        Some(serde_json::Value::String(s)) => Some(Id::Str(s.clone())),
                        Some(v) => v.as_i64().map(Id::Num),
                        None => None,
                    };
                    if let Some(rid) = rid {
                        session.routes.lock().expect("poisoned").posts.remove(&rid);
                    }
                }
            }
            app.handle.send(Cmd::FromClient(sid, other));
            StatusCode::ACCEPTED.into_response()
        }
    }
}

/// A legacy `initialize`: the session (and its `Mcp-Session-Id`) exists only if it succeeds.
async fn initialize(app: &App, msg: Message, headers: &HeaderMap) -> Response {
    let id = request_id(&msg).expect("initialize is a request");
    let session = Arc::new(HttpSession::default());
    let Some(sid) = app.handle.open_session(session.clone()).await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    set_auth(app, sid, headers);
    *session.id.lock().expect("poisoned") = Some(sid);
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    session.routes.lock().expect("poisoned").posts.insert(id.clone(), tx);
    app.handle.send(Cmd::FromClient(sid, msg));
    // The engine answers initialize itself, at once.
    match rx.recv().await {
        Some(answer @ Message::Response { .. }) => {
            let key = new_session_id();
            app.sessions.lock().expect("poisoned").insert(key.clone(), session);
            let mut resp = json_response(StatusCode::OK, &answer);
            if let Ok(v) = HeaderValue::from_str(&key) {
                resp.headers_mut().insert("mcp-session-id", v);
            }
            resp
        }
        other => {
            app.handle.send(Cmd::CloseSession(sid));
            match other {
                Some(m) => json_response(StatusCode::BAD_REQUEST, &m),
                None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
            }
        }
    }
}

/// The client's auth context is its `Authorization` header (the gateway keeps only a digest): private
/// cache entries and queued calls are per context. A legacy session keeps the one it started with.
pub fn set_auth(app: &App, sid: SessionId, headers: &HeaderMap) {
    if let Some(a) = header_str(headers, "authorization") {
        app.handle.send(Cmd::Auth(sid, a.to_string()));
    }
}

/// Send one request to the engine and answer it: JSON if the answer comes first, else SSE.
async fn exchange(
    app: &App,
    session: Arc<HttpSession>,
    sid: SessionId,
    msg: Message,
    headers: &HeaderMap,
    modern: bool,
    close: Option<CloseOnDrop>,
) -> Response {
    let id = request_id(&msg).expect("exchange takes requests");
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    {
        let mut r = session.routes.lock().expect("poisoned");
        if r.posts.contains_key(&id) {
            drop(r);
            let e =
                ErrorObject::new(code::INVALID_REQUEST, format!("request id {id} is already in use in this session"));
            return rpc_error(StatusCode::BAD_REQUEST, Some(id), e);
        }
        r.posts.insert(id.clone(), tx);
    }
    let route = RouteGuard { session: session.clone(), id: id.clone() };
    app.handle.send(Cmd::FromClient(sid, msg));
    let Some(first) = rx.recv().await else {
        // The client cancelled it (or the session ended): nothing more will come.
        return rpc_error(StatusCode::OK, Some(id), ErrorObject::new(code::INTERNAL_ERROR, "request cancelled"));
    };
    let is_final =
        |m: &Message| matches!(m, Message::Response { id: x, .. } | Message::Error { id: Some(x), .. } if *x == id);
    if is_final(&first) {
        let status = if modern { modern_status(&first) } else { StatusCode::OK };
        drop(route);
        drop(close);
        return json_response(status, &first);
    }
    if !accepts_sse(headers) {
        // The client cannot take a stream: wait for the answer; in-between messages go elsewhere.
        let mut m = first;
        while !is_final(&m) {
            if !modern {
                session.deliver(None, m);
            }
            match rx.recv().await {
                Some(x) => m = x,
                None => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
        }
        return json_response(StatusCode::OK, &m);
    }
    // Stream: the first message, then everything until (and including) the answer.
    let state = (Some(first), rx, false, id, route, close);
    let s = stream::unfold(state, |(pending, mut rx, done, id, route, close)| async move {
        if done {
            return None;
        }
        let m = match pending {
            Some(m) => m,
            None => rx.recv().await?,
        };
        let fin = matches!(&m, Message::Response { id: x, .. } | Message::Error { id: Some(x), .. } if *x == id);
        let ev = axum::response::sse::Event::default().event("message").data(m.to_json());
        Some((Ok::<_, Infallible>(ev), (None, rx, fin, id, route, close)))
    });
    sse_response(s)
}

fn sse_response<S>(s: S) -> Response
where
    S: futures_util::Stream<Item = Result<axum::response::sse::Event, Infallible>> + Send + 'static,
{
    let mut r = axum::response::sse::Sse::new(s)
        .keep_alive(axum::response::sse::KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    r.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

async fn get_mcp(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if header_str(&headers, "mcp-protocol-version").and_then(protocol::era_of) == Some(Era::Modern) {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "POST")]).into_response();
    }
    let Some(key) = header_str(&headers, "mcp-session-id") else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            ErrorObject::new(code::INVALID_REQUEST, "Bad Request: Mcp-Session-Id header is required"),
        );
    };
    let Some(session) = app.sessions.lock().expect("poisoned").get(key).cloned() else {
        return rpc_error(StatusCode::NOT_FOUND, None, ErrorObject::new(code::INVALID_REQUEST, "Session not found"));
    };
    if !accepts_sse(&headers) {
        return (StatusCode::NOT_ACCEPTABLE, "GET /mcp needs Accept: text/event-stream\n").into_response();
    }
    let (tx, rx) = mpsc::unbounded_channel::<Message>();
    {
        let mut r = session.routes.lock().expect("poisoned");
        while let Some(m) = r.backlog.pop_front() {
            let _ = tx.send(m);
        }
        r.get = Some(tx);
    }
    let s = stream::unfold(rx, |mut rx| async move {
        let m = rx.recv().await?;
        Some((Ok::<_, Infallible>(axum::response::sse::Event::default().event("message").data(m.to_json())), rx))
    });
    sse_response(s.boxed())
}

async fn delete_mcp(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if header_str(&headers, "mcp-protocol-version").and_then(protocol::era_of) == Some(Era::Modern) {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "POST")]).into_response();
    }
    let Some(key) = header_str(&headers, "mcp-session-id") else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            ErrorObject::new(code::INVALID_REQUEST, "Bad Request: Mcp-Session-Id header is required"),
        );
    };
    let Some(session) = app.sessions.lock().expect("poisoned").remove(key) else {
        return rpc_error(StatusCode::NOT_FOUND, None, ErrorObject::new(code::INVALID_REQUEST, "Session not found"));
    };
    if let Some(sid) = *session.id.lock().expect("poisoned") {
        app.handle.send(Cmd::CloseSession(sid));
    }
    StatusCode::OK.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_origins_are_recognised() {
        assert!(is_loopback_origin("http://localhost:5173"));
        assert!(is_loopback_origin("http://127.0.0.1"));
        assert!(is_loopback_origin("http://[::1]:8080"));
        assert!(!is_loopback_origin("http://localhost.evil.com"));
        assert!(!is_loopback_origin("https://evil.example"));
        assert!(!is_loopback_origin("null"));
    }

    #[test]
    fn header_sentinel_decodes() {
        assert_eq!(decode_header_value("=?base64?aMOpbGxv?=").as_deref(), Some("héllo"));
        assert_eq!(decode_header_value("echo").as_deref(), Some("echo"));
    }
}
