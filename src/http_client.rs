//! The client side of Streamable HTTP that does not depend on how bytes move: which era a message
//! goes out in, which headers it carries, what a reply means, and when a session has expired. The
//! native connector (hyper-util's client, `native-host/src/upstream/wire.rs`) and the browser
//! connector (`fetch`) both drive this.

use crate::prelude::*;

use crate::jsonrpc::{Id, Message};
use crate::protocol::{self, method, Era};
use serde_json::Value;

/// What one link to a Streamable HTTP upstream remembers.
#[derive(Debug, Default)]
pub struct HttpClientState {
    /// `Mcp-Session-Id` from the last successful `initialize` (legacy era).
    pub session: Option<String>,
    /// The protocol version `initialize` negotiated (legacy era).
    pub version: Option<String>,
    /// The era this link settled on: modern after a `server/discover` result, legacy after an
    /// `initialize` result. A modern client's request to a legacy upstream still carries modern
    /// `_meta`, so the message alone cannot decide the headers.
    pub era: Option<Era>,
    /// Messages an expired session refused, re-sent once a new session is initialised.
    retry: Vec<Message>,
    reinitializing: bool,
    /// Per tool (the upstream's own name): arguments its schema mirrors into `Mcp-Param-*` headers
    /// (`x-mcp-header`), as property paths. Learnt from the `tools/list` results on this link.
    param_headers: HashMap<String, Vec<(Vec<String>, String)>>,
}

impl HttpClientState {
    /// Whether `m` goes out in the modern era (modern headers; no session).
    pub fn is_modern(&self, m: &Message) -> bool {
        match (m.method(), self.era) {
            (Some(method::DISCOVER), _) => true,
            (Some(method::INITIALIZE), _) => false,
            (_, Some(era)) => era == Era::Modern,
            (_, None) => match m {
                Message::Request { params, .. } => {
                    protocol::request_version(params.as_ref()).and_then(protocol::era_of) == Some(Era::Modern)
                }
                _ => false,
            },
        }
    }

    /// The MCP headers of a GET on the endpoint (besides configured headers): the session's stream,
    /// or with `last` the resumption of a stream after that event.
    pub fn get_headers(&self, last: Option<&str>) -> Vec<(String, String)> {
        let mut h = vec![("accept".to_string(), "text/event-stream".to_string())];
        if let Some(s) = &self.session {
            h.push(("mcp-session-id".into(), s.clone()));
        }
        if let Some(v) = &self.version {
            h.push(("mcp-protocol-version".into(), v.clone()));
        }
        if let Some(l) = last {
            h.push(("last-event-id".into(), l.to_string()));
        }
        h
    }

    /// The MCP headers of a POST of `m` (besides content type, accept and configured headers).
    pub fn headers(&self, m: &Message, modern: bool) -> Vec<(String, String)> {
        let mut h = Vec::new();
        match m {
            Message::Request { method: meth, params, .. } if modern => {
                let v = protocol::request_version(params.as_ref()).unwrap_or(protocol::LATEST_MODERN);
                h.push(("mcp-protocol-version".into(), v.to_string()));
                h.push(("mcp-method".into(), meth.clone()));
                let name = match meth.as_str() {
                    method::TOOLS_CALL | method::PROMPTS_GET => params.as_ref().and_then(|p| p.get("name")),
                    method::RESOURCES_READ => params.as_ref().and_then(|p| p.get("uri")),
                    _ => None,
                };
                if let Some(n) = name.and_then(|n| n.as_str()) {
                    h.push(("mcp-name".into(), protocol::header_value(n)));
                    if meth == method::TOOLS_CALL {
                        h.extend(self.param_headers_for(n, params.as_ref().and_then(|p| p.get("arguments"))));
                    }
                }
            }
            _ if modern => {}
            _ if m.method() == Some(method::INITIALIZE) => {}
            _ => {
                if let Some(s) = &self.session {
                    h.push(("mcp-session-id".into(), s.clone()));
                }
                if let Some(v) = &self.version {
                    h.push(("mcp-protocol-version".into(), v.clone()));
                }
            }
        }
        h
    }

    /// One JSON body from the upstream, on the reply to our request `gid` (method `meth`): the
    /// message to hand to the engine, or `None` when it is not a message (or not an error on a
    /// failed status). Errors without an id (HTTP 400 replies) get ours. `initialize` and
    /// `server/discover` results settle the link's era.
    pub fn interpret(&mut self, body: &[u8], gid: Option<&Id>, meth: &str, ok: bool) -> Option<Message> {
        let msg = match Message::parse(body).ok()? {
            Message::Error { id: None, error, rest } if gid.is_some() => {
                Message::Error { id: gid.cloned(), error, rest }
            }
            m => m,
        };
        if !ok && !matches!(msg, Message::Error { .. }) {
            return None;
        }
        if let Message::Response { result, .. } = &msg {
            if meth == method::TOOLS_LIST {
                for tool in result.get("tools").and_then(Value::as_array).into_iter().flatten() {
                    if let Some(name) = tool.get("name").and_then(Value::as_str) {
                        let mut found = Vec::new();
                        if let Some(schema) = tool.get("inputSchema") {
                            mirrored(schema, &mut Vec::new(), &mut found);
                        }
                        if found.is_empty() {
                            self.param_headers.remove(name);
                        } else {
                            self.param_headers.insert(name.to_string(), found);
                        }
                    }
                }
            }
            if meth == method::INITIALIZE {
                self.version = result.get("protocolVersion").and_then(|v| v.as_str()).map(str::to_string);
                self.era = Some(Era::Legacy);
            } else if meth == method::DISCOVER && result.get("supportedVersions").is_some() {
                self.era = Some(Era::Modern);
            }
        }
        Some(msg)
    }

    /// `Mcp-Param-{X}` headers for a call of `tool`: each mirrored argument that is present, not
    /// null, and a string, integer or boolean.
    fn param_headers_for(&self, tool: &str, args: Option<&Value>) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (path, header) in self.param_headers.get(tool).into_iter().flatten() {
            let mut v = args;
            for key in path {
                v = v.and_then(|x| x.get(key));
            }
            let text = match v {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
                _ => continue,
            };
            out.push((format!("mcp-param-{header}"), protocol::header_value(&text)));
        }
        out
    }

    /// Whether a failed reply to a legacy request sent with a session means the session is gone:
    /// 404 is the spec's answer; some servers (the TypeScript SDK's) say 400 "No valid session ID".
    pub fn session_gone(status: u16, body: &str) -> bool {
        status == 404 || (status == 400 && body.to_ascii_lowercase().contains("session"))
    }

    /// The session expired and refused `m`: keep it for re-sending. True when this starts a new
    /// initialisation (the engine must be told once).
    pub fn expired(&mut self, m: Message) -> bool {
        self.session = None;
        self.retry.push(m);
        !core::mem::replace(&mut self.reinitializing, true)
    }

    /// The session expired (noticed without a refused message): true when this starts a new
    /// initialisation.
    pub fn forget_session(&mut self, session: &str) -> bool {
        if self.session.as_deref() != Some(session) {
            return false;
        }
        self.session = None;
        !core::mem::replace(&mut self.reinitializing, true)
    }

    /// `notifications/initialized` is going out: the new session is ready; re-send these after it.
    pub fn initialized(&mut self) -> Vec<Message> {
        self.reinitializing = false;
        core::mem::take(&mut self.retry)
    }
}

/// Collect the `x-mcp-header` annotations of a schema's properties, following `properties` chains
/// only, on string, integer and boolean properties (the only ones the spec allows).
fn mirrored(schema: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else { return };
    for (key, prop) in props {
        path.push(key.clone());
        if let Some(h) = prop.get("x-mcp-header").and_then(Value::as_str) {
            let scalar = match prop.get("type") {
                Some(Value::String(t)) => matches!(t.as_str(), "string" | "integer" | "boolean"),
                None => true,
                _ => false,
            };
            if scalar && !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                out.push((path.clone(), h.to_string()));
            }
        }
        mirrored(prop, path, out);
        path.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn headers_follow_the_era_the_link_settled_on() {
        let mut st = HttpClientState::default();
        let modern_meta = json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}, "name": "héllo"});
        let call = Message::request(Id::Num(1), "tools/call", modern_meta);
        assert!(st.is_modern(&call), "no era yet: the message decides");
        let h = st.headers(&call, true);
        assert!(h.contains(&("mcp-method".into(), "tools/call".into())));
        assert!(h.contains(&("mcp-name".into(), "=?base64?aMOpbGxv?=".into())));
        // The upstream turned out legacy: the same modern message goes out legacy, with the session.
        let init = st.interpret(
            br#"{"jsonrpc":"2.0","id":2,"result":{"protocolVersion":"2025-06-18"}}"#,
            Some(&Id::Num(2)),
            "initialize",
            true,
        );
        assert!(init.is_some());
        st.session = Some("s1".into());
        assert!(!st.is_modern(&call));
        assert_eq!(
            st.headers(&call, false),
            vec![("mcp-session-id".into(), "s1".into()), ("mcp-protocol-version".into(), "2025-06-18".into())]
        );
    }

    #[test]
    fn replies_are_interpreted_and_sessions_expire_once() {
        let mut st = HttpClientState::default();
        let e = st.interpret(
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Bad Request"}}"#,
            Some(&Id::Num(7)),
            "server/discover",
            false,
        );
        assert!(matches!(e, Some(Message::Error { id: Some(Id::Num(7)), .. })));
        assert!(st.interpret(b"<html>", Some(&Id::Num(7)), "x", false).is_none());
        assert!(st.interpret(br#"{"jsonrpc":"2.0","id":7,"result":{}}"#, Some(&Id::Num(7)), "x", false).is_none());
        assert!(HttpClientState::session_gone(404, ""));
        assert!(HttpClientState::session_gone(400, "Bad Request: No valid session ID provided"));
        assert!(!HttpClientState::session_gone(400, "bad params"));
        st.session = Some("s".into());
        assert!(st.expired(Message::notification("a", None)));
        assert!(!st.expired(Message::notification("b", None)), "one re-initialisation at a time");
        assert_eq!(st.initialized().len(), 2);
        assert!(!st.forget_session("other"));
    }

    #[test]
    fn mirrored_arguments_become_mcp_param_headers() {
        let mut st = HttpClientState::default();
        let tools = r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"deploy","inputSchema":{"type":"object","properties":{
            "region":{"type":"string","x-mcp-header":"Region"},
            "opts":{"type":"object","properties":{"dry":{"type":"boolean","x-mcp-header":"Dry-Run"}}},
            "blob":{"type":"object","x-mcp-header":"Nope"},
            "count":{"type":"integer","x-mcp-header":"Count"}}}}]}}"#;
        assert!(st.interpret(tools.as_bytes(), Some(&Id::Num(3)), "tools/list", true).is_some());
        let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}});
        let call = Message::request(
            Id::Num(4),
            "tools/call",
            json!({"_meta": meta, "name": "deploy", "arguments": {"region": "eu-wést", "opts": {"dry": true}, "count": null, "blob": {}}}),
        );
        let h = st.headers(&call, true);
        assert!(h.contains(&("mcp-param-Region".into(), "=?base64?ZXUtd8Opc3Q=?=".into())), "{h:?}");
        assert!(h.contains(&("mcp-param-Dry-Run".into(), "true".into())), "{h:?}");
        assert!(
            !h.iter().any(|(k, _)| k == "mcp-param-Count" || k == "mcp-param-Nope"),
            "null and objects are not mirrored: {h:?}"
        );
    }
}

/// Resuming SSE streams (2025-11-25): a server's stream that ends before its answer (or a GET stream
/// that ends at all) is picked up again with a GET carrying `Last-Event-ID`, after the server's
/// `retry` delay. The policy, for both connectors:
pub mod resume {
    /// The delay when the server sent no `retry`.
    pub const DEFAULT_RETRY_MS: u64 = 1000;
    /// A server's `retry` is honoured up to this (a hostile or broken one cannot park us for hours).
    pub const MAX_RETRY_MS: u64 = 60_000;
    /// Resumptions of one request's stream before its call is reported lost (in doubt).
    pub const ATTEMPTS: u32 = 5;

    /// How long to wait before reconnecting, given the stream's last `retry` field.
    pub fn delay_ms(retry: Option<u64>) -> u64 {
        retry.unwrap_or(DEFAULT_RETRY_MS).min(MAX_RETRY_MS)
    }
}
