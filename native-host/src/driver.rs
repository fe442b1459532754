//! The loop that drives the core engine on tokio: one task owns the [`Gateway`], everything else
//! talks to it through a channel. Time comes from a monotonic `Instant` and is handed to the engine as
//! milliseconds. Store batches go to the store's own thread (see [`crate::store::StoreThread`]) and
//! come back as [`Cmd::StoreDone`].

use crate::store::StoreThread;
use mcp_edge_gateway::http_server::{HttpServer, Part, Request, ServerConfig, StreamId};
use mcp_edge_gateway::{Gateway, Id, LogLevel, Message, Output, SessionId, StoreError, UpstreamId};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Where the engine's messages for one client go. Implementations must not block.
pub trait ClientSink: Send + Sync {
    fn deliver(&self, related: Option<Id>, message: Message);
}

pub enum Cmd {
    OpenSession {
        sink: Arc<dyn ClientSink>,
        reply: oneshot::Sender<SessionId>,
    },
    CloseSession(SessionId),
    FromClient(SessionId, Message),
    UpstreamUp(UpstreamId, mpsc::UnboundedSender<Message>),
    UpstreamDown(UpstreamId, String),
    /// A legacy upstream's session expired; the link itself is fine.
    UpstreamSessionExpired(UpstreamId),
    FromUpstream(UpstreamId, Message, Option<i64>),
    /// Our request (by id) never reached the upstream: the connection was refused.
    Undelivered(UpstreamId, i64),
    /// Our request (by id) was sent but its answer will never come (the connection broke).
    Lost(UpstreamId, i64, String),
    Status(oneshot::Sender<serde_json::Value>),
    /// Every figure for `/metrics` ([`Gateway::metrics`]).
    Metrics(oneshot::Sender<serde_json::Value>),
    /// A store batch is durable (or failed).
    StoreDone(u64, Result<(), StoreError>),
    /// Mark a session as an admin one (sees every queued call).
    Admin(SessionId),
    /// A session's auth context (its `Authorization` header), when `[auth]` is off.
    Auth(SessionId, String),
    /// The principal of a session `[auth]` authenticated.
    Principal(SessionId, mcp_edge_gateway::Principal),
    /// The queue in the admin view: every entry, or one by task id.
    Queue(Option<String>, oneshot::Sender<Option<serde_json::Value>>),
    /// Orderly stop: close the store (its last batches written, the WAL checkpointed), then reply.
    Shutdown(oneshot::Sender<()>),
    /// A sampling provider's response body (or why there is none).
    SamplingDone(u64, Result<serde_json::Value, String>),
    /// Serve the Streamable HTTP face (the core's [`HttpServer`]) with this configuration.
    ServeHttp(ServerConfig),
    /// One HTTP request on `/mcp` as exchange `stream`; its response parts go to `parts`.
    Http {
        stream: StreamId,
        method: String,
        headers: Vec<(String, String)>,
        body: bytes::Bytes,
        /// Who sent it, when `[auth]` is on (the host checked the token and removed it).
        principal: Option<mcp_edge_gateway::Principal>,
        parts: mpsc::UnboundedSender<Part>,
    },
    /// The client of exchange `stream` went away before its end.
    HttpClosed(StreamId),
    /// The HTTP server is stopping: end every open stream so that its connections can close.
    HttpShutdown,
}

/// An engine log line; one about a call carries its session, upstream, method and trace id as fields.
fn log(level: LogLevel, message: &str, call: Option<&mcp_edge_gateway::LogCall>) {
    macro_rules! at {
        ($lvl:ident) => {
            match call {
                Some(c) => tracing::$lvl!(
                    session = c.session.map(|s| s.0),
                    upstream = c.upstream.as_deref(),
                    method = c.method.as_str(),
                    trace_id = c.trace_id.as_deref(),
                    "{message}"
                ),
                None => tracing::$lvl!("{message}"),
            }
        };
    }
    match level {
        LogLevel::Debug => at!(debug),
        LogLevel::Info => at!(info),
        LogLevel::Warn => at!(warn),
        LogLevel::Error => at!(error),
    }
}

/// How the host reaches sampling providers: one HTTP client, and each provider's API key. No
/// client when no provider is configured: making one sets up TLS and its root certificates, which
/// a gateway without providers never needs (start-up and idle memory, README "Lean and fast").
#[derive(Clone, Default)]
pub struct Providers {
    pub client: Option<crate::upstream::wire::Client>,
    /// How long a provider's request may take in all (the engine times each provider out itself;
    /// this only bounds a connection that never ends).
    pub deadline: std::time::Duration,
    pub keys: std::collections::BTreeMap<String, String>,
}

impl Providers {
    /// POST one chat-completions request. The reason for a failure never holds the URL or the key
    /// (it reaches the upstream in the chain's error); the log gets the details.
    async fn ask(&self, provider: &str, url: &str, body: &serde_json::Value) -> Result<serde_json::Value, String> {
        let Some(client) = &self.client else { return Err("no sampling provider is configured".to_string()) };
        let uri = url.parse::<http::Uri>().map_err(|_| "its URL is not an HTTP URL".to_string())?;
        let mut req = http::Request::new(bytes::Bytes::from(body.to_string()));
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = uri;
        req.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        if let Some(k) = self.keys.get(provider) {
            let mut v = http::HeaderValue::try_from(format!("Bearer {k}"))
                .map_err(|_| "its API key cannot be sent in a header".to_string())?;
            v.set_sensitive(true);
            req.headers_mut().insert(http::header::AUTHORIZATION, v);
        }
        let (head, bytes) = client
            .fetch(req, MAX_REPLY.load(std::sync::atomic::Ordering::Relaxed), self.deadline)
            .await
            .map_err(|e| {
                tracing::debug!(provider, "sampling provider request failed: {e}");
                match e.kind {
                    crate::upstream::wire::Kind::Connect => "it cannot be reached".to_string(),
                    crate::upstream::wire::Kind::Timeout => "it did not answer in time".to_string(),
                    crate::upstream::wire::Kind::Failed => "the request failed or its answer was cut off".to_string(),
                }
            })?;
        let status = head.status;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).replace(['\n', '\r'], " ");
            return Err(format!("HTTP {}: {text}", status.as_u16()));
        }
        serde_json::from_slice(&bytes).map_err(|_| "its answer is not JSON".to_string())
    }
}

/// A cheap, cloneable handle to the engine task.
/// `limits.max_upstream_response_bytes`, set once at start.
pub static MAX_REPLY: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(16 * 1024 * 1024);

/// An upstream message of `len` bytes for the engine: a reply over [`MAX_REPLY`] fails its call.
pub fn bounded(m: Message, len: usize) -> Option<Message> {
    let max = MAX_REPLY.load(std::sync::atomic::Ordering::Relaxed);
    let out = mcp_edge_gateway::jsonrpc::bounded(m, len, max);
    if len > max {
        tracing::warn!("an upstream message of {len} bytes is over limits.max_upstream_response_bytes ({max})");
    }
    out
}

#[derive(Clone)]
pub struct Handle {
    tx: mpsc::UnboundedSender<Cmd>,
}

impl Handle {
    pub fn send(&self, c: Cmd) {
        // The engine task only ends when the process does; a failed send means we are shutting down.
        let _ = self.tx.send(c);
    }

    pub async fn open_session(&self, sink: Arc<dyn ClientSink>) -> Option<SessionId> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::OpenSession { sink, reply });
        rx.await.ok()
    }

    pub async fn status(&self) -> serde_json::Value {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Status(reply));
        rx.await.unwrap_or(serde_json::Value::Null)
    }

    pub async fn metrics(&self) -> serde_json::Value {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Metrics(reply));
        rx.await.unwrap_or(serde_json::Value::Null)
    }

    /// Close the store; the engine keeps running without one (for the last moments of the process).
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Shutdown(reply));
        let _ = rx.await;
    }

    pub async fn queue(&self, task_id: Option<String>) -> Option<serde_json::Value> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Queue(task_id, reply));
        rx.await.ok().flatten()
    }
}

/// What the engine keeps of a client's `Authorization` header: 128 bits of its SHA-256, never the
/// credential itself (it keys private cache entries and queued calls, which reach the store).
pub fn auth_digest(header: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(header.as_bytes())[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Milliseconds since the Unix epoch.
pub fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub fn channel() -> (mpsc::UnboundedSender<Cmd>, mpsc::UnboundedReceiver<Cmd>) {
    mpsc::unbounded_channel()
}

/// Start the engine task on a channel made with [`channel`] (the store thread's reports go to it
/// too). `origin` is the instant the engine's time 0 stands for.
pub fn spawn_with(
    gw: Gateway,
    origin: Instant,
    store: Option<StoreThread>,
    providers: Providers,
    tx: mpsc::UnboundedSender<Cmd>,
    rx: mpsc::UnboundedReceiver<Cmd>,
) -> Handle {
    tokio::spawn(run(gw, origin, store, providers, rx, tx.clone()));
    Handle { tx }
}

async fn run(
    mut gw: Gateway,
    origin: Instant,
    mut store: Option<StoreThread>,
    providers: Providers,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    me: mpsc::UnboundedSender<Cmd>,
) {
    let now = move || origin.elapsed().as_millis() as u64;
    let mut sinks: HashMap<SessionId, Arc<dyn ClientSink>> = HashMap::new();
    let mut links: HashMap<UpstreamId, mpsc::UnboundedSender<Message>> = HashMap::new();
    let mut face: Option<HttpServer> = None;
    let mut exchanges: HashMap<StreamId, mpsc::UnboundedSender<Part>> = HashMap::new();
    // One timer for the whole loop, moved only when the engine's next deadline moves: a timer made
    // anew each turn is a registration with tokio's timer wheel and, when it is the earliest one,
    // a wake-up of the runtime through its eventfd (two system calls per call on the proxy path).
    let timer = tokio::time::sleep_until(origin);
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    loop {
        let next = match (gw.poll_timeout(), face.as_ref().and_then(HttpServer::poll_timeout)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let deadline = next.map(|t| origin + std::time::Duration::from_millis(t));
        if let (Some(d), true) = (deadline, deadline != armed) {
            timer.as_mut().reset(d);
        }
        armed = deadline;
        let cmd = tokio::select! {
            c = rx.recv() => match c { Some(c) => Some(c), None => return },
            _ = &mut timer, if armed.is_some() => {
                // Fired: the next deadline arms it again, even if it is the same instant.
                armed = None;
                None
            }
        };
        let t = now();
        let cmd = match cmd {
            Some(Cmd::Shutdown(reply)) => {
                match store.take() {
                    Some(st) => {
                        tokio::task::spawn_blocking(move || {
                            st.close();
                            let _ = reply.send(());
                        });
                    }
                    None => {
                        let _ = reply.send(());
                    }
                }
                continue;
            }
            other => other,
        };
        // The engine is written not to panic on any input. Should it anyway, one bad message must
        // not take the gateway down for every client: log it and carry on.
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match cmd {
            None => {
                gw.handle_timeout(t);
                if let Some(f) = face.as_mut() {
                    f.handle_timeout(&mut gw, t);
                }
            }
            Some(Cmd::ServeHttp(cfg)) => face = Some(HttpServer::new(cfg)),
            Some(Cmd::Http { stream, method, headers, body, principal, parts }) => match face.as_mut() {
                Some(f) => {
                    exchanges.insert(stream, parts);
                    let principal = principal.as_ref();
                    f.request(
                        &mut gw,
                        t,
                        stream,
                        Request { method: &method, headers: &headers, body: &body, principal },
                    );
                }
                None => {
                    let _ = parts.send(Part::Head { status: 503, headers: Vec::new() });
                    let _ = parts.send(Part::End);
                }
            },
            Some(Cmd::HttpShutdown) => {
                if let Some(f) = face.as_mut() {
                    f.shutdown();
                }
            }
            Some(Cmd::HttpClosed(stream)) => {
                exchanges.remove(&stream);
                if let Some(f) = face.as_mut() {
                    f.closed(&mut gw, t, stream);
                }
            }
            Some(Cmd::OpenSession { sink, reply }) => {
                let s = gw.open_session(t);
                sinks.insert(s, sink);
                let _ = reply.send(s);
            }
            Some(Cmd::CloseSession(s)) => {
                gw.close_session(t, s);
                sinks.remove(&s);
            }
            Some(Cmd::FromClient(s, m)) => gw.handle_client(t, s, m),
            Some(Cmd::UpstreamUp(u, link)) => {
                links.insert(u, link);
                gw.upstream_connected(t, u);
            }
            Some(Cmd::UpstreamDown(u, why)) => {
                links.remove(&u);
                gw.upstream_disconnected(t, u, &why);
            }
            Some(Cmd::UpstreamSessionExpired(u)) => gw.upstream_session_expired(t, u),
            Some(Cmd::FromUpstream(u, m, related)) => gw.handle_upstream(t, u, m, related),
            Some(Cmd::Undelivered(u, gid)) => gw.upstream_undelivered(t, u, gid),
            Some(Cmd::Lost(u, gid, why)) => gw.upstream_lost(t, u, gid, &why),
            Some(Cmd::Status(reply)) => {
                let _ = reply.send(gw.status());
            }
            Some(Cmd::Metrics(reply)) => {
                let _ = reply.send(gw.metrics());
            }
            Some(Cmd::StoreDone(ticket, r)) => gw.store_done(t, ticket, r),
            Some(Cmd::Admin(s)) => gw.set_session_admin(s),
            Some(Cmd::Auth(s, a)) => gw.set_session_auth(s, &auth_digest(&a)),
            Some(Cmd::Principal(s, p)) => gw.set_session_principal(s, p),
            Some(Cmd::Shutdown(_)) => {} // handled above
            Some(Cmd::SamplingDone(job, r)) => gw.sampling_done(t, job, r),
            Some(Cmd::Queue(id, reply)) => {
                let _ = reply.send(match id {
                    None => Some(gw.queue_entries()),
                    Some(id) => gw.queue_entry(&id),
                });
            }
        }));
        if step.is_err() {
            tracing::error!("internal error: the engine panicked handling a message; continuing");
        }
        while let Some(o) = gw.poll_output() {
            match o {
                Output::ToClient { session, related, message } => match face.as_mut() {
                    Some(f) if f.owns(session) => f.deliver(&mut gw, t, session, related, message),
                    _ => {
                        if let Some(sink) = sinks.get(&session) {
                            sink.deliver(related, message);
                        }
                    }
                },
                Output::ToUpstream { upstream, message } => match links.get(&upstream) {
                    Some(l) => {
                        let _ = l.send(message);
                    }
                    None => tracing::debug!(upstream = upstream.0, "dropping message for a link that is down"),
                },
                Output::Log { level, message, call } => log(level, &message, call.as_deref()),
                Output::Sample { job, provider, url, request } => {
                    let me = me.clone();
                    if url.is_empty() {
                        let _ =
                            me.send(Cmd::SamplingDone(job, Err(format!("{provider:?} is no provider of this host"))));
                        continue;
                    }
                    let providers = providers.clone();
                    tokio::spawn(async move {
                        let r = providers.ask(&provider, &url, &request).await;
                        let _ = me.send(Cmd::SamplingDone(job, r));
                    });
                }
                Output::Store { ticket, ops } => {
                    let r = match &store {
                        Some(st) => st.submit(ticket, ops),
                        // Without persistence, memory is the store: done at once.
                        None => Ok(()),
                    };
                    let failed = r.is_err();
                    if store.is_none() || failed {
                        let _ = me.send(Cmd::StoreDone(ticket, r));
                    }
                }
            }
        }
        if let Some(f) = face.as_mut() {
            while let Some((stream, part)) = f.poll_output() {
                let end = part == Part::End;
                if let Some(tx) = exchanges.get(&stream) {
                    let _ = tx.send(part);
                }
                if end {
                    exchanges.remove(&stream);
                }
            }
        }
    }
}
