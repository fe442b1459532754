//! The browser's driver of the engine: the same calling contract as the native host's loop, on the
//! JS event loop. Time is `Date.now()` relative to start; the next deadline is one `setTimeout`.
//!
//! Re-entrancy: JS callbacks (promise resolution, event listeners, in-page tool handlers) may call
//! back into the gateway synchronously, so the engine is never borrowed while one runs: outputs are
//! collected under the borrow and performed after it is released.
//!
//! Store batches go to one writer task at a time, in order; batches that pile up while a transaction
//! runs are merged into the next one (group commit). Reconnects wait out their backoff, unless the
//! browser says it is `online` again: then every waiting reconnect runs at once and the engine
//! retries its queued calls.

use std::prelude::rust_2021::*;

use super::idb::IdbStore;
use crate::engine::{Gateway as Engine, LogLevel, Millis, Output, SessionId, UpstreamId};
use crate::jsonrpc::{Id, Message};
use crate::store::{Store, StoreOp};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &js_sys::Function, ms: i32) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(handle: &JsValue);
}

/// Something that carries messages to one upstream.
pub trait Link {
    fn send(&self, m: Message);
    fn close(&self);
}

/// Where one session's messages go.
pub type Sink = Rc<dyn Fn(Option<Id>, Message)>;

pub struct Runtime {
    pub engine: Engine,
    origin: f64,
    sinks: HashMap<SessionId, Sink>,
    links: HashMap<UpstreamId, Rc<dyn Link>>,
    timer: Option<(JsValue, Millis)>,
    timer_cb: Option<Closure<dyn FnMut()>>,
    pub closed: bool,
    /// The durable store (none: memory only, batches are done at once). Taken out while a batch is
    /// being written.
    store: Option<IdbStore>,
    has_store: bool,
    /// Batches waiting for the writer.
    batches: VecDeque<(u64, Vec<StoreOp>)>,
    writing: bool,
    /// Reconnects waiting out their backoff, run early on `online`.
    reconnects: Vec<(UpstreamId, Box<dyn FnOnce()>)>,
    online_cb: Option<Closure<dyn FnMut()>>,
    release_lock: Option<js_sys::Function>,
    /// First and longest reconnect delay, in ms (see [`schedule_reconnect`]).
    pub backoff: (u32, u32),
    /// Who performs [`Output::Sample`] for an OpenAI-compatible provider: (job, url, request).
    /// Set by the gateway (`providers::ask`); without it such a provider fails at once.
    pub sampler: Option<fn(&Shared, u64, String, serde_json::Value)>,
    /// The Streamable HTTP server face (the service worker's `/mcp`, see [`super::serve`]) and the
    /// JS callback of each of its open exchanges.
    #[cfg(feature = "sw")]
    pub face: Option<crate::http_server::HttpServer>,
    #[cfg(feature = "sw")]
    pub exchanges: HashMap<crate::http_server::StreamId, js_sys::Function>,
    #[cfg(feature = "sw")]
    exchange_seq: u64,
    /// Keeps the face's state across worker restarts (see `serveHttpWith`).
    #[cfg(feature = "sw")]
    pub persist: Option<js_sys::Function>,
}

pub type Shared = Rc<RefCell<Runtime>>;

impl Runtime {
    pub fn new(engine: Engine) -> Shared {
        let shared = Rc::new(RefCell::new(Runtime {
            engine,
            origin: js_sys::Date::now(),
            sinks: HashMap::new(),
            links: HashMap::new(),
            timer: None,
            timer_cb: None,
            closed: false,
            store: None,
            has_store: false,
            batches: VecDeque::new(),
            writing: false,
            reconnects: Vec::new(),
            online_cb: None,
            release_lock: None,
            backoff: DEFAULT_BACKOFF,
            sampler: None,
            #[cfg(feature = "sw")]
            face: None,
            #[cfg(feature = "sw")]
            exchanges: HashMap::new(),
            #[cfg(feature = "sw")]
            exchange_seq: 0,
            #[cfg(feature = "sw")]
            persist: None,
        }));
        let weak = Rc::downgrade(&shared);
        let cb = Closure::<dyn FnMut()>::new(move || {
            if let Some(s) = weak.upgrade() {
                s.borrow_mut().timer = None;
                with(&s, |e, t| e.handle_timeout(t));
                #[cfg(feature = "sw")]
                face::face_timeout(&s);
            }
        });
        shared.borrow_mut().timer_cb = Some(cb);
        let weak = Rc::downgrade(&shared);
        let online = Closure::<dyn FnMut()>::new(move || {
            if let Some(s) = weak.upgrade() {
                reconnect_now(&s);
            }
        });
        let global = js_sys::global();
        if let Ok(add) = js_sys::Reflect::get(&global, &"addEventListener".into()) {
            if let Some(add) = add.dyn_ref::<js_sys::Function>() {
                let _ = add.call2(&global, &"online".into(), online.as_ref());
            }
        }
        shared.borrow_mut().online_cb = Some(online);
        shared
    }

    /// Persist through `store` from now on; `release` gives up its Web Lock (called on shutdown).
    pub fn set_store(&mut self, store: IdbStore, release: Option<js_sys::Function>) {
        self.store = Some(store);
        self.has_store = true;
        self.release_lock = release;
    }

    /// A fresh id for a server-face exchange.
    #[cfg(feature = "sw")]
    pub fn next_exchange(&mut self) -> crate::http_server::StreamId {
        self.exchange_seq += 1;
        self.exchange_seq
    }

    pub fn now(&self) -> Millis {
        (js_sys::Date::now() - self.origin).max(0.0) as Millis
    }
}

/// Run `f` on the engine with the current time, then perform what it produced.
pub fn with<R>(shared: &Shared, f: impl FnOnce(&mut Engine, Millis) -> R) -> R {
    let r = {
        let mut rt = shared.borrow_mut();
        let t = rt.now();
        f(&mut rt.engine, t)
    };
    pump(shared);
    r
}

pub fn open_session(shared: &Shared, sink: Sink) -> SessionId {
    let s = {
        let mut rt = shared.borrow_mut();
        let t = rt.now();
        rt.engine.open_session(t)
    };
    shared.borrow_mut().sinks.insert(s, sink);
    s
}

pub fn close_session(shared: &Shared, s: SessionId) {
    with(shared, |e, t| e.close_session(t, s));
    shared.borrow_mut().sinks.remove(&s);
}

pub fn link_up(shared: &Shared, u: UpstreamId, link: Rc<dyn Link>) {
    if shared.borrow().closed {
        return link.close();
    }
    shared.borrow_mut().links.insert(u, link);
    with(shared, |e, t| e.upstream_connected(t, u));
}

pub fn link_down(shared: &Shared, u: UpstreamId, why: &str) {
    shared.borrow_mut().links.remove(&u);
    with(shared, |e, t| e.upstream_disconnected(t, u, why));
}

pub fn from_upstream(shared: &Shared, u: UpstreamId, m: Message, related: Option<i64>) {
    with(shared, |e, t| e.handle_upstream(t, u, m, related));
}

pub fn session_expired(shared: &Shared, u: UpstreamId) {
    with(shared, |e, t| e.upstream_session_expired(t, u));
}

/// Perform everything the engine has produced, then re-arm the timer.
pub fn pump(shared: &Shared) {
    loop {
        let outs: Vec<Output> = {
            let mut rt = shared.borrow_mut();
            std::iter::from_fn(|| rt.engine.poll_output()).collect()
        };
        if outs.is_empty() {
            break;
        }
        for o in outs {
            match o {
                #[cfg(feature = "sw")]
                Output::ToClient { session, related, message } if face::face_owns(shared, session) => {
                    face::face_deliver(shared, session, related, message);
                }
                Output::ToClient { session, related, message } => {
                    let sink = shared.borrow().sinks.get(&session).cloned();
                    if let Some(sink) = sink {
                        sink(related, message);
                    }
                }
                Output::ToUpstream { upstream, message } => {
                    let link = shared.borrow().links.get(&upstream).cloned();
                    if let Some(link) = link {
                        link.send(message);
                    }
                }
                Output::Log { level, message, call } => match call {
                    Some(c) => log(
                        level,
                        &format!(
                            "{message} (session {}, upstream {}, {})",
                            c.session.map_or(0, |s| s.0),
                            c.upstream.as_deref().unwrap_or("-"),
                            c.method
                        ),
                    ),
                    None => log(level, &message),
                },
                Output::Sample { job, provider, url, request } => {
                    let sampler = shared.borrow().sampler;
                    match sampler {
                        Some(ask) if !url.is_empty() => ask(shared, job, url, request),
                        _ => {
                            let why = format!("{provider:?} is no provider of this host");
                            with(shared, |e, t| e.sampling_done(t, job, Err(why)));
                        }
                    }
                }
                Output::Store { ticket, ops } => {
                    if shared.borrow().has_store {
                        shared.borrow_mut().batches.push_back((ticket, ops));
                        write_batches(shared);
                    } else {
                        // Memory only: the engine's own state is all there is.
                        with(shared, |e, t| e.store_done(t, ticket, Ok(())));
                    }
                }
            }
        }
    }
    #[cfg(feature = "sw")]
    face::write_parts(shared);
    arm_timer(shared);
}

/// Start the writer if it is idle: it takes every waiting batch, writes them as one transaction
/// (falling back to one by one if that fails, so one bad batch fails alone), reports each, and goes
/// again while batches keep coming.
fn write_batches(shared: &Shared) {
    let (store, group) = {
        let mut rt = shared.borrow_mut();
        if rt.writing || rt.batches.is_empty() {
            return;
        }
        let Some(store) = rt.store.take() else { return };
        rt.writing = true;
        (store, rt.batches.drain(..).collect::<Vec<_>>())
    };
    let weak = Rc::downgrade(shared);
    wasm_bindgen_futures::spawn_local(async move {
        let mut store = store;
        let merged: Vec<StoreOp> = group.iter().flat_map(|(_, ops)| ops.iter().cloned()).collect();
        let results: Vec<(u64, Result<(), crate::store::StoreError>)> = match store.apply(merged).await {
            Ok(()) => group.iter().map(|(t, _)| (*t, Ok(()))).collect(),
            Err(e) if group.len() == 1 => vec![(group[0].0, Err(e))],
            Err(_) => {
                let mut out = Vec::new();
                for (t, ops) in group {
                    out.push((t, store.apply(ops).await));
                }
                out
            }
        };
        let Some(shared) = weak.upgrade() else { return };
        {
            let mut rt = shared.borrow_mut();
            rt.store = Some(store);
            rt.writing = false;
        }
        for (t, r) in results {
            with(&shared, |e, now| e.store_done(now, t, r));
        }
        write_batches(&shared);
    });
}

/// Reconnect upstream `u` after its `failures`-th failure in a row (0 and 1 both mean the first), or
/// as soon as the browser reports it is online again. The delay starts at the runtime's first
/// backoff and doubles per failure up to its longest; each wait is a random time between half and
/// all of that (jitter, so that many pages do not come back at once).
pub fn schedule_reconnect(shared: &Shared, u: UpstreamId, failures: u32, f: impl FnOnce() + 'static) {
    let ms = {
        let mut rt = shared.borrow_mut();
        rt.reconnects.retain(|(x, _)| *x != u);
        rt.reconnects.push((u, Box::new(f)));
        backoff_ms(rt.backoff, failures)
    };
    let weak = Rc::downgrade(shared);
    after(ms, move || {
        let Some(s) = weak.upgrade() else { return };
        let f = {
            let mut rt = s.borrow_mut();
            rt.reconnects.iter().position(|(x, _)| *x == u).map(|i| rt.reconnects.remove(i).1)
        };
        if let Some(f) = f {
            f();
        }
    });
}

/// The network is back: every waiting reconnect goes now, and queued calls are retried.
pub fn reconnect_now(shared: &Shared) {
    let waiting: Vec<Box<dyn FnOnce()>> = shared.borrow_mut().reconnects.drain(..).map(|(_, f)| f).collect();
    for f in waiting {
        f();
    }
    with(shared, |e, t| e.nudge(t));
}

fn arm_timer(shared: &Shared) {
    let mut rt = shared.borrow_mut();
    if rt.closed {
        if let Some((h, _)) = rt.timer.take() {
            clear_timeout(&h);
        }
        return;
    }
    let next = rt.engine.poll_timeout();
    #[cfg(feature = "sw")]
    let next = match (next, rt.face.as_ref().and_then(crate::http_server::HttpServer::poll_timeout)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    match (&rt.timer, next) {
        (Some((_, at)), Some(n)) if *at == n => {}
        _ => {
            if let Some((h, _)) = rt.timer.take() {
                clear_timeout(&h);
            }
            if let Some(n) = next {
                let ms = n.saturating_sub(rt.now()).min(i32::MAX as u64) as i32;
                let h = set_timeout(rt.timer_cb.as_ref().expect("set in new").as_ref().unchecked_ref(), ms);
                rt.timer = Some((h, n));
            }
        }
    }
}

/// Close every link and stop the timer.
pub fn shutdown(shared: &Shared) {
    let links: Vec<Rc<dyn Link>> = {
        let mut rt = shared.borrow_mut();
        rt.closed = true;
        rt.reconnects.clear();
        // The store closes with its last writes; the lock goes once nothing more will be written.
        if let Some(release) = rt.release_lock.take() {
            if !rt.writing {
                rt.store = None;
            }
            let _ = release.call0(&JsValue::NULL);
        }
        if let Some(cb) = rt.online_cb.take() {
            let global = js_sys::global();
            if let Ok(rm) = js_sys::Reflect::get(&global, &"removeEventListener".into()) {
                if let Some(rm) = rm.dyn_ref::<js_sys::Function>() {
                    let _ = rm.call2(&global, &"online".into(), cb.as_ref());
                }
            }
        }
        rt.links.drain().map(|(_, l)| l).collect()
    };
    for l in links {
        l.close();
    }
    arm_timer(shared);
}

pub fn weak(shared: &Shared) -> Weak<RefCell<Runtime>> {
    Rc::downgrade(shared)
}

fn log(level: LogLevel, message: &str) {
    let m = JsValue::from_str(&format!("[mcp-edge-gateway] {message}"));
    match level {
        LogLevel::Debug => {}
        LogLevel::Info => console_info(&m),
        LogLevel::Warn => console_warn(&m),
        LogLevel::Error => console_error(&m),
    }
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = info)]
    fn console_info(m: &JsValue);
    #[wasm_bindgen(js_namespace = console, js_name = warn)]
    fn console_warn(m: &JsValue);
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(m: &JsValue);
}

/// Reconnects start at 250 ms and double up to 30 s unless the config says otherwise.
pub const DEFAULT_BACKOFF: (u32, u32) = (250, 30_000);

fn backoff_ms((first, longest): (u32, u32), failures: u32) -> i32 {
    let base = first.saturating_mul(1 << failures.saturating_sub(1).min(20)).min(longest);
    let jitter = (js_sys::Math::random() * f64::from(base / 2)) as u32;
    (base / 2 + jitter).min(i32::MAX as u32) as i32
}

/// Run `f` after `ms` milliseconds (once).
pub fn after(ms: i32, f: impl FnOnce() + 'static) {
    let cb = Closure::once_into_js(f);
    set_timeout(cb.unchecked_ref(), ms);
}

/// The server face's side of the loop (the `sw` build): its sessions' messages, its timers, and its
/// response parts handed to each exchange's JS callback (outside the borrow: they run JS).
#[cfg(feature = "sw")]
mod face {
    use super::{pump, Shared};
    use crate::http_server::Part;
    use crate::jsonrpc::{Id, Message};
    use crate::SessionId;
    use std::prelude::rust_2021::*;
    use wasm_bindgen::JsValue;

    pub(super) fn face_owns(shared: &Shared, s: SessionId) -> bool {
        shared.borrow().face.as_ref().is_some_and(|f| f.owns(s))
    }

    pub(super) fn face_deliver(shared: &Shared, s: SessionId, related: Option<Id>, message: Message) {
        let mut rt = shared.borrow_mut();
        let now = rt.now();
        let rt = &mut *rt;
        if let Some(f) = rt.face.as_mut() {
            f.deliver(&mut rt.engine, now, s, related, message);
        }
    }

    pub(super) fn face_timeout(shared: &Shared) {
        {
            let mut rt = shared.borrow_mut();
            let now = rt.now();
            let rt = &mut *rt;
            if let Some(f) = rt.face.as_mut() {
                f.handle_timeout(&mut rt.engine, now);
            }
        }
        pump(shared);
    }

    /// Hand the face's response parts to their exchanges' callbacks (outside the borrow: they run JS).
    pub(super) fn write_parts(shared: &Shared) {
        loop {
            let parts: Vec<(js_sys::Function, Part)> = {
                let mut rt = shared.borrow_mut();
                let mut out = Vec::new();
                while let Some((st, part)) = rt.face.as_mut().and_then(crate::http_server::HttpServer::poll_output) {
                    let f = if part == Part::End { rt.exchanges.remove(&st) } else { rt.exchanges.get(&st).cloned() };
                    if let Some(f) = f {
                        out.push((f, part));
                    }
                }
                out
            };
            if parts.is_empty() {
                let state = {
                    let mut rt = shared.borrow_mut();
                    let state = if rt.persist.is_some() {
                        rt.face.as_mut().and_then(crate::http_server::HttpServer::save)
                    } else {
                        None
                    };
                    state.zip(rt.persist.clone())
                };
                if let Some((state, persist)) = state {
                    let _ = persist.call1(&JsValue::NULL, &state.into());
                }
                return;
            }
            for (f, part) in parts {
                let _ = match part {
                    Part::Head { status, headers } => {
                        let h = js_sys::Array::new();
                        for (k, v) in headers {
                            h.push(&js_sys::Array::of2(&k.into(), &v.into()));
                        }
                        f.call3(&JsValue::NULL, &"head".into(), &JsValue::from_f64(f64::from(status)), &h)
                    }
                    Part::Data(d) => f.call2(&JsValue::NULL, &"data".into(), &d.into()),
                    Part::End => f.call1(&JsValue::NULL, &"end".into()),
                };
            }
        }
    }
}
