//! Streamable HTTP upstreams, both eras, on hyper-util's client (`wire`).
//!
//! What goes on the wire (era, MCP headers, how replies are read, when a session has expired) is
//! decided by the core's [`HttpClientState`], shared with the browser connector. This file moves the
//! bytes: replies may be JSON or an SSE stream, and messages on a request's stream are tagged with
//! that request's id so the engine knows which client a server-to-client request belongs to. An
//! expired legacy session is initialised again and what it refused is re-sent; an unreachable server
//! takes the link down until a TCP connect succeeds again. Cancelling a modern request closes its
//! stream, as the 2026 spec wants.

use super::wire;
use super::Backoff;
use crate::driver::{Cmd, Handle};
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::Method;
use http_body_util::BodyExt;
use mcp_edge_gateway::http_client::{resume, HttpClientState};
use mcp_edge_gateway::jsonrpc::code;
use mcp_edge_gateway::protocol::method;
use mcp_edge_gateway::sse::Parser;
use mcp_edge_gateway::{ErrorObject, Id, Message, UpstreamId};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

#[derive(Default)]
struct LinkState {
    /// Session, version, era and expiry: shared with the browser connector.
    http: HttpClientState,
    /// In-flight modern requests, so a cancellation can close their stream.
    inflight: HashMap<i64, AbortHandle>,
    get_stream: Option<AbortHandle>,
    /// The link itself, for tasks started from `&self` methods.
    me: Option<std::sync::Weak<Link>>,
}

struct Link {
    h: Handle,
    u: UpstreamId,
    name: String,
    url: String,
    /// `url`, parsed once (a URL parse with its IDNA host check, made for every request, was 1.7 %
    /// of the CPU of a proxied call). `Err` says why it does not parse as an HTTP URL.
    target: Result<http::Uri, String>,
    /// The configured headers, checked once. `Err` names the first that is not a valid HTTP
    /// header; then every request is refused with that (nothing is sent). The start-up already
    /// refuses such a configuration (`config.rs`), so this is a backstop.
    headers: Result<HeaderMap, String>,
    /// What every POST carries (content type, accept, `headers`), made once.
    base: Result<HeaderMap, String>,
    /// The gateway's own OAuth credential for this upstream, if it has one.
    creds: super::credentials::Shared,
    client: wire::Client,
    state: Mutex<LinkState>,
    fail: mpsc::Sender<String>,
}

pub async fn run(
    h: Handle,
    u: UpstreamId,
    name: String,
    url: String,
    headers: BTreeMap<String, String>,
    creds: super::credentials::Shared,
) {
    let client = wire::Client::new();
    let target = url.parse::<http::Uri>().map_err(|e| format!("the upstream URL {url:?} is not an HTTP URL: {e}"));
    if let Some(proxy) = target.as_ref().ok().and_then(|t| client.proxy_for(t)) {
        tracing::info!(upstream = %name, "sending through the proxy {proxy} the environment names for {url}");
    }
    let configured = configured_headers(&headers);
    let base = configured.clone().map(|h| {
        let mut base = HeaderMap::new();
        base.append(CONTENT_TYPE, HeaderValue::from_static(JSON));
        base.append(ACCEPT, HeaderValue::from_static(JSON_OR_SSE));
        for (k, v) in &h {
            base.append(k.clone(), v.clone());
        }
        base
    });
    let mut backoff = Backoff::new();
    let mut first = true;
    loop {
        if !first {
            let d = backoff.next_delay();
            tokio::time::sleep(d).await;
            let up = match &target {
                Ok(t) => client.reachable(t).await,
                Err(_) => false,
            };
            if !up {
                continue;
            }
        }
        first = false;
        let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
        let (fail_tx, mut fail_rx) = mpsc::channel::<String>(1);
        let link = Arc::new(Link {
            h: h.clone(),
            u,
            name: name.clone(),
            url: url.clone(),
            target: target.clone(),
            headers: configured.clone(),
            base: base.clone(),
            creds: creds.clone(),
            client: client.clone(),
            state: Mutex::new(LinkState::default()),
            fail: fail_tx,
        });
        link.state.lock().expect("poisoned").me = Some(Arc::downgrade(&link));
        h.send(Cmd::UpstreamUp(u, tx));
        let up_since = tokio::time::Instant::now();
        let why = loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => link.clone().send(m),
                    None => break "link closed".to_string(),
                },
                why = fail_rx.recv() => break why.unwrap_or_default(),
            }
        };
        {
            let mut st = link.state.lock().expect("poisoned");
            for (_, a) in st.inflight.drain() {
                a.abort();
            }
            if let Some(g) = st.get_stream.take() {
                g.abort();
            }
        }
        h.send(Cmd::UpstreamDown(u, why.clone()));
        if up_since.elapsed() > Duration::from_secs(30) || why.contains("session expired") {
            backoff.reset();
        }
        tracing::warn!(upstream = %name, "{why}; reconnecting");
    }
}

const JSON: &str = "application/json";
const JSON_OR_SSE: &str = "application/json, text/event-stream";

/// `Link::headers`.
pub(super) fn configured_headers(configured: &BTreeMap<String, String>) -> Result<HeaderMap, String> {
    let mut h = HeaderMap::new();
    for (k, v) in configured {
        add(&mut h, k, v).map_err(|e| format!("the configured header {k:?} {e}"))?;
    }
    Ok(h)
}

/// Append one header given as text; `Err` says what is wrong with it.
fn add(h: &mut HeaderMap, k: &str, v: &str) -> Result<(), String> {
    let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| "is not a valid HTTP header name".to_string())?;
    let value =
        HeaderValue::from_str(v).map_err(|_| "has a value that is not a valid HTTP header value".to_string())?;
    h.append(name, value);
    Ok(())
}

fn gnum_of(id: &Id) -> Option<i64> {
    match id {
        Id::Num(n) => Some(*n),
        Id::Str(_) => None,
    }
}

impl Link {
    /// Whether the first hop toward the upstream (its proxy, or itself) takes a connection now.
    async fn reachable(&self) -> bool {
        match &self.target {
            Ok(t) => self.client.reachable(t).await,
            Err(_) => false,
        }
    }

    fn fail(&self, why: String) {
        let _ = self.fail.try_send(why);
    }

    fn to_engine(&self, m: Message, related: Option<i64>) {
        self.h.send(Cmd::FromUpstream(self.u, m, related));
    }

    fn send(self: Arc<Self>, m: Message) {
        let modern = self.state.lock().expect("poisoned").http.is_modern(&m);
        // Modern HTTP has no client notifications: cancelling is closing the request's stream.
        if let Message::Notification { method: meth, params, .. } = &m {
            if meth == method::CANCELLED {
                let id = params.as_ref().and_then(|p| p.get("requestId")).and_then(|v| v.as_i64());
                if let Some(a) = id.and_then(|id| self.state.lock().expect("poisoned").inflight.remove(&id)) {
                    a.abort();
                    return;
                }
            }
        }
        if modern && !m.is_request() {
            // Modern HTTP carries no client notifications (cancelling closes the stream, done above).
            return;
        }
        let gid = match &m {
            Message::Request { id: Id::Num(n), .. } => Some(*n),
            _ => None,
        };
        let me = self.clone();
        if m.method() == Some(method::INITIALIZED) {
            // Re-send what an expired session refused, after the new session is fully initialised.
            let retry = self.state.lock().expect("poisoned").http.initialized();
            tokio::spawn(async move {
                me.clone().post(m, false).await;
                for r in retry {
                    me.clone().send(r);
                }
            });
            return;
        }
        // Boxed: the request's future is about 2.3 KB, and unboxed every move of it on the way into
        // the task (and every write of the task's stage) copied all of it: 14k of the 382k user-space
        // instructions of a proxied call (callgrind, opt-level "z"), against one allocation.
        let task = tokio::spawn(Box::pin(async move { me.post(m, modern).await }));
        if let (Some(g), true) = (gid, modern) {
            let mut st = self.state.lock().expect("poisoned");
            if !task.is_finished() {
                st.inflight.insert(g, task.abort_handle());
            }
        }
    }

    async fn post(self: Arc<Self>, m: Message, modern: bool) {
        self.post_once(m, modern, false).await
    }

    /// `retried`: this is the second attempt, after the upstream refused our OAuth token (a 401
    /// means nothing ran there).
    async fn post_once(self: Arc<Self>, m: Message, modern: bool, retried: bool) {
        let (gid, meth) = match &m {
            Message::Request { id, method, .. } => (Some(id.clone()), method.clone()),
            _ => (None, String::new()),
        };
        let (target, mut headers) = match (&self.target, &self.base) {
            (Ok(t), Ok(base)) => (t.clone(), base.clone()),
            (Err(why), _) | (_, Err(why)) => return self.refuse(gid, why.clone()),
        };
        let mut bearer = None;
        if let Some(c) = &self.creds {
            match c.bearer(Duration::from_secs(10)).await {
                Some(b) => {
                    if let Err(e) = add(&mut headers, "authorization", b.as_str()) {
                        return self.refuse(gid, format!("the OAuth token for this upstream {e}"));
                    }
                    bearer = Some(b);
                }
                None => {
                    // Nothing was sent: the engine may queue the call or fail it over.
                    if let Some(g) = gid.as_ref().and_then(gnum_of) {
                        self.h.send(Cmd::Undelivered(self.u, g));
                    }
                    return self.fail("no OAuth token for this upstream (see the log)".into());
                }
            }
        }
        let (mcp_headers, had_session) = {
            let st = self.state.lock().expect("poisoned");
            (st.http.headers(&m, modern), st.http.session.is_some())
        };
        for (k, v) in mcp_headers {
            if let Err(e) = add(&mut headers, &k, &v) {
                return self.refuse(gid, format!("the {k} header of this message {e}"));
            }
        }
        // The trace context in `_meta` as headers too (not in the browser's connector: a header a
        // cross-origin upstream did not allow in CORS would make the whole request fail). A
        // `tracestate` that is not a valid header value is left out rather than the call refused.
        if let Message::Request { params, .. } = &m {
            for (k, v) in mcp_edge_gateway::trace::headers(params.as_ref()) {
                let _ = add(&mut headers, &k, &v);
            }
        }
        let text = m.to_json();
        crate::metrics::count(&crate::metrics::BYTES.upstream_out, text.len());
        let mut req = http::Request::new(Bytes::from(text));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = target;
        *req.headers_mut() = headers;
        let resp = match self.client.send(req).await {
            Ok(r) => r,
            Err(e) => {
                // A broken connection usually means the server went away: if it cannot be reached
                // any more, the whole link is down (every call fails the same clear way).
                if e.is_connect() || !self.reachable().await {
                    // A refused connection carried nothing: the engine may queue the call instead.
                    if let (true, Some(g)) = (e.is_connect(), gid.as_ref().and_then(gnum_of)) {
                        self.h.send(Cmd::Undelivered(self.u, g));
                    }
                    return self.fail(format!("cannot reach {}: {e}", self.url));
                }
                // Sent, but no answer will come: it may or may not have run there.
                if let Some(g) = gid.as_ref().and_then(gnum_of) {
                    let why = format!("the connection broke after the call was sent ({e})");
                    self.h.send(Cmd::Lost(self.u, g, why));
                }
                return;
            }
        };
        let status = resp.status();
        if let (401, Some(c), Some(b), false) = (status.as_u16(), &self.creds, &bearer, retried) {
            // Our token was refused, so nothing ran: once more with a fresh one.
            c.refused(b);
            tokio::time::sleep(Duration::from_millis(200)).await;
            return Box::pin(self.post_once(m, modern, true)).await;
        }
        let gnum = match &gid {
            Some(Id::Num(n)) => Some(*n),
            _ => None,
        };
        let resp = if !status.is_success() && had_session && !modern && meth != method::INITIALIZE {
            // 404 is the spec's "session expired"; some servers (the TypeScript SDK's) answer 400
            // "No valid session ID" instead. Either way nothing ran: initialise again and re-send.
            let body = wire::bytes(resp).await;
            let text = String::from_utf8_lossy(&body).into_owned();
            if HttpClientState::session_gone(status.as_u16(), &text) {
                return self.session_expired(m);
            }
            if let Some(id) = gid {
                if self.deliver_body(&body, Some(&id), &meth, gnum_of(&id), false).is_none() {
                    let e = ErrorObject::new(
                        code::INTERNAL_ERROR,
                        format!("upstream answered HTTP {status}: {}", &text[..text.len().min(200)]),
                    );
                    self.to_engine(Message::error(Some(id), e), None);
                }
            }
            return;
        } else {
            resp
        };
        if meth == method::INITIALIZE && status.is_success() {
            if let Some(s) = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()) {
                self.state.lock().expect("poisoned").http.session = Some(s.to_string());
            }
        }
        let ctype = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        if ctype.starts_with("text/event-stream") {
            let mut parser = Parser::default();
            let ok = status.is_success();
            let mut answered = self.read_stream(resp, &mut parser, gid.as_ref(), &meth, gnum, ok).await;
            // Cut before the answer: resume the stream from its last event id, as the server's
            // `retry` says; only a server that gave ids can be resumed.
            let mut attempts = 0;
            while !answered && attempts < resume::ATTEMPTS && !modern {
                let Some(last) = parser.last_event_id().map(str::to_string) else { break };
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(resume::delay_ms(parser.retry))).await;
                parser.restart();
                match self.get(Some(&last)).await {
                    Ok(r) if r.status().is_success() => {
                        tracing::debug!(upstream = %self.name, "resumed a cut response stream after event {last}");
                        answered = self.read_stream(r, &mut parser, gid.as_ref(), &meth, gnum, true).await;
                    }
                    Ok(r) => {
                        tracing::debug!(upstream = %self.name, "resuming a cut stream: HTTP {}", r.status());
                        break;
                    }
                    Err(e) => tracing::debug!(upstream = %self.name, "resuming a cut stream failed: {e}"),
                }
            }
            // The stream ended (or broke) before our request's answer: it may have run, and no
            // answer will come.
            if let (false, Some(g)) = (answered, gnum) {
                self.h.send(Cmd::Lost(self.u, g, "its response stream ended before the answer".into()));
            }
        } else {
            let body = wire::bytes(resp).await;
            crate::metrics::count(&crate::metrics::BYTES.upstream_in, body.len());
            if status.as_u16() == 202 || status.as_u16() == 204 || (body.is_empty() && status.is_success()) {
                if let Some(id) = gid {
                    // A request answered with nothing: the upstream broke the protocol.
                    self.to_engine(
                        Message::error(
                            Some(id),
                            ErrorObject::new(
                                code::INTERNAL_ERROR,
                                format!("upstream answered HTTP {status} without a response"),
                            ),
                        ),
                        None,
                    );
                }
                self.forget(gnum);
                return;
            }
            if self.deliver_body(&body, gid.as_ref(), &meth, gnum, status.is_success()).is_none() {
                if let Some(id) = gid {
                    let snippet = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                    self.to_engine(
                        Message::error(
                            Some(id),
                            ErrorObject::new(
                                code::INTERNAL_ERROR,
                                format!("upstream answered HTTP {status}: {snippet}"),
                            ),
                        ),
                        None,
                    );
                }
            }
        }
        self.forget(gnum);
    }

    fn session_expired(&self, m: Message) {
        let first = self.state.lock().expect("poisoned").http.expired(m);
        if first {
            tracing::info!(upstream = %self.name, "session expired; initialising a new one");
            self.h.send(Cmd::UpstreamSessionExpired(self.u));
        }
    }

    fn forget(&self, gid: Option<i64>) {
        if let Some(g) = gid {
            self.state.lock().expect("poisoned").inflight.remove(&g);
        }
    }

    /// Hand one JSON body (a message) to the engine. Errors without an id (HTTP 400 replies) are
    /// given our request's id so the engine can match them. Returns whether it was a message.
    /// Hand one body (or SSE event) to the engine. `None` if it is not a message; else whether it
    /// was the answer to our request `gid`.
    fn deliver_body(&self, body: &[u8], gid: Option<&Id>, meth: &str, gnum: Option<i64>, ok: bool) -> Option<bool> {
        let msg = self.state.lock().expect("poisoned").http.interpret(body, gid, meth, ok)?;
        let msg = crate::driver::bounded(msg, body.len())?;
        let is_init_response = meth == method::INITIALIZE && matches!(msg, Message::Response { .. });
        let answer = match &msg {
            Message::Response { id, .. } | Message::Error { id: Some(id), .. } => Some(id) == gid,
            _ => false,
        };
        self.to_engine(msg, gnum);
        if is_init_response {
            let me = self.state.lock().expect("poisoned").me.clone();
            if let Some(me) = me.and_then(|w| w.upgrade()) {
                me.open_get_stream();
            }
        }
        Some(answer)
    }

    /// A GET on the MCP endpoint for this session: the standalone stream, or (with `last`) the
    /// resumption of a stream after its event `last`.
    async fn get(&self, last: Option<&str>) -> Result<wire::Response, wire::Error> {
        let refused = |text: String| wire::Error::refused(text);
        let target = self.target.clone().map_err(refused)?;
        let mut headers = HeaderMap::new();
        for (k, v) in self.state.lock().expect("poisoned").http.get_headers(last) {
            add(&mut headers, &k, &v).map_err(|e| refused(format!("the {k} header {e}")))?;
        }
        for (k, v) in self.headers.as_ref().map_err(|e| refused(e.clone()))? {
            headers.append(k.clone(), v.clone());
        }
        if let Some(b) = self.creds.as_ref().and_then(|c| c.bearer_now()) {
            add(&mut headers, AUTHORIZATION.as_str(), &b).map_err(|e| refused(format!("the OAuth token {e}")))?;
        }
        let mut req = http::Request::new(Bytes::new());
        *req.uri_mut() = target;
        *req.headers_mut() = headers;
        self.client.send(req).await
    }

    /// Nothing was sent, and sending again would not help: the call gets an error now.
    fn refuse(&self, gid: Option<Id>, why: String) {
        tracing::warn!(upstream = %self.name, "{why}");
        if let Some(id) = gid {
            self.forget(gnum_of(&id));
            self.to_engine(Message::error(Some(id), ErrorObject::new(code::INTERNAL_ERROR, why)), None);
        }
    }

    /// Read one SSE response to its end, handing each message to the engine. Whether the answer to
    /// `gid` came.
    async fn read_stream(
        &self,
        resp: wire::Response,
        parser: &mut Parser,
        gid: Option<&Id>,
        meth: &str,
        gnum: Option<i64>,
        ok: bool,
    ) -> bool {
        let mut body = resp.into_body();
        let mut answered = false;
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(chunk) = frame.into_data() else { continue }; // trailers
            crate::metrics::count(&crate::metrics::BYTES.upstream_in, chunk.len());
            let Ok(events) = parser.feed(&chunk) else { break };
            for ev in events {
                if ev.data.trim().is_empty() {
                    continue; // a priming event: an id to resume from, no message
                }
                answered |= self.deliver_body(ev.data.as_bytes(), gid, meth, gnum, ok) == Some(true);
            }
        }
        answered
    }

    /// Legacy servers may push notifications and requests on a standalone GET stream. When it ends
    /// it is opened again after the server's `retry` delay, resuming after its last event id; when
    /// it cannot be opened, again with backoff, five times in a row at most.
    fn open_get_stream(self: Arc<Self>) {
        let (url, h, u, name) = (self.url.clone(), self.h.clone(), self.u, self.name.clone());
        let Some(session) = self.state.lock().expect("poisoned").http.session.clone() else { return };
        let fail = self.fail.clone();
        let link = self.clone();
        let task = tokio::spawn(async move {
            // Give the engine time to send notifications/initialized first.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut backoff = Backoff::new();
            let mut parser = Parser::default();
            let mut failures = 0;
            while failures < 5 {
                let last = parser.last_event_id().map(str::to_string);
                match link.get(last.as_deref()).await {
                    Ok(r) if r.status().is_success() => {
                        backoff.reset();
                        failures = 0;
                        parser.restart();
                        link.read_stream(r, &mut parser, None, "", None, true).await;
                        let wait = resume::delay_ms(parser.retry);
                        tracing::debug!(upstream = %name, "GET stream ended; reopening it in {wait} ms");
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                        continue;
                    }
                    Ok(r) if r.status().as_u16() == 405 => return,
                    Ok(r) if matches!(r.status().as_u16(), 400 | 404) => {
                        // The server forgot our session (it restarted): start a new one now.
                        let expired = link.state.lock().expect("poisoned").http.forget_session(&session);
                        if expired {
                            tracing::info!(upstream = %name, "session expired; initialising a new one");
                            h.send(Cmd::UpstreamSessionExpired(u));
                        }
                        return;
                    }
                    Ok(r) => {
                        tracing::debug!(upstream = %name, "GET stream refused: HTTP {}", r.status())
                    }
                    Err(e) if e.is_connect() => {
                        // The server is gone: say so now rather than at the next call.
                        let _ = fail.try_send(format!("cannot reach {url}: {e}"));
                        return;
                    }
                    Err(e) => tracing::debug!(upstream = %name, "GET stream failed: {e}"),
                }
                failures += 1;
                tokio::time::sleep(backoff.next_delay()).await;
            }
        });
        let mut st = self.state.lock().expect("poisoned");
        if let Some(old) = st.get_stream.replace(task.abort_handle()) {
            old.abort();
        }
    }
}
