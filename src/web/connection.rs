//! `Connection`: a raw MCP session on the gateway, for adapters such as `GatewayTransport` (the
//! official TypeScript SDK's `Client` speaks through it). Messages go in with `send`; everything the
//! gateway has for this session comes out through the listener given to `gateway.connect`.

use std::prelude::rust_2021::*;

use super::interop::{from_js, text_to_js, type_error};
use super::runtime::{self, Shared};
use crate::engine::SessionId;
use crate::jsonrpc::Message;
use std::cell::Cell;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
pub struct Connection {
    pub(crate) shared: Shared,
    pub(crate) session: SessionId,
    pub(crate) open: Cell<bool>,
}

#[wasm_bindgen]
impl Connection {
    /// Send one JSON-RPC message (request, notification or response) from the client. Throws a
    /// `TypeError` for something that is not JSON-RPC, or when the connection is closed.
    pub fn send(&self, message: JsValue) -> Result<(), JsValue> {
        if !self.open.get() {
            return Err(type_error("connection is closed"));
        }
        let v = from_js(&message)?;
        let m = Message::from_value(v).map_err(|e| type_error(&e.to_string()))?;
        runtime::with(&self.shared, |e, t| e.handle_client(t, self.session, m));
        Ok(())
    }

    /// End the session: its calls in flight are cancelled upstream.
    pub fn close(&self) {
        if self.open.replace(false) {
            runtime::close_session(&self.shared, self.session);
        }
    }
}

/// Deliver messages to a JS listener `(message) => void`.
pub(crate) fn listener_sink(listener: js_sys::Function) -> runtime::Sink {
    std::rc::Rc::new(move |_related, m: Message| {
        let _ = listener.call1(&JsValue::NULL, &text_to_js(&m.to_json()));
    })
}
