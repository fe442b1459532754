//! The in-page upstream: tools registered from JavaScript (`gateway.registerTool`), served as a small
//! legacy-era MCP server inside the page and aggregated like any other upstream.

use std::prelude::rust_2021::*;

use super::interop::{error_from_js, from_js, to_js};
use super::runtime::{self, Link, Shared};
use crate::engine::UpstreamId;
use crate::jsonrpc::{code, ErrorObject, Id, Message};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{spawn_local, JsFuture};

pub struct LocalUpstream {
    pub upstream: UpstreamId,
    runtime: Weak<RefCell<runtime::Runtime>>,
    tools: RefCell<Vec<(Value, js_sys::Function)>>,
}

impl LocalUpstream {
    pub fn new(shared: &Shared, upstream: UpstreamId) -> Rc<Self> {
        Rc::new(LocalUpstream { upstream, runtime: runtime::weak(shared), tools: RefCell::new(Vec::new()) })
    }

    /// Add (or replace) a tool; tell the engine the list changed.
    pub fn register(&self, definition: Value, handler: js_sys::Function) -> Result<(), JsValue> {
        let name = definition.get("name").and_then(Value::as_str).map(str::to_string);
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            return Err(super::interop::type_error("registerTool: definition.name must be a non-empty string"));
        };
        let mut def = definition;
        if def.get("inputSchema").is_none() {
            def["inputSchema"] = json!({"type": "object"});
        }
        {
            let mut tools = self.tools.borrow_mut();
            tools.retain(|(d, _)| d.get("name").and_then(Value::as_str) != Some(name.as_str()));
            tools.push((def, handler));
        }
        self.changed();
        Ok(())
    }

    pub fn unregister(&self, name: &str) {
        self.tools.borrow_mut().retain(|(d, _)| d.get("name").and_then(Value::as_str) != Some(name));
        self.changed();
    }

    fn changed(&self) {
        if let Some(rt) = self.runtime.upgrade() {
            let n = Message::notification("notifications/tools/list_changed", None);
            runtime::from_upstream(&rt, self.upstream, n, None);
        }
    }

    fn reply(&self, m: Message) {
        if let Some(rt) = self.runtime.upgrade() {
            runtime::from_upstream(&rt, self.upstream, m, None);
        }
    }
}

impl Link for LocalUpstream {
    fn send(&self, m: Message) {
        let Message::Request { id, method, params, .. } = m else { return };
        let p = params.unwrap_or(json!({}));
        let answer = match method.as_str() {
            "initialize" => Message::response(
                id,
                json!({
                    "protocolVersion": crate::protocol::LATEST_LEGACY,
                    "capabilities": { "tools": { "listChanged": true } },
                    "serverInfo": { "name": "page", "version": env!("CARGO_PKG_VERSION") },
                }),
            ),
            "ping" => Message::response(id, json!({})),
            "tools/list" => {
                let tools: Vec<Value> = self.tools.borrow().iter().map(|(d, _)| d.clone()).collect();
                Message::response(id, json!({ "tools": tools }))
            }
            "tools/call" => return self.call(id, p),
            other => {
                Message::error(Some(id), ErrorObject::new(code::METHOD_NOT_FOUND, format!("Method not found: {other}")))
            }
        };
        self.reply(answer);
    }

    fn close(&self) {}
}

impl LocalUpstream {
    fn call(&self, id: Id, p: Value) {
        let name = p.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        let handler = self
            .tools
            .borrow()
            .iter()
            .find(|(d, _)| d.get("name").and_then(Value::as_str) == Some(name.as_str()))
            .map(|(_, h)| h.clone());
        let Some(handler) = handler else {
            let e = ErrorObject::new(code::INVALID_PARAMS, format!("Unknown tool: {name}"));
            return self.reply(Message::error(Some(id), e));
        };
        let args = to_js(p.get("arguments").unwrap_or(&json!({})));
        let meta = to_js(p.get("_meta").unwrap_or(&Value::Null));
        let runtime = self.runtime.clone();
        let upstream = self.upstream;
        // A handler may return a value or a promise, and may throw.
        let outcome = handler.call2(&JsValue::NULL, &args, &meta);
        spawn_local(async move {
            let settled = match outcome {
                Ok(v) => JsFuture::from(js_sys::Promise::resolve(&v)).await,
                Err(e) => Err(e),
            };
            let result = match settled {
                Ok(v) => match from_js(&v) {
                    Ok(r) => tool_result(r),
                    Err(e) => error_result(&error_from_js(&e).message),
                },
                Err(e) => error_result(&error_from_js(&e).message),
            };
            if let Some(rt) = runtime.upgrade() {
                runtime::from_upstream(&rt, upstream, Message::response(id, result), None);
            }
        });
    }
}

/// What a handler returned, as a CallToolResult: a result object is passed as is; anything else
/// becomes text content (and structured content when it is an object).
fn tool_result(r: Value) -> Value {
    if r.get("content").is_some_and(Value::is_array) {
        return r;
    }
    let text = match &r {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut out = json!({ "content": [{ "type": "text", "text": text }] });
    if r.is_object() {
        out["structuredContent"] = r;
    }
    out
}

fn error_result(message: &str) -> Value {
    json!({ "content": [{ "type": "text", "text": message }], "isError": true })
}
