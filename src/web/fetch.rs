//! Streamable HTTP upstreams over `fetch`, both eras. The same rules as the native connector: modern
//! requests carry `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name`; legacy ones the negotiated
//! version and `Mcp-Session-Id`; replies are JSON or SSE (read from the body stream); an expired
//! session is re-initialised and what it refused is re-sent. `fetch` is called through the global
//! scope, so pages, workers and service workers all work.

use std::prelude::rust_2021::*;

use super::runtime::{self, Link, Shared};
use crate::engine::UpstreamId;
use crate::http_client::{resume, HttpClientState};
use crate::jsonrpc::{code, ErrorObject, Id, Message};
use crate::protocol::method;
use crate::sse::Parser;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::{Rc, Weak};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{AbortController, Headers, ReadableStreamDefaultReader, Request, RequestInit, Response};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = fetch)]
    pub(super) fn global_fetch(request: &Request) -> js_sys::Promise;
}

#[derive(Default)]
struct State {
    /// Session, version, era and expiry: shared with the native connector.
    http: HttpClientState,
    inflight: HashMap<i64, AbortController>,
    /// The legacy standalone GET stream is open (or being opened).
    get_stream: bool,
    /// Aborts the GETs in flight (closing the link ends them).
    get_abort: Option<AbortController>,
}

pub struct FetchLink {
    runtime: Weak<RefCell<runtime::Runtime>>,
    upstream: UpstreamId,
    name: String,
    url: String,
    headers: BTreeMap<String, String>,
    state: RefCell<State>,
    down: Cell<bool>,
    attempt: Cell<u32>,
    me: RefCell<Weak<FetchLink>>,
}

/// Start upstream `u`: the link is reported up at once; the engine's probe is its first request.
pub fn connect(shared: &Shared, u: UpstreamId, name: String, url: String, headers: BTreeMap<String, String>) {
    connect_attempt(shared, u, name, url, headers, 0);
}

fn connect_attempt(
    shared: &Shared,
    u: UpstreamId,
    name: String,
    url: String,
    headers: BTreeMap<String, String>,
    attempt: u32,
) {
    let link = Rc::new(FetchLink {
        runtime: runtime::weak(shared),
        upstream: u,
        name,
        url,
        headers,
        state: RefCell::new(State::default()),
        down: Cell::new(false),
        attempt: Cell::new(attempt),
        me: RefCell::new(Weak::new()),
    });
    *link.me.borrow_mut() = Rc::downgrade(&link);
    runtime::link_up(shared, u, link);
}

impl Link for FetchLink {
    fn send(&self, m: Message) {
        let Some(me) = self.me.borrow().upgrade() else { return };
        let modern = self.state.borrow().http.is_modern(&m);
        if let Message::Notification { method: meth, params, .. } = &m {
            if meth == method::CANCELLED {
                let id = params.as_ref().and_then(|p| p.get("requestId")).and_then(|v| v.as_i64());
                if let Some(c) = id.and_then(|id| self.state.borrow_mut().inflight.remove(&id)) {
                    c.abort();
                    return;
                }
            }
            if modern {
                return;
            }
        }
        if m.method() == Some(method::INITIALIZED) {
            let retry = self.state.borrow_mut().http.initialized();
            spawn_local(async move {
                me.clone().post(m, false).await;
                for r in retry {
                    me.send(r);
                }
            });
            return;
        }
        spawn_local(async move { me.post(m, modern).await });
    }

    fn close(&self) {
        self.down.set(true);
        self.abort_all();
    }
}

impl FetchLink {
    /// Abort every request of this link in flight (calls and GET streams).
    fn abort_all(&self) {
        let mut st = self.state.borrow_mut();
        for (_, c) in st.inflight.drain() {
            c.abort();
        }
        if let Some(a) = st.get_abort.take() {
            a.abort();
        }
    }

    fn to_engine(&self, m: Message, related: Option<i64>) {
        if let Some(rt) = self.runtime.upgrade() {
            runtime::from_upstream(&rt, self.upstream, m, related);
        }
    }

    /// The server cannot be reached: report the link down and try again later with backoff.
    fn fail(&self, why: String) {
        if self.down.replace(true) {
            return;
        }
        self.abort_all();
        let Some(rt) = self.runtime.upgrade() else { return };
        runtime::link_down(&rt, self.upstream, &why);
        let attempt = self.attempt.get() + 1;
        let (weak, u, name, url, headers) =
            (self.runtime.clone(), self.upstream, self.name.clone(), self.url.clone(), self.headers.clone());
        runtime::schedule_reconnect(&rt, u, attempt, move || {
            if let Some(rt) = weak.upgrade() {
                if !rt.borrow().closed {
                    connect_attempt(&rt, u, name, url, headers, attempt);
                }
            }
        });
    }

    async fn post(self: Rc<Self>, m: Message, modern: bool) {
        if self.down.get() {
            return;
        }
        let (gid, meth) = match &m {
            Message::Request { id, method, .. } => (Some(id.clone()), method.clone()),
            _ => (None, String::new()),
        };
        let gnum = match &gid {
            Some(Id::Num(n)) => Some(*n),
            _ => None,
        };
        let headers = Headers::new().expect("Headers");
        let _ = headers.set("content-type", "application/json");
        let _ = headers.set("accept", "application/json, text/event-stream");
        for (k, v) in &self.headers {
            let _ = headers.set(k, v);
        }
        let (mcp_headers, had_session) = {
            let st = self.state.borrow();
            (st.http.headers(&m, modern), st.http.session.is_some())
        };
        for (k, v) in mcp_headers {
            let _ = headers.set(&k, &v);
        }
        let init = RequestInit::new();
        init.set_method("POST");
        init.set_headers(&headers);
        init.set_body(&JsValue::from_str(&m.to_json()));
        let abort = AbortController::new().ok();
        if let Some(a) = &abort {
            init.set_signal(Some(&a.signal()));
            if let (Some(g), true) = (gnum, modern) {
                self.state.borrow_mut().inflight.insert(g, a.clone());
            }
        }
        let req = match Request::new_with_str_and_init(&self.url, &init) {
            Ok(r) => r,
            Err(_) => return self.fail(format!("invalid upstream URL {:?}", self.url)),
        };
        let resp: Response = match JsFuture::from(global_fetch(&req)).await.and_then(|r| r.dyn_into()) {
            Ok(r) => r,
            Err(e) => {
                let aborted = abort.as_ref().is_some_and(|a| a.signal().aborted());
                self.forget(gnum);
                if !aborted {
                    let why = super::interop::error_from_js(&e).message;
                    self.fail(format!("cannot reach {}: {why}", self.url));
                }
                return;
            }
        };
        self.attempt.set(0);
        let status = resp.status();
        if !resp.ok() && had_session && !modern && meth != method::INITIALIZE {
            let text = text_of(&resp).await;
            if HttpClientState::session_gone(status, &text) {
                self.forget(gnum);
                return self.session_expired(m);
            }
            if let Some(id) = gid {
                if !self.deliver(text.as_bytes(), Some(&id), &meth, gnum, false) {
                    let e = ErrorObject::new(
                        code::UPSTREAM_UNAVAILABLE,
                        format!("upstream {:?} answered HTTP {status}", self.name),
                    );
                    self.to_engine(Message::error(Some(id), e), None);
                }
            }
            self.forget(gnum);
            return;
        }
        if meth == method::INITIALIZE && resp.ok() {
            if let Ok(Some(s)) = resp.headers().get("mcp-session-id") {
                self.state.borrow_mut().http.session = Some(s);
            }
        }
        let ctype = resp.headers().get("content-type").ok().flatten().unwrap_or_default().to_ascii_lowercase();
        if ctype.starts_with("text/event-stream") {
            let mut parser = Parser::default();
            let mut answered = self.read_stream(&resp, &mut parser, gid.as_ref(), &meth, gnum, resp.ok()).await;
            // Cut before the answer: resume from the last event id after the server's `retry`.
            let mut attempts = 0;
            while !answered && !modern && attempts < resume::ATTEMPTS && !self.down.get() {
                let Some(last) = parser.last_event_id().map(str::to_string) else { break };
                attempts += 1;
                sleep(resume::delay_ms(parser.retry)).await;
                parser.restart();
                match self.get(Some(&last)).await {
                    Some(r) if r.ok() => {
                        answered = self.read_stream(&r, &mut parser, gid.as_ref(), &meth, gnum, true).await
                    }
                    _ => break,
                }
            }
            if let (false, Some(g)) = (answered, gnum) {
                let aborted = abort.as_ref().is_some_and(|a| a.signal().aborted());
                if let (false, Some(rt)) = (aborted, self.runtime.upgrade()) {
                    let u = self.upstream;
                    runtime::with(&rt, |e, t| e.upstream_lost(t, u, g, "its response stream ended before the answer"));
                }
            }
        } else {
            let text = text_of(&resp).await;
            if status == 202 || status == 204 || (text.is_empty() && resp.ok()) {
                if let Some(id) = gid {
                    let e = ErrorObject::new(
                        code::INTERNAL_ERROR,
                        format!("upstream answered HTTP {status} without a response"),
                    );
                    self.to_engine(Message::error(Some(id), e), None);
                }
            } else if !self.deliver(text.as_bytes(), gid.as_ref(), &meth, gnum, resp.ok()) {
                if let Some(id) = gid {
                    let e = ErrorObject::new(
                        code::UPSTREAM_UNAVAILABLE,
                        format!("upstream {:?} answered HTTP {status}", self.name),
                    );
                    self.to_engine(Message::error(Some(id), e), None);
                }
            }
        }
        self.forget(gnum);
    }

    fn forget(&self, gid: Option<i64>) {
        if let Some(g) = gid {
            self.state.borrow_mut().inflight.remove(&g);
        }
    }

    fn session_expired(&self, m: Message) {
        let first = self.state.borrow_mut().http.expired(m);
        if first {
            if let Some(rt) = self.runtime.upgrade() {
                runtime::session_expired(&rt, self.upstream);
            }
        }
    }

    /// Hand one body (or event) to the engine: `None` if it is not a message, else whether it is the
    /// answer to `gid`. A legacy `initialize` answer opens the session's GET stream.
    fn deliver_message(&self, body: &[u8], gid: Option<&Id>, meth: &str, gnum: Option<i64>, ok: bool) -> Option<bool> {
        let msg = self.state.borrow_mut().http.interpret(body, gid, meth, ok)?;
        let answer =
            matches!(&msg, Message::Response { id, .. } | Message::Error { id: Some(id), .. } if Some(id) == gid);
        let init = meth == method::INITIALIZE && matches!(msg, Message::Response { .. });
        self.to_engine(msg, gnum);
        if init {
            if let Some(me) = self.me.borrow().upgrade() {
                spawn_local(me.get_stream());
            }
        }
        Some(answer)
    }

    fn deliver(&self, body: &[u8], gid: Option<&Id>, meth: &str, gnum: Option<i64>, ok: bool) -> bool {
        self.deliver_message(body, gid, meth, gnum, ok).is_some()
    }

    /// Read an SSE body to its end; whether the answer to `gid` came.
    async fn read_stream(
        &self,
        resp: &Response,
        parser: &mut Parser,
        gid: Option<&Id>,
        meth: &str,
        gnum: Option<i64>,
        ok: bool,
    ) -> bool {
        let Some(body) = resp.body() else { return false };
        let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
        let mut answered = false;
        loop {
            let Ok(chunk) = JsFuture::from(reader.read()).await else { break };
            let done = js_sys::Reflect::get(&chunk, &"done".into()).ok().and_then(|d| d.as_bool()).unwrap_or(true);
            if done || self.down.get() {
                break;
            }
            let Ok(value) = js_sys::Reflect::get(&chunk, &"value".into()) else { break };
            let Ok(events) = parser.feed(&js_sys::Uint8Array::new(&value).to_vec()) else { break };
            for ev in events {
                if !ev.data.trim().is_empty() {
                    answered |= self.deliver_message(ev.data.as_bytes(), gid, meth, gnum, ok) == Some(true);
                }
            }
        }
        answered
    }

    /// A GET on the endpoint for this session (with `last`: resuming after that event).
    async fn get(&self, last: Option<&str>) -> Option<Response> {
        let headers = Headers::new().ok()?;
        for (k, v) in &self.headers {
            let _ = headers.set(k, v);
        }
        for (k, v) in self.state.borrow().http.get_headers(last) {
            let _ = headers.set(&k, &v);
        }
        let init = RequestInit::new();
        init.set_method("GET");
        init.set_headers(&headers);
        let abort = {
            let mut st = self.state.borrow_mut();
            st.get_abort.get_or_insert_with(|| AbortController::new().expect("AbortController")).clone()
        };
        init.set_signal(Some(&abort.signal()));
        let req = Request::new_with_str_and_init(&self.url, &init).ok()?;
        JsFuture::from(global_fetch(&req)).await.ok()?.dyn_into().ok()
    }

    /// The legacy standalone stream: notifications and requests the server sends outside replies.
    /// When it ends it is opened again after the server's `retry`, resuming after its last event;
    /// when it cannot be opened, five times in a row at most.
    async fn get_stream(self: Rc<Self>) {
        if std::mem::replace(&mut self.state.borrow_mut().get_stream, true) {
            return;
        }
        sleep(50).await; // notifications/initialized first
        let mut parser = Parser::default();
        let mut failures = 0;
        while failures < 5 && !self.down.get() && self.state.borrow().http.session.is_some() {
            let last = parser.last_event_id().map(str::to_string);
            match self.get(last.as_deref()).await {
                Some(r) if r.ok() => {
                    failures = 0;
                    parser.restart();
                    self.read_stream(&r, &mut parser, None, "", None, true).await;
                    sleep(resume::delay_ms(parser.retry)).await;
                }
                // No stream offered (405), or the session is gone (the next call finds out).
                Some(r) if matches!(r.status(), 400 | 404 | 405) => break,
                _ => {
                    failures += 1;
                    sleep(1000 << failures.min(5)).await;
                }
            }
        }
        self.state.borrow_mut().get_stream = false;
    }
}

/// A promise of `ms` milliseconds.
async fn sleep(ms: u64) {
    let p = js_sys::Promise::new(&mut |resolve, _| {
        runtime::after(ms.min(i32::MAX as u64) as i32, move || {
            let _ = resolve.call0(&JsValue::NULL);
        });
    });
    let _ = JsFuture::from(p).await;
}

pub(super) async fn text_of(resp: &Response) -> String {
    match resp.text() {
        Ok(p) => JsFuture::from(p).await.ok().and_then(|t| t.as_string()).unwrap_or_default(),
        Err(_) => String::new(),
    }
}
