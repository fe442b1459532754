//! Values and errors at the JavaScript boundary. JSON crosses as JSON (plain objects, never `Map`s),
//! and errors become real `Error` objects that carry the JSON-RPC `code` and `data`.

use std::prelude::rust_2021::*;

use crate::jsonrpc::{code, ErrorObject};
use js_sys::Reflect;
use serde_json::Value;
use wasm_bindgen::prelude::*;

/// A JSON value as a plain JS value.
pub fn to_js(v: &Value) -> JsValue {
    text_to_js(&v.to_string())
}

/// JSON text (a message's `to_json`, say) as a plain JS value: no `Value` built on the way.
pub fn text_to_js(text: &str) -> JsValue {
    js_sys::JSON::parse(text).unwrap_or(JsValue::NULL)
}

/// A JS value as JSON; `undefined` is `null`. Functions, symbols and cycles are a `TypeError`.
pub fn from_js(v: &JsValue) -> Result<Value, JsValue> {
    if v.is_undefined() {
        return Ok(Value::Null);
    }
    let s = js_sys::JSON::stringify(v).map_err(|_| type_error("value is not JSON-serialisable"))?;
    let s: String = s.into();
    serde_json::from_str(&s).map_err(|e| type_error(&format!("value is not JSON: {e}")))
}

/// `McpError`: an `Error` with the JSON-RPC `code` and, when present, `data`.
pub fn rpc_error(e: &ErrorObject) -> JsValue {
    let err = js_sys::Error::new(&e.message);
    err.set_name("McpError");
    let _ = Reflect::set(&err, &"code".into(), &JsValue::from_f64(e.code as f64));
    if let Some(d) = &e.data {
        let _ = Reflect::set(&err, &"data".into(), &to_js(d));
    }
    err.into()
}

pub fn type_error(msg: &str) -> JsValue {
    js_sys::TypeError::new(msg).into()
}

/// The JSON-RPC error for a failed JS callback (its message, if it threw an `Error`).
pub fn error_from_js(v: &JsValue) -> ErrorObject {
    let code = Reflect::get(v, &"code".into()).ok().and_then(|c| c.as_f64()).map(|c| c as i64);
    let msg = Reflect::get(v, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| v.as_string())
        .unwrap_or_else(|| "the handler failed".into());
    ErrorObject::new(code.unwrap_or(code::INTERNAL_ERROR), msg)
}

/// A property of a JS object, if it is a function.
pub fn function(obj: &JsValue, name: &str) -> Option<js_sys::Function> {
    Reflect::get(obj, &name.into()).ok().and_then(|f| f.dyn_into().ok())
}
