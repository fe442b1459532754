//! Streamable HTTP upstreams over `fetch`, both eras. The same rules as the native connector: modern
//! requests carry `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name`; legacy ones the negotiated
//! version and `Mcp-Session-Id`; replies are JSON or SSE (read from the body stream); an expired
//! session is re-initialised and what it refused is re-sent. `fetch` is called through the global
//! scope, so pages, workers and service workers all work.

use super::runtime::{self, Link, Shared};
use crate::engine::UpstreamId;
use crate::http_client::HttpClientState;
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
        for (_, c) in self.state.borrow_mut().inflight.drain() {
            c.abort();
        }
    }
}

impl FetchLink {
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
        for (_, c) in self.state.borrow_mut().inflight.drain() {
            c.abort();
        }
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
            if let Some(body) = resp.body() {
                let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
                let mut parser = Parser::default();
                loop {
                    let Ok(chunk) = JsFuture::from(reader.read()).await else { break };
                    let done =
                        js_sys::Reflect::get(&chunk, &"done".into()).ok().and_then(|d| d.as_bool()).unwrap_or(true);
                    if done {
                        break;
                    }
                    let Ok(value) = js_sys::Reflect::get(&chunk, &"value".into()) else { break };
                    let bytes = js_sys::Uint8Array::new(&value).to_vec();
                    let Ok(events) = parser.feed(&bytes) else { break };
                    for ev in events {
                        if !ev.data.trim().is_empty() {
                            self.deliver(ev.data.as_bytes(), gid.as_ref(), &meth, gnum, resp.ok());
                        }
                    }
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

    fn deliver(&self, body: &[u8], gid: Option<&Id>, meth: &str, gnum: Option<i64>, ok: bool) -> bool {
        let Some(msg) = self.state.borrow_mut().http.interpret(body, gid, meth, ok) else { return false };
        self.to_engine(msg, gnum);
        true
    }
}

pub(super) async fn text_of(resp: &Response) -> String {
    match resp.text() {
        Ok(p) => JsFuture::from(p).await.ok().and_then(|t| t.as_string()).unwrap_or_default(),
        Err(_) => String::new(),
    }
}
