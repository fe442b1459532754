//! WebSocket upstreams: one JSON-RPC message per text frame (the native host's `/ws`). Reconnects
//! with backoff when the socket closes.

use std::prelude::rust_2021::*;

use super::runtime::{self, Link, Shared};
use crate::engine::UpstreamId;
use crate::jsonrpc::Message;
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use wasm_bindgen::prelude::*;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

type Handler = Closure<dyn FnMut(JsValue)>;

pub struct WsLink {
    ws: WebSocket,
    closed: Cell<bool>,
    // The handlers live as long as the link.
    _handlers: RefCell<Vec<Handler>>,
}

impl Link for WsLink {
    fn send(&self, m: Message) {
        if self.ws.ready_state() == WebSocket::OPEN {
            let _ = self.ws.send_with_str(&m.to_json());
        }
    }

    fn close(&self) {
        self.closed.set(true);
        let _ = self.ws.close();
    }
}

/// Connect (and keep reconnecting) upstream `u` at `url`.
pub fn connect(shared: &Shared, u: UpstreamId, url: String) {
    open(runtime::weak(shared), u, url, 0);
}

fn open(rt: Weak<RefCell<runtime::Runtime>>, u: UpstreamId, url: String, attempt: u32) {
    let Some(shared) = rt.upgrade() else { return };
    if shared.borrow().closed {
        return;
    }
    let retry = {
        let (rt, url) = (rt.clone(), url.clone());
        move |attempt: u32| {
            if let Some(shared) = rt.upgrade() {
                runtime::schedule_reconnect(&shared, u, attempt, move || open(rt, u, url, attempt + 1))
            }
        }
    };
    let ws = match WebSocket::new(&url) {
        Ok(ws) => ws,
        Err(_) => return retry(attempt),
    };
    let link = Rc::new(WsLink { ws: ws.clone(), closed: Cell::new(false), _handlers: RefCell::new(Vec::new()) });
    let was_open = Rc::new(Cell::new(false));
    let up = {
        let (rt, link, was_open) = (rt.clone(), link.clone(), was_open.clone());
        Closure::<dyn FnMut(JsValue)>::new(move |_| {
            was_open.set(true);
            if let Some(s) = rt.upgrade() {
                runtime::link_up(&s, u, link.clone());
            }
        })
    };
    let msg = {
        let rt = rt.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            let Some(text) = e.dyn_into::<MessageEvent>().ok().and_then(|e| e.data().as_string()) else { return };
            match Message::parse(text.as_bytes()) {
                Ok(m) => {
                    if let Some(s) = rt.upgrade() {
                        runtime::from_upstream(&s, u, m, None);
                    }
                }
                Err(e) => web_sys_warn(&format!("ignoring a bad frame from a WebSocket upstream: {e}")),
            }
        })
    };
    let close = {
        let (rt, link, was_open) = (rt.clone(), link.clone(), was_open.clone());
        let mut retry = Some(retry);
        Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            let reason =
                e.dyn_into::<CloseEvent>().map(|c| format!("WebSocket closed ({})", c.code())).unwrap_or_default();
            if let Some(s) = rt.upgrade() {
                runtime::link_down(&s, u, &reason);
            }
            if !link.closed.get() {
                if let Some(r) = retry.take() {
                    r(if was_open.get() { 0 } else { attempt });
                }
            }
        })
    };
    ws.set_onopen(Some(up.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(msg.as_ref().unchecked_ref()));
    ws.set_onclose(Some(close.as_ref().unchecked_ref()));
    link._handlers.borrow_mut().extend([up, msg, close]);
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = warn)]
    fn web_sys_warn(m: &str);
}
