//! The downstream Streamable HTTP face on `/mcp`: axum moves the bytes, the core's
//! [`mcp_edge_gateway::http_server`] (run by the engine task, see [`crate::driver`]) decides
//! everything about them — eras, sessions, JSON or SSE, resumption, status codes, Origin and CORS.
//! The other endpoints (`/ws`, `/status`, `/admin/*`) get the same Origin and CORS rules here.

use crate::driver::{Cmd, Handle};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Extension;
use axum::Router;
use futures_util::stream;
use mcp_edge_gateway::http_server::{cors_headers, origin_allowed, Part, ServerConfig, StreamId};
use mcp_edge_gateway::jsonrpc::code;
use mcp_edge_gateway::{ErrorObject, Message, Principal, SessionId};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Shared state of the HTTP face.
pub struct App {
    pub handle: Handle,
    pub allowed_origins: Vec<String>,
    pub max_body_bytes: usize,
    /// `[auth]`; `None`: every request is let in (loopback, or `--allow-unauthenticated`).
    pub auth: Option<Arc<crate::auth::AuthState>>,
    next_stream: AtomicU64,
}

impl App {
    /// The HTTP face's state; the engine task starts serving the core's face with the same limits.
    pub fn new(
        handle: Handle,
        allowed_origins: Vec<String>,
        max_body_bytes: usize,
        auth: Option<Arc<crate::auth::AuthState>>,
    ) -> Arc<App> {
        let mut cfg = ServerConfig::new(random);
        cfg.allowed_origins = allowed_origins.clone();
        cfg.max_body_bytes = max_body_bytes;
        cfg.auth_context = Some(crate::driver::auth_digest);
        handle.send(Cmd::ServeHttp(cfg));
        Arc::new(App { handle, allowed_origins, max_body_bytes, auth, next_stream: AtomicU64::new(1) })
    }
}

fn random(b: &mut [u8]) {
    if getrandom::fill(b).is_err() {
        // No OS randomness: fall back to a hash of time and a counter; still unique per process.
        static N: AtomicU64 = AtomicU64::new(0);
        use sha2::{Digest, Sha256};
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let h = Sha256::digest(format!("{t}-{}", N.fetch_add(1, Ordering::Relaxed)));
        for (x, y) in b.iter_mut().zip(h.iter().cycle()) {
            *x = *y;
        }
    }
}

pub fn router(app: Arc<App>) -> Router {
    let limit = app.max_body_bytes;
    Router::new()
        .route("/mcp", any(mcp))
        .route("/ws", get(crate::ws::upgrade))
        .route("/status", get(status))
        .route("/metrics", get(crate::metrics::handler))
        .route("/admin/queue", get(crate::admin::list))
        .route("/admin/queue/{id}", get(crate::admin::get).delete(crate::admin::cancel))
        .route("/", get(status_page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route(crate::auth::METADATA_PATH, get(crate::auth::metadata))
        .route(&format!("{}/mcp", crate::auth::METADATA_PATH), get(crate::auth::metadata))
        .layer(middleware::from_fn_with_state(app.clone(), crate::auth::require))
        .layer(middleware::from_fn_with_state(app.clone(), origin_and_cors))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(app)
}

/// Origin and CORS for every endpoint but `/mcp` (the core's face does its own).
async fn origin_and_cors(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_string);
    let Some(origin) = origin.filter(|_| req.uri().path() != "/mcp") else {
        return next.run(req).await;
    };
    if !origin_allowed(&app.allowed_origins, &origin) {
        tracing::warn!("refused a request from foreign Origin {origin:?}");
        let body = Message::error(None, ErrorObject::new(code::INVALID_REQUEST, "Forbidden: Origin not allowed"));
        return (StatusCode::FORBIDDEN, axum::Json(body.to_value())).into_response();
    }
    let preflight = req.method() == Method::OPTIONS;
    let requested =
        req.headers().get("access-control-request-headers").and_then(|v| v.to_str().ok()).map(str::to_string);
    let mut resp = if preflight { StatusCode::NO_CONTENT.into_response() } else { next.run(req).await };
    let h = resp.headers_mut();
    for (k, v) in cors_headers(&origin, preflight.then_some(requested.as_deref())) {
        if let (Ok(k), Ok(v)) = (header::HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(&v)) {
            h.insert(k, v);
        }
    }
    resp
}

/// The client's auth context: its principal when `[auth]` authenticated it, else its
/// `Authorization` header (the gateway keeps only a digest). Private cache entries and queued calls
/// are per context.
pub fn set_auth(app: &App, sid: SessionId, principal: Option<Principal>, headers: &HeaderMap) {
    if let Some(p) = principal {
        app.handle.send(Cmd::Principal(sid, p));
    } else if let Some(a) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        app.handle.send(Cmd::Auth(sid, a.to_string()));
    }
}

/// `GET /status`: JSON for machines; the status page for a browser (`Accept: text/html`).
async fn status(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if accept.contains("text/html") {
        return status_page().await;
    }
    let mut st = app.handle.status().await;
    st["process"] = crate::metrics::process();
    axum::Json(st).into_response()
}

/// The status page: one self-contained HTML file (no external request), which polls `/status` and
/// `/metrics` on this origin. It holds no figures itself, so `/` serves it to anyone; its data
/// needs the admin scopes when `[auth]` is on.
async fn status_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:"),
        ],
        include_str!("status.html"),
    )
        .into_response()
}

/// Tells the engine task when a client leaves an exchange before its end.
struct Exchange {
    handle: Handle,
    stream: StreamId,
    ended: bool,
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if !self.ended {
            self.handle.send(Cmd::HttpClosed(self.stream));
        }
    }
}

/// Every request on `/mcp`: hand it to the core's face, write out what it answers.
async fn mcp(
    State(app): State<Arc<App>>,
    principal: Option<Extension<Principal>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    crate::metrics::count(&crate::metrics::BYTES.client_in, body.len());
    let stream = app.next_stream.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel::<Part>();
    let headers: Vec<(String, String)> =
        headers.iter().filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string()))).collect();
    let principal = principal.map(|Extension(p)| p);
    app.handle.send(Cmd::Http { stream, method: method.as_str().to_string(), headers, body, principal, parts: tx });
    let mut ex = Exchange { handle: app.handle.clone(), stream, ended: false };
    let Some(Part::Head { status, headers }) = rx.recv().await else {
        ex.ended = true;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (header::HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(&v)) {
            resp.headers_mut().append(k, v);
        }
    }
    // A JSON reply is complete already: one body, no chunked stream.
    let mut first = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(Part::Data(d)) => {
                crate::metrics::count(&crate::metrics::BYTES.client_out, d.len());
                first.push(d)
            }
            Ok(Part::End) => {
                ex.ended = true;
                *resp.body_mut() = Body::from(first.concat());
                return resp;
            }
            _ => break,
        }
    }
    let s = stream::unfold((first.into_iter(), rx, ex), |(mut first, mut rx, mut ex)| async move {
        if let Some(d) = first.next() {
            return Some((Ok::<_, std::convert::Infallible>(Bytes::from(d)), (first, rx, ex)));
        }
        match rx.recv().await {
            Some(Part::Data(d)) => {
                crate::metrics::count(&crate::metrics::BYTES.client_out, d.len());
                Some((Ok(Bytes::from(d)), (first, rx, ex)))
            }
            _ => {
                ex.ended = true;
                drop(ex);
                None
            }
        }
    });
    *resp.body_mut() = Body::from_stream(s);
    resp
}
