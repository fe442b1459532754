//! JSON-RPC 2.0 messages, kept faithful on the wire.
//!
//! A gateway must hand back exactly what it was given: ids keep their type (`1` and `"1"` are different
//! requests), and every member it does not know is carried through in `rest`. Parsing is strict about
//! the envelope (it is what we route on) and lax about everything inside `params` and `result` (that
//! belongs to the peers).

use crate::prelude::*;

use core::fmt;
use core::fmt::Write as _;
use serde_json::{Map, Value};

/// JSON-RPC and MCP error codes the gateway produces or inspects.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// Implementation-defined server error: the upstream that owns the item is unavailable.
    pub const UPSTREAM_UNAVAILABLE: i64 = -32000;
    /// Implementation-defined server error: the upstream did not answer in time.
    pub const REQUEST_TIMEOUT: i64 = -32001;
    /// MCP: resource not found.
    pub const RESOURCE_NOT_FOUND: i64 = -32002;
    /// MCP 2026-07-28: HTTP headers do not match the body.
    pub const HEADER_MISMATCH: i64 = -32020;
    /// MCP 2026-07-28: the requested protocol version is not supported (`data.supported` lists ours).
    pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
    /// The gateway's tool policy does not allow this name for this caller.
    pub const FORBIDDEN: i64 = -32003;
    /// Over a limit (requests per minute, calls in flight): `data.retryAfterMs` says when to retry.
    /// The HTTP face answers it with 429.
    pub const RATE_LIMITED: i64 = -32029;
    /// An upstream's reply was larger than `limits.max_upstream_response_bytes`.
    pub const RESPONSE_TOO_LARGE: i64 = -32004;
}

/// A request id, exactly as the sender wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Id {
    /// An integer id. Kept as its JSON number so `1` stays `1` (never `1.0`).
    Num(i64),
    Str(String),
}

impl Id {
    pub fn to_value(&self) -> Value {
        match self {
            Id::Num(n) => Value::from(*n),
            Id::Str(s) => Value::String(s.clone()),
        }
    }

    fn from_value(v: &Value) -> Option<Id> {
        match v {
            Value::String(s) => Some(Id::Str(s.clone())),
            Value::Number(n) => n.as_i64().map(Id::Num),
            _ => None,
        }
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Num(n) => write!(f, "{n}"),
            Id::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// The error object of a JSON-RPC error response.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorObject {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl ErrorObject {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        ErrorObject { code, message: message.into(), data: None }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("code".into(), Value::from(self.code));
        m.insert("message".into(), Value::String(self.message.clone()));
        if let Some(d) = &self.data {
            m.insert("data".into(), d.clone());
        }
        Value::Object(m)
    }

    fn from_value(v: &Value) -> Option<ErrorObject> {
        let o = v.as_object()?;
        Some(ErrorObject {
            code: o.get("code")?.as_i64()?,
            message: o.get("message").and_then(Value::as_str).unwrap_or_default().to_string(),
            data: o.get("data").cloned(),
        })
    }
}

/// One JSON-RPC message. `rest` holds any members beyond the ones JSON-RPC defines.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Request { id: Id, method: String, params: Option<Value>, rest: Map<String, Value> },
    Notification { method: String, params: Option<Value>, rest: Map<String, Value> },
    Response { id: Id, result: Value, rest: Map<String, Value> },
    Error { id: Option<Id>, error: ErrorObject, rest: Map<String, Value> },
}

/// Why a payload is not a JSON-RPC message; maps onto the wire through [`ParseError::to_error`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("parse error: {0}")]
    Json(String),
    #[error("invalid request: {0}")]
    Invalid(&'static str),
    #[error("batches are not supported")]
    Batch,
}

impl ParseError {
    /// The JSON-RPC error object a peer should get for this payload.
    pub fn to_error(&self) -> ErrorObject {
        match self {
            ParseError::Json(m) => ErrorObject::new(code::PARSE_ERROR, format!("Parse error: {m}")),
            ParseError::Invalid(m) => ErrorObject::new(code::INVALID_REQUEST, format!("Invalid Request: {m}")),
            ParseError::Batch => ErrorObject::new(
                code::INVALID_REQUEST,
                "Invalid Request: JSON-RPC batches are not supported by MCP after 2025-03-26",
            ),
        }
    }
}

/// Nesting depth above which a payload is refused before it is parsed (serde_json itself stops at 128).
pub const MAX_DEPTH: usize = 64;

/// An upstream's message of `len` bytes, bounded by `max`: a larger answer becomes an error for the
/// request it answers (that call fails, the gateway and the other calls go on); anything else that
/// large is dropped (`None`).
pub fn bounded(m: Message, len: usize, max: usize) -> Option<Message> {
    if len <= max {
        return Some(m);
    }
    match m {
        Message::Response { id, .. } | Message::Error { id: Some(id), .. } => Some(Message::error(
            Some(id),
            ErrorObject::new(
                code::RESPONSE_TOO_LARGE,
                format!("The upstream's reply of {len} bytes is over limits.max_upstream_response_bytes ({max})"),
            ),
        )),
        _ => None,
    }
}

impl Message {
    /// Parse one message from bytes. Invalid UTF-8, bad JSON, batches and wrong shapes are errors.
    pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
        let text = core::str::from_utf8(bytes).map_err(|_| ParseError::Json("body is not valid UTF-8".into()))?;
        if nesting_depth(text) > MAX_DEPTH {
            return Err(ParseError::Json(format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        let v: Value = serde_json::from_str(text).map_err(|e| ParseError::Json(e.to_string()))?;
        Message::from_value(v)
    }

    /// Interpret an already parsed JSON value as a message.
    ///
    /// One pass over the members, no lookups: the envelope's are taken out as they come and the
    /// rest keep their order (removing each by name hashed every name again, and moved the last
    /// member into the hole).
    pub fn from_value(v: Value) -> Result<Message, ParseError> {
        let o = match v {
            Value::Object(o) => o,
            Value::Array(_) => return Err(ParseError::Batch),
            _ => return Err(ParseError::Invalid("a message must be a JSON object")),
        };
        let (mut jsonrpc, mut id, mut method, mut params, mut error, mut result) = (None, None, None, None, None, None);
        let mut rest = Map::new();
        for (k, v) in o {
            let slot = match k.as_str() {
                "jsonrpc" => &mut jsonrpc,
                "id" => &mut id,
                "method" => &mut method,
                "params" => &mut params,
                "error" => &mut error,
                "result" => &mut result,
                _ => {
                    rest.insert(k, v);
                    continue;
                }
            };
            *slot = Some(v);
        }
        match jsonrpc {
            Some(Value::String(s)) if s == "2.0" => {}
            _ => return Err(ParseError::Invalid("\"jsonrpc\" must be \"2.0\"")),
        }
        let id = match id {
            None => None,
            Some(Value::Null) => Some(None),
            Some(v) => {
                Some(Some(Id::from_value(&v).ok_or(ParseError::Invalid("\"id\" must be a string or an integer"))?))
            }
        };
        if let Some(method) = method {
            let method = match method {
                Value::String(m) => m,
                _ => return Err(ParseError::Invalid("\"method\" must be a string")),
            };
            let params = match params {
                None => None,
                Some(p @ Value::Object(_)) | Some(p @ Value::Array(_)) => Some(p),
                Some(_) => return Err(ParseError::Invalid("\"params\" must be an object or an array")),
            };
            // Not a response: whatever `error` or `result` it carries is not ours to read.
            keep(&mut rest, "error", error);
            keep(&mut rest, "result", result);
            return match id {
                None => Ok(Message::Notification { method, params, rest }),
                Some(Some(id)) => Ok(Message::Request { id, method, params, rest }),
                Some(None) => Err(ParseError::Invalid("a request id must not be null")),
            };
        }
        keep(&mut rest, "params", params);
        if let Some(err) = error {
            let error = ErrorObject::from_value(&err).ok_or(ParseError::Invalid("malformed error object"))?;
            keep(&mut rest, "result", result);
            return Ok(Message::Error { id: id.flatten(), error, rest });
        }
        if let Some(result) = result {
            let id = id.flatten().ok_or(ParseError::Invalid("a response needs an id"))?;
            return Ok(Message::Response { id, result, rest });
        }
        Err(ParseError::Invalid("neither a request, a notification nor a response"))
    }

    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("jsonrpc".into(), Value::from("2.0"));
        match self {
            Message::Request { id, method, params, rest } => {
                m.insert("id".into(), id.to_value());
                m.insert("method".into(), Value::String(method.clone()));
                if let Some(p) = params {
                    m.insert("params".into(), p.clone());
                }
                extend(&mut m, rest);
            }
            Message::Notification { method, params, rest } => {
                m.insert("method".into(), Value::String(method.clone()));
                if let Some(p) = params {
                    m.insert("params".into(), p.clone());
                }
                extend(&mut m, rest);
            }
            Message::Response { id, result, rest } => {
                m.insert("id".into(), id.to_value());
                m.insert("result".into(), result.clone());
                extend(&mut m, rest);
            }
            Message::Error { id, error, rest } => {
                m.insert("id".into(), id.as_ref().map(Id::to_value).unwrap_or(Value::Null));
                m.insert("error".into(), error.to_value());
                extend(&mut m, rest);
            }
        }
        Value::Object(m)
    }

    /// The message as JSON text: exactly `to_value().to_string()`, written without building that
    /// value, so nothing of `params`, `result` or `rest` is copied on the way out (the copy and the
    /// map were 1.2 % of the CPU of a proxied call, and grow with the payload). Members come in the
    /// same order: the envelope, then `rest` without the names the envelope wrote.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(96);
        out.push_str(r#"{"jsonrpc":"2.0""#);
        let (envelope, rest): (&[&str], _) = match self {
            Message::Request { id, method, params, rest } => {
                out.push_str(r#","id":"#);
                push_id(&mut out, Some(id));
                out.push_str(r#","method":"#);
                push_str(&mut out, method);
                if let Some(p) = params {
                    push_member(&mut out, "params", p);
                }
                (
                    if params.is_some() {
                        &["jsonrpc", "id", "method", "params"]
                    } else {
                        &["jsonrpc", "id", "method"]
                    },
                    rest,
                )
            }
            Message::Notification { method, params, rest } => {
                out.push_str(r#","method":"#);
                push_str(&mut out, method);
                if let Some(p) = params {
                    push_member(&mut out, "params", p);
                }
                (if params.is_some() { &["jsonrpc", "method", "params"] } else { &["jsonrpc", "method"] }, rest)
            }
            Message::Response { id, result, rest } => {
                out.push_str(r#","id":"#);
                push_id(&mut out, Some(id));
                push_member(&mut out, "result", result);
                (&["jsonrpc", "id", "result"], rest)
            }
            Message::Error { id, error, rest } => {
                out.push_str(r#","id":"#);
                push_id(&mut out, id.as_ref());
                let _ = write!(out, r#","error":{{"code":{},"message":"#, error.code);
                push_str(&mut out, &error.message);
                if let Some(d) = &error.data {
                    push_member(&mut out, "data", d);
                }
                out.push('}');
                (&["jsonrpc", "id", "error"], rest)
            }
        };
        for (k, v) in rest {
            if !envelope.contains(&k.as_str()) {
                push_member(&mut out, k, v);
            }
        }
        out.push('}');
        out
    }

    pub fn request(id: Id, method: &str, params: Value) -> Message {
        Message::Request { id, method: method.into(), params: Some(params), rest: Map::new() }
    }

    pub fn notification(method: &str, params: Option<Value>) -> Message {
        Message::Notification { method: method.into(), params, rest: Map::new() }
    }

    pub fn response(id: Id, result: Value) -> Message {
        Message::Response { id, result, rest: Map::new() }
    }

    pub fn error(id: Option<Id>, error: ErrorObject) -> Message {
        Message::Error { id, error, rest: Map::new() }
    }

    pub fn method(&self) -> Option<&str> {
        match self {
            Message::Request { method, .. } | Message::Notification { method, .. } => Some(method),
            _ => None,
        }
    }

    pub fn is_request(&self) -> bool {
        matches!(self, Message::Request { .. })
    }
}

/// `,"key":value`. Values are written by `Value`'s own `Display`, the one serialiser the core uses.
fn push_member(out: &mut String, key: &str, value: &Value) {
    out.push(',');
    push_str(out, key);
    out.push(':');
    let _ = write!(out, "{value}");
}

/// A JSON string, escaped by serde_json (through `Value`'s `Display`, so no second serialiser is
/// compiled in; the copy is of a short name).
fn push_str(out: &mut String, s: &str) {
    let _ = write!(out, "{}", Value::String(s.into()));
}

fn push_id(out: &mut String, id: Option<&Id>) {
    match id {
        Some(Id::Num(n)) => {
            let _ = write!(out, "{n}");
        }
        Some(Id::Str(s)) => push_str(out, s),
        None => out.push_str("null"),
    }
}

/// A member the message's kind does not read goes back among the unknown ones.
fn keep(rest: &mut Map<String, Value>, key: &str, v: Option<Value>) {
    if let Some(v) = v {
        rest.insert(key.into(), v);
    }
}

fn extend(m: &mut Map<String, Value>, rest: &Map<String, Value>) {
    for (k, v) in rest {
        m.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

/// Deepest nesting of `[`/`{` outside strings. Linear, no allocation: run before parsing so a hostile
/// body cannot exhaust the stack of a parser.
pub fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ping whose params nest `levels` deep in all, counting the message object itself.
    fn ping_nested(levels: usize) -> String {
        let inner = levels - 2; // the message object and params
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"x":{}1{}}}}}"#,
            "[".repeat(inner),
            "]".repeat(inner)
        )
    }

    /// Unknown members come through in their order, and the envelope members a kind of message
    /// does not read stay among them (a request's `result`, a response's `params`).
    #[test]
    fn unknown_members_keep_their_order_and_unread_envelope_members() {
        let text = r#"{"z":1,"jsonrpc":"2.0","b":2,"id":7,"result":"r","method":"m","a":3,"error":{"code":1}}"#;
        let Ok(Message::Request { rest, .. }) = Message::parse(text.as_bytes()) else { panic!("a request") };
        assert_eq!(rest.keys().collect::<Vec<_>>(), ["z", "b", "a", "error", "result"]);
        let text = r#"{"params":{},"id":"x","q":0,"jsonrpc":"2.0","result":[],"p":1}"#;
        let Ok(Message::Response { rest, id, .. }) = Message::parse(text.as_bytes()) else { panic!("a response") };
        assert_eq!(id, Id::Str("x".into()));
        assert_eq!(rest.keys().collect::<Vec<_>>(), ["q", "p", "params"]);
        let text = r#"{"jsonrpc":"2.0","id":null,"result":1,"error":{"code":-1,"message":"m"}}"#;
        let Ok(Message::Error { rest, id: None, .. }) = Message::parse(text.as_bytes()) else { panic!("an error") };
        assert_eq!(rest.keys().collect::<Vec<_>>(), ["result"]);
    }

    /// `to_json` writes the text itself; it must be exactly what serialising `to_value` gives, for
    /// every kind of message, escapes, ids of both types, and `rest` members that collide with the
    /// envelope's names (the envelope wins, as in `to_value`, where it wrote that name).
    #[test]
    fn to_json_is_exactly_the_value_serialised() {
        let mut rest = Map::new();
        rest.insert("zeta \"q\"\n".into(), serde_json::json!({"b": [1, 2.5, null], "a": "\u{7}é"}));
        rest.insert("id".into(), Value::from(99));
        rest.insert("jsonrpc".into(), Value::from("1.0"));
        rest.insert("method".into(), Value::from("other"));
        rest.insert("result".into(), Value::from(false));
        rest.insert("error".into(), Value::from(0));
        rest.insert("_meta".into(), serde_json::json!({"k": "v"}));
        let mut rest_params = Map::new();
        rest_params.insert("params".into(), serde_json::json!({"from": "rest"}));
        let params = serde_json::json!({"name": "t\u{1}ab\"", "arguments": {"x": [true, {"y": -1}]}});
        let err = ErrorObject::new(-32000, "down \"x\"\t").with_data(serde_json::json!({"retryAfterMs": 5}));
        let messages = [
            Message::Request {
                id: Id::Num(-7),
                method: "tools/call".into(),
                params: Some(params.clone()),
                rest: rest.clone(),
            },
            Message::Request { id: Id::Str("a\"b\\".into()), method: "ping".into(), params: None, rest: Map::new() },
            Message::Notification {
                method: "notifications/x\u{0}".into(),
                params: Some(Value::Array(vec![])),
                rest: rest.clone(),
            },
            Message::Notification { method: "n".into(), params: None, rest: Map::new() },
            Message::Notification { method: "n".into(), params: None, rest: rest_params.clone() },
            Message::Request { id: Id::Num(1), method: "m".into(), params: None, rest: rest_params.clone() },
            Message::Request {
                id: Id::Num(2),
                method: "m".into(),
                params: Some(Value::Array(vec![])),
                rest: rest_params,
            },
            Message::Response { id: Id::Num(i64::MAX), result: params.clone(), rest: rest.clone() },
            Message::Error { id: None, error: ErrorObject::new(1, ""), rest: Map::new() },
            Message::Error { id: Some(Id::Str("".into())), error: err, rest },
        ];
        for m in messages {
            assert_eq!(m.to_json(), m.to_value().to_string(), "{m:?}");
            assert_eq!(serde_json::from_str::<Value>(&m.to_json()).ok(), Some(m.to_value()));
        }
    }

    #[test]
    fn nesting_is_refused_just_past_64_levels_and_accepted_at_64() {
        let at = ping_nested(64);
        assert_eq!(nesting_depth(&at), 64);
        assert!(Message::parse(at.as_bytes()).is_ok(), "64 levels are allowed");
        let over = ping_nested(65);
        assert_eq!(nesting_depth(&over), 65);
        let e = Message::parse(over.as_bytes()).unwrap_err();
        assert!(matches!(&e, ParseError::Json(m) if m.contains("nesting deeper than 64")), "{e:?}");
    }

    #[test]
    fn brackets_inside_strings_are_not_nesting() {
        let text = r#"{"a":"[[[{{{\"]]]","b":["\\",{"c":"}"}]}"#;
        assert_eq!(nesting_depth(text), 3);
    }
}
